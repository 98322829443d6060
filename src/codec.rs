//! One chunk's encoding: compress-if-it-pays on the way in, decode and verify on the way out.
//!
//! Owns [`Encoder`] (per ingest thread: holds a zstd context and buffers), [`decode_into`] and
//! [`verify`]. Stateless with respect to the store: no files, no index. The one place that turns
//! stored bytes into trusted bytes, calling both, is `store::chunk::load`.
//! Splitting records into planes and compressing them is here; the byte layout of a grouped
//! payload is `format::grouped`.

use crate::format::config::CompressionParams;
use crate::format::grouped::{
    GroupedError, GroupedPayload, GroupedWriter, PlaneMode, stride, valid_fields,
};
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

    /// Splits `raw` into one plane per record field, each zstd-compressed if that pays, laid out
    /// as a `format::grouped` payload. `None` if `fields` cannot be grouped.
    fn group(&mut self, raw: &[u8], fields: Fields) -> Option<Vec<u8>> {
        let body = raw.len() / stride(fields) * stride(fields);
        let planes = split_planes(&raw[..body], fields);
        let mut out = Vec::with_capacity(raw.len());
        let mut writer = GroupedWriter::new(&mut out, fields).ok()?;
        let mut packed = Vec::new();
        for plane in &planes {
            packed.clear();
            packed.reserve(plane.len());
            let pays = matches!(self.compressor.compress_to_buffer(&plane[..], &mut packed), Ok(n) if n < plane.len());
            if pays {
                writer.plane(PlaneMode::Zstd, &packed).ok()?;
            } else {
                writer.plane(PlaneMode::Raw, plane).ok()?;
            }
        }
        writer.finish(&raw[body..]).ok()?;
        Some(out)
    }
}

/// The byte widths of the fields of one record, e.g. `[1, 1]` for an f16 value (low and high
/// byte) or `[2, 32]` for a ggml Q8_0 block (an f16 scale and 32 quants).
pub type Fields = &'static [u8];

pub use crate::format::grouped::MAX_FIELDS;

