//! The command line: clap definitions and one module per subcommand.
//!
//! Owns argument parsing, turning arguments into library calls, and everything printed to stdout.
//! The only place that uses `anyhow` (for context on errors) and the only place that prints.

/// `println!` that returns an error (stdout closed early by `| head`, say; `main` treats that as
/// success) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

mod add;
mod audit;
mod cat;
mod diff;
mod doctor;
mod export;
mod gc;
mod import;
mod import_cache;
mod index;
mod init;
mod key;
mod ls;
mod mount;
mod net;
mod pack;
mod peers;
mod pin;
mod pull;
mod rm;
mod rollback;
mod serve;
mod sign;
mod stats;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::IsTerminal;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use modelfs::progress::Progress;

use modelfs::{Access, Store};

/// modelfs: a deduplicating model store with a read-only FUSE mount.
///
/// Models (GGUF, safetensors, Hugging Face folders) are split into content-defined chunks, stored
/// once however many models share them, and served read-only at a mountpoint where inference
/// engines open or mmap them like local files. Every chunk is checked against its hash when read.
#[derive(Debug, Parser)]
#[command(
    name = "modelfs",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Store directory [default: $XDG_DATA_HOME/modelfs, i.e. ~/.local/share/modelfs].
    #[arg(long, global = true, env = "MODELFS_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// More log output on stderr (-v info, -vv debug); MODELFS_LOG=filter overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the store (does nothing if it already exists).
    Init(init::Args),
    /// Add a model file or folder as a new version of NAME.
    Add(add::Args),
    /// List models, or the versions and files of one model.
    Ls(ls::Args),
    /// Write a model file's bytes to stdout, verified.
    Cat(cat::Args),
    /// Mount the store read-only at MOUNTPOINT.
    Mount(mount::Args),
    /// Unmount a modelfs mount.
    Umount(mount::UmountArgs),
    /// Make a running mount show models added or removed since (it also notices by itself
    /// within a few seconds).
    Refresh(mount::UmountArgs),
    /// List the tensors that differ between two models, versions or files, and the bytes a
    /// transfer from the first to the second needs.
    Diff(diff::Args),
    /// Copy models from another store (a stick, a share, a URL), only the chunks this store lacks.
    Import(import::Args),
    /// Take models from a Hugging Face hub cache into the store (the cache is left untouched).
    ImportHf(import_cache::HfArgs),
    /// Take models from Ollama's models folder into the store (the folder is left untouched).
    ImportOllama(import_cache::OllamaArgs),
    /// Fetch models from a peer or a mirror: only the chunks this store lacks, verified.
    Pull(pull::Args),
    /// Share this store with peers over HTTP, read-only.
    Serve(serve::Args),
    /// List stores served on the LAN and their models.
    Peers(peers::Args),
    /// Write chosen models into DEST as a self-contained store, with `--with-binary` ready to
    /// mount or install from on a machine without modelfs.
    Pack(pack::Args),
    /// Keep a version as plain, verified files that mounts serve at native speed (FUSE
    /// passthrough where the kernel allows).
    Pin(pin::Args),
    /// Stop serving a pinned version natively and free its copies.
    Unpin(pin::Args),
    /// Re-read and re-hash every chunk of the named models (all if none); report every problem.
    Verify(verify::Args),
    /// Remove a model, or one version of it, from the registry (`gc` then frees the space).
    Rm(rm::Args),
    /// Reclaim the space of chunks no model references.
    Gc(gc::Args),
    /// Show models, files, logical and stored bytes, dedup ratio, chunks and packs.
    Stats(stats::Args),
    /// Make, trust and list release-signing keys, and set the store's trust policy.
    #[command(subcommand)]
    Key(key::Command),
    /// Sign a release statement for a model version: its files, sizes, digests, channel and a
    /// sequence number that only grows.
    Sign(sign::Args),
    /// Make an earlier version the one a model's name shows (and mounts pick up).
    Rollback(rollback::Args),
    /// Set how many versions of a model `gc` keeps (default 3).
    Keep(rollback::KeepArgs),
    /// Show the store's audit log, check its hash chain, or seal its head with a signature.
    Audit(audit::Args),
    /// Print what this store holds (chunks and releases), for a publisher's `export --have`.
    Inventory(export::InventoryArgs),
    /// Write an update pack: only the chunks a site lacks, plus the signed releases.
    Export(export::Args),
    /// Check what mounts and stores trip over, and say how to fix each.
    Doctor(doctor::Args),
    /// Maintain the chunk index.
    #[command(subcommand)]
    Index(index::Command),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let store_dir = match cli.store {
        // A URL is never taken for a folder: remote stores are sources, not the local store.
        Some(dir) if dir.to_string_lossy().contains("://") => anyhow::bail!(
            "--store must be a folder on this machine, not {}; read a remote store with \
             --source (mount), --from (pull) or import",
            dir.display()
        ),
        Some(dir) => dir,
        None => modelfs::store::paths::default_store_dir()
            .context("cannot find a home directory for the default store; pass --store DIR")?,
    };
    match cli.command {
        Command::Init(args) => init::run(&store_dir, args),
        Command::Add(args) => add::run(&store_dir, args),
        Command::Ls(args) => ls::run(&store_dir, args),
        Command::Cat(args) => cat::run(&store_dir, args),
        Command::Mount(args) => mount::run(&store_dir, args),
        Command::Umount(args) => mount::run_umount(args),
        Command::Refresh(args) => mount::run_refresh(args),
        Command::Diff(args) => diff::run(&store_dir, args),
        Command::Import(args) => import::run(&store_dir, args),
        Command::ImportHf(args) => import_cache::run_hf(&store_dir, args),
        Command::ImportOllama(args) => import_cache::run_ollama(&store_dir, args),
        Command::Pull(args) => pull::run(&store_dir, args),
        Command::Serve(args) => serve::run(&store_dir, args),
        Command::Peers(args) => peers::run(&store_dir, args),
        Command::Pack(args) => pack::run(&store_dir, args),
        Command::Pin(args) => pin::run(&store_dir, args),
        Command::Unpin(args) => pin::run_unpin(&store_dir, args),
        Command::Verify(args) => verify::run(&store_dir, args),
        Command::Rm(args) => rm::run(&store_dir, args),
        Command::Gc(args) => gc::run(&store_dir, args),
        Command::Stats(args) => stats::run(&store_dir, args),
        Command::Key(command) => key::run(&store_dir, command),
        Command::Sign(args) => sign::run(&store_dir, args),
        Command::Rollback(args) => rollback::run(&store_dir, args),
        Command::Keep(args) => rollback::run_keep(&store_dir, args),
        Command::Audit(args) => audit::run(&store_dir, args),
        Command::Inventory(args) => export::run_inventory(&store_dir, args),
        Command::Export(args) => export::run(&store_dir, args),
        Command::Doctor(args) => doctor::run(&store_dir, args),
        Command::Index(command) => index::run(&store_dir, command),
    }
}

