//! A GGUF v3 writer (header, metadata, tensor infos, 32-byte aligned data).

use std::io::Write;

use crate::model::{DType, Model};

const ALIGNMENT: u64 = 32;
const GGUF_TYPE_UINT32: u32 = 4;
const GGUF_TYPE_INT32: u32 = 5;
const GGUF_TYPE_FLOAT32: u32 = 6;
const GGUF_TYPE_STRING: u32 = 8;
const GGUF_TYPE_ARRAY: u32 = 9;

/// A typed metadata value (the model's own metadata is all strings).
#[derive(Debug, Clone)]
pub enum Value {
    U32(u32),
    F32(f32),
    String(String),
    StringArray(Vec<String>),
    F32Array(Vec<f32>),
    I32Array(Vec<i32>),
}

impl Value {
    /// Appends the value's type and bytes (after its key).
    fn encode(&self, out: &mut Vec<u8>) {
        let array = |out: &mut Vec<u8>, element_type: u32, len: usize| {
            out.extend_from_slice(&GGUF_TYPE_ARRAY.to_le_bytes());
            out.extend_from_slice(&element_type.to_le_bytes());
            out.extend_from_slice(&(len as u64).to_le_bytes());
        };
        match self {
            Value::U32(v) => {
                out.extend_from_slice(&GGUF_TYPE_UINT32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::F32(v) => {
                out.extend_from_slice(&GGUF_TYPE_FLOAT32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            Value::String(v) => {
                out.extend_from_slice(&GGUF_TYPE_STRING.to_le_bytes());
                string(out, v);
            }
            Value::StringArray(values) => {
                array(out, GGUF_TYPE_STRING, values.len());
                for v in values {
                    string(out, v);
                }
            }
            Value::F32Array(values) => {
                array(out, GGUF_TYPE_FLOAT32, values.len());
                for v in values {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Value::I32Array(values) => {
                array(out, GGUF_TYPE_INT32, values.len());
                for v in values {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
}

pub struct WriteStats {
    pub file_bytes: u64,
    pub tensor_bytes: u64,
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Writes the model with `extra` metadata after the model's own (string) metadata.
pub fn write(
    model: &Model,
    extra: &[(String, Value)],
    out: &mut impl Write,
) -> std::io::Result<WriteStats> {
    let mut header = Vec::new();
    header.extend_from_slice(b"GGUF");
    header.extend_from_slice(&3u32.to_le_bytes());
    header.extend_from_slice(&(model.tensors.len() as u64).to_le_bytes());
    header.extend_from_slice(&((model.metadata.len() + extra.len()) as u64).to_le_bytes());
    for (key, value) in &model.metadata {
        string(&mut header, key);
        header.extend_from_slice(&GGUF_TYPE_STRING.to_le_bytes());
        string(&mut header, value);
    }
    for (key, value) in extra {
        string(&mut header, key);
        value.encode(&mut header);
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
