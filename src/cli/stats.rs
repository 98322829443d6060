//! `modelfs stats [--json]`.

use std::path::Path;
use std::process::ExitCode;

use modelfs::Access;
use modelfs::stats::store_stats;

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
    if args.json {
        let mut value = serde_json::to_value(&stats)?;
        value["dedup_ratio"] = serde_json::json!(stats.dedup_ratio());
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("store          {}", store.root().display());
    println!(
        "models         {} ({} versions, {} files)",
        stats.models, stats.versions, stats.files
    );
    println!("logical bytes  {}", human_bytes(stats.logical_bytes));
    println!(
        "unique bytes   {} in {} chunks",
        human_bytes(stats.unique_bytes),
        stats.chunks
    );
    println!(
        "stored bytes   {} in {} packs",
        human_bytes(stats.stored_bytes),
        stats.packs
    );
    println!(
        "dedup ratio    {:.2}x (logical / stored)",
        stats.dedup_ratio()
    );
    Ok(ExitCode::SUCCESS)
}
