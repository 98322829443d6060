use proptest::prelude::*;

use super::*;

/// A small GGUF v3 file: one string key, then `tensors` (name, element count, ggml type).
pub(crate) fn gguf_bytes(tensors: &[(&str, u64, u32)]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&1u64.to_le_bytes());
    let string = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    string(&mut out, "general.architecture");
    out.extend_from_slice(&8u32.to_le_bytes());
    string(&mut out, "llama");
    let mut offset = 0u64;
    let mut sizes = Vec::new();
    for (name, elements, ggml_type) in tensors {
        string(&mut out, name);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&elements.to_le_bytes());
        out.extend_from_slice(&ggml_type.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        let size = match ggml_type {
            0 => elements * 4,
            8 => elements / 32 * 34,
            12 => elements / 256 * 144,
            _ => elements * 2,
        };
        sizes.push(size);
        offset = (offset + size).div_ceil(32) * 32;
    }
    out.resize(out.len().div_ceil(32) * 32, 0);
    for (i, size) in sizes.iter().enumerate() {
        out.extend((0..*size).map(|b| (b as u8).wrapping_mul(i as u8 + 3)));
        out.resize(out.len().div_ceil(32) * 32, 0);
    }
    out
}

/// A small safetensors file with F16 tensors of the given byte lengths.
pub(crate) fn safetensors_bytes(tensors: &[(&str, u64)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0;
    for (name, len) in tensors {
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": "F16", "shape": [len / 2], "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let json = serde_json::to_vec(&header).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend((0..offset).map(|b| (b % 251) as u8));
    out
}

#[test]
fn gguf_tensors_are_found() {
    let data = gguf_bytes(&[
        ("token_embd.weight", 1000, 1),
        ("norm", 64, 0),
        ("q8", 64, 8),
    ]);
    let layout = detect(&data).unwrap();
    assert_eq!(layout.format, Format::Gguf);
    assert_eq!(layout.tensors.len(), 3);
    assert_eq!(layout.header.end % 32, 0);
    assert_eq!(layout.tensors[0].range.start, layout.header.end);
    assert_eq!(
        layout.tensors[0].range.end - layout.tensors[0].range.start,
        2000
    );
    assert_eq!(layout.tensors[1].element, ElementType::F32);
    assert_eq!(
        layout.tensors[2].range.end - layout.tensors[2].range.start,
        68
    );
    assert_eq!(
        layout
            .tensor_at(layout.tensors[1].range.start + 3)
            .unwrap()
            .name,
        "norm"
    );
    assert!(layout.tensor_at(0).is_none());
}

#[test]
fn safetensors_tensors_are_found() {
    let data = safetensors_bytes(&[("b.weight", 100), ("a.weight", 50)]);
    let layout = detect(&data).unwrap();
    assert_eq!(layout.format, Format::Safetensors);
    let names: Vec<_> = layout.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["b.weight", "a.weight"],
        "file order, not name order"
    );
    assert_eq!(layout.tensors[1].range.end, data.len() as u64);
    assert_eq!(layout.cut_points().first(), Some(&layout.header.end));
}

#[test]
fn lying_headers_are_refused() {
    // A tensor claiming to run past the end of the file.
    let mut data = gguf_bytes(&[("t", 1000, 1)]);
    data.truncate(data.len() - 100);
    assert!(detect(&data).is_none());
    // Overlapping safetensors entries.
    let mut header = serde_json::Map::new();
    header.insert(
        "a".into(),
        serde_json::json!({"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}),
    );
    header.insert(
        "b".into(),
        serde_json::json!({"dtype": "F16", "shape": [4], "data_offsets": [4, 12]}),
    );
    let json = serde_json::to_vec(&header).unwrap();
    let mut data = (json.len() as u64).to_le_bytes().to_vec();
    data.extend_from_slice(&json);
    data.extend_from_slice(&[0; 12]);
    assert!(detect(&data).is_none());
    // An absurd tensor count.
    let mut data = gguf_bytes(&[("t", 16, 1)]);
    data[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(detect(&data).is_none());
    assert!(detect(b"not a model at all").is_none());
}

proptest! {
    #[test]
    fn damaged_headers_never_panic_and_never_yield_bad_layouts(
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        safetensors in any::<bool>(),
    ) {
        let mut data = if safetensors {
            safetensors_bytes(&[("x", 64), ("y", 32)])
        } else {
            gguf_bytes(&[("x", 64, 1), ("y", 32, 0)])
        };
        let header_len = if safetensors { 80 } else { 160 };
        for (at, value) in flips {
            let at = at % header_len.min(data.len());
            data[at] = value;
        }
        if let Some(layout) = detect(&data) {
            let mut end = layout.header.end;
            for tensor in &layout.tensors {
                prop_assert!(tensor.range.start >= end && tensor.range.end <= data.len() as u64);
                end = tensor.range.end;
            }
        }
    }
}
