//! `modelfs inventory [--out FILE]` and `modelfs export DEST --models … --have FILE | --since DIR`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use modelfs::Access;
use modelfs::format::inventory;
use modelfs::store::fsutil::write_atomic;
use modelfs::update::{self, Have};

use super::import::parse_models;
use super::{Bar, human_bytes, open_store};

#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    /// Write the inventory to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("site").required(true))]
pub struct Args {
    /// Folder to write the update pack into (new or empty); the site runs `modelfs import DEST`.
    #[arg(value_name = "DEST")]
    dest: PathBuf,
    /// Models to export, comma-separated: NAME (every version the site lacks) or NAME@VERSION.
    #[arg(long, value_delimiter = ',', required = true)]
    models: Vec<String>,
    /// The site's inventory (`modelfs inventory` run there).
    #[arg(long, value_name = "FILE", group = "site")]
    have: Option<PathBuf>,
    /// A previous update pack the site imported: what it holds counts as held.
    #[arg(long, value_name = "DIR", group = "site")]
    since: Option<PathBuf>,
}

pub fn run_inventory(store_dir: &Path, args: InventoryArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(store_dir, Access::Read)?;
    let inventory = update::inventory(&store)
        .with_context(|| format!("cannot take the inventory of {}", store_dir.display()))?;
    let mut text = inventory::encode(&inventory);
    text.push(b'\n');
    match &args.out {
        Some(out) => {
            // Written beside itself under a temp name, then renamed: the folder must be named.
            let out = std::path::absolute(out)
                .with_context(|| format!("cannot write {}", out.display()))?;
            write_atomic(&out, &text)?;
            eprintln!(
                "{}: {} version(s), {} chunk(s)",
                out.display(),
                inventory.versions.len(),
                inventory.chunks.len()
            );
        }
        None => std::io::stdout().write_all(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let selection = parse_models(&args.models)?;
    let store = open_store(store_dir, Access::Read)?;
    let have = match (&args.have, &args.since) {
        (Some(file), _) => Have::read(file),
        (None, since) => Have::since(
            since
                .as_deref()
                .context("pass --have FILE or --since DIR")?,
            &store,
        ),
    }
    .context("cannot tell what the site holds")?;
    let report = update::export(&store, &args.dest, &selection, &have, &Bar::new())
        .with_context(|| format!("cannot export into {}", args.dest.display()))?;
    for refused in &report.refused {
        eprintln!("warning: left out {refused} (the site would refuse it)");
    }
    out!(
        "exported {} version(s) into {}: {} in {} chunks; left out what the site holds: {} in \
         {} chunks, {} version(s)",
        report.versions,
        args.dest.display(),
        human_bytes(report.bytes),
        report.chunks,
        human_bytes(report.bytes_held),
        report.chunks_held,
        report.versions_held
    );
    Ok(ExitCode::SUCCESS)
}
