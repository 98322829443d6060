//! `modelfs stats [--json]`.
//!
//! `--json` prints the store's totals under the names the mount's `modelfs_store_*` gauges carry
//! (`StoreStats::totals`), plus `store` (its path) and `model_usage` (per model and version).

use std::path::Path;
use std::process::ExitCode;

use modelfs::Access;
use modelfs::stats::{TotalValue, model_usage, store_stats};

use super::{human_bytes, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of text: the totals (named as the mount's `modelfs_store_*` metrics),
    /// and `model_usage`, per model and version.
    #[arg(long)]
    json: bool,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let store = open_store(store_dir, Access::Read)?;
    let stats = store_stats(&store)?;
    let models = model_usage(&store)?;
    if args.json {
        let mut value = serde_json::Map::new();
        value.insert("store".into(), store.root().display().to_string().into());
        for total in stats.totals() {
            let number = match total.value {
                TotalValue::Count(n) => serde_json::json!(n),
                TotalValue::Ratio(r) => serde_json::json!(r),
            };
            value.insert(total.name.into(), number);
        }
        value.insert("model_usage".into(), serde_json::to_value(&models)?);
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
