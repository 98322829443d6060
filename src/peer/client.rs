//! HTTP GETs of a remote store's files, bounded in size and time.
//!
//! Owns [`Http`]: one keep-alive client per remote, with the bearer token, the deadline and the
//! bandwidth limit it was given. Every reply is untrusted: a body larger than the caller's cap is
//! refused before it is read (whatever the `Content-Length` says, nothing beyond the cap is
//! buffered), a range reply must say it is exactly the range asked for, a body that ends early or
//! stalls is an error, and no request outlives its deadline. Errors name the URL.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_RANGE, RANGE};

use crate::error::{Error, Result};
use crate::peer::files::Files;
use crate::peer::rate::RateLimit;

/// How a remote is reached.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Longest wait for a connection, for a reply, or between two pieces of a body.
    pub timeout: Duration,
    /// Sent as `Authorization: Bearer …` when set.
    pub token: Option<String>,
    /// Shared bandwidth limit for everything read from the remote.
    pub limit: Option<Arc<RateLimit>>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(20),
            token: None,
            limit: None,
        }
    }
}

/// Bytes are read from a body in pieces of this size (each piece pays the rate limit).
const PIECE: usize = 256 << 10;
/// The slowest average a reply may arrive at, beyond its fixed allowance: a satellite link is
/// slow but steady; a peer trickling bytes to hold a reader is cut off.
const MIN_RATE: f64 = 32.0 * 1024.0;

/// When a reply that started at `start` must be done by, once `received` bytes have arrived:
/// twice the timeout, plus time for those bytes at [`MIN_RATE`] or at the rate limit.
struct Deadline {
    start: Instant,
    allowance: Duration,
    seconds_per_byte: f64,
}

impl Deadline {
    fn passed(&self, received: u64) -> bool {
        let budget =
            self.allowance + Duration::from_secs_f64(received as f64 * self.seconds_per_byte);
        self.start.elapsed() > budget
    }
}

