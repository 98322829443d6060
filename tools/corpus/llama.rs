//! What llama.cpp needs besides the tensors to load the llama-shaped model: its hyper-parameters,
//! the file type and a SentencePiece ("llama") vocabulary of as many tokens as the embedding has
//! rows. The vocabulary is synthetic: `<unk>`, `<s>`, `</s>`, the 256 byte tokens `<0x00>` to
//! `<0xFF>`, then every lowercase word of one to three letters, alone and with the word-start
//! marker `▁`, in order of length (filling the rest, if any, with `▁tokNNNNN`). Every piece is
//! unique, so llama.cpp's text-to-token map is a bijection.

use crate::gguf::Value;
use crate::model::Model;

/// Dimension of one attention head.
const HEAD_DIM: u64 = 64;
/// Tokens trained on at once (`llama.context_length`).
const CONTEXT_LENGTH: u32 = 2048;

/// llama.cpp's token types.
const TYPE_NORMAL: i32 = 1;
const TYPE_UNKNOWN: i32 = 2;
const TYPE_CONTROL: i32 = 3;
const TYPE_BYTE: i32 = 6;

/// The metadata that, added to the model's own, makes llama.cpp load it.
pub fn metadata(model: &Model) -> anyhow::Result<Vec<(String, Value)>> {
    let dims = |name: &str| {
        model
            .tensors
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.dims.clone())
            .ok_or_else(|| anyhow::anyhow!("the model has no tensor {name}"))
    };
    let hidden = model.hidden();
    let vocab = dims("token_embd.weight")?[1];
    let ffn = dims("blk.0.ffn_up.weight")?[1];
    let layers = model
        .tensors
        .iter()
        .filter(|t| t.name.ends_with(".attn_norm.weight"))
        .count();
    anyhow::ensure!(
        hidden > 0 && hidden.is_multiple_of(HEAD_DIM),
        "hidden size {hidden} is not a multiple of {HEAD_DIM}"
    );
    anyhow::ensure!(vocab > 259, "vocabulary of {vocab} tokens is too small");
    let heads = (hidden / HEAD_DIM) as u32;
    let u32_of = |v: u64| u32::try_from(v).expect("model dimensions fit in u32");
    let (tokens, scores, types) = vocabulary(vocab as usize);
    let entries = [
        ("llama.context_length", Value::U32(CONTEXT_LENGTH)),
        ("llama.embedding_length", Value::U32(u32_of(hidden))),
        ("llama.block_count", Value::U32(u32_of(layers as u64))),
        ("llama.feed_forward_length", Value::U32(u32_of(ffn))),
        ("llama.attention.head_count", Value::U32(heads)),
        ("llama.attention.head_count_kv", Value::U32(heads)),
        ("llama.rope.dimension_count", Value::U32(HEAD_DIM as u32)),
        ("llama.rope.freq_base", Value::F32(10_000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.vocab_size", Value::U32(u32_of(vocab))),
        // 1 = LLAMA_FTYPE_MOSTLY_F16: every matrix f16, norms f32.
        ("general.file_type", Value::U32(1)),
        ("tokenizer.ggml.model", Value::String("llama".into())),
        ("tokenizer.ggml.tokens", Value::StringArray(tokens)),
        ("tokenizer.ggml.scores", Value::F32Array(scores)),
        ("tokenizer.ggml.token_type", Value::I32Array(types)),
        ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
    ];
    Ok(entries
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect())
}

/// Pieces, scores (higher merges first: shorter pieces lose) and token types of `n` tokens.
fn vocabulary(n: usize) -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    let mut types = vec![TYPE_UNKNOWN, TYPE_CONTROL, TYPE_CONTROL];
    for byte in 0..=255u8 {
        tokens.push(format!("<0x{byte:02X}>"));
        types.push(TYPE_BYTE);
    }
    let mut word = 0usize;
    while tokens.len() < n {
        let piece = match letters(word) {
            Some(w) if tokens.len() % 2 == 1 => format!("\u{2581}{w}"),
            Some(w) => {
                word += 1;
                w
            }
            None => format!("\u{2581}tok{:05}", tokens.len()),
        };
        tokens.push(piece);
        types.push(TYPE_NORMAL);
    }
    tokens.truncate(n);
    types.truncate(n);
    let scores = (0..n)
        .map(|i| if i < 259 { 0.0 } else { -((i - 259) as f32) })
        .collect();
    (tokens, scores, types)
}

/// The `i`-th lowercase word of one to three letters (a, b, …, z, aa, ab, …, zzz), or None past
/// the last.
fn letters(mut i: usize) -> Option<String> {
    let mut len = 1;
    let mut count = 26;
    while i >= count {
        i -= count;
        len += 1;
        count *= 26;
        if len > 3 {
            return None;
        }
    }
    let mut word = vec![b'a'; len];
    for slot in word.iter_mut().rev() {
        *slot = b'a' + (i % 26) as u8;
        i /= 26;
    }
    Some(String::from_utf8(word).expect("ASCII letters"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_pieces_are_unique_and_typed() {
        for n in [300, 32_000, 40_000] {
            let (tokens, scores, types) = vocabulary(n);
            assert_eq!((tokens.len(), scores.len(), types.len()), (n, n, n));
            let unique: std::collections::HashSet<&String> = tokens.iter().collect();
            assert_eq!(unique.len(), n, "duplicate pieces in a vocabulary of {n}");
            assert_eq!(tokens[3 + 0x0A], "<0x0A>");
            assert_eq!(types[3 + 0x0A], TYPE_BYTE);
            assert_eq!(&tokens[259..262], ["\u{2581}a", "a", "\u{2581}b"]);
        }
        assert_eq!(letters(25).as_deref(), Some("z"));
        assert_eq!(letters(26).as_deref(), Some("aa"));
        assert_eq!(letters(26 + 676 + 17_575).as_deref(), Some("zzz"));
        assert_eq!(letters(26 + 676 + 17_576), None);
    }
}
