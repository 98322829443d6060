//! `modelfs pack DEST --models a,b[@v] [--with-binary]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use modelfs::Access;
use modelfs::transfer::{pack, write_launcher};

use super::import::parse_models;
use super::{Bar, human_bytes, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder to write the store into (empty, or a store made by an earlier pack).
    dest: PathBuf,
    /// Models to pack, comma-separated: NAME (every version) or NAME@VERSION.
    #[arg(long, value_delimiter = ',', required = true)]
    models: Vec<String>,
    /// Also copy the modelfs executable and the scripts mount.sh and install.sh.
    #[arg(long)]
    with_binary: bool,
}

const MOUNT_SH: &str = r#"#!/bin/sh
# Mounts the models in this folder where they are, without copying them.
# Usage: sh mount.sh [MOUNTPOINT]   (default /mnt/models; unmount with: ./modelfs umount MOUNTPOINT)
set -e
here=$(cd "$(dirname "$0")" && pwd)
mountpoint=${1:-/mnt/models}
mkdir -p "$mountpoint"
exec "$here/modelfs" --store "$here" mount --daemon "$mountpoint"
"#;

const INSTALL_SH: &str = r#"#!/bin/sh
# Copies the models in this folder into this machine's modelfs store (the default one, or
# $MODELFS_STORE), then offers to mount it. Only chunks the store lacks are copied; if it stops,
# run it again to finish.
set -e
here=$(cd "$(dirname "$0")" && pwd)
"$here/modelfs" init
"$here/modelfs" import "$here"
printf 'Mount the store at /mnt/models now? [Y/n] '
read -r answer || answer=n
case "$answer" in
  n*|N*) echo "later: $here/modelfs mount --daemon /mnt/models" ;;
  *) mkdir -p /mnt/models && "$here/modelfs" mount --daemon /mnt/models ;;
esac
"#;

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let selection = parse_models(&args.models)?;
    let store = open_store(store_dir, Access::Read)?;
    let report = pack(&store, &args.dest, &selection, &Bar::new())
        .with_context(|| format!("cannot pack into {}", args.dest.display()))?;
    out!(
        "packed {} version(s) into {}: {} in {} chunks",
        report.versions_added,
        args.dest.display(),
        human_bytes(report.bytes_copied),
        report.chunks_copied
    );
    if args.with_binary {
        let exe = std::env::current_exe().context("cannot find the modelfs executable")?;
        let launchers = [("mount.sh", MOUNT_SH), ("install.sh", INSTALL_SH)];
        write_launcher(&args.dest, &exe, &launchers)
            .with_context(|| format!("cannot add the executable to {}", args.dest.display()))?;
        out!(
            "added modelfs, mount.sh and install.sh: run `sh {}/mount.sh` on the target machine",
            args.dest.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
