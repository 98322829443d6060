//! Serving a mount: open the store and its sources, mount the tree, and react to signals and
//! registry changes until unmounted.
//!
//! Owns the serve loop: SIGINT/SIGTERM unmount, SIGHUP (`modelfs refresh`) re-reads the registry at
//! once, otherwise the registry (and the pin table) is polled every [`REGISTRY_POLL`]; an unmount
//! from outside ends the loop too. Chunks filled from sources are sealed on every poll and at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::control::{self, ControlSignal};
use super::daemon::DaemonChild;
use super::pinner::Pins;
use super::{MountConfig, READAHEAD_KIB, mountinfo};
use crate::error::Result;
use crate::fuse::{self, MountOptions, PinnedServing};
use crate::read::Reader;
use crate::source::{Layered, Source};
use crate::store::shared::SharedChunks;
use crate::store::{Access, Store};
use crate::trust::TrustError;
use crate::trust::policy::Keyring;
use crate::trust::signed::SignedOnly;
use crate::vfs::Vfs;

/// How often the mount checks whether the registry changed (models added or removed).
const REGISTRY_POLL: Duration = Duration::from_secs(2);

/// What a mount reads through.
struct Sources {
    /// The store the mount is built on: told which chunks are shared.
    local: Arc<Store>,
    /// With `--source` or `--fill`: the union the mount reads.
    layered: Option<Arc<Layered>>,
    /// What the reader reads: `layered`, or `local` alone.
    top: Arc<dyn Source>,
}

impl Sources {
    fn open(config: &MountConfig) -> Result<Sources> {
        let access = match config.fill {
            true => Access::Write,
            false => Access::Read,
        };
        let local = Arc::new(Store::open(&config.store, access)?);
        let (top, layered): (Arc<dyn Source>, _) = if config.sources.is_empty() && !config.fill {
            (local.clone(), None)
        } else {
            let sources = config
                .sources
                .iter()
                .map(|addr| crate::source::addr::open(addr, &config.http))
                .collect::<Result<Vec<_>>>()?;
            let layered = Arc::new(Layered::new(local.clone(), sources, config.fill)?);
            (layered.clone(), Some(layered))
        };
        let top = match config.require_signed {
            true => Arc::new(SignedOnly::new(top, require_policy(&local)?)),
            false => top,
        };
        Ok(Sources {
            top,
            local,
            layered,
        })
    }

    /// Seals chunks copied from sources, if filling.
    fn flush_fill(&self) {
        if let Some(layered) = &self.layered {
            layered.flush_fill();
        }
    }

    /// Recomputes, in the background, which chunks several files share (their pack pages stay
    /// cached).
    fn refresh_shared_chunks(&self) {
        let (top, local) = (self.top.clone(), self.local.clone());
        std::thread::spawn(move || {
            let shared = top
                .registry()
                .and_then(|registry| SharedChunks::of_registry(&registry, |id| top.manifest(id)));
            match shared {
                Ok(shared) => local.set_shared_chunks(shared),
                Err(e) => {
                    warn!(error = %e, "could not work out which chunks are shared; keeping all pack pages cached")
                }
            }
        });
    }
}

/// The store's keyring, which `--require-signed` needs to hold a key.
fn require_policy(store: &Store) -> Result<Keyring> {
    let keyring = store.keyring()?;
    if !keyring.is_active() {
        return Err(TrustError::Policy(format!(
            "--require-signed needs a trust policy, and store {} trusts no key; add one with \
             `modelfs key trust KEY.pub`",
            store.root().display()
        ))
        .into());
    }
    Ok(keyring)
}

