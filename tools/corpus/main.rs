//! `modelfs-corpus`: writes deterministic, realistic model files for tests and benchmarks.
//!
//! A llama-shaped model (token embedding, N transformer layers, output head) with fp16 weights
//! drawn from ~N(0, 0.02) and f32 norms, in a GGUF v3 container; and a fine-tune of it that
//! changes about one tensor in ten and edits the metadata so the data section moves by 1,376 bytes;
//! its Q8_0 quantization; the base as a Hugging Face-style folder of safetensors shards; and the
//! base with the hyper-parameters and vocabulary llama.cpp needs to load and run it.
//! The same `--seed` and `--scale` always give the same bytes.

mod gguf;
mod llama;
mod model;
mod safetensors;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Writes deterministic model files for tests and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "modelfs-corpus", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A base model as GGUF (fp16 weights).
    Base(Args),
    /// A fine-tune of the base as GGUF: ~10% of tensors changed, metadata edited.
    Finetune(Args),
    /// The base with exactly one tensor (blk.0.ffn_up.weight) changed and nothing else.
    OneTensor(Args),
    /// The base quantized to Q8_0, as GGUF.
    Q8(Args),
    /// The base as a Hugging Face-style folder: two safetensors shards, their index.json,
    /// config.json, tokenizer.json, generation_config.json.
    Hf(Args),
    /// The base as a GGUF that llama.cpp loads: the same tensors, plus the llama hyper-parameters,
    /// `general.file_type` (1, F16) and a synthetic 32,000-token SentencePiece vocabulary.
    Llama(Args),
    /// The whole family into the folder OUT: base.gguf, finetune.gguf, base.Q8_0.gguf,
    /// base-safetensors/ (the shards and their index) and hf/ (the same plus config and tokenizer).
    Family(Args),
}

#[derive(Debug, clap::Args)]
struct Args {
    /// Output file.
    out: PathBuf,
    /// Size relative to the default ~1.07 GB model (0.001 gives ~1 MB).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Seed of the weights.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let base = |args: &Args| -> anyhow::Result<model::Model> {
        anyhow::ensure!(
            args.scale > 0.0 && args.scale <= 100.0,
            "--scale must be in (0, 100]"
        );
        Ok(model::Model::llama_like(args.scale, args.seed))
    };
    match cli.command {
        Command::Base(args) => write_gguf(&base(&args)?, &args.out),
        Command::Finetune(args) => write_gguf(&base(&args)?.finetuned(), &args.out),
        Command::OneTensor(args) => write_gguf(
            &base(&args)?.with_changed_tensor("blk.0.ffn_up.weight"),
            &args.out,
        ),
        Command::Q8(args) => write_gguf(&base(&args)?.quantized_q8_0(), &args.out),
        Command::Hf(args) => write_hf(&base(&args)?, &args.out),
        Command::Llama(args) => {
            let model = base(&args)?;
            write_gguf_with(&model, &llama::metadata(&model)?, &args.out)
        }
        Command::Family(args) => {
            let model = base(&args)?;
            std::fs::create_dir_all(&args.out)
                .with_context(|| format!("cannot create {}", args.out.display()))?;
            write_gguf(&model, &args.out.join("base.gguf"))?;
            write_gguf(&model.clone().finetuned(), &args.out.join("finetune.gguf"))?;
            write_gguf(
                &model.clone().quantized_q8_0(),
                &args.out.join("base.Q8_0.gguf"),
            )?;
            write_hf(&model, &args.out.join("hf"))?;
            write_shards_only(&args.out.join("hf"), &args.out.join("base-safetensors"))
        }
    }
}

fn write_gguf(model: &model::Model, out: &std::path::Path) -> anyhow::Result<()> {
    write_gguf_with(model, &[], out)
}

/// Writes the model as GGUF with `extra` metadata after its own.
fn write_gguf_with(
    model: &model::Model,
    extra: &[(String, gguf::Value)],
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut writer = std::io::BufWriter::with_capacity(8 << 20, file);
    let stats = gguf::write(model, extra, &mut writer)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "wrote {}: {} tensors, {} bytes ({} tensor bytes, {} changed)",
        out.display(),
        model.tensors.len(),
        stats.file_bytes,
        stats.tensor_bytes,
        model.changed_tensor_bytes()
    );
    Ok(())
}

/// Copies the safetensors shards and their index out of an HF folder.
fn write_shards_only(hf: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    for entry in std::fs::read_dir(hf)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(".safetensors") || name == "model.safetensors.index.json" {
            std::fs::copy(&path, out.join(name))?;
        }
    }
    println!(
        "wrote {}: the shards and index.json of {}",
        out.display(),
        hf.display()
    );
    Ok(())
}

fn write_hf(model: &model::Model, dir: &std::path::Path) -> anyhow::Result<()> {
    let bytes = safetensors::write_folder(model, dir, 2)
        .with_context(|| format!("cannot write {}", dir.display()))?;
    println!(
        "wrote {}: 2 safetensors shards, {bytes} bytes, index and config files",
        dir.display()
    );
    Ok(())
}
