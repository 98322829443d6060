//! `modelfs pack DEST|s3://BUCKET/PREFIX --models a,b[@v] [--with-binary]`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use modelfs::Access;
use modelfs::peer::bucket::Bucket;
use modelfs::publish::publish;
use modelfs::source::SourceAddr;
use modelfs::transfer::{pack, write_launcher};

use super::import::parse_models;
use super::net::NetArgs;
use super::{Bar, human_bytes, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder to write the store into (empty, or a store made by an earlier pack), or
    /// s3://BUCKET/PREFIX to publish into an object store (only what the bucket lacks is sent).
    #[arg(value_name = "DIR|s3://BUCKET/PREFIX")]
    dest: String,
    /// Models to pack, comma-separated: NAME (every version) or NAME@VERSION.
    #[arg(long, value_delimiter = ',', required = true)]
    models: Vec<String>,
    /// Also copy the modelfs executable and the scripts mount.sh and install.sh.
    #[arg(long)]
    with_binary: bool,
    /// Runs of chunks read at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    #[command(flatten)]
    net: NetArgs,
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
    let dest = match &args.dest.parse::<SourceAddr>()? {
        SourceAddr::Dir(dest) => dest.clone(),
        SourceAddr::S3(addr) => {
            anyhow::ensure!(
                !args.with_binary,
                "--with-binary adds files for a stick; a bucket is read with --source {addr}"
            );
            let bucket = Arc::new(Bucket::open(addr, &args.net.http_options()?)?);
            let report = publish(
                &store,
                bucket,
                &selection,
                usize::from(args.jobs),
                &Bar::new(),
            )
            .with_context(|| format!("cannot publish into {addr}; run it again to resume"))?;
            out!(
                "published {} version(s) into {addr}: sent {} in {} chunks",
                report.versions_added,
                human_bytes(report.bytes_copied),
                report.chunks_copied
            );
            return Ok(ExitCode::SUCCESS);
        }
        SourceAddr::Http(url) => anyhow::bail!(
            "cannot pack into {url}: a web server is published by copying a store directory to it \
             (see docs/NETWORK.md); pack writes a directory or s3://BUCKET/PREFIX"
        ),
    };
    let report = pack(&store, &dest, &selection, &Bar::new())
        .with_context(|| format!("cannot pack into {}", dest.display()))?;
    out!(
        "packed {} version(s) into {}: {} in {} chunks",
        report.versions_added,
        dest.display(),
        human_bytes(report.bytes_copied),
        report.chunks_copied
    );
    if args.with_binary {
        let exe = std::env::current_exe().context("cannot find the modelfs executable")?;
        let launchers = [("mount.sh", MOUNT_SH), ("install.sh", INSTALL_SH)];
        write_launcher(&dest, &exe, &launchers)
            .with_context(|| format!("cannot add the executable to {}", dest.display()))?;
        out!(
            "added modelfs, mount.sh and install.sh: run `sh {}/mount.sh` on the target machine",
            dest.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
