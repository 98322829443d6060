//! One chunk on its way out of storage: stored bytes in, trusted bytes out.
//!
//! Owns [`load`], the one function that turns a chunk's stored payload (from this store's packs,
//! another store, or later a peer or a bucket) into bytes modelfs may serve: it checks the lengths,
//! decodes, and hashes the result against the chunk id. Every read path goes through it — the
//! mount, `cat`, `verify`, `gc` and `import` copies, layered sources — so nothing else decides what
//! is trusted. It does no I/O itself: the caller passes how to read the payload.

use std::cell::RefCell;

use crate::codec;
use crate::error::{Error, Result};
use crate::format::pack::{Codec, MAX_RECORD_PAYLOAD, RecordHeader};
use crate::id::ChunkId;
use crate::store::index::Location;

/// Whether a chunk read checks the bytes against the chunk id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Hash the decoded bytes and compare with the id.
    Verify,
    /// Skip the hash: this reader verified the chunk at this location before.
    Trust,
}

thread_local! {
    /// Per-thread buffer for encoded payloads on their way to being decoded.
    static PAYLOAD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The error for chunk `id` at `location` failing for `reason`.
pub fn bad_chunk(id: &ChunkId, location: &Location, reason: impl Into<String>) -> Error {
    Error::BadChunk {
        chunk: *id,
        pack: location.pack,
        offset: location.offset,
        reason: reason.into(),
    }
}

/// The record header a chunk at `location` has.
pub fn record_header(id: &ChunkId, location: &Location) -> RecordHeader {
    RecordHeader {
        chunk_id: *id,
        codec: location.codec,
        raw_len: location.raw_len,
        stored_len: location.stored_len,
    }
}

/// Reads chunk `id`'s stored payload with `read` (handed a buffer of exactly `stored_len` bytes),
/// decodes it into `dst`, which must be the chunk's length as the manifest gives it, and checks the
/// bytes against `id` unless `check` is [`Check::Trust`]. On success `stored` is shown the payload
/// as stored, e.g. to copy the record into another pack. Raw chunks are read straight into `dst`;
/// encoded ones through a per-thread buffer. On error `dst` holds no usable bytes.
pub fn load(
    id: &ChunkId,
    location: &Location,
    dst: &mut [u8],
    check: Check,
    read: impl FnOnce(&mut [u8]) -> Result<()>,
    stored: impl FnOnce(&[u8]),
) -> Result<()> {
    let bad = |reason: String| bad_chunk(id, location, reason);
    if dst.len() != location.raw_len as usize {
        return Err(bad(format!(
            "its record holds {} bytes, the manifest says {}",
            location.raw_len,
            dst.len()
        )));
    }
    if location.stored_len > MAX_RECORD_PAYLOAD {
        return Err(bad(format!(
            "its record claims {} stored bytes, more than a record may hold",
            location.stored_len
        )));
    }
    let read = |buf: &mut [u8]| {
        read(buf).map_err(|e| match e {
            Error::Corrupt { reason, .. } => bad(reason),
            other => other,
        })
    };
    match location.codec {
        Codec::Raw if location.stored_len != location.raw_len => {
            return Err(bad(
                "a raw record whose stored and raw lengths differ".into()
            ));
        }
        Codec::Raw => read(dst)?,
        encoded => PAYLOAD.with_borrow_mut(|payload| {
            payload.resize(location.stored_len as usize, 0);
            read(payload)?;
            codec::decode_into(encoded, payload, dst).map_err(|e| bad(e.to_string()))
        })?,
    }
    if check == Check::Verify {
        codec::verify(id, dst).map_err(|e| bad(e.to_string()))?;
    }
    match location.codec {
        Codec::Raw => stored(dst),
        _ => PAYLOAD.with_borrow(|payload| stored(payload)),
    }
    Ok(())
}
