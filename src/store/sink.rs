//! Appending chunk records to a writable store: the one way new packs come to be.
//!
//! Owns [`PackSink`]: it fills a pack, seals it once it reaches the store's pack size, indexes it
//! (so its chunks are found from then on, and an interrupted writer's work is kept), remembers
//! which chunks are written but not yet indexed, and can undo everything it sealed. `add`, `gc`,
//! `import` and a mount's `--fill` all write through it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::warn;

use crate::error::Result;
use crate::format::pack::{MAX_TABLE_ENTRIES, RecordHeader};
use crate::id::{ChunkId, PackId};
use crate::store::Store;
use crate::store::index::Index;
use crate::store::pack::{PackWriter, pack_path};

/// Packs being written into a store. Holds what it needs of the store rather than a borrow of
/// it, so a store can own one (to fill chunks read from other sources).
pub struct PackSink {
    packs_dir: PathBuf,
    pack_target_bytes: u64,
    index: Arc<Index>,
    pack: Option<PackWriter>,
    /// Chunks in the open pack, which the index does not list yet.
    pending: HashSet<ChunkId>,
    /// Packs sealed and indexed so far, with their chunks, for [`PackSink::roll_back`].
    sealed: Vec<(PackId, Vec<ChunkId>)>,
    /// Bytes of the packs sealed so far.
    sealed_bytes: u64,
}

impl PackSink {
    /// A sink writing into `store` (which must be open for writing).
    pub fn new(store: &Store) -> Result<PackSink> {
        Ok(PackSink {
            packs_dir: store.packs_dir().to_owned(),
            pack_target_bytes: store.config().pack_target_bytes,
            index: store.index()?,
            pack: None,
            pending: HashSet::new(),
            sealed: Vec::new(),
            sealed_bytes: 0,
        })
    }

    /// Whether `id` was appended but its pack is not sealed yet.
    pub fn is_pending(&self, id: &ChunkId) -> bool {
        self.pending.contains(id)
    }

    /// Appends one record; seals and indexes the pack when it is full.
    pub fn append(&mut self, header: RecordHeader, payload: &[u8]) -> Result<()> {
        let pack = match self.pack.as_mut() {
            Some(pack) => pack,
            None => self.pack.insert(PackWriter::create(&self.packs_dir)?),
        };
        pack.append(header, payload)?;
        self.pending.insert(header.chunk_id);
        if pack.len() >= self.pack_target_bytes || pack.records() as u64 >= MAX_TABLE_ENTRIES {
            self.seal()?;
        }
        Ok(())
    }

    /// Seals and indexes the open pack, if any; its chunks are then found through the index.
    pub fn seal(&mut self) -> Result<()> {
        let Some(pack) = self.pack.take() else {
            return Ok(());
        };
        let sealed = pack.seal()?;
        let ids = sealed.entries.iter().map(|e| e.header.chunk_id).collect();
        // Recorded before indexing so a failed index write still rolls the pack file back.
        self.sealed.push((sealed.id, ids));
        self.sealed_bytes += sealed.bytes;
        self.index
            .add_pack(sealed.id, sealed.bytes, &sealed.entries)?;
        self.pending.clear();
        Ok(())
    }

    /// Hands the open pack's records to the kernel, so a kill loses none of them (see
    /// `recovery::salvage_unsealed_packs`).
    pub fn flush(&mut self) -> Result<()> {
        match self.pack.as_mut() {
            Some(pack) => pack.flush(),
            None => Ok(()),
        }
    }

    /// Whether records were appended to a pack not sealed yet.
    pub fn has_unsealed(&self) -> bool {
        self.pack.as_ref().is_some_and(|p| !p.is_empty())
    }

    /// Bytes of the packs sealed so far.
    pub fn sealed_bytes(&self) -> u64 {
        self.sealed_bytes
    }

    /// Deletes the open pack, and unindexes and deletes every pack sealed by this sink. A pack
    /// file is deleted only once the index no longer points into it.
    pub fn roll_back(&mut self) {
        if let Some(pack) = self.pack.take() {
            pack.abandon();
        }
        for (pack, ids) in self.sealed.drain(..) {
            match self.index.remove_pack(pack, &ids) {
                Ok(()) => {
                    let _ = std::fs::remove_file(pack_path(&self.packs_dir, &pack));
                }
                Err(e) => {
                    warn!(%pack, error = %e, "could not unindex a pack of a failed write; `modelfs gc` will reclaim it")
                }
            }
        }
    }
}
