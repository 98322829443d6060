//! `modelfs cat NAME[@VERSION][/FILE]`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use modelfs::Access;
use modelfs::format::registry::Layout;
use modelfs::store::file::{OpenFile, VerifyPolicy};
use modelfs::store::registry::{ModelSpec, resolve};

use super::open_store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// NAME, NAME@VERSION, or NAME[@VERSION]/FILE for a file of a folder model.
    spec: String,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let spec: ModelSpec = args.spec.parse()?;
    let store = open_store(store_dir, Access::Read)?;
    let registry = store.registry()?;
    let (_, version) = resolve(&registry, &spec.model, spec.version.as_deref())?;
    let file = match (&spec.file, version.layout) {
        (Some(path), _) => version
            .files
            .iter()
            .find(|f| &f.path == path)
            .ok_or_else(|| modelfs::Error::UnknownFile {
                model: spec.model.clone(),
                version: version.version.clone(),
                file: path.clone(),
            })?,
        (None, Layout::File) => &version.files[0],
        (None, Layout::Dir) => bail!(
            "model {}@{} is a folder; name one of its files, e.g. {}/{}",
            spec.model,
            version.version,
            args.spec,
            version.files[0].path
        ),
    };
    let label = format!("{}@{}/{}", spec.model, version.version, file.path);
    let open = OpenFile::new(
        label.clone(),
        store.manifest(&file.manifest)?,
        VerifyPolicy::EveryRead,
    );
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0u8; 4 << 20];
    let mut offset = 0;
    while offset < open.size() {
        let n = open
            .read_at(&store, offset, &mut buf)
            .with_context(|| format!("cannot read {label} at byte {offset}"))?;
        stdout.write_all(&buf[..n])?;
        offset += n as u64;
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
