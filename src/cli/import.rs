//! `modelfs import SRC_STORE|URL [--models …]`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use modelfs::Access;
use modelfs::source::{SourceAddr, addr};
use modelfs::store::registry::ModelSpec;
use modelfs::transfer::{plan_import, run_import};

use super::net::NetArgs;
use super::{Bar, human_bytes, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store to copy from: a directory, or the URL of a peer or a web server publishing one.
    #[arg(value_name = "DIR|URL")]
    source: String,
    /// Models to copy, comma-separated: NAME (every version) or NAME@VERSION [default: all].
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Ranges (runs of chunks) read at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    #[command(flatten)]
    net: NetArgs,
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
    let from: SourceAddr = args.source.parse()?;
    let source = addr::open(&from, &args.net.http_options()?)
        .with_context(|| format!("cannot read {from}"))?;
    let store = open_store(store_dir, Access::Write)?;
    let plan = plan_import(source.as_ref(), &store, &selection)?;
    out!(
        "{} version(s) to add ({} already here); copying {} in {} chunks",
        plan.versions_to_add(),
        plan.versions_present,
        human_bytes(plan.needed_bytes),
        plan.needed_chunks()
    );
    let report = run_import(
        source.as_ref(),
        &store,
        plan,
        usize::from(args.jobs),
        &Bar::new(),
    )
    .with_context(|| {
        format!(
            "import from {} stopped; run it again to finish",
            args.source
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
