//! `modelfs pin NAME[@VERSION]` and `modelfs unpin NAME[@VERSION]`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use modelfs::Access;
use modelfs::pin::PinArea;
use modelfs::read::{ReadOptions, Reader, VerifyPolicy};
use modelfs::store::registry::{ModelSpec, resolve};

use super::{Bar, human_bytes, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// NAME pins (or unpins) the current version; NAME@VERSION that version.
    spec: String,
}

fn parse(spec: &str) -> anyhow::Result<ModelSpec> {
    let spec: ModelSpec = spec.parse()?;
    if spec.file.is_some() {
        bail!("pins hold whole versions, not single files: use NAME or NAME@VERSION");
    }
    Ok(spec)
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let spec = parse(&args.spec)?;
    let store = Arc::new(open_store(store_dir, Access::Read)?);
    let registry = store.registry()?;
    let (_, version) = resolve(&registry, &spec.model, spec.version.as_deref())?;
    let area = PinArea::of(&store)?;
    let reader = Reader::new(
        store.clone(),
        ReadOptions {
            cache_bytes: 0,
            verify: VerifyPolicy::EveryRead,
        },
    );
    let started = Instant::now();
    let pin = area.pin(&reader, &spec.model, version, false, &Bar::new())?;
    let seconds = started.elapsed().as_secs_f64();
    let size: u64 = pin.files.iter().map(|f| f.size).sum();
    let verified = pin.files.iter().all(|f| f.verity.is_some());
    out!(
        "pinned {}@{}: {} file{}, {} in {} ({:.1} s, {:.0} MB/s); {}",
        pin.model,
        pin.version,
        pin.files.len(),
        if pin.files.len() == 1 { "" } else { "s" },
        human_bytes(size),
        area.dir().display(),
        seconds,
        size as f64 / seconds.max(1e-9) / 1e6,
        match verified {
            true => "fs-verity on: the kernel checks every page read",
            false => "no fs-verity on this file system: `modelfs verify` checks pinned copies",
        }
    );
    out!("running mounts serve it natively within 2 seconds (or at once after `modelfs refresh`)");
    Ok(ExitCode::SUCCESS)
}

pub fn run_unpin(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let spec = parse(&args.spec)?;
    let store = open_store(store_dir, Access::Read)?;
    let area = PinArea::of(&store)?;
    for pin in area.unpin(&spec.model, spec.version.as_deref())? {
        out!(
            "unpinned {}@{}; mounts read it from the store's chunks again",
            pin.model,
            pin.version
        );
    }
    Ok(ExitCode::SUCCESS)
}
