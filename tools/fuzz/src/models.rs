//! Small, deterministic model files: GGUF v3 and safetensors with float and quantized tensors, so
//! seeds and the fixture store exercise every codec (raw, zstd, grouped f16/f32/Q8_0/Q4_0).

use crate::pseudo_random;

/// ggml type numbers used here.
pub const GGML_F32: u32 = 0;
/// ggml F16.
pub const GGML_F16: u32 = 1;
/// ggml Q4_0 (blocks of 32 elements, 18 bytes).
pub const GGML_Q4_0: u32 = 2;
/// ggml Q8_0 (blocks of 32 elements, 34 bytes).
pub const GGML_Q8_0: u32 = 8;
/// ggml BF16.
pub const GGML_BF16: u32 = 30;

/// Bytes of `elements` values of `ggml_type` (only the types above).
pub fn ggml_bytes(ggml_type: u32, elements: u64) -> u64 {
    match ggml_type {
        GGML_F32 => elements * 4,
        GGML_Q4_0 => elements / 32 * 18,
        GGML_Q8_0 => elements / 32 * 34,
        _ => elements * 2,
    }
}

/// Plausible weights: f16 values of a narrow normal-ish distribution (compress well when grouped).
pub fn f16_weights(seed: u64, count: usize) -> Vec<u8> {
    pseudo_random(seed, count * 4)
        .chunks_exact(4)
        .flat_map(|r| {
            let sum: u32 = r.iter().map(|&b| u32::from(b)).sum();
            // Roughly normal around 0, scale ~0.02: sign, exponent 0x1f..0x24, random mantissa.
            let sign = u16::from(r[0] & 1) << 15;
            let exponent = 0x0f + (sum % 6) as u16;
            let mantissa = u16::from_le_bytes([r[1], r[2]]) & 0x3ff;
            (sign | exponent << 10 | mantissa).to_le_bytes()
        })
        .collect()
}

/// Plausible f32 weights (top bytes alike).
pub fn f32_weights(seed: u64, count: usize) -> Vec<u8> {
    pseudo_random(seed, count * 4)
        .chunks_exact(4)
        .flat_map(|r| {
            let value = (f32::from(r[0]) - 127.5) / 6000.0 + f32::from(r[1]) / 1e6;
            value.to_le_bytes()
        })
        .collect()
}

/// Quantized blocks: a small f16 scale, then `quant_bytes` spread-out quants.
pub fn quant_blocks(seed: u64, blocks: usize, quant_bytes: usize) -> Vec<u8> {
    let noise = pseudo_random(seed, blocks * (2 + quant_bytes));
    noise
        .chunks_exact(2 + quant_bytes)
        .flat_map(|block| {
            let mut out = block.to_vec();
            out[0] &= 0x3f;
            out[1] = 0x20 | (out[1] & 0x03);
            out
        })
        .collect()
}

/// The bytes of one tensor of `ggml_type` with `elements` elements.
pub fn tensor_bytes(seed: u64, ggml_type: u32, elements: u64) -> Vec<u8> {
    let n = elements as usize;
    match ggml_type {
        GGML_F32 => f32_weights(seed, n),
        GGML_Q4_0 => quant_blocks(seed, n / 32, 16),
        GGML_Q8_0 => quant_blocks(seed, n / 32, 32),
        _ => f16_weights(seed, n),
    }
}

fn gguf_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A GGUF v3 file: a few metadata keys (a string, the alignment, an array of strings, an array of
/// u32), then `tensors` (name, element count, ggml type) with their data, 32-byte aligned.
pub fn gguf(seed: u64, tensors: &[(&str, u64, u32)]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&4u64.to_le_bytes());
    gguf_string(&mut out, "general.architecture");
    out.extend_from_slice(&8u32.to_le_bytes());
    gguf_string(&mut out, "llama");
    gguf_string(&mut out, "general.alignment");
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&32u32.to_le_bytes());
    gguf_string(&mut out, "tokenizer.ggml.tokens");
    out.extend_from_slice(&9u32.to_le_bytes());
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&3u64.to_le_bytes());
    for token in ["<s>", "</s>", "hello"] {
        gguf_string(&mut out, token);
    }
    gguf_string(&mut out, "llama.rope.dims");
    out.extend_from_slice(&9u32.to_le_bytes());
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&2u64.to_le_bytes());
    out.extend_from_slice(&64u32.to_le_bytes());
    out.extend_from_slice(&128u32.to_le_bytes());
    let mut offset = 0u64;
    let mut sizes = Vec::new();
    for &(name, elements, ggml_type) in tensors {
        gguf_string(&mut out, name);
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&32u64.to_le_bytes());
        out.extend_from_slice(&(elements / 32).to_le_bytes());
        out.extend_from_slice(&ggml_type.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        let size = ggml_bytes(ggml_type, elements);
        sizes.push(size);
        offset = (offset + size).div_ceil(32) * 32;
    }
    out.resize(out.len().div_ceil(32) * 32, 0);
    for (i, (&(_, elements, ggml_type), _)) in tensors.iter().zip(&sizes).enumerate() {
        out.extend(tensor_bytes(seed + i as u64, ggml_type, elements));
        out.resize(out.len().div_ceil(32) * 32, 0);
    }
    out
}

/// A safetensors file with `tensors` (name, dtype, byte length) and a `__metadata__` entry.
pub fn safetensors(seed: u64, tensors: &[(&str, &str, u64)]) -> Vec<u8> {
    let mut header = String::from("{\"__metadata__\":{\"format\":\"pt\"}");
    let mut offset = 0;
    for &(name, dtype, len) in tensors {
        let width = if dtype == "F32" { 4 } else { 2 };
        header.push_str(&format!(
            ",\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}}",
            len / width,
            offset + len
        ));
        offset += len;
    }
    header.push('}');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    for (i, &(_, dtype, len)) in tensors.iter().enumerate() {
        let seed = seed + i as u64;
        let mut bytes = match dtype {
            "F32" => f32_weights(seed, len as usize / 4),
            _ => f16_weights(seed, len as usize / 2),
        };
        bytes.resize(len as usize, 0);
        out.extend_from_slice(&bytes);
    }
    out
}

/// The GGUF model of the fixture store and the seeds: ~40 KB, every grouped element type.
pub fn small_gguf(seed: u64) -> Vec<u8> {
    gguf(
        seed,
        &[
            ("token_embd.weight", 4096, GGML_F16),
            ("blk.0.attn_q.weight", 4096, GGML_Q8_0),
            ("blk.0.attn_k.weight", 4096, GGML_Q4_0),
            ("blk.0.ffn_norm.weight", 512, GGML_F32),
            ("output.weight", 4096, GGML_BF16),
        ],
    )
}

/// The safetensors model of the fixture store and the seeds: ~12 KB.
pub fn small_safetensors(seed: u64) -> Vec<u8> {
    safetensors(
        seed,
        &[
            ("embeddings.weight", "F16", 6000),
            ("encoder.layer.0.weight", "BF16", 4000),
            ("pooler.dense.bias", "F32", 2000),
        ],
    )
}
