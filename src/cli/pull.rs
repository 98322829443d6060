//! `modelfs pull NAME[@V]... --from URL|auto`: fetch models from peers and mirrors.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use modelfs::Access;
use modelfs::audit::Action;
use modelfs::peer::discover;
use modelfs::source::{Source, SourceAddr, addr};
use modelfs::store::registry::{ModelSpec, resolve};
use modelfs::transfer::{plan_import, run_import};

use super::import::{AdmitArgs, audit_import};
use super::net::NetArgs;
use super::{Bar, human_bytes, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Models to pull, in this order: NAME (its newest version) or NAME@VERSION.
    #[arg(required = true, value_name = "NAME[@VERSION]")]
    models: Vec<ModelSpec>,
    /// Where from: the URL of a peer (`modelfs serve`) or of a web server publishing a store, a
    /// store directory, or `auto` (peers found on the LAN). Repeatable: when one fails, the next
    /// is tried, and what arrived is kept.
    #[arg(long = "from", required = true, value_name = "URL|DIR|auto")]
    from: Vec<String>,
    /// Ranges fetched at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Print what would be fetched, fetch nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    admit: AdmitArgs,
    #[command(flatten)]
    net: NetArgs,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let http = args.net.http_options()?;
    let access = match args.dry_run {
        true => Access::Read,
        false => Access::Write,
    };
    let store = open_store(store_dir, access)?;
    let mut addrs = Vec::new();
    for from in &args.from {
        match from.as_str() {
            "auto" => {
                let peers = discover::browse(Duration::from_secs(3))?;
                if peers.is_empty() {
                    eprintln!("warning: no modelfs peer answered on the LAN");
                }
                addrs.extend(peers.into_iter().map(|p| SourceAddr::Http(p.url)));
            }
            other => addrs.push(other.parse::<SourceAddr>()?),
        }
    }
    anyhow::ensure!(
        !addrs.is_empty(),
        "no source to pull from; name one with --from URL"
    );
    // Opened on first use, kept for the next models.
    let mut sources: Vec<Result<Box<dyn Source>, String>> = Vec::new();
    for spec in &args.models {
        let mut failure = None;
        for (i, addr) in addrs.iter().enumerate() {
            if sources.len() <= i {
                sources.push(addr::open(addr, &http).map_err(|e| e.to_string()));
            }
            let pulled = match &sources[i] {
                Ok(source) => pull_one(source.as_ref(), &store, spec, &args),
                Err(e) => Err(anyhow!("{e}")),
            };
            match pulled {
                Ok(()) => {
                    failure = None;
                    break;
                }
                // Output cut short (`| head`): not the source's fault.
                Err(e) if is_broken_pipe(&e) => return Err(e),
                Err(e) => {
                    if i + 1 < addrs.len() {
                        eprintln!(
                            "warning: pulling {spec} from {addr} failed: {e:#}; trying the next source"
                        );
                    }
                    failure = Some((addr, e));
                }
            }
        }
        if let Some((addr, e)) = failure {
            anyhow::bail!(
                "cannot pull {spec} from {addr}: {e:#}; run the pull again to resume (what arrived is kept)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Requests sent to `source` so far (0 for a local store).
fn requests(source: &dyn Source) -> u64 {
    source.traffic().map_or(0, |(requests, _)| requests)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Pulls one model version from one source.
fn pull_one(
    source: &dyn Source,
    store: &modelfs::Store,
    spec: &ModelSpec,
    args: &Args,
) -> anyhow::Result<()> {
    let registry = source.registry()?;
    let (_, version) = resolve(&registry, &spec.model, spec.version.as_deref())?;
    let wanted = ModelSpec {
        model: spec.model.clone(),
        version: Some(version.version.clone()),
        file: None,
    };
    let keyring = store.keyring()?;
    let plan = plan_import(
        source,
        store,
        std::slice::from_ref(&wanted),
        args.admit.admission(&keyring),
    )?;
    let added = plan.added();
    out!(
        "need {} in {} chunks for {}@{} from {}{}",
        human_bytes(plan.needed_bytes),
        plan.needed_chunks(),
        wanted.model,
        version.version,
        source.describe(),
        match plan.versions_present {
            0 => "",
            _ => " (already here)",
        }
    );
    if args.dry_run || (plan.needed_chunks() == 0 && plan.versions_to_add() == 0) {
        return Ok(());
    }
    let (started, requests_before) = (Instant::now(), requests(source));
    let report = run_import(source, store, plan, usize::from(args.jobs), &Bar::new())?;
    let seconds = started.elapsed().as_secs_f64();
    audit_import(store, Action::Pull, &source.describe(), &added, &report)?;
    out!(
        "pulled {}@{}: {} in {} chunks in {:.1} s ({}/s, {} requests)",
        wanted.model,
        version.version,
        human_bytes(report.bytes_copied),
        report.chunks_copied,
        seconds,
        human_bytes((report.bytes_copied as f64 / seconds.max(1e-3)) as u64),
        requests(source) - requests_before
    );
    Ok(())
}
