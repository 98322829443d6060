//! The chunks of one open file: its manifest, where each chunk is once resolved, and which were
//! verified.
//!
//! Owns [`FileChunks`]. Places are resolved lazily in batches (one index multi-get per run of
//! chunks, never one lookup per read): far ahead when reading on sequentially, a few when a read
//! jumps elsewhere.

use std::sync::RwLock;

use crate::error::{Error, Result};
use crate::format::manifest::{ChunkRef, Manifest};
use crate::source::{Place, Source};

/// How many chunk places one index round trip resolves when reading on (several MiB of readahead).
const RESOLVE_BATCH: usize = 256;
/// How many are resolved where a read lands away from resolved chunks.
const RESOLVE_BATCH_RANDOM: usize = 8;

/// Where a chunk of an open file is, and whether its bytes there were verified.
#[derive(Debug, Clone, Copy)]
struct Resolved {
    place: Place,
    verified: bool,
}

/// One open file's chunks.
pub(crate) struct FileChunks {
    label: String,
    manifest: Manifest,
    /// Place of each chunk once resolved, and whether it was verified there. Written rarely (a
    /// batch resolve, a chunk's first verification, a relocation after `gc`), read on every chunk
    /// access, hence a read-write lock over the whole table. The place and its verified flag are
    /// one entry, so a flag can never outlive the place it was earned at.
    places: RwLock<Vec<Option<Resolved>>>,
}

impl FileChunks {
    pub(crate) fn new(label: String, manifest: Manifest) -> FileChunks {
        FileChunks {
            label,
            places: RwLock::new(vec![None; manifest.chunks.len()]),
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

    /// Records that chunk `index` was read and verified at `place` (where the bytes came from,
    /// which is where later reads of it go).
    pub(crate) fn verified_at(&self, index: usize, place: Place) {
        self.places.write().expect("place table poisoned")[index] = Some(Resolved {
            place,
            verified: true,
        });
    }

    /// Forgets where chunk `index` is (its pack went away), so the next read looks it up afresh.
    pub(crate) fn forget(&self, index: usize) {
        self.places.write().expect("place table poisoned")[index] = None;
    }

    /// The place of chunk `index` and whether it was verified there, resolving it and the
    /// following batch in `source` if needed.
    pub(crate) fn place(&self, source: &dyn Source, index: usize) -> Result<(Place, bool)> {
        let sequential = {
            let table = self.places.read().expect("place table poisoned");
            if let Some(resolved) = table[index] {
                return Ok((resolved.place, resolved.verified));
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
                *slot = place.map(|place| Resolved {
                    place,
                    verified: false,
                });
            }
        }
        table[index]
            .map(|resolved| (resolved.place, resolved.verified))
            .ok_or(Error::MissingChunk(ids[0]))
    }
}
