//! safetensors: an 8-byte header length, a JSON header, then the tensors' bytes.

use std::collections::BTreeMap;

use super::{Cursor, ElementType, FileLayout, Format, MAX_TENSORS, TensorExtent};

/// Largest JSON header accepted (the format's own reference implementation uses 100 MB).
const MAX_HEADER: u64 = 100_000_000;

#[derive(serde::Deserialize)]
struct Entry {
    dtype: String,
    data_offsets: (u64, u64),
}

/// Whether `data` starts like a safetensors file: a plausible length followed by `{`.
pub(super) fn looks_like(data: &[u8]) -> bool {
    let mut cursor = Cursor::new(data);
    matches!(cursor.u64(), Some(len) if (2..=MAX_HEADER).contains(&len))
        && data.get(8) == Some(&b'{')
}

pub(super) fn parse(data: &[u8]) -> Option<FileLayout> {
    let mut cursor = Cursor::new(data);
    let header_len = cursor.u64()?;
    let json = cursor.take(header_len)?;
    let entries: BTreeMap<String, serde_json::Value> = serde_json::from_slice(json).ok()?;
    if entries.len() as u64 > MAX_TENSORS {
        return None;
    }
    let data_start = 8 + header_len;
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        if name == "__metadata__" {
            continue;
        }
        let entry: Entry = serde_json::from_value(value).ok()?;
        let (begin, end) = entry.data_offsets;
        if begin > end {
            return None;
        }
        let element = match entry.dtype.as_str() {
            "F16" => ElementType::F16,
            "BF16" => ElementType::BF16,
            "F32" => ElementType::F32,
            _ => ElementType::Other,
        };
        if begin == end {
            continue;
        }
        tensors.push(TensorExtent {
            name,
            range: data_start.checked_add(begin)?..data_start.checked_add(end)?,
            element,
        });
    }
    Some(FileLayout {
        format: Format::Safetensors,
        header: 0..data_start,
        tensors,
    })
}
