//! `modelfs gc`.

use std::path::Path;
use std::process::ExitCode;

use modelfs::Access;
use modelfs::audit::{self, Action, Change};
use modelfs::store::gc::gc;

use super::{human_bytes, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(store_dir: &Path, _args: Args) -> anyhow::Result<ExitCode> {
    let store = open_store(store_dir, Access::Write)?;
    let report = gc(&store, &super::Bar::new())?;
    for pruned in &report.versions_pruned {
        out!("dropped {pruned}: older than the versions its model keeps (`modelfs keep NAME N`)");
    }
    for pin in &report.pins_dropped {
        out!("unpinned {pin}: the store no longer has it");
    }
    audit::record(
        &store,
        Change::new(Action::Gc).detail(format!(
            "freed {} bytes; dropped versions: {}",
            report.bytes_before.saturating_sub(report.bytes_after),
            match report.versions_pruned.is_empty() {
                true => "none".to_owned(),
                false => report.versions_pruned.join(" "),
            }
        )),
    )?;
    out!(
        "packs: {} dropped, {} rewritten{}; manifests removed: {}; pack bytes {} -> {} (freed {})",
        report.packs_dropped,
        report.packs_rewritten,
        if report.packs_skipped_damaged > 0 {
            format!(
                ", {} left alone because damaged (run `modelfs verify`)",
                report.packs_skipped_damaged
            )
        } else {
            String::new()
        },
        report.manifests_removed,
        human_bytes(report.bytes_before),
        human_bytes(report.bytes_after),
        human_bytes(report.bytes_before.saturating_sub(report.bytes_after)),
    );
    Ok(ExitCode::SUCCESS)
}
