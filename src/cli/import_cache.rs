//! `modelfs import-hf [CACHE_DIR] [--repo ORG/NAME…]` and
//! `modelfs import-ollama [MODELS_DIR] [--model NAME[:TAG]…]`: the summary of what a cache gave.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use modelfs::Access;
use modelfs::audit::{self, Action, Change};
use modelfs::import_cache::{self as import, Scan};

use super::{Bar, human_bytes, open_store};

#[derive(Debug, clap::Args)]
pub struct HfArgs {
    /// The hub cache [default: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub].
    cache_dir: Option<PathBuf>,
    /// Only this repo (ORG/NAME); repeat for more [default: every repo in the cache].
    #[arg(long, value_name = "ORG/NAME")]
    repo: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct OllamaArgs {
    /// Ollama's models folder [default: $OLLAMA_MODELS, else ~/.ollama/models].
    models_dir: Option<PathBuf>,
    /// Only this model (NAME, every tag) or tag (NAME:TAG); repeat for more [default: all].
    #[arg(long, value_name = "NAME[:TAG]")]
    model: Vec<String>,
}

pub fn run_hf(store_dir: &Path, args: HfArgs) -> anyhow::Result<ExitCode> {
    let cache = args
        .cache_dir
        .or_else(import::default_hf_cache)
        .context("cannot find a home directory for the HF cache; pass CACHE_DIR")?;
    let scan = import::scan_hf(&cache, &args.repo)
        .with_context(|| format!("cannot read the Hugging Face cache {}", cache.display()))?;
    run(store_dir, &cache, scan)
}

pub fn run_ollama(store_dir: &Path, args: OllamaArgs) -> anyhow::Result<ExitCode> {
    let models = args
        .models_dir
        .or_else(import::default_ollama_models)
        .context("cannot find a home directory for Ollama's models; pass MODELS_DIR")?;
    let scan = import::scan_ollama(&models, &args.model)
        .with_context(|| format!("cannot read Ollama's models {}", models.display()))?;
    run(store_dir, &models, scan)
}

/// Imports what `scan` found in `cache` and prints the summary.
fn run(store_dir: &Path, cache: &Path, scan: Scan) -> anyhow::Result<ExitCode> {
    let store = open_store(store_dir, Access::Write)?;
    let report = import::import(&store, scan, &Bar::new())
        .with_context(|| format!("cannot import from {}", cache.display()))?;
    for added in &report.added {
        let r = &added.report;
        audit::record(
            &store,
            Change::new(Action::Import)
                .release(&r.model, Some(&r.version))
                .detail(format!("from {}", added.from.display())),
        )?;
        out!(
            "added {}@{}: {} file{}, {}; new in the store: {}",
            r.model,
            r.version,
            r.files,
            if r.files == 1 { "" } else { "s" },
            human_bytes(r.logical_bytes),
            human_bytes(r.stored_bytes),
        );
    }
    for release in &report.present {
        out!("already in the store: {release}");
    }
    for skipped in &report.skipped {
        out!("skipped {}: {}", skipped.what, skipped.reason);
    }
    if report.other_layers > 0 {
        out!(
            "note: {} non-model layer{} (template, params, license, …) not imported; only the \
             GGUF weights were",
            report.other_layers,
            if report.other_layers == 1 { "" } else { "s" },
        );
    }
    out!(
        "{} added, {} already present, {} skipped; the cache holds {} in {} file{} of these \
         models; the store grew by {}; deleting them from the cache would free {} ({} is left \
         untouched)",
        report.added.len(),
        report.present.len(),
        report.skipped.len(),
        human_bytes(report.cache_bytes),
        report.cache_files,
        if report.cache_files == 1 { "" } else { "s" },
        human_bytes(report.stored_bytes),
        human_bytes(report.cache_bytes),
        cache.display(),
    );
    Ok(ExitCode::SUCCESS)
}
