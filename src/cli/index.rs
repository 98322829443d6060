//! `modelfs index rebuild`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use modelfs::Store;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Rebuild the chunk index from the packs alone (after index damage or loss).
    Rebuild,
}

pub fn run(store_dir: &Path, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Rebuild => {
            let packs = Store::rebuild_index(store_dir)
                .with_context(|| format!("cannot rebuild the index of {}", store_dir.display()))?;
            out!(
                "index rebuilt from {packs} pack{}",
                if packs == 1 { "" } else { "s" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
