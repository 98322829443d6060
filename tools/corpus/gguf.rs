//! A GGUF v3 writer (header, string metadata, tensor infos, 32-byte aligned data).

use std::io::Write;

use crate::model::{DType, Model};

const ALIGNMENT: u64 = 32;
const GGUF_TYPE_STRING: u32 = 8;

pub struct WriteStats {
    pub file_bytes: u64,
    pub tensor_bytes: u64,
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub fn write(model: &Model, out: &mut impl Write) -> std::io::Result<WriteStats> {
    let mut header = Vec::new();
    header.extend_from_slice(b"GGUF");
    header.extend_from_slice(&3u32.to_le_bytes());
    header.extend_from_slice(&(model.tensors.len() as u64).to_le_bytes());
    header.extend_from_slice(&(model.metadata.len() as u64).to_le_bytes());
    for (key, value) in &model.metadata {
        string(&mut header, key);
        header.extend_from_slice(&GGUF_TYPE_STRING.to_le_bytes());
        string(&mut header, value);
    }
    let mut offset = 0u64;
    for tensor in &model.tensors {
        string(&mut header, &tensor.name);
        header.extend_from_slice(&(tensor.dims.len() as u32).to_le_bytes());
        for dim in &tensor.dims {
            header.extend_from_slice(&dim.to_le_bytes());
        }
        let ggml_type: u32 = match tensor.dtype {
            DType::F32 => 0,
            DType::F16 => 1,
            DType::Q8_0 => 8,
        };
        header.extend_from_slice(&ggml_type.to_le_bytes());
        header.extend_from_slice(&offset.to_le_bytes());
        offset = (offset + tensor.byte_len()).div_ceil(ALIGNMENT) * ALIGNMENT;
    }
    header.resize(
        (header.len() as u64).div_ceil(ALIGNMENT) as usize * ALIGNMENT as usize,
        0,
    );
    out.write_all(&header)?;
    let mut written = header.len() as u64;
    let mut tensor_bytes = 0;
    for tensor in &model.tensors {
        let bytes = tensor.bytes();
        out.write_all(&bytes)?;
        let padded = (bytes.len() as u64).div_ceil(ALIGNMENT) * ALIGNMENT;
        out.write_all(&vec![0u8; (padded - bytes.len() as u64) as usize])?;
        written += padded;
        tensor_bytes += bytes.len() as u64;
    }
    out.flush()?;
    Ok(WriteStats {
        file_bytes: written,
        tensor_bytes,
    })
}
