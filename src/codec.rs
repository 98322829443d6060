//! One chunk's encoding: compress-if-it-pays on the way in, decode and verify on the way out.
//!
//! Owns [`Encoder`] (per ingest thread: holds a zstd context and buffers) and [`decode_verified`].
//! Stateless with respect to the store: no files, no index. Verification lives here so there is exactly
//! one place where bytes become trusted: `decode_verified` returns bytes only if they hash to the id.

use crate::format::config::CompressionParams;
use crate::format::pack::{Codec, RecordHeader};
use crate::id::ChunkId;

/// A chunk ready to be appended to a pack.
#[derive(Debug)]
pub struct EncodedChunk {
    /// blake3 of the raw bytes.
    pub id: ChunkId,
    /// How `payload` encodes the raw bytes.
    pub codec: Codec,
    /// Length of the raw bytes.
    pub raw_len: u32,
    /// Bytes to store; for [`Codec::Raw`] empty, meaning "the raw bytes themselves".
    pub compressed: Vec<u8>,
}

impl EncodedChunk {
    /// The record header for this chunk.
    pub fn header(&self) -> RecordHeader {
        RecordHeader {
            chunk_id: self.id,
            codec: self.codec,
            raw_len: self.raw_len,
            stored_len: self.stored_len(),
        }
    }

    /// Bytes the payload takes in a pack.
    pub fn stored_len(&self) -> u32 {
        match self.codec {
            Codec::Raw => self.raw_len,
            Codec::Zstd => self.compressed.len() as u32,
        }
    }

    /// The payload to write: the compressed bytes, or `raw` itself.
    pub fn payload<'a>(&'a self, raw: &'a [u8]) -> &'a [u8] {
        match self.codec {
            Codec::Raw => raw,
            Codec::Zstd => &self.compressed,
        }
    }
}

/// Hashes chunks and compresses those where it pays. One per thread.
pub struct Encoder {
    compressor: zstd::bulk::Compressor<'static>,
    params: CompressionParams,
}

impl Encoder {
    /// An encoder applying `params`.
    pub fn new(params: CompressionParams) -> std::io::Result<Encoder> {
        Ok(Encoder {
            compressor: zstd::bulk::Compressor::new(params.zstd_level)?,
            params,
        })
    }

    /// Picks the codec of chunk `id` with bytes `raw`: zstd only if it saves at least the configured share.
    pub fn encode(&mut self, id: ChunkId, raw: &[u8]) -> EncodedChunk {
        let raw_len = raw.len() as u32;
        let budget = raw.len() * (100 - self.params.min_saving_percent.min(99) as usize) / 100;
        let mut compressed = Vec::with_capacity(budget);
        // A destination capped at the budget makes zstd give up as soon as the output would not pay.
        let codec = match self.compressor.compress_to_buffer(raw, &mut compressed) {
            Ok(len) if len <= budget && !raw.is_empty() => Codec::Zstd,
            _ => {
                compressed = Vec::new();
                Codec::Raw
            }
        };
        EncodedChunk {
            id,
            codec,
            raw_len,
            compressed,
        }
    }
}

/// Why stored bytes could not be turned into a verified chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The zstd frame is damaged.
    #[error("zstd frame does not decode: {0}")]
    Zstd(String),
    /// The decoded length differs from the header.
    #[error("decoded {got} bytes, expected {expected}")]
    Length {
        /// Bytes produced.
        got: usize,
        /// Bytes the header promised.
        expected: u32,
    },
    /// The decoded bytes do not hash to the chunk id.
    #[error("blake3 mismatch (content hashes to {0})")]
    HashMismatch(ChunkId),
}

thread_local! {
    /// One zstd decoding context per reading thread, created on first use.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decodes `payload` (encoded with `codec`) into `dst`, which must be exactly the decoded length.
/// The bytes are not yet verified: see [`verify`].
pub fn decode_into(codec: Codec, payload: &[u8], dst: &mut [u8]) -> Result<(), DecodeError> {
    let produced = match codec {
        Codec::Raw => {
            if payload.len() == dst.len() {
                dst.copy_from_slice(payload);
            }
            payload.len()
        }
        Codec::Zstd => DECOMPRESSOR
            .with_borrow_mut(|slot| {
                let decompressor = match slot {
                    Some(d) => d,
                    None => slot.insert(zstd::bulk::Decompressor::new()?),
                };
                decompressor.decompress_to_buffer(payload, dst)
            })
            .map_err(|e| DecodeError::Zstd(e.to_string()))?,
    };
    if produced != dst.len() {
        return Err(DecodeError::Length {
            got: produced,
            expected: dst.len() as u32,
        });
    }
    Ok(())
}

/// Checks that decoded bytes hash to `id`.
pub fn verify(id: &ChunkId, raw: &[u8]) -> Result<(), DecodeError> {
    let actual = ChunkId::of(raw);
    if actual != *id {
        return Err(DecodeError::HashMismatch(actual));
    }
    Ok(())
}

/// Decodes the payload of a record into `out` (resized to the decoded length) and checks it
/// hashes to the record's chunk id. On error `out` holds no usable bytes.
pub fn decode_verified(
    header: &RecordHeader,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    out.resize(header.raw_len as usize, 0);
    decode_into(header.codec, payload, out)?;
    verify(&header.chunk_id, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::random_bytes;

    const PARAMS: CompressionParams = CompressionParams {
        zstd_level: 1,
        min_saving_percent: 5,
    };

    #[test]
    fn compressible_chunks_are_compressed_and_round_trip() {
        let raw = b"model weights ".repeat(1000);
        let chunk = Encoder::new(PARAMS)
            .unwrap()
            .encode(ChunkId::of(&raw), &raw);
        assert_eq!(chunk.codec, Codec::Zstd);
        assert!(chunk.stored_len() < raw.len() as u32 / 10);
        let mut out = Vec::new();
        decode_verified(&chunk.header(), chunk.payload(&raw), &mut out).unwrap();
        assert_eq!(out, raw);
    }

    #[test]
    fn incompressible_chunks_are_stored_raw() {
        let raw = random_bytes(3, 100_000);
        let chunk = Encoder::new(PARAMS)
            .unwrap()
            .encode(ChunkId::of(&raw), &raw);
        assert_eq!(chunk.codec, Codec::Raw);
        assert_eq!(chunk.payload(&raw), &raw[..]);
    }

    #[test]
    fn damage_is_detected() {
        let raw = b"abc".repeat(5000);
        let chunk = Encoder::new(PARAMS)
            .unwrap()
            .encode(ChunkId::of(&raw), &raw);
        let mut payload = chunk.payload(&raw).to_vec();
        let mid = payload.len() / 2;
        payload[mid] ^= 1;
        let mut out = Vec::new();
        assert!(decode_verified(&chunk.header(), &payload, &mut out).is_err());

        let raw_chunk = Encoder::new(PARAMS)
            .unwrap()
            .encode(ChunkId::of(&random_bytes(1, 5000)), &random_bytes(1, 5000));
        let mut damaged = random_bytes(1, 5000);
        damaged[10] ^= 1;
        assert!(matches!(
            decode_verified(&raw_chunk.header(), &damaged, &mut out),
            Err(DecodeError::HashMismatch(_))
        ));
    }
}
