//! `modelfs verify [NAME…]`.

use std::path::Path;
use std::process::ExitCode;

use modelfs::Access;
use modelfs::progress::Silent;
use modelfs::store::registry::ModelSpec;
use modelfs::store::scrub::scrub;

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
    let report = scrub(&store, &specs, &Silent)?;
    for problem in &report.problems {
        out!("BAD  {}", problem.description);
        for file in &problem.affected {
            out!("     affects {file}");
        }
    }
    out!(
        "checked {} version{}, {} file{}, {} chunks ({}): {}",
        report.versions,
        if report.versions == 1 { "" } else { "s" },
        report.files,
        if report.files == 1 { "" } else { "s" },
        report.chunks,
        human_bytes(report.bytes),
        if report.problems.is_empty() {
            "all good".to_owned()
        } else {
            format!("{} problem(s) found", report.problems.len())
        },
    );
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
