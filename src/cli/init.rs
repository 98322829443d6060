//! `modelfs init`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use modelfs::Store;
use modelfs::format::config::ChunkingParams;
use modelfs::store::{InitOptions, InitOutcome};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Average chunk size in KiB (min is a quarter, max four times); fixed for the store's life.
    #[arg(long, value_name = "KIB")]
    avg_chunk_kib: Option<u32>,
    /// Size at which pack files are sealed, in MiB (at most 3,072, to stay under FAT's 4 GiB limit).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=3072))]
    pack_size_mib: Option<u64>,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let mut options = InitOptions::default();
    if let Some(kib) = args.avg_chunk_kib {
        let avg = kib
            .checked_mul(1024)
            .context("--avg-chunk-kib is too large")?;
        options.chunking = ChunkingParams {
            min_size: avg / 4,
            avg_size: avg,
            max_size: avg.saturating_mul(4),
        };
    }
    if let Some(mib) = args.pack_size_mib {
        options.pack_target_bytes = mib << 20;
    }
    let outcome = Store::init(store_dir, options)
        .with_context(|| format!("cannot create a store at {}", store_dir.display()))?;
    match outcome {
        InitOutcome::Created => out!("created store {}", store_dir.display()),
        InitOutcome::AlreadyExists => out!(
            "store {} already exists; nothing changed",
            store_dir.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
