//! A mount's pinned copies: kept current as `pin` and `unpin` change them, and chosen by the
//! mount itself under `--pin-budget`.
//!
//! Owns [`Pins`]: the store's pin area as the mount sees it. The serve loop calls
//! [`Pins::refresh`] at every poll (one `stat` of the pin table); with a budget, a thread runs
//! `pin::budget`'s plan every [`BUDGET_ROUND`], carrying out evictions and one pin per round
//! through the mount's own reader (every chunk verified), and records when pinned copies were
//! last opened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{info, warn};

use crate::pin::PinArea;
use crate::pin::budget::{self, Candidate, Scores};
use crate::progress::Silent;
use crate::read::Reader;
use crate::store::Store;
use crate::vfs::Vfs;

/// How often the budget is reconsidered.
const BUDGET_ROUND: Duration = Duration::from_secs(10);

/// The pin area of the store a mount is built on.
pub(super) struct Pins {
    area: Option<PinArea>,
    stamp: Mutex<Option<(u64, i64, i64)>>,
    stop: Arc<AtomicBool>,
}

impl Pins {
    /// The pin area of `store`; without one (no cache directory) the mount serves chunks only.
    pub(super) fn open(store: &Store) -> Pins {
        let area = PinArea::of(store)
            .inspect_err(|e| warn!(error = %e, "no pin area; pinned copies are not served"))
            .ok();
        Pins {
            area,
            stamp: Mutex::new(None),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Hands `vfs` the pinned copies if the pin table changed since the last call (always when
    /// `forced`).
    pub(super) fn refresh(&self, vfs: &Vfs, forced: bool) {
        let Some(area) = &self.area else { return };
        let stamp = area.stamp();
        let mut last = self.stamp.lock().expect("pin stamp poisoned");
        if !forced && *last == stamp {
            return;
        }
        match area.copies() {
            Ok(copies) => {
                if *last != stamp {
                    info!(pinned_files = copies.len(), area = %area.dir().display(), "pinned copies loaded");
                }
                vfs.set_pinned(copies);
                *last = stamp;
            }
            Err(e) => warn!(error = %e, "cannot read the pin table; serving the previous pins"),
        }
    }

    /// Starts the `--pin-budget` thread: pins the versions read most within `budget` bytes.
    pub(super) fn spawn_budget(self: &Arc<Self>, vfs: Arc<Vfs>, reader: Arc<Reader>, budget: u64) {
        let Some(area) = self.area.clone() else {
            return;
        };
        let pins = self.clone();
        info!(budget, area = %area.dir().display(), "pinning the most-read models automatically");
        std::thread::spawn(move || {
            let mut scores = Scores::default();
            while pins.sleep(BUDGET_ROUND) {
                if let Err(e) = round(&area, &vfs, &reader, &mut scores, budget) {
                    warn!(error = %e, "automatic pinning failed this round");
                }
                pins.refresh(&vfs, false);
            }
        });
    }

    /// Sleeps `duration` unless stopped; returns whether to go on.
    fn sleep(&self, duration: Duration) -> bool {
        let step = Duration::from_millis(250);
        let mut slept = Duration::ZERO;
        while slept < duration {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep(step);
            slept += step;
        }
        !self.stop.load(Ordering::Relaxed)
    }

    /// Ends the budget thread (at unmount).
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One round of the budget: record uses, score reads, evict and pin as planned.
fn round(
    area: &PinArea,
    vfs: &Vfs,
    reader: &Arc<Reader>,
    scores: &mut Scores,
    budget: u64,
) -> crate::Result<()> {
    area.record_use(&vfs.take_pin_uses())?;
    scores.update(
        reader
            .counts()
            .models
            .into_iter()
            .map(|m| ((m.model, m.version), m.bytes)),
    );
    let registry = vfs.registry();
    let candidates: Vec<Candidate> = registry
        .models
        .iter()
        .flat_map(|(model, entry)| {
            entry.versions.iter().map(|v| Candidate {
                model: model.clone(),
                version: v.version.clone(),
                size: v.files.iter().map(|f| f.size).sum(),
            })
        })
        .collect();
    let plan = budget::plan(&area.table()?, &candidates, scores, budget);
    for (model, version) in &plan.evict {
        area.unpin(model, Some(version))?;
        info!(
            model,
            version, "unpinned: least recently used within the pin budget"
        );
    }
    if let Some((model, version)) = plan.pin {
        let entry = registry.models[&model]
            .versions
            .iter()
            .find(|v| v.version == version)
            .expect("planned from this registry");
        area.pin(reader, &model, entry, true, &Silent)?;
        scores.reset(&model, &version);
        info!(model, version, "pinned: read most within the pin budget");
    }
    Ok(())
}
