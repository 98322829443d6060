//! `modelfs rm NAME[@VERSION]`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use modelfs::Access;
use modelfs::audit::{self, Action, Change};
use modelfs::pin::PinArea;
use modelfs::store::registry::{ModelSpec, resolve};

use super::open_store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// NAME removes the model with every version; NAME@VERSION removes one version.
    spec: String,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let spec: ModelSpec = args.spec.parse()?;
    if spec.file.is_some() {
        bail!("rm removes whole models or versions, not single files: use NAME or NAME@VERSION");
    }
    let store = open_store(store_dir, Access::Write)?;
    let removed = store.update_registry(|registry| {
        let (_, version) = resolve(registry, &spec.model, spec.version.as_deref())?;
        let version = version.version.clone();
        let entry = registry
            .models
            .get_mut(&spec.model)
            .expect("resolved above");
        match &spec.version {
            Some(_) => {
                entry.versions.retain(|v| v.version != version);
                if entry.versions.is_empty() {
                    registry.models.remove(&spec.model);
                }
                Ok((format!("{}@{version}", spec.model), Some(version)))
            }
            None => {
                let count = entry.versions.len();
                registry.models.remove(&spec.model);
                let removed = format!(
                    "{} ({count} version{})",
                    spec.model,
                    if count == 1 { "" } else { "s" }
                );
                Ok((removed, None))
            }
        }
    })?;
    let (removed, version) = removed;
    audit::record(
        &store,
        Change::new(Action::Rm)
            .release(&spec.model, version.as_deref())
            .detail(format!("removed {removed}")),
    )?;
    match PinArea::of(&store).and_then(|area| area.retain(&store.registry()?)) {
        Ok(dropped) => {
            for pin in dropped {
                out!("unpinned {pin}");
            }
        }
        Err(e) => eprintln!("modelfs: warning: cannot drop the pins of what was removed: {e}"),
    }
    out!("removed {removed}; run `modelfs gc` to reclaim its space");
    Ok(ExitCode::SUCCESS)
}
