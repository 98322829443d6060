//! A Hugging Face-style folder: the model as safetensors shards with their index, plus
//! `config.json`, `tokenizer.json` and `generation_config.json`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::model::{DType, Model, Tensor};

/// The Hugging Face (PyTorch) name of a GGUF llama tensor.
fn hf_name(gguf: &str) -> String {
    let mapped = match gguf {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        other => other,
    };
    let Some(rest) = mapped.strip_prefix("blk.") else {
        return mapped.into();
    };
    let (layer, part) = rest.split_once('.').unwrap_or((rest, ""));
    let part = match part {
        "attn_norm.weight" => "input_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        other => other,
    };
    format!("model.layers.{layer}.{part}")
}

fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F16 => "F16",
        DType::F32 => "F32",
        DType::Q8_0 => "U8",
    }
}

/// Writes one safetensors file holding `tensors` (keys sorted by name, data in that order, as the
/// reference implementation does). Returns its size.
fn write_file(path: &Path, tensors: &[(String, &Tensor)]) -> std::io::Result<u64> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, tensor) in tensors {
        let shape: Vec<u64> = tensor.dims.iter().rev().copied().collect();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype_name(tensor.dtype), "shape": shape, "data_offsets": [offset, offset + tensor.byte_len()]}),
        );
        offset += tensor.byte_len();
    }
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut json = serde_json::to_vec(&header)?;
    // Pad with spaces so the data starts 8-byte aligned, like the reference writer.
    json.resize((8 + json.len()).div_ceil(8) * 8 - 8, b' ');
    let mut out = std::io::BufWriter::with_capacity(8 << 20, std::fs::File::create(path)?);
    out.write_all(&(json.len() as u64).to_le_bytes())?;
    out.write_all(&json)?;
    for (_, tensor) in tensors {
        out.write_all(&tensor.bytes())?;
    }
    out.flush()?;
    Ok(8 + json.len() as u64 + offset)
}

/// Writes the model into `dir` as a Hugging Face-style folder with `shards` safetensors files.
pub fn write_folder(model: &Model, dir: &Path, shards: usize) -> std::io::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let mut named: Vec<(String, &Tensor)> = model
        .tensors
        .iter()
        .map(|t| (hf_name(&t.name), t))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let total: u64 = named.iter().map(|(_, t)| t.byte_len()).sum();
    let per_shard = total.div_ceil(shards as u64);
    let mut groups: Vec<Vec<(String, &Tensor)>> = vec![Vec::new()];
    let mut in_group = 0;
    for (name, tensor) in named {
        if in_group >= per_shard && groups.len() < shards {
            groups.push(Vec::new());
            in_group = 0;
        }
        in_group += tensor.byte_len();
        groups.last_mut().expect("one group").push((name, tensor));
    }
    let mut weight_map = BTreeMap::new();
    let mut written = 0;
    for (i, group) in groups.iter().enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", i + 1, groups.len());
        written += write_file(&dir.join(&file), group)?;
        for (name, _) in group {
            weight_map.insert(name.clone(), file.clone());
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_vec_pretty(&index)?,
    )?;
    let hidden = model.hidden();
    let layers = model
        .tensors
        .iter()
        .filter(|t| t.name.ends_with("attn_norm.weight"))
        .count();
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
        "num_hidden_layers": layers, "vocab_size": 32000, "torch_dtype": "float16",
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    std::fs::write(
        dir.join("generation_config.json"),
        br#"{"bos_token_id": 1, "eos_token_id": 2}"#,
    )?;
    let vocab: BTreeMap<String, u32> = (0..32_000u32).map(|i| (format!("tok{i:05}"), i)).collect();
    let tokenizer = serde_json::json!({"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": []}});
    std::fs::write(dir.join("tokenizer.json"), serde_json::to_vec(&tokenizer)?)?;
    Ok(written)
}
