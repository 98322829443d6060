//! `modelfs-faults`: a fault matrix run against the real `modelfs` binary (the one next to this
//! executable). Not a timed test: it injects faults, counts what happens, and prints Markdown
//! tables (docs/RELIABILITY.md holds a run's figures).
//!
//! 1. byte flips: one random byte of one random store file (packs, manifests, registry.json,
//!    modelfs.json, index files) flipped, every model file read back with `modelfs cat` (through
//!    a real FUSE mount every Nth trial), `modelfs verify` run, the byte restored;
//! 2. kill -9: every writer (`add`, `rm`, `gc`, `import`, `pack`, `index rebuild`, `mount --fill`)
//!    killed after a random delay, then committed models checked, `verify` run, the command rerun;
//! 3. full disk: each writer run on a small tmpfs filled to leave 0 bytes … a little more than it
//!    needs; exit status, error line, store unchanged, rerun after freeing space;
//! 4. pulled stick: a store on an exFAT image (exfat-fuse on a loop device) read through
//!    `modelfs mount --source`, `--fill`, in place, and with `cat`; the exfat-fuse process killed
//!    mid-read; time to the reader's error, no wrong byte before it.
//!
//! Every loop is bounded in count and time, every command has a timeout. Needs root (mounts,
//! loop devices, dropping caches). Exit status: 0 if every "must be" figure holds, 2 if the
//! matrix found defects (listed under "Findings"), 1 if it could not run.

mod disk;
mod flips;
mod harness;
mod kills;
mod models;
mod report;
mod stick;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

use harness::{Budget, Findings, Rng, Tools, WorkDir};

/// Fault matrix for modelfs: byte flips, kill -9, full disk, pulled stick.
#[derive(Debug, Parser)]
#[command(name = "modelfs-faults", version)]
struct Args {
    /// Seed of every random choice (files, offsets, delays, fill levels).
    #[arg(long, default_value_t = 20_261_123)]
    seed: u64,
    /// Scratch directory; a fresh subdirectory is used and removed.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Scenarios to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "flips,kills,disk,stick")]
    only: Vec<Scenario>,
    /// Byte-flip trials.
    #[arg(long, default_value_t = 2000)]
    flips: usize,
    /// Read through a FUSE mount instead of `cat` in every Nth flip trial (0: never).
    #[arg(long, default_value_t = 20)]
    fuse_every: usize,
    /// kill -9 trials, spread evenly over the seven writers.
    #[arg(long, default_value_t = 210)]
    kills: usize,
    /// Pulled-stick trials, spread evenly over the four ways of reading.
    #[arg(long, default_value_t = 40)]
    sticks: usize,
    /// Timeout of every command and read, in seconds (beyond it: counted as a hang).
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Wall-clock budget of each scenario's loop, in minutes.
    #[arg(long, default_value_t = 25.0)]
    budget_minutes: f64,
    /// Keep the scratch directory (for a look after a finding).
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    Flips,
    Kills,
    Disk,
    Stick,
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("modelfs-faults: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<bool> {
    let args = Args::parse();
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "modelfs-faults needs root (it mounts tmpfs, FUSE and loop devices)"
    );
    let here = std::env::current_exe()?
        .parent()
        .context("executable has no directory")?
        .to_owned();
    let work = WorkDir::create(
        &args
            .dir
            .join(format!("modelfs-faults-{}", std::process::id())),
        args.keep,
    )?;
    let tools = Tools {
        modelfs: here.join("modelfs"),
        corpus: here.join("modelfs-corpus"),
        cache: work.path.join("cache"),
        timeout: Duration::from_secs(args.timeout),
    };
    for binary in [&tools.modelfs, &tools.corpus] {
        anyhow::ensure!(
            binary.is_file(),
            "{} not found: build with `cargo build --release`",
            binary.display()
        );
    }
    let mounted_fusectl = harness::ensure_fusectl();
    let version = tools.ok(&work.path, &["--version"]).unwrap_or_default();
    println!("# modelfs-faults");
    println!();
    println!(
        "seed {}; {}; binary {} ({}); scratch {}",
        args.seed,
        machine(),
        tools.modelfs.display(),
        version.trim(),
        work.path.display()
    );

    let mut rng = Rng::new(args.seed);
    let mut findings = Findings::default();
    let mut reports = Vec::new();
    let started = Instant::now();
    let scenarios = [
        Scenario::Flips,
        Scenario::Kills,
        Scenario::Disk,
        Scenario::Stick,
    ];
    for scenario in scenarios {
        // Each scenario draws from its own stream, so running one alone reproduces its trials.
        let mut scenario_rng = rng.fork();
        if !args.only.contains(&scenario) {
            continue;
        }
        let budget = Budget::minutes(args.budget_minutes);
        let begun = Instant::now();
        let result = match scenario {
            Scenario::Flips => flips::run(
                &tools,
                &work.path,
                &mut scenario_rng,
                flips::Config {
                    trials: args.flips,
                    fuse_every: args.fuse_every,
                    budget,
                },
                &mut findings,
            ),
            Scenario::Kills => kills::run(
                &tools,
                &work.path,
                &mut scenario_rng,
                kills::Config {
                    trials: args.kills,
                    budget,
                },
                &mut findings,
            ),
            Scenario::Disk => {
                disk::run(&tools, &work.path, &mut scenario_rng, budget, &mut findings)
            }
            Scenario::Stick => stick::run(
                &tools,
                &work.path,
                &mut scenario_rng,
                stick::Config {
                    trials: args.sticks,
                    budget,
                },
                &mut findings,
            ),
        };
        let name = format!("{scenario:?}").to_lowercase();
        match result {
            Ok(report) => {
                eprintln!("{name}: done in {:.0} s", begun.elapsed().as_secs_f64());
                reports.push(report);
            }
            Err(e) => findings.add(&name, "scenario could not run", format!("{e:#}")),
        }
    }

    println!();
    println!(
        "total time {:.1} min",
        started.elapsed().as_secs_f64() / 60.0
    );
    report::print(&reports);
    findings.print();
    drop(work);
    if mounted_fusectl {
        let _ = nix::mount::umount("/sys/fs/fuse/connections");
    }
    Ok(findings.is_empty())
}

/// CPU count and kernel, for the record.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let kernel = kernel.trim();
    format!("{cpus} CPUs, Linux {kernel}")
}
