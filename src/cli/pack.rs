//! `modelfs pack DEST --models a,b[@v] [--with-binary]`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use modelfs::Access;
use modelfs::transfer::pack;

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

/// Copies a file with plain reads and writes: FUSE FAT drivers refuse the permission copy and the
/// in-kernel copy (`copy_file_range`) that `std::fs::copy` and `std::io::copy` use.
fn copy_plainly(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let (mut source, mut target) = (std::fs::File::open(from)?, std::fs::File::create(to)?);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = source.read(&mut buf)?;
        if n == 0 {
            return target.sync_all();
        }
        target.write_all(&buf[..n])?;
    }
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let selection = parse_models(&args.models)?;
    let store = open_store(store_dir, Access::Read)?;
    let report = pack(&store, &args.dest, &selection, &Bar::new())
        .with_context(|| format!("cannot pack into {}", args.dest.display()))?;
    println!(
        "packed {} version(s) into {}: {} in {} chunks",
        report.versions_added,
        args.dest.display(),
        human_bytes(report.bytes_copied),
        report.chunks_copied
    );
    if args.with_binary {
        let exe = std::env::current_exe().context("cannot find the modelfs executable")?;
        let target = args.dest.join("modelfs");
        copy_plainly(&exe, &target)
            .with_context(|| format!("cannot copy the executable to {}", target.display()))?;
        for (name, text) in [("mount.sh", MOUNT_SH), ("install.sh", INSTALL_SH)] {
            let path = args.dest.join(name);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        // Execute bits, where the file system has them (a FAT stick does not; run `sh mount.sh`).
        for name in ["modelfs", "mount.sh", "install.sh"] {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(
                args.dest.join(name),
                std::fs::Permissions::from_mode(0o755),
            );
        }
        println!(
            "added modelfs, mount.sh and install.sh: run `sh {}/mount.sh` on the target machine",
            args.dest.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
