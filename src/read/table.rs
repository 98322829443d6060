//! The chunks of one open file: its manifest, where each chunk is once resolved, and which were
//! verified.
//!
//! Owns [`FileChunks`]. Places are resolved lazily in batches (one index multi-get per run of
//! chunks, never one lookup per read): far ahead when reading on sequentially, a few when a read
//! jumps elsewhere.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::format::manifest::{ChunkRef, Manifest};
use crate::source::{Place, Source};

/// How many chunk places one index round trip resolves when reading on (several MiB of readahead).
const RESOLVE_BATCH: usize = 256;
/// How many are resolved where a read lands away from resolved chunks.
const RESOLVE_BATCH_RANDOM: usize = 8;

/// One open file's chunks.
pub(crate) struct FileChunks {
    label: String,
    manifest: Manifest,
    /// Place of each chunk once resolved. Written rarely (a batch resolve or a relocation after
    /// `gc`), read on every chunk access, hence a read-write lock over the whole table.
    places: RwLock<Vec<Option<Place>>>,
    /// Bit per chunk: verified at its current place. Lock-free so parallel readers never wait.
    verified: Vec<AtomicU64>,
}

impl FileChunks {
    pub(crate) fn new(label: String, manifest: Manifest) -> FileChunks {
        let count = manifest.chunks.len();
        FileChunks {
            label,
            places: RwLock::new(vec![None; count]),
            verified: (0..count.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            manifest,
        }
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub(crate) fn chunk(&self, index: usize) -> ChunkRef {
        self.manifest.chunks[index]
    }

    pub(crate) fn is_verified(&self, index: usize) -> bool {
        self.verified[index / 64].load(Ordering::Relaxed) & (1 << (index % 64)) != 0
    }

    pub(crate) fn set_verified(&self, index: usize, verified: bool) {
        let bit = 1 << (index % 64);
        match verified {
            true => self.verified[index / 64].fetch_or(bit, Ordering::Relaxed),
            false => self.verified[index / 64].fetch_and(!bit, Ordering::Relaxed),
        };
    }

    /// Forgets where chunk `index` is (its pack went away), so the next read looks it up afresh.
    pub(crate) fn forget(&self, index: usize) {
        self.places.write().expect("place table poisoned")[index] = None;
        self.set_verified(index, false);
    }

    /// The place of chunk `index`, resolving it and the following batch in `source` if needed.
    pub(crate) fn place(&self, source: &dyn Source, index: usize) -> Result<Place> {
        let sequential = {
            let table = self.places.read().expect("place table poisoned");
            if let Some(place) = table[index] {
                return Ok(place);
            }
            index > 0 && table[index - 1].is_some()
        };
        // Reading on from resolved chunks looks sequential: resolve far ahead. A jump elsewhere
        // (random access) resolves only a few, so it does not pay for hundreds of lookups.
        let batch = if sequential {
            RESOLVE_BATCH
        } else {
            RESOLVE_BATCH_RANDOM
        };
        let batch_end = (index + batch).min(self.manifest.chunks.len());
        let ids: Vec<_> = self.manifest.chunks[index..batch_end]
            .iter()
            .map(|c| c.id)
            .collect();
        let found = source.locate(&ids)?;
        let mut table = self.places.write().expect("place table poisoned");
        for (slot, place) in table[index..batch_end].iter_mut().zip(found) {
            if slot.is_none() {
                *slot = place;
            }
        }
        table[index].ok_or(Error::MissingChunk(ids[0]))
    }
}
