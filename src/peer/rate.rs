//! Bandwidth limits: `--limit-rate RATE` for `serve`, `pull` and network sources.
//!
//! Owns [`Rate`] (parsing `20M`, `512Ki`, …) and [`RateLimit`], a token bucket shared by every
//! transfer it governs. The bucket is kept as the time the next byte may go (virtual scheduling):
//! each transfer of `n` bytes moves that time on by `n / rate` and sleeps until it, so the average
//! over any window longer than the burst holds the rate, however many threads take from it.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A rate in bytes per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate(pub u64);

impl FromStr for Rate {
    type Err = String;

    /// A number with an optional suffix: K, M, G (10^3, 10^6, 10^9 bytes/s) or Ki, Mi, Gi
    /// (2^10, 2^20, 2^30), e.g. `20M`, `512Ki`, `1500000`.
    fn from_str(text: &str) -> Result<Rate, String> {
        let bad = || format!("{text:?} is not a rate: use bytes per second, e.g. 20M or 512Ki");
        let digits = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(digits);
        let number: u64 = number.parse().map_err(|_| bad())?;
        let unit: u64 = match suffix {
            "" => 1,
            "K" | "k" => 1_000,
            "M" | "m" => 1_000_000,
            "G" | "g" => 1_000_000_000,
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            _ => return Err(bad()),
        };
        match number.checked_mul(unit) {
            Some(rate) if rate > 0 => Ok(Rate(rate)),
            _ => Err(bad()),
        }
    }
}

/// A token bucket: at most `rate` bytes per second on average, with bursts of [`BURST`].
#[derive(Debug)]
pub struct RateLimit {
    rate: u64,
    /// When the bytes taken so far have all been paid for. Behind `now - BURST` it is moved up,
    /// so idle time buys at most one burst.
    next: Mutex<Instant>,
}

/// How far ahead of the average a transfer may run after an idle spell.
const BURST: Duration = Duration::from_millis(100);

impl RateLimit {
    /// A bucket of `rate`.
    pub fn new(rate: Rate) -> RateLimit {
        RateLimit {
            rate: rate.0,
            next: Mutex::new(Instant::now()),
        }
    }

    /// The rate.
    pub fn rate(&self) -> Rate {
        Rate(self.rate)
    }

    /// How long a caller about to move `bytes` must wait first; the bytes are paid for.
    pub fn reserve(&self, bytes: u64) -> Duration {
        let now = Instant::now();
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        let mut next = self.next.lock().expect("rate limit lock poisoned");
        let start = (*next).max(now.checked_sub(BURST).unwrap_or(now));
        *next = start + cost;
        (start + cost).saturating_duration_since(now + BURST)
    }

    /// Blocks until `bytes` may be moved.
    pub fn take(&self, bytes: u64) {
        let wait = self.reserve(bytes);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!("20M".parse(), Ok(Rate(20_000_000)));
        assert_eq!("512Ki".parse(), Ok(Rate(512 << 10)));
        assert_eq!("1500".parse(), Ok(Rate(1500)));
        for bad in ["", "M", "0", "20X", "-1", "99999999999G", "1.5M"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_bucket_holds_the_average() {
        let limit = RateLimit::new(Rate(1_000_000));
        // 5 MB taken at once must be paid for over about 5 s, less the burst.
        let waited: Duration = (0..50).map(|_| limit.reserve(100_000)).last().unwrap();
        assert!(waited > Duration::from_millis(4700), "{waited:?}");
        assert!(waited < Duration::from_millis(5100), "{waited:?}");
    }
}
