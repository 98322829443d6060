//! Reading one stored file by offset.
//!
//! Owns [`OpenFile`]: a file opened through a [`Reader`]. `read_at` splits a request into one piece
//! per chunk and asks the reader for each piece once; large requests decode their pieces in
//! parallel, and each request is counted (bytes per model version, latency, failure cause).
//! Shared by the mount, `cat`, `diff` and the tests.

use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::Reader;
use super::metrics::ModelReads;
use super::table::FileChunks;
use crate::error::Result;

/// Requests spanning at least this many chunks are decoded in parallel.
const PARALLEL_PIECES: usize = 4;

/// A file opened for reading.
pub struct OpenFile {
    reader: Arc<Reader>,
    chunks: FileChunks,
    /// The counters of the model version this file belongs to.
    reads: Arc<ModelReads>,
}

impl OpenFile {
    pub(super) fn new(reader: Arc<Reader>, chunks: FileChunks, reads: Arc<ModelReads>) -> OpenFile {
        OpenFile {
            reader,
            chunks,
            reads,
        }
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.chunks.manifest().size
    }

    /// The file's manifest.
    pub fn manifest(&self) -> &crate::format::manifest::Manifest {
        self.chunks.manifest()
    }

    /// `model@version/path`, as the file is named in logs and errors.
    pub fn label(&self) -> &str {
        self.chunks.label()
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns the bytes read (0 at or past the end).
    /// Every byte returned comes from a chunk verified against its id.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let started = Instant::now();
        let result = self.read_pieces(offset, buf);
        self.reader
            .metrics
            .read(&self.reads, &result, started.elapsed());
        result
    }

    /// [`OpenFile::read_at`] before it is counted.
    fn read_pieces(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let manifest = self.chunks.manifest();
        let end = manifest.size.min(offset.saturating_add(buf.len() as u64));
        let Some(first) = manifest.chunk_index_at(offset) else {
            return Ok(0);
        };
        let len = (end - offset) as usize;
        // Split the request into one piece per chunk: (chunk index, offset in chunk, destination).
        let mut pieces = Vec::with_capacity(len / 32_768 + 2);
        let mut rest = &mut buf[..len];
        let (mut index, mut pos) = (first, offset);
        while !rest.is_empty() {
            let chunk = manifest.chunks[index];
            let take = (chunk.end().min(end) - pos) as usize;
            let (dst, tail) = rest.split_at_mut(take);
            pieces.push((index, (pos - chunk.offset) as usize, dst));
            rest = tail;
            pos += take as u64;
            index += 1;
        }
        let get = |(index, within, dst): (usize, usize, &mut [u8])| {
            self.reader.get_chunk(&self.chunks, index, within, dst)
        };
        // Large requests decode their chunks on all cores: the kernel often has only one
        // readahead request in flight, and decoding, not the disk, is what it waits for.
        if pieces.len() >= PARALLEL_PIECES {
            pieces.into_par_iter().try_for_each(get)?;
        } else {
            pieces.into_iter().try_for_each(get)?;
        }
        Ok(len)
    }
}