/// Splits whole records into one plane per field.
fn split_planes(records: &[u8], fields: &[u8]) -> Vec<Vec<u8>> {
    let stride = stride(fields);
    let count = records.len() / stride;
    if fields == [1, 1] {
        let (mut low, mut high) = (vec![0u8; count], vec![0u8; count]);
        // Groups of 16 values, taken apart through u16 words, compile to vector shuffles (8x
        // the speed of a loop over single pairs); single pairs finish the rest.
        const GROUP: usize = 16;
        let mut groups = records.chunks_exact(2 * GROUP);
        let mut lows = low.chunks_exact_mut(GROUP);
        let mut highs = high.chunks_exact_mut(GROUP);
        for ((group, l), h) in (&mut groups).zip(&mut lows).zip(&mut highs) {
            let group: &[u8; 2 * GROUP] = group.try_into().expect("a whole group");
            let l: &mut [u8; GROUP] = l.try_into().expect("a whole group");
            let h: &mut [u8; GROUP] = h.try_into().expect("a whole group");
            let mut words = [0u16; GROUP];
            for (word, pair) in words.iter_mut().zip(group.chunks_exact(2)) {
                *word = u16::from_le_bytes([pair[0], pair[1]]);
            }
            for (l, word) in l.iter_mut().zip(words) {
                *l = word as u8;
            }
            for (h, word) in h.iter_mut().zip(words) {
                *h = (word >> 8) as u8;
            }
        }
        for ((pair, l), h) in groups
            .remainder()
            .chunks_exact(2)
            .zip(lows.into_remainder())
            .zip(highs.into_remainder())
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
        const { std::cell::RefCell::new([const { Vec::new() }; MAX_FIELDS]) };
}

/// Reassembles a [`Codec::Grouped`] payload into `dst` (exactly the decoded length).
fn ungroup(payload: &[u8], dst: &mut [u8]) -> Result<(), DecodeError> {
    let grouped = GroupedPayload::parse(payload)?;
    let records = grouped.records_for(dst.len())?;
    let fields = grouped.fields();
    let (body, tail) = dst.split_at_mut(records * grouped.stride());
    PLANES.with_borrow_mut(|buffers| {
        // Planes stored as they are are used where they lie in the payload; compressed ones are
        // decompressed into per-thread buffers first.
        let mut planes: [&[u8]; MAX_FIELDS] = [&[]; MAX_FIELDS];
        for (((plane, &width), buffer), slot) in grouped
            .planes()
            .iter()
            .zip(fields)
            .zip(buffers.iter_mut())
            .zip(planes.iter_mut())
        {
            *slot = match plane.mode {
                PlaneMode::Raw => plane.bytes,
                PlaneMode::Zstd => {
                    let expected = records * usize::from(width);
                    buffer.resize(expected, 0);
                    let produced = decompress(plane.bytes, buffer)?;
                    if produced != expected {
                        return Err(DecodeError::Length {
                            got: produced,
                            expected: expected as u32,
                        });
                    }
                    &buffer[..]
                }
            };
        }
        join_planes(body, fields, &planes[..fields.len()]);
        Ok(())
    })?;
    tail.copy_from_slice(grouped.tail());
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
    Grouped(#[from] GroupedError),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes the payload of a record into `out` (resized to the decoded length) and checks it
    /// hashes to the record's chunk id.
    fn decode_verified(
        header: &RecordHeader,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), DecodeError> {
        out.resize(header.raw_len as usize, 0);
        decode_into(header.codec, payload, out)?;
        verify(&header.chunk_id, out)
    }
    use crate::format::grouped::Plane;
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
    fn f16_planes_are_the_low_and_high_bytes_for_any_count() {
        for count in [0, 1, 15, 16, 17, 31, 32, 33, 1000] {
            let raw = random_bytes(count as u64, 2 * count);
            let planes = split_planes(&raw, &[1, 1]);
            let low: Vec<u8> = raw.iter().step_by(2).copied().collect();
            let high: Vec<u8> = raw.iter().skip(1).step_by(2).copied().collect();
            assert_eq!(planes, vec![low, high], "{count} values");
            let mut joined = vec![0u8; 2 * count];
            join_planes(&mut joined, &[1, 1], &[&planes[0], &planes[1]]);
            assert_eq!(joined, raw, "{count} values");
        }
    }

    /// The grouped payload of 64 f16-like values (pseudo-random low bytes, a constant high byte)
    /// and a 1-byte tail, as this build encodes it at zstd level 3. Decoding these bytes must keep
    /// working forever; the encoding may only change with a reviewed format change (or, for the
    /// zstd frame alone, a zstd upgrade).
    const GOLDEN_GROUPED: &str = "
        02 0101                                     # 2 fields of 1 byte
        00 40000000                                 # plane 0 (low bytes): raw, 64 bytes
        9d3080237d64f550a1136b7ad25c2a436d129b6e30be56a3f06d2e2799622e81
        c45904751a0f4a2a0e58b07ae1c94b8d649ff0522051bb19ea95ba6b41e7acc7
        01 11000000                                 # plane 1 (high bytes): zstd, 17 bytes
        28b52ffd2040450000103c3c0100930016
        ee                                          # tail
    ";

    fn golden_input() -> Vec<u8> {
        let mut raw: Vec<u8> = random_bytes(11, 64)
            .into_iter()
            .flat_map(|low| [low, 0x3c])
            .collect();
        raw.push(0xee);
        raw
    }

    #[test]
    fn golden_grouped_payload() {
        let params = CompressionParams {
            zstd_level: 3,
            min_saving_percent: 5,
        };
        let raw = golden_input();
        let golden = crate::format::unhex(GOLDEN_GROUPED);
        let chunk = Encoder::new(params)
            .unwrap()
            .encode(ChunkId::of(&raw), &raw, Some(&[1, 1]));
        assert_eq!(chunk.codec, Codec::Grouped);
        assert_eq!(chunk.compressed, golden);
        let header = RecordHeader {
            stored_len: golden.len() as u32,
            ..chunk.header()
        };
        let mut out = Vec::new();
        decode_verified(&header, &golden, &mut out).unwrap();
        assert_eq!(out, raw);

        // Planes that do not compress are stored as they are: no zstd in these bytes.
        let raw: Vec<u8> = (0u8..14).collect();
        let grouped = Encoder::new(params).unwrap().group(&raw, &[2, 4]).unwrap();
        let golden = crate::format::unhex(
            "02 0204  00 04000000 00010607  00 08000000 0203040508090a0b  0c0d",
        );
        assert_eq!(grouped, golden);
        let mut out = vec![0; raw.len()];
        decode_into(Codec::Grouped, &golden, &mut out).unwrap();
        assert_eq!(out, raw);
    }

    #[test]
    fn grouped_payloads_inconsistent_with_the_header_are_rejected() {
        let golden = crate::format::unhex(GOLDEN_GROUPED);
        let raw = golden_input();
        let mut out = vec![0; raw.len() - 1];
        // One byte short: the tail should be empty, and a raw plane one byte shorter.
        assert!(matches!(
            decode_into(Codec::Grouped, &golden, &mut out),
            Err(DecodeError::Grouped(GroupedError::TailLength { .. }))
        ));
        let mut out = vec![0; raw.len() + 2];
        assert!(matches!(
            decode_into(Codec::Grouped, &golden, &mut out),
            Err(DecodeError::Grouped(GroupedError::PlaneLength {
                plane: 0,
                ..
            }))
        ));
        // A zstd plane of 64 bytes where 32 records call for 32.
        let parsed = GroupedPayload::parse(&golden).unwrap();
        let low = parsed.planes()[0].bytes;
        let mismatched = GroupedPayload::new(
            &[1, 1],
            &[
                Plane {
                    mode: PlaneMode::Raw,
                    bytes: &low[..32],
                },
                parsed.planes()[1],
            ],
            &[],
        )
        .unwrap()
        .encode()
        .unwrap();
        let mut out = vec![0; 64];
        assert!(decode_into(Codec::Grouped, &mismatched, &mut out).is_err());
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
