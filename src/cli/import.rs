//! `modelfs import SRC_STORE [--models …]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use modelfs::Access;
use modelfs::store::registry::ModelSpec;
use modelfs::transfer::{plan_import, run_import};

use super::{Bar, human_bytes, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store to copy from.
    source: PathBuf,
    /// Models to copy, comma-separated: NAME (every version) or NAME@VERSION [default: all].
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
}

/// Parses `--models` values.
pub fn parse_models(models: &[String]) -> anyhow::Result<Vec<ModelSpec>> {
    models
        .iter()
        .map(|m| m.parse().map_err(anyhow::Error::from))
        .collect()
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let selection = parse_models(&args.models)?;
    let source = open_store(&args.source, Access::Read)?;
    let store = open_store(store_dir, Access::Write)?;
    let plan = plan_import(&source, &store, &selection)?;
    out!(
        "{} version(s) to add ({} already here); copying {} in {} chunks",
        plan.versions_to_add(),
        plan.versions_present,
        human_bytes(plan.needed_bytes),
        plan.needed_chunks()
    );
    let report = run_import(&source, &store, plan, &Bar::new()).with_context(|| {
        format!(
            "import from {} stopped; run it again to finish",
            args.source.display()
        )
    })?;
    out!(
        "imported {} version(s): copied {} in {} chunks",
        report.versions_added,
        human_bytes(report.bytes_copied),
        report.chunks_copied
    );
    Ok(ExitCode::SUCCESS)
}
