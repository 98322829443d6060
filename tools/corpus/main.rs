//! `modelfs-corpus`: writes deterministic, realistic model files for tests and benchmarks.
//!
//! A llama-shaped model (token embedding, N transformer layers, output head) with fp16 weights
//! drawn from ~N(0, 0.02) and f32 norms, in a GGUF v3 container; and a fine-tune of it that
//! changes about one tensor in ten and edits the metadata so the data section moves by 1,376 bytes.
//! The same `--seed` and `--scale` always give the same bytes.

mod gguf;
mod model;

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
    let (args, variant): (Args, fn(model::Model) -> model::Model) = match cli.command {
        Command::Base(args) => (args, |m| m),
        Command::Finetune(args) => (args, model::Model::finetuned),
        Command::OneTensor(args) => (args, |m| m.with_changed_tensor("blk.0.ffn_up.weight")),
    };
    anyhow::ensure!(
        args.scale > 0.0 && args.scale <= 100.0,
        "--scale must be in (0, 100]"
    );
    let model = variant(model::Model::llama_like(args.scale, args.seed));
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut out = std::io::BufWriter::with_capacity(8 << 20, file);
    let stats = gguf::write(&model, &mut out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {}: {} tensors, {} bytes ({} tensor bytes, {} changed)",
        args.out.display(),
        model.tensors.len(),
        stats.file_bytes,
        stats.tensor_bytes,
        model.changed_tensor_bytes()
    );
    Ok(())
}
