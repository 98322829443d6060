//! Where things live: the names inside a store directory, and the per-machine directories outside it.
//!
//! Owns the layout of a store directory (file and folder names) and the one lookup of the XDG
//! directories modelfs uses: the default store (`$XDG_DATA_HOME/modelfs`) and the per-machine cache
//! (`$XDG_CACHE_HOME/modelfs`), where readers keep what they may not write into a store.
//!
//! ```text
//! STORE/modelfs.json         config: format version, store id, chunking parameters
//! STORE/registry.json        models → versions → files → manifest ids (atomically replaced)
//! STORE/catalog.json         sealed packs and where their tables are (derived; for remote readers)
//! STORE/manifests/<id>       file manifests, named by their blake3
//! STORE/packs/<id>.pack      sealed packs; <id>.pack.tmp while being written
//! STORE/index/               RocksDB: chunk id → pack location (derived; rebuildable from packs)
//! STORE/lock                 flock'ed by the one writer
//! STORE/trust.json           trust policy: trusted keys, threshold (this store's own; never copied)
//! STORE/audit.log            hash-chained log of every change, one JSON line each (append-only)
//! STORE/audit.seal           signed head of the audit log (`audit seal`)
//! ```

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::id::StoreId;

/// Folder of pack files.
pub const PACKS_DIR: &str = "packs";
/// Folder of manifest files.
pub const MANIFESTS_DIR: &str = "manifests";
/// Folder of the RocksDB index.
pub const INDEX_DIR: &str = "index";
/// The writer lock file.
pub const LOCK_FILE: &str = "lock";
/// The pack catalog, for readers without the index.
pub const CATALOG_FILE: &str = "catalog.json";
/// The trust policy.
pub const TRUST_FILE: &str = "trust.json";
/// The audit log.
pub const AUDIT_FILE: &str = "audit.log";
/// The signed head of the audit log.
pub const AUDIT_SEAL_FILE: &str = "audit.seal";

/// The directories of one store.
#[derive(Debug, Clone)]
pub struct StorePaths {
    /// The store directory.
    pub root: PathBuf,
}

impl StorePaths {
    /// The layout of the store at `root`.
    pub fn new(root: &Path) -> StorePaths {
        StorePaths {
            root: root.to_owned(),
        }
    }

    /// `STORE/packs`.
    pub fn packs(&self) -> PathBuf {
        self.root.join(PACKS_DIR)
    }

    /// `STORE/manifests`.
    pub fn manifests(&self) -> PathBuf {
        self.root.join(MANIFESTS_DIR)
    }

    /// `STORE/index`.
    pub fn index(&self) -> PathBuf {
        self.root.join(INDEX_DIR)
    }

    /// `STORE/lock`.
    pub fn lock(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    /// `STORE/modelfs.json`.
    pub fn config(&self) -> PathBuf {
        self.root.join(crate::format::config::CONFIG_FILE_NAME)
    }

    /// `STORE/catalog.json`.
    pub fn catalog(&self) -> PathBuf {
        self.root.join(CATALOG_FILE)
    }

    /// `STORE/registry.json`.
    pub fn registry(&self) -> PathBuf {
        self.root.join(crate::store::registry::REGISTRY_FILE_NAME)
    }

    /// `STORE/trust.json`.
    pub fn trust(&self) -> PathBuf {
        self.root.join(TRUST_FILE)
    }

    /// `STORE/audit.log`.
    pub fn audit(&self) -> PathBuf {
        self.root.join(AUDIT_FILE)
    }

    /// `STORE/audit.seal`.
    pub fn audit_seal(&self) -> PathBuf {
        self.root.join(AUDIT_SEAL_FILE)
    }
}

/// The value of an XDG base-directory variable, else `~/FALLBACK`.
fn xdg_dir(var: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(fallback)))
}

/// The default store: `$XDG_DATA_HOME/modelfs` (`~/.local/share/modelfs`); `None` without a home.
pub fn default_store_dir() -> Option<PathBuf> {
    xdg_dir("XDG_DATA_HOME", ".local/share").map(|dir| dir.join("modelfs"))
}

/// This machine's modelfs cache directory: `$XDG_CACHE_HOME/modelfs` (`~/.cache/modelfs`), or
/// without a home (a root service), `/tmp/modelfs-<uid>`. Created private (0700) if missing, and
/// refused unless it is a real directory owned by this user that nobody else can write: other
/// local users must not be able to plant links where modelfs writes indexes, logs and pid files.
pub fn machine_cache_root() -> Result<PathBuf> {
    let euid = nix::unistd::geteuid().as_raw();
    let root = match xdg_dir("XDG_CACHE_HOME", ".cache") {
        Some(base) => base.join("modelfs"),
        None => std::env::temp_dir().join(format!("modelfs-{euid}")),
    };
    if let Some(parent) = root.parent() {
        std::fs::create_dir_all(parent).at(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(&root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(&root, e)),
    }
    let meta = std::fs::symlink_metadata(&root).at(&root)?;
    if !meta.is_dir() || meta.uid() != euid || meta.mode() & 0o022 != 0 {
        return Err(Error::BadInput {
            path: root,
            reason: format!(
                "is not a private directory of this user (owner uid {}, mode {:o}); remove it, or \
                 set XDG_CACHE_HOME to a directory of your own",
                meta.uid(),
                meta.mode() & 0o7777
            ),
        });
    }
    Ok(root)
}

/// Per-machine cache directory for a store: `$XDG_CACHE_HOME/modelfs/<store id>`.
pub fn machine_cache_dir(store_id: &StoreId) -> Result<PathBuf> {
    Ok(machine_cache_root()?.join(store_id.to_hex()))
}
