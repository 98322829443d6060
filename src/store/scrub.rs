//! Full verification: re-read and re-hash every chunk reachable from chosen models.
//!
//! Owns [`scrub`] and its [`ScrubReport`]. Unlike the lazy check on the read path, a scrub reads
//! every chunk once, in pack order, and reports every problem with the model files it hurts,
//! instead of stopping at the first. It changes nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::progress::Progress;
use crate::store::Store;
use crate::store::chunk::Check;
use crate::store::registry::{ModelSpec, resolve};

/// What a scrub found.
#[derive(Debug, Default)]
pub struct ScrubReport {
    /// Model versions checked.
    pub versions: usize,
    /// Files checked.
    pub files: usize,
    /// Distinct chunks checked.
    pub chunks: usize,
    /// Decoded bytes of those chunks.
    pub bytes: u64,
    /// Everything wrong, each with the files it affects.
    pub problems: Vec<Problem>,
}

/// One damaged or missing piece of the store.
#[derive(Debug)]
pub struct Problem {
    /// What is wrong (names the chunk, pack or manifest).
    pub description: String,
    /// `model@version/file` of every file that needs it.
    pub affected: Vec<String>,
}

/// Verifies the models in `selection` (every version of each; all models if empty).
pub fn scrub(
    store: &Store,
    selection: &[ModelSpec],
    progress: &dyn Progress,
) -> Result<ScrubReport> {
    let registry = store.registry()?;
    let mut targets = Vec::new();
    if selection.is_empty() {
        for (name, entry) in &registry.models {
            targets.extend(entry.versions.iter().map(|v| (name.clone(), v)));
        }
    } else {
        for spec in selection {
            let (entry, version) = resolve(&registry, &spec.model, spec.version.as_deref())?;
            match spec.version {
                Some(_) => targets.push((spec.model.clone(), version)),
                None => targets.extend(entry.versions.iter().map(|v| (spec.model.clone(), v))),
            }
        }
    }

    let mut report = ScrubReport {
        versions: targets.len(),
        ..ScrubReport::default()
    };
    let mut labels: Vec<String> = Vec::new();
    let mut users: HashMap<ChunkId, (u32, Vec<usize>)> = HashMap::new();
    for (model, version) in &targets {
        for file in &version.files {
            let label = format!("{model}@{}/{}", version.version, file.path);
            report.files += 1;
            match store.manifest(&file.manifest) {
                Ok(manifest) => {
                    let label_index = labels.len();
                    for chunk in &manifest.chunks {
                        let (_, files) = users.entry(chunk.id).or_insert((chunk.len, Vec::new()));
                        if files.last() != Some(&label_index) {
                            files.push(label_index);
                        }
                    }
                }
                Err(e) => report.problems.push(Problem {
                    description: e.to_string(),
                    affected: vec![label.clone()],
                }),
            }
            labels.push(label);
        }
    }

    let affected = |id: &ChunkId| {
        users[id]
            .1
            .iter()
            .map(|&i| labels[i].clone())
            .collect::<Vec<_>>()
    };
    let ids: Vec<ChunkId> = users.keys().copied().collect();
    let mut located = Vec::with_capacity(ids.len());
    for (batch, locations) in ids.chunks(4096).map(|batch| (batch, store.locate(batch))) {
        for (id, location) in batch.iter().zip(locations?) {
            match location {
                Some(location) => located.push((*id, location)),
                None => report.problems.push(Problem {
                    description: Error::MissingChunk(*id).to_string(),
                    affected: affected(id),
                }),
            }
        }
    }
    // Pack order turns the scrub into mostly sequential reads.
    located.sort_by_key(|(_, location)| (location.pack, location.offset));
    report.chunks = ids.len();
    report.bytes = located.iter().map(|(_, l)| u64::from(l.raw_len)).sum();

    progress.begin(report.bytes);
    let failures = Mutex::new(Vec::new());
    located
        .par_chunks(64)
        .for_each_init(Vec::new, |buf, batch| {
            for (id, location) in batch {
                buf.resize(location.raw_len as usize, 0);
                if let Err(e) = store.read_chunk(id, location, buf, Check::Verify, |_| {}) {
                    failures
                        .lock()
                        .expect("failure list poisoned")
                        .push((*id, e));
                }
                progress.advance(u64::from(location.raw_len));
            }
        });
    progress.finish();
    for (id, e) in failures.into_inner().expect("failure list poisoned") {
        report.problems.push(Problem {
            description: e.to_string(),
            affected: affected(&id),
        });
    }
    Ok(report)
}