/// Opens the store with a message that names it.
fn open_store(dir: &std::path::Path, access: Access) -> anyhow::Result<Store> {
    Store::open(dir, access).with_context(|| format!("cannot open store {}", dir.display()))
}

/// A progress bar on a terminal; nothing otherwise (the summary line follows either way).
pub struct Bar(Option<ProgressBar>);

impl Bar {
    pub fn new() -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("static template"),
        );
        Bar(Some(bar))
    }
}

impl Progress for Bar {
    fn begin(&self, total: u64) {
        if let Some(bar) = &self.0 {
            bar.set_length(total);
        }
    }
    fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }
    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// Parses a size as people write it: `1500000`, `500M`, `20G`, `1.5TB` (powers of 1000, as
/// `human_bytes` prints them) or `20GiB` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 500M, 20G or 20GiB"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let (prefix, binary) = match unit.strip_suffix("ib") {
        Some(prefix) => (prefix, true),
        None => (unit.strip_suffix('b').unwrap_or(&unit), false),
    };
    let power = match prefix {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        _ => {
            return Err(format!(
                "{text:?} has an unknown unit; use K, M, G or T (or KiB … TiB)"
            ));
        }
    };
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let bytes = number * base.powi(power);
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes as u64)
}

/// Formats a byte count for people: `1.07 GB`, `512 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// Formats Unix seconds as `YYYY-MM-DD HH:MM` UTC.
pub fn human_time(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1_070_000_000), "1.07 GB");
        assert_eq!(human_time(0), "1970-01-01 00:00");
        assert_eq!(human_time(1_795_000_000), "2026-11-18 11:06");
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("500M"), Ok(500_000_000));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert!(parse_size("20X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("1e30T").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
