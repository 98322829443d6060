//! `modelfs stats [--json]`.

use std::path::Path;
use std::process::ExitCode;

use modelfs::Access;
use modelfs::stats::{model_usage, store_stats};

use super::{human_bytes, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let store = open_store(store_dir, Access::Read)?;
    let stats = store_stats(&store)?;
    let models = model_usage(&store)?;
    if args.json {
        let mut value = serde_json::to_value(&stats)?;
        value["dedup_ratio"] = serde_json::json!(stats.dedup_ratio());
        value["models"] = serde_json::to_value(&models)?;
        out!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    out!("store          {}", store.root().display());
    out!(
        "models         {} ({} versions, {} files)",
        stats.models,
        stats.versions,
        stats.files
    );
    out!("logical bytes  {}", human_bytes(stats.logical_bytes));
    out!(
        "unique bytes   {} in {} chunks",
        human_bytes(stats.unique_bytes),
        stats.chunks
    );
    out!(
        "stored bytes   {} in {} packs",
        human_bytes(stats.stored_bytes),
        stats.packs
    );
    out!(
        "dedup ratio    {:.2}x (logical / stored)",
        stats.dedup_ratio()
    );
    if models.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    out!();
    out!(
        "{:<28} {:>8} {:>11} {:>11} {:>11} {:>14}",
        "MODEL",
        "VERSIONS",
        "LOGICAL",
        "SHARED",
        "UNIQUE",
        "RM WOULD FREE"
    );
    for model in &models {
        let t = model.total;
        out!(
            "{:<28} {:>8} {:>11} {:>11} {:>11} {:>14}",
            model.model,
            model.versions.len(),
            human_bytes(t.logical_bytes),
            human_bytes(t.shared_bytes),
            human_bytes(t.unique_bytes),
            human_bytes(t.unique_stored_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}
