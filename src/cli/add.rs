//! `modelfs add NAME PATH [--version V]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use modelfs::Access;
use modelfs::ingest::{AddRequest, add};

use super::{human_bytes, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model name: letters, digits, '.', '_' and '-'.
    name: String,
    /// A model file (GGUF, safetensors, …) or a folder of files.
    path: PathBuf,
    /// Version name [default: v1, v2, … in order].
    #[arg(long)]
    version: Option<String>,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let store = open_store(store_dir, Access::Write)?;
    let request = AddRequest {
        model: args.name.clone(),
        version: args.version,
        source: args.path,
    };
    let started = std::time::Instant::now();
    let report = add(&store, &request, &super::Bar::new())
        .with_context(|| format!("cannot add model {:?}", args.name))?;
    for name in &report.not_models {
        eprintln!(
            "modelfs: warning: {name} is not a valid model file of its kind (empty, truncated or \
             damaged header); stored as plain bytes"
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    let reused = report.logical_bytes - report.new_bytes;
    out!(
        "added {}@{}: {} file{}, {} in {:.1} s ({:.0} MB/s)",
        report.model,
        report.version,
        report.files,
        if report.files == 1 { "" } else { "s" },
        human_bytes(report.logical_bytes),
        seconds,
        report.logical_bytes as f64 / 1e6 / seconds.max(1e-9),
    );
    out!(
        "  new: {} in {} chunks, stored as {}; deduplicated: {} ({:.1}%) in {} chunks",
        human_bytes(report.new_bytes),
        report.new_chunks,
        human_bytes(report.stored_bytes),
        human_bytes(reused),
        if report.logical_bytes == 0 {
            0.0
        } else {
            reused as f64 * 100.0 / report.logical_bytes as f64
        },
        report.chunks - report.new_chunks,
    );
    Ok(ExitCode::SUCCESS)
}
