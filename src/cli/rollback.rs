//! `modelfs rollback NAME [--to V]` and `modelfs keep NAME N`.

use std::path::Path;
use std::process::ExitCode;

use modelfs::Access;
use modelfs::Error;
use modelfs::audit::{self, Action, Change};
use modelfs::format::registry::DEFAULT_KEEP;
use modelfs::store::registry::{current_version, validate_name};

use super::open_store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model.
    name: String,
    /// The version to show [default: the one before the current one]. Naming the newest
    /// version ends the rollback.
    #[arg(long, value_name = "VERSION")]
    to: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct KeepArgs {
    /// The model.
    name: String,
    /// How many versions `gc` keeps, newest first (the current one is always kept).
    #[arg(value_parser = clap::value_parser!(u32).range(1..=10_000))]
    count: u32,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    validate_name("model name", &args.name)?;
    let store = open_store(store_dir, Access::Write)?;
    let (from, to) = store.update_registry(|registry| {
        let entry = registry
            .models
            .get_mut(&args.name)
            .ok_or_else(|| Error::UnknownModel(args.name.clone()))?;
        let from = current_version(entry)
            .map(|v| v.version.clone())
            .unwrap_or_default();
        let at = entry
            .versions
            .iter()
            .position(|v| v.version == from)
            .unwrap_or(0);
        let to = match &args.to {
            Some(to) => entry
                .versions
                .iter()
                .find(|v| &v.version == to)
                .ok_or_else(|| Error::UnknownVersion {
                    model: args.name.clone(),
                    version: to.clone(),
                })?
                .version
                .clone(),
            None if at == 0 => {
                return Err(Error::BadInput {
                    path: args.name.clone().into(),
                    reason: format!(
                        "{from} is the oldest version {} keeps; name one with --to",
                        args.name
                    ),
                });
            }
            None => entry.versions[at - 1].version.clone(),
        };
        let newest = entry.versions.last().map(|v| v.version.clone());
        entry.current = (Some(&to) != newest.as_ref()).then(|| to.clone());
        Ok((from, to))
    })?;
    audit::record(
        &store,
        Change::new(Action::Rollback)
            .release(&args.name, Some(&to))
            .detail(format!("from {from}")),
    )?;
    out!(
        "{} now shows {to} (was {from}); running mounts switch within seconds, open files keep their bytes",
        args.name
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run_keep(store_dir: &Path, args: KeepArgs) -> anyhow::Result<ExitCode> {
    validate_name("model name", &args.name)?;
    let store = open_store(store_dir, Access::Write)?;
    store.update_registry(|registry| {
        let entry = registry
            .models
            .get_mut(&args.name)
            .ok_or_else(|| Error::UnknownModel(args.name.clone()))?;
        entry.keep = (args.count != DEFAULT_KEEP).then_some(args.count);
        Ok(())
    })?;
    audit::record(
        &store,
        Change::new(Action::Keep)
            .release(&args.name, None)
            .detail(format!("keep {}", args.count)),
    )?;
    out!(
        "gc keeps the newest {} version(s) of {} (and the current one)",
        args.count,
        args.name
    );
    Ok(ExitCode::SUCCESS)
}
