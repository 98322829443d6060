//! `modelfs cat NAME[@VERSION][/FILE]`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use modelfs::Access;
use modelfs::read::{ReadOptions, Reader, VerifyPolicy};
use modelfs::store::registry::ModelSpec;

use super::open_store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// NAME, NAME@VERSION, or NAME[@VERSION]/FILE for a file of a folder model.
    spec: String,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let spec: ModelSpec = args.spec.parse()?;
    let store = open_store(store_dir, Access::Read)?;
    let options = ReadOptions {
        verify: VerifyPolicy::EveryRead,
        ..ReadOptions::default()
    };
    let open = Reader::new(Arc::new(store), options).open_file(&spec)?;
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0u8; 4 << 20];
    let mut offset = 0;
    while offset < open.size() {
        let n = open
            .read_at(offset, &mut buf)
            .with_context(|| format!("cannot read {} at byte {offset}", open.label()))?;
        stdout.write_all(&buf[..n])?;
        offset += n as u64;
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
