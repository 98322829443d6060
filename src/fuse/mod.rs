//! The kernel adapter: serves a [`Vfs`] through FUSE. The only module that imports `fuser`.
//!
//! Owns mounting ([`spawn`], [`MountOptions`], [`Session`]) and the `Filesystem` impl (`fs`), which
//! only translates kernel requests into `Vfs` calls and `Vfs` results into replies (`attr`).

mod attr;
mod fs;

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::vfs::{Ino, Vfs};

/// How to serve the mount.
#[derive(Debug, Clone, Copy)]
pub struct MountOptions {
    /// Worker threads answering kernel requests.
    pub threads: usize,
    /// Let every user read the mount (`allow_other`), not only the one who mounted it.
    pub allow_other: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            threads: 4,
            allow_other: nix::unistd::geteuid().is_root(),
        }
    }
}

/// How the mount serves pinned copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinnedMode {
    /// The kernel reads the copy itself (FUSE passthrough): the backing file's page cache, no
    /// daemon round trip, mmap included.
    Passthrough,
    /// The daemon reads the copy and replies (no decode, no hash).
    Read,
}

impl PinnedMode {
    /// The mode's name in logs, metrics and `doctor`.
    pub fn name(self) -> &'static str {
        match self {
            PinnedMode::Passthrough => "passthrough",
            PinnedMode::Read => "read",
        }
    }
}

/// How a mount serves pinned copies (settled when the kernel answers `init`, lowered if the
/// kernel refuses a backing file), and how many opens each way served.
#[derive(Debug)]
pub struct PinnedServing {
    passthrough: std::sync::atomic::AtomicBool,
    passthrough_opens: AtomicU64,
    read_opens: AtomicU64,
}

impl PinnedServing {
    /// Passthrough asked for (`true`) or not; the kernel's answer to `init` may lower it.
    pub fn new(passthrough: bool) -> PinnedServing {
        PinnedServing {
            passthrough: passthrough.into(),
            passthrough_opens: AtomicU64::new(0),
            read_opens: AtomicU64::new(0),
        }
    }

    /// How pinned copies are served now.
    pub fn mode(&self) -> PinnedMode {
        match self.passthrough.load(Ordering::Relaxed) {
            true => PinnedMode::Passthrough,
            false => PinnedMode::Read,
        }
    }

    fn set_mode(&self, mode: PinnedMode) {
        self.passthrough
            .store(mode == PinnedMode::Passthrough, Ordering::Relaxed);
    }

    fn count(&self, mode: PinnedMode) {
        match mode {
            PinnedMode::Passthrough => &self.passthrough_opens,
            PinnedMode::Read => &self.read_opens,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Opens of pinned files so far: (served by passthrough, served by the daemon's reads).
    pub fn opens(&self) -> (u64, u64) {
        (
            self.passthrough_opens.load(Ordering::Relaxed),
            self.read_opens.load(Ordering::Relaxed),
        )
    }
}

/// A mount being served in background threads; dropping it unmounts.
pub struct Session {
    inner: fuser::BackgroundSession,
    pinned: Arc<PinnedServing>,
}

impl Session {
    /// How the mount serves pinned copies, and how often it did.
    pub fn pinned(&self) -> &Arc<PinnedServing> {
        &self.pinned
    }

    /// Whether the mount ended (unmounted from outside, e.g. `fusermount3 -u`).
    pub fn is_finished(&self) -> bool {
        self.inner.guard.is_finished()
    }

    /// Forgets a mount the kernel already ended (unmounted from outside) without unmounting
    /// again: the path may carry a new mount by now, which unmounting by path would take down.
    pub fn abandon(self) {
        std::mem::forget(self.inner);
    }

    /// Tells the kernel to forget the cached lookups of these (directory, name) pairs, so the
    /// next open of a moved name finds its new inode at once. A name the kernel never cached is
    /// no error.
    pub fn forget_names(&self, names: &[(Ino, String)]) {
        let notifier = self.inner.notifier();
        for (parent, name) in names {
            if let Err(e) = notifier.inval_entry(fuser::INodeNo(parent.0), OsStr::new(name))
                && e.raw_os_error() != Some(libc::ENOENT)
            {
                tracing::debug!(name, error = %e, "the kernel did not drop a cached name");
            }
        }
    }

    /// Unmounts and waits for the serving threads to end.
    pub fn unmount(self) -> Result<()> {
        self.inner.umount_and_join().map_err(|e| Error::Mountpoint {
            path: "(mount)".into(),
            reason: e.to_string(),
        })
    }
}

/// Mounts `vfs` read-only at `mountpoint` and serves it in background threads.
/// `pinned` is told how pinned copies end up served.
pub fn spawn(
    vfs: Arc<Vfs>,
    mountpoint: &Path,
    options: MountOptions,
    pinned: Arc<PinnedServing>,
) -> Result<Session> {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("modelfs".into()),
        fuser::MountOption::Subtype("modelfs".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoAtime,
    ];
    if options.allow_other {
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(options.threads.max(1));
    config.clone_fd = options.threads > 1;
    let filesystem = fs::ModelFs::new(vfs, pinned.clone());
    let inner =
        fuser::spawn_mount(filesystem, mountpoint, &config).map_err(|e| Error::Mountpoint {
            path: mountpoint.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(Session { inner, pinned })
}
