//! `modelfs diff A B`.

use std::path::Path;
use std::process::ExitCode;

use modelfs::Access;
use modelfs::diff::{TensorChange, diff};
use modelfs::store::registry::ModelSpec;

use super::{human_bytes, open_store};
use modelfs::read::{ReadOptions, Reader, VerifyPolicy};
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model, version or file to compare from: NAME[@VERSION][/FILE].
    a: String,
    /// The model, version or file to compare to.
    b: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let (a, b): (ModelSpec, ModelSpec) = (args.a.parse()?, args.b.parse()?);
    let store = open_store(store_dir, Access::Read)?;
    let options = ReadOptions {
        verify: VerifyPolicy::EveryRead,
        ..ReadOptions::default()
    };
    let report = diff(&Reader::new(Arc::new(store), options), &a, &b)?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    for (path, how) in &report.files {
        out!("file    {path}: {how}");
    }
    for tensor in &report.tensors {
        let (word, size) = match tensor.change {
            TensorChange::Changed => (
                "changed",
                format!(
                    "{} -> {}",
                    human_bytes(tensor.bytes_a),
                    human_bytes(tensor.bytes_b)
                ),
            ),
            TensorChange::Added => ("added  ", human_bytes(tensor.bytes_b)),
            TensorChange::Removed => ("removed", human_bytes(tensor.bytes_a)),
            TensorChange::Renamed => {
                let from = tensor.renamed_from.as_deref().unwrap_or("?");
                (
                    "renamed",
                    format!("{}, same bytes as {from}", human_bytes(tensor.bytes_b)),
                )
            }
        };
        out!("{word} {}  {size}", tensor.name);
    }
    let renamed = report
        .tensors
        .iter()
        .filter(|t| t.change == TensorChange::Renamed)
        .count();
    out!(
        "{} tensor(s) differ, {} identical, {renamed} identical under another name; going from {} to {} transfers {} ({} stored) of {}",
        report.tensors.len() - renamed,
        report.same_tensors,
        args.a,
        args.b,
        human_bytes(report.transfer_bytes),
        human_bytes(report.transfer_stored_bytes),
        human_bytes(report.size_b),
    );
    Ok(ExitCode::SUCCESS)
}
