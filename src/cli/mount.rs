//! `modelfs mount MOUNTPOINT [--daemon]`, `modelfs umount MOUNTPOINT` and `modelfs refresh MOUNTPOINT`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use modelfs::mount::{self, MountConfig, MountRequest, Ready};
use modelfs::read::{ReadOptions, VerifyPolicy};
use modelfs::source::SourceAddr;

use super::net::NetArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An existing, empty directory.
    mountpoint: PathBuf,
    /// Run in the background; returns once the mount is ready.
    #[arg(long)]
    daemon: bool,
    /// Threads serving kernel requests.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
    /// Memory for decoded chunks reused by small reads, in MiB.
    #[arg(long, default_value_t = 64)]
    cache_mib: usize,
    /// Another store to read models and chunks from, after the local one: a directory, or the
    /// URL of a peer (`modelfs serve`) or a web server publishing a store (repeatable; the first
    /// that has a chunk serves it, the next ones stand in when it fails).
    #[arg(long = "source", value_name = "DIR|URL")]
    sources: Vec<String>,
    #[command(flatten)]
    net: NetArgs,
    /// Copy every chunk read from a source into the local store, so reads go on once the source
    /// is gone (the mount then holds the local store's writer lock).
    #[arg(long)]
    fill: bool,
    /// When to hash a chunk read from its pack: every time (default), or only the first time an
    /// open file reads it (trusts the medium afterwards: only for a store nobody else can write).
    #[arg(long, value_enum, default_value_t = Verify::EveryRead)]
    verify: Verify,
    /// Log file of the background mount [default: ~/.cache/modelfs/STORE_ID/mount.log].
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (reads, bytes, failures; requests and
    /// bytes per network source).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Show only model versions whose releases are signed to the store's trust policy (enough
    /// trusted signatures, statement matching the files, not expired); others are hidden.
    #[arg(long)]
    require_signed: bool,
    /// Pin the most-read models automatically within SIZE of disk (`20G`, `500M`), least
    /// recently used out; pins made with `modelfs pin` are neither counted nor evicted.
    #[arg(long, value_name = "SIZE", value_parser = super::parse_size)]
    pin_budget: Option<u64>,
    /// Serve pinned files by reading their copies in the mount instead of handing them to the
    /// kernel (FUSE passthrough, used where the kernel and privileges allow).
    #[arg(long)]
    no_passthrough: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Verify {
    FirstRead,
    EveryRead,
}

#[derive(Debug, clap::Args)]
pub struct UmountArgs {
    /// Where a modelfs store is mounted.
    mountpoint: PathBuf,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let verify = match args.verify {
        Verify::FirstRead => VerifyPolicy::FirstRead,
        Verify::EveryRead => VerifyPolicy::EveryRead,
    };
    let config = MountConfig::new(MountRequest {
        store: store_dir.to_owned(),
        sources: args
            .sources
            .iter()
            .map(|s| s.parse::<SourceAddr>())
            .collect::<Result<_, _>>()?,
        http: args.net.http_options()?,
        mountpoint: args.mountpoint,
        fill: args.fill,
        read: ReadOptions {
            cache_bytes: args.cache_mib << 20,
            verify,
        },
        threads: usize::from(args.threads),
        daemon: args.daemon,
        log: args.log,
        metrics: args.metrics,
        require_signed: args.require_signed,
        passthrough: !args.no_passthrough,
        pin_budget: args.pin_budget,
    })?;
    mount::run(&config, |ready| match ready {
        Ready::Foreground => eprintln!(
            "modelfs: mounted at {}; Ctrl-C or `modelfs umount` to unmount",
            config.mountpoint().display()
        ),
        Ready::Background { log } => println!(
            "mounted {} at {} (log: {})",
            config.store().display(),
            config.mountpoint().display(),
            log.display()
        ),
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_refresh(args: UmountArgs) -> anyhow::Result<ExitCode> {
    mount::request_refresh(&args.mountpoint)?;
    println!(
        "asked the mount at {} to re-read its store",
        args.mountpoint.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run_umount(args: UmountArgs) -> anyhow::Result<ExitCode> {
    mount::unmount(&args.mountpoint)?;
    println!("unmounted {}", args.mountpoint.display());
    Ok(ExitCode::SUCCESS)
}