/// Mounts and serves until SIGINT/SIGTERM or an unmount from outside. `daemon` is told whether the
/// mount came up; `on_ready` runs once it serves.
pub(super) fn serve(
    config: &MountConfig,
    daemon: Option<DaemonChild>,
    on_ready: impl FnOnce(),
) -> Result<()> {
    // Before any thread exists, so every thread inherits the mask and signals queue for us.
    control::block_control_signals()?;
    control::limit_malloc_arenas();
    let started = (|| -> Result<_> {
        let sources = Sources::open(config)?;
        let reader = Reader::new(sources.top.clone(), config.read);
        let vfs = Arc::new(Vfs::new(reader.clone())?);
        let pins = Arc::new(Pins::open(&sources.local));
        pins.refresh(&vfs, true);
        let options = MountOptions {
            threads: config.threads,
            ..MountOptions::default()
        };
        let pinned = Arc::new(PinnedServing::new(config.passthrough));
        if let Some(address) = config.metrics {
            let listener = std::net::TcpListener::bind(address)
                .map_err(|e| crate::error::Error::io(format!("metrics address {address}"), e))?;
            let registry = super::metrics::registry(
                reader.clone(),
                sources.local.clone(),
                sources.layered.clone(),
                pinned.clone(),
            );
            crate::peer::metrics::serve_metrics(listener, registry)?;
        }
        let session = fuse::spawn(vfs.clone(), &config.mountpoint, options, pinned)?;
        mountinfo::raise_readahead(&config.mountpoint, READAHEAD_KIB);
        if let Some(budget) = config.pin_budget {
            pins.spawn_budget(vfs.clone(), reader, budget);
        }
        Ok((sources, vfs, session, pins))
    })();
    // Recorded before reporting ready, so `refresh` right after `mount --daemon` finds it.
    let pid_file = match &started {
        Ok(_) => control::record_this_process(&config.mountpoint)
            .inspect_err(|e| warn!(error = %e, "cannot record the mount process; `modelfs refresh` will not find it"))
            .ok(),
        Err(_) => None,
    };
    let (sources, vfs, session, pins) = match (started, daemon) {
        (Ok(started), Some(daemon)) => {
            daemon.ready();
            started
        }
        (Ok(started), None) => {
            on_ready();
            started
        }
        (Err(e), daemon) => {
            if let Some(daemon) = daemon {
                daemon.failed(&e.to_string());
            }
            return Err(e);
        }
    };
    info!(mountpoint = %config.mountpoint.display(), "serving");
    sources.refresh_shared_chunks();

    let mut last_poll = Instant::now();
    let outside = loop {
        match control::wait_for_signal(Duration::from_millis(250)) {
            Some(ControlSignal::Stop) => break false,
            Some(ControlSignal::Reload) => {
                reload(&vfs, &sources, &session, true);
                pins.refresh(&vfs, true);
            }
            None if session.is_finished() => break true,
            None if last_poll.elapsed() >= REGISTRY_POLL => {
                last_poll = Instant::now();
                sources.flush_fill();
                reload(&vfs, &sources, &session, false);
                pins.refresh(&vfs, false);
            }
            None => {}
        }
    };
    pins.stop();
    let (passthrough_opens, read_opens) = session.pinned().opens();
    info!(
        mode = session.pinned().mode().name(),
        passthrough_opens, read_opens, "pinned files served"
    );
    if let Some(pid_file) = pid_file {
        let _ = std::fs::remove_file(pid_file);
    }
    if outside {
        // The kernel ended the mount; unmounting again by path could take down a new mount
        // already standing at the same place.
        session.abandon();
        info!("unmounted from outside");
    } else {
        session.unmount()?;
        info!("unmounted");
    }
    sources.flush_fill();
    if let Some(layered) = &sources.layered {
        for (source, requests, bytes) in layered.traffic() {
            info!(%source, requests, bytes, "read from a network source");
        }
    }
    Ok(())
}

/// Re-reads the registry (at once when `forced`, else only if it changed).
fn reload(vfs: &Vfs, sources: &Sources, session: &fuse::Session, forced: bool) {
    let result = match forced {
        true => vfs.reload().map(|()| true),
        false => vfs.reload_if_changed(),
    };
    match result {
        Ok(true) => {
            info!("registry re-read");
            session.forget_names(&vfs.take_moved_names());
            sources.refresh_shared_chunks();
        }
        Ok(false) => {}
        Err(e) => warn!(error = %e, "could not re-read the registry; serving the previous one"),
    }
}
