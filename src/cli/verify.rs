//! `modelfs verify [NAME…]`.

use std::path::Path;
use std::process::ExitCode;

use modelfs::Access;
use modelfs::pin::PinArea;
use modelfs::store::now_unix;
use modelfs::store::registry::ModelSpec;
use modelfs::store::scrub::scrub;
use modelfs::trust::release::{ReleaseStatus, status};

use super::{human_bytes, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Models to check (NAME for every version, NAME@VERSION for one); all models if none.
    models: Vec<String>,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let specs = args
        .models
        .iter()
        .map(|m| m.parse())
        .collect::<Result<Vec<ModelSpec>, _>>()?;
    let store = open_store(store_dir, Access::Read)?;
    let report = scrub(&store, &specs, &super::Bar::new())?;
    for problem in &report.problems {
        out!("BAD  {}", problem.description);
        for file in &problem.affected {
            out!("     affects {file}");
        }
    }
    let refused = check_releases(&store, &specs)?;
    let damaged_pins = PinArea::of(&store)?.check(&|id| store.manifest(id), &super::Bar::new())?;
    for damage in &damaged_pins {
        out!(
            "BAD  pinned copy of {}: {}; unpinned it, so mounts read the store's chunks again \
             (pin it again with `modelfs pin`)",
            damage.label,
            damage.reason
        );
    }
    out!(
        "checked {} version{}, {} file{}, {} chunks ({}): {}",
        report.versions,
        if report.versions == 1 { "" } else { "s" },
        report.files,
        if report.files == 1 { "" } else { "s" },
        report.chunks,
        human_bytes(report.bytes),
        match report.problems.len() + refused + damaged_pins.len() {
            0 => "all good".to_owned(),
            n => format!("{n} problem(s) found"),
        },
    );
    Ok(
        if report.problems.is_empty() && refused == 0 && damaged_pins.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// Checks the releases of the selected versions against the store's policy: prints what signed
/// each, and every release the policy would refuse; returns how many it would refuse.
fn check_releases(store: &modelfs::Store, specs: &[ModelSpec]) -> anyhow::Result<usize> {
    let keyring = store.keyring()?;
    let registry = store.registry()?;
    let now = now_unix();
    let mut refused = 0;
    for (model, entry) in &registry.models {
        for version in &entry.versions {
            let chosen = specs.is_empty()
                || specs.iter().any(|s| {
                    &s.model == model && s.version.as_ref().is_none_or(|v| v == &version.version)
                });
            if !chosen {
                continue;
            }
            let release = format!("{model}@{}", version.version);
            match status(model, version, &keyring, now, &mut |id| store.manifest(id)) {
                // Unsigned is a fact, not damage: a site's own `add`s are unsigned.
                None if keyring.is_active() => out!("note {release}: not signed"),
                None => {}
                Some(ReleaseStatus {
                    verdict: Err(reason),
                    ..
                }) => {
                    refused += 1;
                    out!("BAD  {release}: release {reason}");
                }
                Some(ReleaseStatus { signers, .. }) => {
                    let keys: Vec<String> = signers
                        .iter()
                        .map(|(key, trusted)| match trusted {
                            true => key.to_string(),
                            false => format!("{key} (not trusted here)"),
                        })
                        .collect();
                    out!("ok   {release}: signed by {}", keys.join(", "));
                }
            }
        }
    }
    Ok(refused)
}
