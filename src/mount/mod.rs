//! The mount's life cycle: from a validated configuration to a served, then unmounted, tree.
//!
//! Owns [`MountConfig`] (built once from the command line and checked: the mountpoint, which store
//! the mount is built on, its sources, read options) and [`run`], which mounts in the foreground or
//! forks a background daemon first. Submodules: `serve` (open the sources, mount, the signal and
//! refresh loop), `daemon` (fork and report readiness), `mountinfo` (the mount table, mountpoint
//! checks, unmount, readahead), `control` (signals, the pid file `refresh` uses), `pinner` (pinned
//! copies kept current, `--pin-budget`). The kernel
//! protocol itself is `fuse`; the tree is `vfs`.

pub mod control;
pub mod daemon;
mod metrics;
pub mod mountinfo;
mod pinner;
mod serve;

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::peer::client::HttpOptions;
use crate::read::ReadOptions;
use crate::source::SourceAddr;
use crate::store::paths::machine_cache_dir;
use crate::store::read_config;
pub use control::request_refresh;
pub use mountinfo::{check_mountpoint, is_mounted};

/// Kernel readahead asked for on the mount: 1 MiB requests, several in flight at once.
const READAHEAD_KIB: u32 = 4096;

/// What the user asked for, as typed.
#[derive(Debug, Clone)]
pub struct MountRequest {
    /// The local store.
    pub store: PathBuf,
    /// Other stores read after it, in order: directories or URLs.
    pub sources: Vec<SourceAddr>,
    /// How remote sources are reached.
    pub http: HttpOptions,
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// Copy chunks read from sources into the local store.
    pub fill: bool,
    /// Cache size and verify policy.
    pub read: ReadOptions,
    /// Threads serving kernel requests.
    pub threads: usize,
    /// Run in the background; returns once the mount serves.
    pub daemon: bool,
    /// The background mount's log file (default: in the store's per-machine cache directory).
    pub log: Option<PathBuf>,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
    /// Show only releases signed to the store's trust policy.
    pub require_signed: bool,
    /// Serve pinned copies by FUSE passthrough where the kernel allows.
    pub passthrough: bool,
    /// Pin the most-read versions automatically within this many bytes.
    pub pin_budget: Option<u64>,
}

/// A checked mount configuration.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// The store the mount is built on (layer 0; filled with `--fill`).
    store: PathBuf,
    /// Sources read after it.
    sources: Vec<SourceAddr>,
    http: HttpOptions,
    /// Canonical, existing, empty of mounts.
    mountpoint: PathBuf,
    fill: bool,
    read: ReadOptions,
    threads: usize,
    /// Where the daemon logs, when running in the background.
    daemon_log: Option<PathBuf>,
    metrics: Option<std::net::SocketAddr>,
    require_signed: bool,
    passthrough: bool,
    pin_budget: Option<u64>,
}

impl MountConfig {
    /// Checks `request`: the mountpoint is usable and the store the mount is built on opens.
    /// Without `--fill` and without a local store, a first source that is a store directory
    /// takes the local store's place (a remote source is always read through a local store).
    pub fn new(request: MountRequest) -> Result<MountConfig> {
        let mountpoint = check_mountpoint(&request.mountpoint)?;
        let (mut store, mut sources) = (request.store, request.sources);
        if let Some(SourceAddr::Dir(first)) = sources.first()
            && !request.fill
            && read_config(&store).is_err()
        {
            store = first.clone();
            sources.remove(0);
        }
        let config = read_config(&store)?;
        let daemon_log = match (request.daemon, request.log) {
            (false, _) => None,
            (true, Some(log)) => Some(log),
            (true, None) => Some(machine_cache_dir(&config.store_id)?.join("mount.log")),
        };
        Ok(MountConfig {
            store,
            sources,
            http: request.http,
            mountpoint,
            fill: request.fill,
            read: request.read,
            threads: request.threads.max(1),
            daemon_log,
            metrics: request.metrics,
            require_signed: request.require_signed,
            passthrough: request.passthrough,
            pin_budget: request.pin_budget,
        })
    }

    /// The store the mount is built on.
    pub fn store(&self) -> &Path {
        &self.store
    }

    /// The canonical mountpoint.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }
}

/// How [`run`] got the mount serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// Serving in this process until a signal or an unmount from outside.
    Foreground,
    /// A background process serves it, logging to `log`; this process may exit.
    Background {
        /// The daemon's log file.
        log: PathBuf,
    },
}

/// Mounts and serves per `config`. `on_ready` is called once the mount serves — in this process
/// for a foreground mount (then `run` returns when it is unmounted), or in the parent of a
/// background one (then `run` returns at once).
pub fn run(config: &MountConfig, on_ready: impl FnOnce(&Ready)) -> Result<()> {
    let Some(log) = &config.daemon_log else {
        return serve::serve(config, None, || on_ready(&Ready::Foreground));
    };
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
    }
    match daemon::fork_daemon(log)? {
        daemon::Forked::Parent(parent) => {
            parent.wait(&config.mountpoint)?;
            on_ready(&Ready::Background { log: log.clone() });
            Ok(())
        }
        daemon::Forked::Child(child) => serve::serve(config, Some(child), || {}),
    }
}

/// How long `unmount` waits for the process that served the mount to exit.
const DAEMON_EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Unmounts the modelfs mount at `mountpoint` and waits for the process that served it to exit,
/// so a new mount at the same place right after is not disturbed by the old one.
pub fn unmount(mountpoint: &Path) -> Result<()> {
    let canonical = mountinfo::resolve(mountpoint);
    let process = control::MountProcess::recorded(&canonical);
    mountinfo::unmount(mountpoint)?;
    if let Some(process) = process
        && !process.wait_exit(DAEMON_EXIT_WAIT)
    {
        tracing::warn!(mountpoint = %mountpoint.display(), "the mount process has not exited yet");
    }
    Ok(())
}
