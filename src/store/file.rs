//! Reading one stored file by offset, through its manifest.
//!
//! Owns [`OpenFile`]: a manifest plus the pack locations of its chunks, resolved lazily in batches
//! (one RocksDB multi-get per run of chunks, never one lookup per read). `read_at` is the single
//! read path shared by the FUSE mount and `modelfs cat`; its failure path (`fail`) is the one place
//! that logs a bad read with model, file, chunk and pack, and the one place a later repair from a
//! second source hooks in.

use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use tracing::{error, warn};

use crate::error::{Error, Result};
use crate::format::manifest::Manifest;
use crate::store::index::Location;
use crate::store::{Check, Store};

/// How many chunk locations are resolved where a read lands away from resolved chunks.
const RESOLVE_BATCH_RANDOM: usize = 8;

/// Requests spanning at least this many chunks are decoded in parallel.
const PARALLEL_PIECES: usize = 4;

/// How many chunk locations one index round trip resolves (covers several MiB of readahead).
const RESOLVE_BATCH: usize = 256;

/// When the read path hashes a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyPolicy {
    /// The first time this open file reads the chunk; later reads of it (after the kernel dropped
    /// its pages) trust the pack bytes verified before.
    #[default]
    FirstRead,
    /// Every time the chunk is read from its pack.
    EveryRead,
}

/// A file opened for reading.
pub struct OpenFile {
    label: String,
    manifest: Manifest,
    /// Location of each chunk once resolved. Written rarely (a batch resolve or a relocation after
    /// `gc`), read on every chunk access, hence a read-write lock over the whole table.
    locations: RwLock<Vec<Option<Location>>>,
    /// Bit per chunk: verified at its current location. Lock-free so parallel readers never wait.
    verified: Vec<AtomicU64>,
    policy: VerifyPolicy,
}

impl OpenFile {
    /// Wraps a manifest; `label` (`model@version/path`) names the file in log lines and errors.
    pub fn new(label: String, manifest: Manifest, policy: VerifyPolicy) -> OpenFile {
        let locations = RwLock::new(vec![None; manifest.chunks.len()]);
        let verified = (0..manifest.chunks.len().div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect();
        OpenFile {
            label,
            manifest,
            locations,
            verified,
            policy,
        }
    }

    fn is_verified(&self, index: usize) -> bool {
        self.policy == VerifyPolicy::FirstRead
            && self.verified[index / 64].load(Ordering::Relaxed) & (1 << (index % 64)) != 0
    }

    fn set_verified(&self, index: usize, verified: bool) {
        let bit = 1 << (index % 64);
        match verified {
            true => self.verified[index / 64].fetch_or(bit, Ordering::Relaxed),
            false => self.verified[index / 64].fetch_and(!bit, Ordering::Relaxed),
        };
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.manifest.size
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns the bytes read (0 at or past the end).
    /// Every byte returned comes from a chunk verified against its id.
    pub fn read_at(&self, store: &Store, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let end = self
            .manifest
            .size
            .min(offset.saturating_add(buf.len() as u64));
        let Some(first) = self.manifest.chunk_index_at(offset) else {
            return Ok(0);
        };
        let len = (end - offset) as usize;
        // Split the request into one piece per chunk: (chunk index, offset in chunk, destination).
        let mut pieces = Vec::with_capacity(len / 32_768 + 2);
        let mut rest = &mut buf[..len];
        let (mut index, mut pos) = (first, offset);
        while !rest.is_empty() {
            let chunk = self.manifest.chunks[index];
            let take = (chunk.end().min(end) - pos) as usize;
            let (dst, tail) = rest.split_at_mut(take);
            pieces.push((index, (pos - chunk.offset) as usize, dst));
            rest = tail;
            pos += take as u64;
            index += 1;
        }
        // Large requests decode their chunks on all cores: the kernel often has only one
        // readahead request in flight, and decoding, not the disk, is what it waits for.
        if pieces.len() >= PARALLEL_PIECES {
            pieces
                .into_par_iter()
                .try_for_each(|(index, within, dst)| self.copy_chunk(store, index, within, dst))?;
        } else {
            for (index, within, dst) in pieces {
                self.copy_chunk(store, index, within, dst)?;
            }
        }
        Ok(len)
    }

    /// Copies bytes `within..within + dst.len()` of chunk `index` into `dst`. A chunk the
    /// decoded-chunk cache holds is copied from there; a whole chunk is read straight into `dst`;
    /// a part of one goes through the cache so the neighbouring small reads that usually follow do
    /// not decode it again.
    fn copy_chunk(&self, store: &Store, index: usize, within: usize, dst: &mut [u8]) -> Result<()> {
        let id = self.manifest.chunks[index].id;
        if let Some(bytes) = store.chunk_from_cache(&id) {
            dst.copy_from_slice(&bytes[within..][..dst.len()]);
            return Ok(());
        }
        let whole = within == 0 && dst.len() == self.manifest.chunks[index].len as usize;
        let mut relocated = false;
        loop {
            let location = self.location(store, index)?;
            let result = if whole {
                let check = if self.is_verified(index) {
                    Check::Trust
                } else {
                    Check::Verify
                };
                store.read_chunk_into(&id, &location, dst, check)
            } else {
                store
                    .cached_chunk(&id, &location)
                    .map(|bytes| dst.copy_from_slice(&bytes[within..][..dst.len()]))
            };
            match result {
                Ok(()) => {
                    self.set_verified(index, true);
                    return Ok(());
                }
                // The pack is gone: a writer's gc moved the chunk. Look it up afresh, once.
                Err(Error::MissingPack(_)) if !relocated => {
                    relocated = true;
                    warn!(file = %self.label, chunk = %id.short(), "pack gone; looking the chunk up again");
                    store.refresh_index()?;
                    self.locations.write().expect("location table poisoned")[index] = None;
                    self.set_verified(index, false);
                }
                Err(e) => return Err(self.fail(index, &location, e)),
            }
        }
    }

    /// The location of chunk `index`, resolving it and the following batch if needed.
    fn location(&self, store: &Store, index: usize) -> Result<Location> {
        let sequential = {
            let table = self.locations.read().expect("location table poisoned");
            if let Some(location) = table[index] {
                return Ok(location);
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
        let found = store.locate(&ids)?;
        let mut table = self.locations.write().expect("location table poisoned");
        for (slot, location) in table[index..batch_end].iter_mut().zip(found) {
            if slot.is_none() {
                *slot = location;
            }
        }
        table[index].ok_or_else(|| {
            let e = Error::MissingChunk(ids[0]);
            error!(file = %self.label, chunk = %ids[0], "read failed: chunk is in no pack");
            e
        })
    }

    fn fail(&self, index: usize, location: &Location, e: Error) -> Error {
        let chunk = &self.manifest.chunks[index];
        error!(
            file = %self.label,
            chunk = %chunk.id,
            file_offset = chunk.offset,
            pack = %location.pack,
            pack_offset = location.offset,
            error = %e,
            "read failed; returning an I/O error instead of unverified bytes"
        );
        e
    }
}
