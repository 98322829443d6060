//! `modelfs mount MOUNTPOINT [--daemon]` and `modelfs umount MOUNTPOINT`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use modelfs::fuse::{self, MountOptions};
use modelfs::mount::{
    ControlSignal, DaemonChild, Forked, block_control_signals, check_mountpoint, fork_daemon,
};
use modelfs::store::file::VerifyPolicy;
use modelfs::store::{machine_cache_dir, read_config};
use modelfs::vfs::Vfs;
use modelfs::{Access, Store};
use tracing::{info, warn};

/// Kernel readahead asked for on the mount: 1 MiB requests, several in flight at once.
const READAHEAD_KIB: u32 = 4096;
/// How often the mount checks whether the registry changed (models added or removed).
const REGISTRY_POLL: Duration = Duration::from_secs(2);

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
    /// Another store to read models and chunks from, after the local one (repeatable; the first
    /// that has a chunk serves it, the next ones stand in when it fails).
    #[arg(long = "source", value_name = "DIR")]
    sources: Vec<PathBuf>,
    /// Copy every chunk read from a source into the local store, so reads go on once the source
    /// is gone (the mount then holds the local store's writer lock).
    #[arg(long)]
    fill: bool,
    /// When to hash a chunk: the first time the mount reads it, or on every read from its pack.
    #[arg(long, value_enum, default_value_t = Verify::FirstRead)]
    verify: Verify,
    /// Log file of the background mount [default: ~/.cache/modelfs/STORE_ID/mount.log].
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
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
    let mountpoint = check_mountpoint(&args.mountpoint)?;
    let (primary, sources) = layers(store_dir, &args);
    let config = read_config(&primary)
        .with_context(|| format!("cannot open store {}", primary.display()))?;
    if !args.daemon {
        return serve(&primary, &sources, &mountpoint, &args, None);
    }
    let log = match &args.log {
        Some(log) => log.clone(),
        None => {
            let dir = machine_cache_dir(&config.store_id);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir.join("mount.log")
        }
    };
    match fork_daemon(&log)? {
        Forked::Parent(parent) => {
            parent.wait(&mountpoint)?;
            println!(
                "mounted {} at {} (log: {})",
                store_dir.display(),
                mountpoint.display(),
                log.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Forked::Child(child) => serve(&primary, &sources, &mountpoint, &args, Some(child)),
    }
}

/// The store the mount is built on, and the sources read after it. Without `--fill` and without
/// a local store, the first source takes the local store's place.
fn layers(store_dir: &Path, args: &Args) -> (PathBuf, Vec<PathBuf>) {
    let mut sources = args.sources.clone();
    if !args.fill && !sources.is_empty() && read_config(store_dir).is_err() {
        let first = sources.remove(0);
        return (first, sources);
    }
    (store_dir.to_owned(), sources)
}

/// Mounts and serves until SIGINT/SIGTERM or an unmount from outside.
fn serve(
    store_dir: &Path,
    sources: &[PathBuf],
    mountpoint: &Path,
    args: &Args,
    daemon: Option<DaemonChild>,
) -> anyhow::Result<ExitCode> {
    // Before any thread exists, so every thread inherits the mask and signals queue for us.
    block_control_signals()?;
    modelfs::mount::limit_malloc_arenas();
    let started = (|| -> anyhow::Result<_> {
        let access = if args.fill {
            Access::Write
        } else {
            Access::Read
        };
        let mut store = Store::open(store_dir, access)
            .with_context(|| format!("cannot open store {}", store_dir.display()))?;
        let layers = sources
            .iter()
            .map(|dir| {
                let source = Store::open(dir, Access::Read)
                    .with_context(|| format!("cannot open source {}", dir.display()))?;
                Ok(Box::new(source) as Box<dyn modelfs::store::Source>)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        store.attach_sources(layers, args.fill)?;
        store.set_cache_capacity(args.cache_mib << 20);
        let verify = match args.verify {
            Verify::FirstRead => VerifyPolicy::FirstRead,
            Verify::EveryRead => VerifyPolicy::EveryRead,
        };
        let vfs = Arc::new(Vfs::new(Arc::new(store), verify)?);
        let options = MountOptions {
            threads: usize::from(args.threads),
            ..MountOptions::default()
        };
        let session = fuse::spawn(vfs.clone(), mountpoint, options)?;
        modelfs::mount::raise_readahead(mountpoint, READAHEAD_KIB);
        Ok((vfs, session))
    })();
    let (vfs, session) = match (started, daemon) {
        (Ok(started), Some(daemon)) => {
            daemon.ready();
            started
        }
        (Ok(started), None) => {
            eprintln!(
                "modelfs: mounted at {}; Ctrl-C or `modelfs umount` to unmount",
                mountpoint.display()
            );
            started
        }
        (Err(e), daemon) => {
            if let Some(daemon) = daemon {
                daemon.failed(&format!("{e:#}"));
            }
            return Err(e);
        }
    };
    info!(mountpoint = %mountpoint.display(), "serving");
    let pid_file = modelfs::mount::pid_file(mountpoint);
    let recorded = pid_file
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| std::fs::write(&pid_file, std::process::id().to_string()));
    if let Err(e) = recorded {
        warn!(error = %e, file = %pid_file.display(), "cannot record the mount process; `modelfs refresh` will not find it");
    }
    refresh_shared_chunks(&vfs);

    let mut last_poll = std::time::Instant::now();
    loop {
        match modelfs::mount::wait_for_signal(Duration::from_millis(250)) {
            Some(ControlSignal::Stop) => break,
            Some(ControlSignal::Reload) => reload(&vfs, true),
            None if session.is_finished() => {
                info!("unmounted from outside");
                let _ = std::fs::remove_file(&pid_file);
                vfs.store().flush_fill();
                return Ok(ExitCode::SUCCESS);
            }
            None if last_poll.elapsed() >= REGISTRY_POLL => {
                last_poll = std::time::Instant::now();
                vfs.store().flush_fill();
                reload(&vfs, false);
            }
            None => {}
        }
    }
    let _ = std::fs::remove_file(&pid_file);
    session.unmount()?;
    vfs.store().flush_fill();
    info!("unmounted");
    Ok(ExitCode::SUCCESS)
}

/// Recomputes, in the background, which chunks several files share (their pack pages stay cached).
fn refresh_shared_chunks(vfs: &Arc<Vfs>) {
    let store = vfs.store().clone();
    std::thread::spawn(move || {
        if let Err(e) = store.refresh_shared_chunks() {
            warn!(error = %e, "could not work out which chunks are shared; keeping all pack pages cached");
        }
    });
}

fn reload(vfs: &Arc<Vfs>, forced: bool) {
    let result = if forced {
        vfs.reload().map(|()| true)
    } else {
        vfs.reload_if_changed()
    };
    match result {
        Ok(true) => {
            info!("registry re-read");
            refresh_shared_chunks(vfs);
        }
        Ok(false) => {}
        Err(e) => warn!(error = %e, "could not re-read the registry; serving the previous one"),
    }
}

pub fn run_refresh(args: UmountArgs) -> anyhow::Result<ExitCode> {
    modelfs::mount::request_refresh(&args.mountpoint)?;
    println!(
        "asked the mount at {} to re-read its store",
        args.mountpoint.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run_umount(args: UmountArgs) -> anyhow::Result<ExitCode> {
    modelfs::mount::unmount(&args.mountpoint)?;
    println!("unmounted {}", args.mountpoint.display());
    Ok(ExitCode::SUCCESS)
}
