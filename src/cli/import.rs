//! `modelfs import SRC_STORE|URL [--models …]`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use modelfs::audit::{self, Action, Change};
use modelfs::source::{SourceAddr, addr};
use modelfs::store::registry::ModelSpec;
use modelfs::transfer::{Admission, ImportReport, plan_import, run_import};
use modelfs::trust::policy::Keyring;
use modelfs::{Access, Store};

use super::net::NetArgs;
use super::{Bar, human_bytes, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store to copy from: a directory, or the URL of a peer or a web server publishing one.
    #[arg(value_name = "DIR|URL")]
    source: String,
    /// Models to copy, comma-separated: NAME (every version) or NAME@VERSION [default: all].
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Ranges (runs of chunks) read at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    #[command(flatten)]
    admit: AdmitArgs,
    #[command(flatten)]
    net: NetArgs,
}

/// How `import` and `pull` treat releases under the store's trust policy.
#[derive(Debug, Clone, clap::Args)]
pub struct AdmitArgs {
    /// Take a signed release even if its sequence number is not above the highest this store
    /// has accepted for the model and channel (a rollback to an older release; logged).
    #[arg(long)]
    allow_downgrade: bool,
}

impl AdmitArgs {
    /// The admission rules for `store`, with its keyring.
    pub fn admission<'k>(&self, keyring: &'k Keyring) -> Admission<'k> {
        Admission {
            keyring: Some(keyring),
            allow_downgrade: self.allow_downgrade,
            now: modelfs::store::now_unix(),
        }
    }
}

/// Logs an import or pull in the audit log: one entry per version added, naming downgrades.
pub fn audit_import(
    store: &Store,
    action: Action,
    from: &str,
    added: &[(String, String)],
    report: &ImportReport,
) -> anyhow::Result<()> {
    for (model, version) in added {
        let release = format!("{model}@{version}");
        let mut detail = format!("from {from}");
        if report.downgrades.contains(&release) {
            eprintln!(
                "warning: {release} is older than a release this store accepted before (--allow-downgrade)"
            );
            detail.push_str("; downgrade allowed");
        }
        audit::record(
            store,
            Change::new(action)
                .release(model, Some(version))
                .detail(detail),
        )?;
    }
    Ok(())
}

/// Parses `--models` values.
pub fn parse_models(models: &[String]) -> anyhow::Result<Vec<ModelSpec>> {
    models
        .iter()
        .map(|m| m.parse().map_err(anyhow::Error::from))
        .collect()
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let selection = parse_models(&args.models)?;
    let from: SourceAddr = args.source.parse()?;
    let source = addr::open(&from, &args.net.http_options()?)
        .with_context(|| format!("cannot read {from}"))?;
    let store = open_store(store_dir, Access::Write)?;
    let keyring = store.keyring()?;
    let plan = plan_import(
        source.as_ref(),
        &store,
        &selection,
        args.admit.admission(&keyring),
    )?;
    let added = plan.added();
    out!(
        "{} version(s) to add ({} already here); copying {} in {} chunks",
        plan.versions_to_add(),
        plan.versions_present,
        human_bytes(plan.needed_bytes),
        plan.needed_chunks()
    );
    let report = run_import(
        source.as_ref(),
        &store,
        plan,
        usize::from(args.jobs),
        &Bar::new(),
    )
    .with_context(|| {
        format!(
            "import from {} stopped; run it again to finish",
            args.source
        )
    })?;
    audit_import(&store, Action::Import, &args.source, &added, &report)?;
    out!(
        "imported {} version(s): copied {} in {} chunks",
        report.versions_added,
        human_bytes(report.bytes_copied),
        report.chunks_copied
    );
    Ok(ExitCode::SUCCESS)
}
