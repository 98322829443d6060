//! Chunk payloads: `GroupedPayload::parse` on arbitrary bytes (re-encoding what parses gives the
//! same bytes) and `codec::decode_into` for every codec with destination lengths from the input,
//! from the payload's own structure and from a zstd frame's declared size, checked against an
//! independent decoding; and the encoder's output decoding back to its input.
//!
//! Input: a mode byte. Below 0x80: a u32 destination length (capped at 1 MiB), then the payload.
//! From 0x80: the rest is a chunk to encode, with the record fields the mode byte picks.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use modelfs::codec::{Encoder, decode_into, verify};
use modelfs::format::config::CompressionParams;
use modelfs::format::grouped::{GroupedPayload, PlaneMode};
use modelfs::format::pack::Codec;
use modelfs::id::ChunkId;

const MAX_DST: usize = 1 << 20;

/// Record field layouts: the ones in use, then odd ones the format allows.
const FIELDS: [&[u8]; 10] = [
    &[1, 1],
    &[1, 1, 1, 1],
    &[2, 32],
    &[2, 16],
    &[1, 2],
    &[3],
    &[4, 4],
    &[1, 1, 1],
    &[255, 255, 255, 255],
    &[7, 1, 5, 2],
];

thread_local! {
    static ENCODER: RefCell<Encoder> = RefCell::new(
        Encoder::new(CompressionParams { zstd_level: 1, min_saving_percent: 3 }).expect("encoder"),
    );
}

/// What a grouped payload decodes to, computed without `codec`; `None` if it does not.
fn ungroup_independently(payload: &GroupedPayload, raw_len: usize) -> Option<Vec<u8>> {
    let stride = payload.stride();
    let records = raw_len / stride;
    if payload.tail().len() != raw_len % stride {
        return None;
    }
    let mut out = vec![0u8; records * stride];
    let mut field_offset = 0;
    for (plane, &width) in payload.planes().iter().zip(payload.fields()) {
        let width = usize::from(width);
        let bytes = match plane.mode {
            PlaneMode::Raw => plane.bytes.to_vec(),
            PlaneMode::Zstd => zstd::bulk::decompress(plane.bytes, records * width).ok()?,
        };
        if bytes.len() != records * width {
            return None;
        }
        for (record, field) in bytes.chunks_exact(width).enumerate() {
            let at = record * stride + field_offset;
            out[at..at + width].copy_from_slice(field);
        }
        field_offset += width;
    }
    out.extend_from_slice(payload.tail());
    Some(out)
}

fn decode(payload: &[u8], dst_len: usize) {
    let parsed = GroupedPayload::parse(payload).ok();
    for codec in [Codec::Raw, Codec::Zstd, Codec::Grouped] {
        let mut dst = vec![0u8; dst_len];
        let Ok(()) = decode_into(codec, payload, &mut dst) else {
            continue;
        };
        match codec {
            Codec::Raw => assert!(dst == payload),
            Codec::Zstd => {
                let independent = zstd::bulk::decompress(payload, dst_len).expect("zstd agrees");
                assert!(independent == dst, "zstd decodes differently");
            }
            Codec::Grouped => {
                let parsed = parsed.as_ref().expect("decoded grouped payload parses");
                let independent = ungroup_independently(parsed, dst_len);
                assert!(
                    independent.as_deref() == Some(&dst[..]),
                    "ungrouped differently"
                );
            }
        }
    }
}

fn decode_mode(mut data: &[u8]) {
    let Some(len) = data.get(..4) else { return };
    let hint = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize % (MAX_DST + 1);
    data = &data[4..];
    let mut lengths = vec![hint, data.len()];
    if let Ok(parsed) = GroupedPayload::parse(data) {
        let mut encoded = parsed.encode().expect("a parsed payload encodes");
        assert!(encoded == data, "re-encoding changes the payload");
        encoded.clear();
        assert_eq!(parsed.encoded_len(), data.len());
        // The decoded length the first plane implies, whatever its mode.
        let width = usize::from(parsed.fields()[0]);
        let first = parsed.planes()[0];
        let records = match first.mode {
            PlaneMode::Raw => first.bytes.len() / width,
            PlaneMode::Zstd => zstd::zstd_safe::get_frame_content_size(first.bytes)
                .ok()
                .flatten()
                .map_or(0, |n| n as usize / width),
        };
        let implied = records
            .saturating_mul(parsed.stride())
            .saturating_add(parsed.tail().len());
        if implied <= MAX_DST {
            lengths.push(implied);
            if let Ok(count) = parsed.records_for(implied) {
                assert_eq!(count, records);
            }
        }
        let _ = parsed.records_for(hint);
    }
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(data)
        && size <= MAX_DST as u64
    {
        lengths.push(size as usize);
    }
    lengths.sort_unstable();
    lengths.dedup();
    for dst_len in lengths {
        decode(data, dst_len);
    }
}

fn encode_mode(mode: u8, raw: &[u8]) {
    let fields = FIELDS[usize::from(mode) % FIELDS.len()];
    let id = ChunkId::of(raw);
    ENCODER.with_borrow_mut(|encoder| {
        for fields in [Some(fields), None] {
            let chunk = encoder.encode(id, raw, fields);
            assert_eq!(chunk.raw_len as usize, raw.len());
            let header = chunk.header();
            let payload = chunk.payload(raw);
            assert_eq!(payload.len(), header.stored_len as usize);
            let mut out = vec![0u8; raw.len()];
            decode_into(header.codec, payload, &mut out).expect("own encoding decodes");
            assert!(out == raw, "round trip changes the chunk");
            verify(&id, &out).expect("round trip verifies");
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode < 0x80 {
        decode_mode(rest);
    } else {
        encode_mode(mode, rest);
    }
});
