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
            Codec::Zstd | Codec::Grouped => self.compressed.len() as u32,
        }
    }

    /// The payload to write: the compressed bytes, or `raw` itself.
    pub fn payload<'a>(&'a self, raw: &'a [u8]) -> &'a [u8] {
        match self.codec {
            Codec::Raw => raw,
            Codec::Zstd | Codec::Grouped => &self.compressed,
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

    /// Picks the codec of chunk `id` with bytes `raw`. Bytes made of fixed-size records (float
    /// values, quantized blocks) whose `fields` the file's header reveals are grouped field by
    /// field; anything else is tried with plain zstd. Either is kept only if it saves at least the
    /// configured share over storing the bytes raw.
    pub fn encode(&mut self, id: ChunkId, raw: &[u8], fields: Option<Fields>) -> EncodedChunk {
        let raw_len = raw.len() as u32;
        let budget = raw.len() * (100 - self.params.min_saving_percent.min(99) as usize) / 100;
        let (codec, compressed) = match fields.filter(|f| valid_fields(f) && raw.len() >= stride(f))
        {
            Some(fields) => match self
                .group(raw, fields)
                .filter(|grouped| grouped.len() <= budget)
            {
                Some(grouped) => (Codec::Grouped, grouped),
                None => (Codec::Raw, Vec::new()),
            },
            None => {
                let mut compressed = Vec::with_capacity(budget);
                // A destination capped at the budget makes zstd give up as soon as it would not pay.
                match self.compressor.compress_to_buffer(raw, &mut compressed) {
                    Ok(len) if len <= budget && !raw.is_empty() => (Codec::Zstd, compressed),
                    _ => (Codec::Raw, Vec::new()),
                }
            }
        };
        EncodedChunk {
            id,
            codec,
            raw_len,
            compressed,
        }
    }

    /// Splits `raw` into one plane per record field, each zstd-compressed if that pays.
    ///
    /// Layout: field count u8, the field widths (u8 each), then per plane `mode` u8 (0 as it is,
    /// 1 zstd), `len` u32 and `len` bytes, then the `raw.len() % stride` trailing bytes as they are.
    fn group(&mut self, raw: &[u8], fields: Fields) -> Option<Vec<u8>> {
        let records = raw.len() / stride(fields);
        let mut planes = split_planes(&raw[..records * stride(fields)], fields);
        let mut out = Vec::with_capacity(raw.len());
        out.push(fields.len() as u8);
        out.extend_from_slice(fields);
        let mut packed = Vec::new();
        for plane in planes.iter_mut() {
            packed.clear();
            packed.reserve(plane.len());
            let pays = matches!(self.compressor.compress_to_buffer(&plane[..], &mut packed), Ok(n) if n < plane.len());
            let (mode, bytes) = if pays {
                (1u8, &packed[..])
            } else {
                (0u8, &plane[..])
            };
            out.push(mode);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(&raw[records * stride(fields)..]);
        Some(out)
    }
}

/// The byte widths of the fields of one record, e.g. `[1, 1]` for an f16 value (low and high
/// byte) or `[2, 32]` for a ggml Q8_0 block (an f16 scale and 32 quants).
pub type Fields = &'static [u8];

/// Most fields a record may have.
pub const MAX_FIELDS: usize = 4;

fn valid_fields(fields: &[u8]) -> bool {
    (1..=MAX_FIELDS).contains(&fields.len()) && fields.iter().all(|&w| w > 0) && stride(fields) >= 2
}

fn stride(fields: &[u8]) -> usize {
    fields.iter().map(|&w| usize::from(w)).sum()
}

/// Splits whole records into one plane per field.
fn split_planes(records: &[u8], fields: &[u8]) -> Vec<Vec<u8>> {
    let stride = stride(fields);
    let count = records.len() / stride;
    if fields == [1, 1] {
        let (mut low, mut high) = (vec![0u8; count], vec![0u8; count]);
        for ((pair, l), h) in records
            .chunks_exact(2)
            .zip(low.iter_mut())
            .zip(high.iter_mut())
        {
            *l = pair[0];
            *h = pair[1];
        }
        return vec![low, high];
    }
    let mut offset = 0;
    fields
        .iter()
        .map(|&width| {
            let width = usize::from(width);
            let mut plane = Vec::with_capacity(count * width);
            for record in records.chunks_exact(stride) {
                plane.extend_from_slice(&record[offset..offset + width]);
            }
            offset += width;
            plane
        })
        .collect()
}

/// Writes the planes back into whole records.
fn join_planes(records: &mut [u8], fields: &[u8], planes: &[&[u8]]) {
    if fields == [1, 1] {
        for ((pair, &lo), &hi) in records.chunks_exact_mut(2).zip(planes[0]).zip(planes[1]) {
            pair.copy_from_slice(&[lo, hi]);
        }
        return;
    }
    let stride = stride(fields);
    let mut offset = 0;
    for (&width, plane) in fields.iter().zip(planes) {
        let width = usize::from(width);
        for (record, field) in records
            .chunks_exact_mut(stride)
            .zip(plane.chunks_exact(width))
        {
            record[offset..offset + width].copy_from_slice(field);
        }
        offset += width;
    }
}

thread_local! {
    /// Per-thread buffers for decompressed planes.
    static PLANES: std::cell::RefCell<[Vec<u8>; MAX_FIELDS]> =
        const { std::cell::RefCell::new([Vec::new(), Vec::new(), Vec::new(), Vec::new()]) };
}

/// Reassembles a [`Codec::Grouped`] payload into `dst` (exactly the decoded length).
fn ungroup(payload: &[u8], dst: &mut [u8]) -> Result<(), DecodeError> {
    let malformed = || DecodeError::Grouped("malformed plane table");
    let (&count, rest) = payload.split_first().ok_or_else(malformed)?;
    let fields = rest.get(..usize::from(count)).ok_or_else(malformed)?;
    if !valid_fields(fields) {
        return Err(malformed());
    }
    let mut rest = &rest[fields.len()..];
    let records = dst.len() / stride(fields);
    PLANES.with_borrow_mut(|buffers| {
        // Planes stored as they are are used where they lie in the payload; compressed ones are
        // decompressed into per-thread buffers first.
        let mut stored: [(u8, &[u8]); MAX_FIELDS] = [(0, &[]); MAX_FIELDS];
        for plane in stored.iter_mut().take(fields.len()) {
            if rest.len() < 5 {
                return Err(malformed());
            }
            let len = u32::from_le_bytes(rest[1..5].try_into().expect("4 bytes")) as usize;
            *plane = (rest[0], rest.get(5..5 + len).ok_or_else(malformed)?);
            rest = &rest[5 + len..];
        }
        for (f, (mode, bytes)) in stored.iter().take(fields.len()).enumerate() {
            let expected = records * usize::from(fields[f]);
            match mode {
                0 if bytes.len() == expected => {}
                1 => {
                    buffers[f].resize(expected, 0);
                    let produced = decompress(bytes, &mut buffers[f])?;
                    if produced != expected {
                        return Err(DecodeError::Length {
                            got: produced,
                            expected: expected as u32,
                        });
                    }
                }
                _ => return Err(malformed()),
            }
        }
        let planes: Vec<&[u8]> = (0..fields.len())
            .map(|f| {
                if stored[f].0 == 0 {
                    stored[f].1
                } else {
                    &buffers[f][..records * usize::from(fields[f])]
                }
            })
            .collect();
        join_planes(&mut dst[..records * stride(fields)], fields, &planes);
        Ok(())
    })?;
    let body = records * stride(fields);
    if rest.len() != dst.len() - body {
        return Err(malformed());
    }
    dst[body..].copy_from_slice(rest);
    Ok(())
}

/// Why stored bytes could not be turned into a verified chunk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The zstd frame is damaged.
    #[error("zstd frame does not decode: {0}")]
    Zstd(String),
    /// A grouped payload is malformed.
    #[error("grouped payload: {0}")]
    Grouped(&'static str),
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
        Codec::Zstd => decompress(payload, dst)?,
        Codec::Grouped => {
            ungroup(payload, dst)?;
            dst.len()
        }
    };
    if produced != dst.len() {
        return Err(DecodeError::Length {
            got: produced,
            expected: dst.len() as u32,
        });
    }
    Ok(())
}

/// Decompresses one zstd frame into `dst`; returns the bytes produced.
fn decompress(frame: &[u8], dst: &mut [u8]) -> Result<usize, DecodeError> {
    DECOMPRESSOR
        .with_borrow_mut(|slot| {
            let decompressor = match slot {
                Some(d) => d,
                None => slot.insert(zstd::bulk::Decompressor::new()?),
            };
            decompressor.decompress_to_buffer(frame, dst)
        })
        .map_err(|e| DecodeError::Zstd(e.to_string()))
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
            .encode(ChunkId::of(&raw), &raw, None);
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
            .encode(ChunkId::of(&raw), &raw, None);
        assert_eq!(chunk.codec, Codec::Raw);
        assert_eq!(chunk.payload(&raw), &raw[..]);
    }

    fn fp16_weights(len: usize) -> Vec<u8> {
        random_bytes(9, len * 2)
            .chunks_exact(4)
            .flat_map(|r| {
                let sum: u32 = r.iter().map(|&b| u32::from(b)).sum();
                let normal = (sum as f32 / 255.0 - 2.0) * 1.732;
                half::f16::from_f32(normal * 0.02).to_le_bytes()
            })
            .take(len)
            .collect()
    }

    #[test]
    fn grouped_floats_beat_plain_zstd_and_round_trip() {
        let raw = fp16_weights(65_537);
        let id = ChunkId::of(&raw);
        let mut encoder = Encoder::new(PARAMS).unwrap();
        let plain = encoder.encode(id, &raw, None);
        let grouped = encoder.encode(id, &raw, Some(&[1, 1]));
        assert_eq!(grouped.codec, Codec::Grouped);
        assert!(
            grouped.stored_len() < plain.stored_len(),
            "{} vs {}",
            grouped.stored_len(),
            plain.stored_len()
        );
        assert!(
            grouped.stored_len() < raw.len() as u32 * 87 / 100,
            "{} of {}",
            grouped.stored_len(),
            raw.len()
        );
        let mut out = Vec::new();
        decode_verified(&grouped.header(), grouped.payload(&raw), &mut out).unwrap();
        assert!(out == raw);
        let mut damaged = grouped.payload(&raw).to_vec();
        damaged[0] = 9;
        assert!(decode_verified(&grouped.header(), &damaged, &mut out).is_err());
        damaged[0] = 2;
        damaged[1] = 0;
        assert!(decode_verified(&grouped.header(), &damaged, &mut out).is_err());
    }

    #[test]
    fn grouped_blocks_round_trip_with_a_partial_tail() {
        // Q8_0-like blocks: a 2-byte scale from a narrow range, then 32 spread-out quants.
        let noise = random_bytes(4, 34 * 500 + 7);
        let raw: Vec<u8> = noise
            .chunks(34)
            .flat_map(|block| {
                block
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| if i < 2 { b & 0x0f } else { b })
            })
            .collect();
        let id = ChunkId::of(&raw);
        let chunk = Encoder::new(PARAMS)
            .unwrap()
            .encode(id, &raw, Some(&[2, 32]));
        let mut out = Vec::new();
        if chunk.codec == Codec::Grouped {
            decode_verified(&chunk.header(), chunk.payload(&raw), &mut out).unwrap();
            assert!(out == raw);
        }
        let mut planes = split_planes(&raw[..34 * 500], &[2, 32]);
        assert_eq!(planes[0].len(), 1000);
        let mut joined = vec![0u8; 34 * 500];
        let refs: Vec<&[u8]> = planes.iter_mut().map(|p| &p[..]).collect();
        join_planes(&mut joined, &[2, 32], &refs);
        assert!(joined[..] == raw[..34 * 500]);
    }

    #[test]
    fn damage_is_detected() {
        let raw = b"abc".repeat(5000);
        let chunk = Encoder::new(PARAMS)
            .unwrap()
            .encode(ChunkId::of(&raw), &raw, None);
        let mut payload = chunk.payload(&raw).to_vec();
        let mid = payload.len() / 2;
        payload[mid] ^= 1;
        let mut out = Vec::new();
        assert!(decode_verified(&chunk.header(), &payload, &mut out).is_err());

        let raw_chunk = Encoder::new(PARAMS).unwrap().encode(
            ChunkId::of(&random_bytes(1, 5000)),
            &random_bytes(1, 5000),
            None,
        );
        let mut damaged = random_bytes(1, 5000);
        damaged[10] ^= 1;
        assert!(matches!(
            decode_verified(&raw_chunk.header(), &damaged, &mut out),
            Err(DecodeError::HashMismatch(_))
        ));
    }
}
