//! GGUF (versions 2 and 3): header, metadata key/values, tensor infos, aligned data section.

use super::{Cursor, ElementType, FileLayout, Format, MAX_TENSORS, TensorExtent};

const DEFAULT_ALIGNMENT: u64 = 32;
const TYPE_UINT32: u32 = 4;
const TYPE_STRING: u32 = 8;
const TYPE_ARRAY: u32 = 9;

/// (block size in elements, bytes per block) of ggml tensor types; `None` for unknown types.
fn ggml_block(ggml_type: u32) -> Option<(u64, u64)> {
    Some(match ggml_type {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 36),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        30 => (1, 2),     // BF16
        _ => return None,
    })
}

fn element(ggml_type: u32) -> ElementType {
    match ggml_type {
        0 => ElementType::F32,
        1 => ElementType::F16,
        30 => ElementType::BF16,
        8 => ElementType::Q8_0,
        2 => ElementType::Q4_0,
        _ => ElementType::Other,
    }
}

/// Size in bytes of one metadata value of scalar `kind`, `None` for strings, arrays or unknown kinds.
fn scalar_size(kind: u32) -> Option<u64> {
    match kind {
        0 | 1 | 7 => Some(1), // u8, i8, bool
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

fn skip_value(cursor: &mut Cursor, kind: u32, depth: u32) -> Option<()> {
    if let Some(size) = scalar_size(kind) {
        cursor.take(size)?;
        return Some(());
    }
    match kind {
        TYPE_STRING => {
            let len = cursor.u64()?;
            cursor.take(len)?;
        }
        TYPE_ARRAY if depth < 4 => {
            let item_kind = cursor.u32()?;
            let count = cursor.u64()?;
            match scalar_size(item_kind) {
                Some(size) => {
                    cursor.take(size.checked_mul(count)?)?;
                }
                None => {
                    for _ in 0..count {
                        skip_value(cursor, item_kind, depth + 1)?;
                    }
                }
            }
        }
        _ => return None,
    }
    Some(())
}

pub(super) fn parse(data: &[u8], file_len: u64) -> Option<FileLayout> {
    let mut cursor = Cursor::new(data);
    cursor.take(4)?;
    let version = cursor.u32()?;
    if !(2..=3).contains(&version) {
        return None;
    }
    let tensor_count = cursor.u64()?;
    let kv_count = cursor.u64()?;
    if tensor_count > MAX_TENSORS || kv_count > MAX_TENSORS {
        return None;
    }
    let mut alignment = DEFAULT_ALIGNMENT;
    for _ in 0..kv_count {
        let key_len = cursor.u64()?;
        let key = cursor.take(key_len)?;
        let kind = cursor.u32()?;
        if key == b"general.alignment" && kind == TYPE_UINT32 {
            alignment = u64::from(cursor.u32()?);
        } else {
            skip_value(&mut cursor, kind, 0)?;
        }
    }
    if alignment == 0 || !alignment.is_power_of_two() {
        return None;
    }
    let mut infos = Vec::with_capacity(tensor_count as usize);
    for _ in 0..tensor_count {
        let name_len = cursor.u64()?;
        let name = String::from_utf8(cursor.take(name_len)?.to_vec()).ok()?;
        let dims = cursor.u32()?;
        if dims > 8 {
            return None;
        }
        let mut elements = 1u64;
        for _ in 0..dims {
            elements = elements.checked_mul(cursor.u64()?)?;
        }
        let ggml_type = cursor.u32()?;
        let offset = cursor.u64()?;
        infos.push((name, elements, ggml_type, offset));
    }
    let data_start = (cursor.pos as u64).div_ceil(alignment) * alignment;
    let mut tensors = Vec::with_capacity(infos.len());
    for (name, elements, ggml_type, offset) in infos {
        let start = data_start.checked_add(offset)?;
        let (block, bytes) = ggml_block(ggml_type)?;
        if elements % block != 0 {
            return None;
        }
        let end = start.checked_add((elements / block).checked_mul(bytes)?)?;
        if end > file_len {
            return None;
        }
        tensors.push(TensorExtent {
            name,
            range: start..end,
            element: element(ggml_type),
        });
    }
    Some(FileLayout {
        format: Format::Gguf,
        header: 0..data_start,
        tensors,
    })
}
