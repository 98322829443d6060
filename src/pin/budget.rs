//! The mount's `--pin-budget SIZE`: which versions it pins by itself, and which it lets go.
//!
//! Owns the policy, kept apart from the I/O that carries it out (the mount's pinner thread):
//! every version read through the store's chunks earns a score, the bytes it served, halved each
//! round so old reads fade. A version whose score reaches half its size (a loader read most of
//! it lately) and that fits the budget is pinned, the most-read first, one per round; automatic
//! pins used least recently make room for it. Pins made by hand neither count against the budget
//! nor are ever evicted.

use std::collections::HashMap;

use crate::format::pins::PinTable;

/// A version the mount reads, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Model name.
    pub model: String,
    /// Version name.
    pub version: String,
    /// Bytes of its files.
    pub size: u64,
}

/// What to do this round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Automatic pins to drop first, least recently used first: (model, version).
    pub evict: Vec<(String, String)>,
    /// The version to pin: (model, version).
    pub pin: Option<(String, String)>,
}

/// Read scores by `model@version`, fed with cumulative byte counts each round.
#[derive(Debug, Default)]
pub struct Scores {
    last_total: HashMap<(String, String), u64>,
    score: HashMap<(String, String), u64>,
}

impl Scores {
    /// Takes this round's cumulative bytes read per (model, version): halves every score and
    /// adds what each version read since the last round.
    pub fn update(&mut self, totals: impl IntoIterator<Item = ((String, String), u64)>) {
        for score in self.score.values_mut() {
            *score /= 2;
        }
        for (key, total) in totals {
            let last = self.last_total.insert(key.clone(), total).unwrap_or(0);
            *self.score.entry(key).or_default() += total.saturating_sub(last);
        }
        self.score.retain(|_, s| *s > 0);
    }

    /// The score of a version.
    pub fn of(&self, model: &str, version: &str) -> u64 {
        self.score
            .get(&(model.to_owned(), version.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Forgets a version's score (it was just pinned).
    pub fn reset(&mut self, model: &str, version: &str) {
        self.score.remove(&(model.to_owned(), version.to_owned()));
    }
}

/// The plan for one round: `candidates` are the versions the mount shows, `budget` the bytes
/// automatic pins may take.
pub fn plan(table: &PinTable, candidates: &[Candidate], scores: &Scores, budget: u64) -> Plan {
    let pinned = |c: &Candidate| {
        table
            .pins
            .iter()
            .any(|p| p.model == c.model && p.version == c.version)
    };
    let Some(best) = candidates
        .iter()
        .filter(|c| c.size > 0 && c.size <= budget && !pinned(c))
        .filter(|c| scores.of(&c.model, &c.version) >= c.size / 2)
        .max_by_key(|c| scores.of(&c.model, &c.version))
    else {
        return Plan::default();
    };
    let mut autos: Vec<_> = table.pins.iter().filter(|p| p.auto).collect();
    autos.sort_by_key(|p| p.used_unix);
    let mut used: u64 = autos
        .iter()
        .map(|p| p.files.iter().map(|f| f.size).sum::<u64>())
        .sum();
    let mut evict = Vec::new();
    for pin in autos {
        if used + best.size <= budget {
            break;
        }
        used -= pin.files.iter().map(|f| f.size).sum::<u64>();
        evict.push((pin.model.clone(), pin.version.clone()));
    }
    Plan {
        evict,
        pin: Some((best.model.clone(), best.version.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pins::{Pin, PinnedFile};
    use crate::id::ManifestId;

    fn candidate(model: &str, size: u64) -> Candidate {
        Candidate {
            model: model.into(),
            version: "v1".into(),
            size,
        }
    }

    fn pin(model: &str, size: u64, auto: bool, used_unix: u64) -> Pin {
        Pin {
            model: model.into(),
            version: "v1".into(),
            auto,
            pinned_unix: used_unix,
            used_unix,
            files: vec![PinnedFile {
                path: "m.gguf".into(),
                manifest: ManifestId([model.len() as u8; 32]),
                size,
                verity: None,
            }],
        }
    }

    fn key(model: &str) -> (String, String) {
        (model.into(), "v1".into())
    }

    #[test]
    fn pins_the_most_read_version_that_fits_evicting_least_recently_used_auto_pins() {
        let mut scores = Scores::default();
        scores.update([(key("a"), 100), (key("bb"), 300), (key("ccc"), 40)]);
        let mut table = PinTable::default();
        // Nothing pinned: the most-read version that was read at least half through.
        let candidates = [
            candidate("a", 100),
            candidate("bb", 400),
            candidate("ccc", 1000),
        ];
        let plan_now = plan(&table, &candidates, &scores, 500);
        assert_eq!(plan_now.pin, Some(key("bb")));
        assert!(plan_now.evict.is_empty());
        // Too large for the budget: the next one.
        assert_eq!(plan(&table, &candidates, &scores, 300).pin, Some(key("a")));
        // Auto pins make room, oldest use first; a manual pin is never evicted.
        table.pins = vec![
            pin("dddd", 200, true, 20),
            pin("eeeee", 200, true, 10),
            pin("manual", 10_000, false, 1),
        ];
        let plan_full = plan(&table, &candidates, &scores, 500);
        assert_eq!(plan_full.pin, Some(key("bb")));
        assert_eq!(plan_full.evict, vec![key("eeeee"), key("dddd")]);
        // Scores fade: with no new reads, two rounds later nothing qualifies.
        scores.update([(key("a"), 100), (key("bb"), 300), (key("ccc"), 40)]);
        scores.update([(key("a"), 100), (key("bb"), 300), (key("ccc"), 40)]);
        assert_eq!(
            plan(&PinTable::default(), &candidates, &scores, 500).pin,
            None
        );
    }
}
