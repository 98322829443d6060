//! `modelfs add NAME PATH [--version V] [--hf-repo ORG/NAME]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use modelfs::Access;
use modelfs::audit::{self, Action, Change};
use modelfs::ingest::{AddOptions, AddRequest, add_with};

use super::{human_bytes, open_store};

#[derive(Debug, clap::Args)]
// `--version` names the model's version here, not modelfs's.
#[command(disable_version_flag = true)]
pub struct Args {
    /// Model name: letters, digits, '.', '_' and '-'.
    name: String,
    /// A model file (GGUF, safetensors, …) or a folder of files.
    path: PathBuf,
    /// Version name [default: v1, v2, … in order].
    #[arg(long)]
    version: Option<String>,
    /// Hugging Face repo id the mount shows the model under in `.hf/hub` (for HF_HUB_CACHE),
    /// e.g. acme/tiny [default: modelfs/NAME; once set, kept by later versions].
    #[arg(long, value_name = "ORG/NAME")]
    hf_repo: Option<String>,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let store = open_store(store_dir, Access::Write)?;
    let request = AddRequest {
        model: args.name.clone(),
        version: args.version,
        source: args.path,
    };
    let started = std::time::Instant::now();
    let options = AddOptions {
        hf_repo: args.hf_repo,
    };
    let report = add_with(&store, &request, &options, &super::Bar::new())
        .with_context(|| format!("cannot add model {:?}", args.name))?;
    for name in &report.not_models {
        eprintln!(
            "modelfs: warning: {name} is not a valid model file of its kind (empty, truncated or \
             damaged header); stored as plain bytes"
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    audit::record(
        &store,
        Change::new(Action::Add)
            .release(&report.model, Some(&report.version))
            .detail(format!("from {}", request.source.display())),
    )?;
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