/// A remote store's base URL and the client that reads it.
pub struct Http {
    base: String,
    client: Client,
    options: HttpOptions,
    /// Requests sent and body bytes received, for reports.
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl Http {
    /// A client for the store published at `base` (`http://` or `https://`).
    pub fn new(base: &str, options: HttpOptions) -> Result<Http> {
        let base = base.trim_end_matches('/').to_owned();
        let client = Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .map_err(|e| Error::Remote {
                url: base.clone(),
                reason: format!("cannot set up an HTTP client: {e}"),
            })?;
        Ok(Http {
            base,
            client,
            options,
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        })
    }

    fn deadline(&self) -> Deadline {
        let limited = self
            .options
            .limit
            .as_ref()
            .map_or(0.0, |l| 1.0 / l.rate().0 as f64);
        Deadline {
            start: Instant::now(),
            allowance: self.options.timeout * 2,
            seconds_per_byte: limited.max(1.0 / MIN_RATE),
        }
    }

    fn error(&self, path: &str, reason: impl Into<String>) -> Error {
        Error::Remote {
            url: self.url(path),
            reason: reason.into(),
        }
    }

    fn send(&self, path: &str, range: Option<(u64, u64)>) -> Result<Response> {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = &self.options.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some((start, len)) = range {
            request = request.header(RANGE, format!("bytes={start}-{}", start + len - 1));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        request.send().map_err(|e| self.error(path, describe(&e)))
    }

    /// Reads one piece of a body (`received` bytes came before it), paying the rate limit and
    /// checking the deadline.
    fn read_piece(
        &self,
        path: &str,
        body: &mut impl Read,
        buf: &mut [u8],
        deadline: &Deadline,
        received: usize,
    ) -> Result<usize> {
        if deadline.passed(received as u64) {
            return Err(self.error(
                path,
                "too slow: the reply did not arrive within its deadline",
            ));
        }
        let n = body
            .read(buf)
            .map_err(|e| self.error(path, format!("reading the reply failed: {e}")))?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(limit) = &self.options.limit {
            limit.take(n as u64);
        }
        Ok(n)
    }

    fn status_error(&self, path: &str, status: StatusCode) -> Error {
        let hint = match status {
            StatusCode::UNAUTHORIZED => "; pass the server's token with --token-file",
            StatusCode::FORBIDDEN => "; this address is not allowed by the server",
            _ => "",
        };
        self.error(path, format!("answered {status}{hint}"))
    }
}

impl Files for Http {
    fn base(&self) -> &str {
        &self.base
    }

    fn counters(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Under a rate limit the reader drains its sockets slowly, so the kernel holds up to a
    /// whole range of received bytes that a kill would lose: ranges are kept to 1 MiB (at a
    /// limited rate the extra requests cost nothing). Otherwise 4 MiB.
    fn run_size(&self) -> u64 {
        match self.options.limit {
            Some(_) => 1 << 20,
            None => 4 << 20,
        }
    }

    /// GETs `path`, at most `cap` bytes; `None` if the remote does not have it (404).
    fn get(&self, path: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        let deadline = self.deadline();
        let response = self.send(path, None)?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            status => return Err(self.status_error(path, status)),
        }
        if let Some(declared) = response.content_length().filter(|&n| n > cap) {
            return Err(self.error(
                path,
                format!("declares {declared} bytes, more than the {cap} such a file may have"),
            ));
        }
        let mut body = Vec::new();
        let mut limited = response.take(cap + 1);
        let mut piece = vec![0u8; PIECE];
        loop {
            let n = self.read_piece(path, &mut limited, &mut piece, &deadline, body.len())?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&piece[..n]);
            if body.len() as u64 > cap {
                return Err(self.error(
                    path,
                    format!("is larger than the {cap} bytes such a file may have"),
                ));
            }
        }
        Ok(Some(body))
    }

    /// GETs bytes `offset..offset + len` of `path`, handing them to `each` piece by piece as
    /// they arrive: the reply must be exactly that range, and is cut off at its deadline.
    fn get_range_each(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let deadline = self.deadline();
        let last = offset + len - 1;
        let response = self.send(path, Some((offset, len)))?;
        match response.status() {
            StatusCode::PARTIAL_CONTENT => {}
            StatusCode::NOT_FOUND => return Err(self.error(path, "not found")),
            StatusCode::OK => {
                return Err(self.error(
                    path,
                    "answered a range request with the whole file; the server must support ranges",
                ));
            }
            status => return Err(self.status_error(path, status)),
        }
        let range = response
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !range.starts_with(&format!("bytes {offset}-{last}/")) {
            return Err(self.error(
                path,
                format!("sent range {range:?} when asked for bytes {offset}-{last}"),
            ));
        }
        if let Some(declared) = response.content_length().filter(|&n| n != len) {
            return Err(self.error(
                path,
                format!("declares a body of {declared} bytes for a range of {len}"),
            ));
        }
        let mut body = response.take(len);
        let mut piece = vec![0u8; PIECE.min(len as usize)];
        let mut received = 0;
        while received < len {
            let want = (len - received).min(piece.len() as u64) as usize;
            let n = self.read_piece(
                path,
                &mut body,
                &mut piece[..want],
                &deadline,
                received as usize,
            )?;
            if n == 0 {
                return Err(self.error(path, format!("body ended after {received} of {len} bytes")));
            }
            each(&piece[..n])?;
            received += n as u64;
        }
        Ok(())
    }
}

/// A transport error in a few words: what failed and the innermost cause (reqwest's own message
/// repeats the URL, which the caller's error already names).
fn describe(error: &reqwest::Error) -> String {
    let mut innermost = None;
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        innermost = Some(e.to_string());
        cause = e.source();
    }
    let what = match () {
        _ if error.is_timeout() => "timed out",
        _ if error.is_connect() => "cannot connect",
        _ => "request failed",
    };
    match innermost {
        Some(cause) => format!("{what}: {cause}"),
        None => what.to_owned(),
    }
}
