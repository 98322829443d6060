//! The local content-addressed chunk store: one directory of packs, manifests, a registry and an index.
//!
//! Owns [`Store`]: creating and opening a store, the writer lock, its config, and reading and
//! writing its own chunks, manifests and registry. Nothing here knows of other sources: the union
//! of stores and network sources is `source::Layered`, which wraps a `Store`. Submodules own one
//! piece each, and none of them imports this file except the whole-store operations (`sink`, `gc`,
//! `scrub`) that work on an open `Store`:
//! - `paths`: names inside the store directory and the per-machine XDG directories;
//! - `config_file`: reading, checking and upgrading the config; `lock`: the writer lock and the
//!   free-space check a writer passes first;
//! - `recovery`: crash recovery and the index's life cycle (open, sync, rebuild);
//! - `index` (RocksDB), `pack` (pack file I/O), `manifests` (manifest files), `registry` (names,
//!   specs and the commit point), `chunk` (stored bytes → verified bytes), `shared` (which chunks
//!   several files use), `fsutil` (opening untrusted store files, atomic writes);
//! - `sink` (the one way records reach new packs), `gc` and `scrub` (whole-store maintenance).
//!
//! The directory layout is drawn in `paths`.

pub(crate) mod append;
pub mod catalog;
pub mod chunk;
mod config_file;
pub mod fsutil;
pub mod gc;
pub mod index;
mod lock;
pub mod manifests;
pub mod pack;
pub mod paths;
pub mod recovery;
pub mod registry;
pub mod scrub;
pub mod shared;
pub mod sink;

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::Flock;

use crate::error::{Error, IoContext, Result};
use crate::format::STORE_FORMAT_VERSION;
use crate::format::config::{
    self, CONFIG_FORMAT_TAG, ChunkingParams, CompressionParams, StoreConfig,
};
use crate::format::manifest::Manifest;
use crate::format::pack::RecordHeader;
use crate::format::registry::Registry;
use crate::format::trust::TrustPolicy;
use crate::id::{ChunkId, ManifestId, PackId, StoreId, random_bytes};
use crate::trust::policy::Keyring;
use chunk::Check;
use fsutil::write_atomic;
use index::{Index, Location};
use manifests::Manifests;
use pack::PackFiles;
use paths::StorePaths;
use recovery::ReaderIndex;

pub use config_file::{decode_config, read_config};
use lock::{require_free_space, take_writer_lock};
use shared::SharedChunks;

/// Default size at which a pack is sealed: far below FAT's 4 GiB file limit, small enough that
/// `gc` rewrites and interrupted transfers stay cheap, large enough that a 70 GB model is ~300 files.
pub const DEFAULT_PACK_TARGET_BYTES: u64 = 256 << 20;
/// Default compression policy: zstd level 1 (fast to decode), kept only if it saves 3% (Q8_0
/// blocks, grouped, save about 4%; plain zstd on them about 3%).
pub const DEFAULT_COMPRESSION: CompressionParams = CompressionParams {
    zstd_level: 1,
    min_saving_percent: 3,
};

/// Whether a store is opened to read or to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading only; nothing is written to the store (it may be on read-only media).
    Read,
    /// Reading and writing; takes the store's writer lock.
    Write,
}

/// Parameters of a new store.
#[derive(Debug, Clone, Copy)]
pub struct InitOptions {
    /// Content-defined chunking sizes.
    pub chunking: ChunkingParams,
    /// Pack seal size.
    pub pack_target_bytes: u64,
    /// Compression policy.
    pub compression: CompressionParams,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunking: crate::chunker::DEFAULT_CHUNKING,
            pack_target_bytes: DEFAULT_PACK_TARGET_BYTES,
            compression: DEFAULT_COMPRESSION,
        }
    }
}

/// What `Store::init` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitOutcome {
    /// A new store was created.
    Created,
    /// A store of a compatible format was already there; nothing changed.
    AlreadyExists,
}

/// An open index and where it came from.
#[derive(Clone)]
struct IndexView {
    index: Arc<Index>,
    /// Whether this is a reader's private copy in the per-machine cache (see `recovery`).
    in_cache: bool,
}

impl From<ReaderIndex> for IndexView {
    fn from(opened: ReaderIndex) -> IndexView {
        IndexView {
            index: Arc::new(opened.index),
            in_cache: opened.in_cache,
        }
    }
}

/// An open store.
pub struct Store {
    paths: StorePaths,
    config: StoreConfig,
    access: Access,
    /// The index, once open: a writer opens it with the store, a reader on its first chunk
    /// lookup (listing models never needs it). Behind a lock so a reader can swap in a fresh
    /// snapshot when a writer moved chunks (`gc`) after this process opened it.
    index: RwLock<Option<IndexView>>,
    packs: PackFiles,
    manifests: Manifests,
    /// Chunks more than one file uses, once computed ([`Store::set_shared_chunks`]); until then
    /// every chunk's pack pages are kept in the page cache.
    shared: RwLock<Option<Arc<SharedChunks>>>,
    /// Held for the life of a writable store; `None` for readers.
    _writer_lock: Option<Flock<File>>,
}

impl Store {
    /// Creates a store at `root` (idempotent on an existing store of a format this build reads).
    pub fn init(root: &Path, options: InitOptions) -> Result<InitOutcome> {
        let paths = StorePaths::new(root);
        if paths.config().exists() {
            read_config(root)?;
            return Ok(InitOutcome::AlreadyExists);
        }
        crate::chunker::Chunker::validate(&options.chunking).map_err(|reason| Error::BadInput {
            path: root.to_owned(),
            reason,
        })?;
        std::fs::create_dir_all(root).at(root)?;
        require_free_space(&paths)?;
        for dir in [paths.packs(), paths.manifests()] {
            std::fs::create_dir_all(&dir).at(&dir)?;
        }
        drop(Index::open_writable(&paths.index())?);
        let config = new_config(options);
        // The config is written last: a store exists once its config does.
        write_atomic(&paths.config(), &config::encode(&config))?;
        Ok(InitOutcome::Created)
    }

    /// Opens the store at `root`.
    ///
    /// A writer takes the lock, raises an older store's config to this build's version, keeps the
    /// verified chunks of packs a crashed writer left unsealed and indexes sealed packs the index lacks. A reader
    /// writes nothing; if the store's index is missing or damaged it rebuilds one in the
    /// per-machine cache (`$XDG_CACHE_HOME/modelfs/<store id>/index`).
    pub fn open(root: &Path, access: Access) -> Result<Store> {
        let paths = StorePaths::new(root);
        let config = read_config(root)?;
        let (index, writer_lock) = match access {
            Access::Write => {
                for dir in [paths.packs(), paths.manifests()] {
                    fsutil::check_real_dir(&dir)?;
                }
                let lock = take_writer_lock(&paths)?;
                require_free_space(&paths)?;
                recovery::remove_temp_files(&paths)?;
                config_file::upgrade(&paths, &config)?;
                recovery::salvage_unsealed_packs(&paths.packs())?;
                let index = IndexView {
                    index: Arc::new(recovery::open_writer_index(&paths)?),
                    in_cache: false,
                };
                (Some(index), Some(lock))
            }
            Access::Read => (None, None),
        };
        Ok(Store {
            packs: PackFiles::new(paths.packs()),
            manifests: Manifests::new(paths.manifests()),
            paths,
            config,
            access,
            index: RwLock::new(index),
            shared: RwLock::new(None),
            _writer_lock: writer_lock,
        })
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.paths.root
    }

    /// The store's fixed parameters.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub(crate) fn packs_dir(&self) -> &Path {
        self.packs.dir()
    }

    pub(crate) fn packs(&self) -> &PackFiles {
        &self.packs
    }

    /// The index, opened now if this reader has not needed it before.
    pub(crate) fn index(&self) -> Result<Arc<Index>> {
        if let Some(view) = self.index.read().expect("index lock poisoned").as_ref() {
            return Ok(view.index.clone());
        }
        let mut slot = self.index.write().expect("index lock poisoned");
        if let Some(view) = slot.as_ref() {
            return Ok(view.index.clone());
        }
        let view = IndexView::from(recovery::open_reader_index(&self.paths, &self.config)?);
        let index = view.index.clone();
        *slot = Some(view);
        Ok(index)
    }

    pub(crate) fn require_writer(&self) -> Result<()> {
        match self.access {
            Access::Write => Ok(()),
            Access::Read => Err(Error::ReadOnlyStore(self.root().to_owned())),
        }
    }

    /// Path of the registry file.
    pub fn registry_path(&self) -> std::path::PathBuf {
        self.paths.registry()
    }

    /// The store's registry.
    pub fn registry(&self) -> Result<Registry> {
        registry::load(&self.paths.registry())
    }

    /// Applies `change` to the registry and commits it atomically (writers only).
    pub fn update_registry<T>(&self, change: impl FnOnce(&mut Registry) -> Result<T>) -> Result<T> {
        self.require_writer()?;
        let path = self.paths.registry();
        let mut registry = registry::load(&path)?;
        let result = change(&mut registry)?;
        // The catalog first: a copy of the store taken at any moment lists every pack the
        // registry's models need.
        self.write_catalog(registry.generation + 1)?;
        registry::save(&path, &mut registry)?;
        Ok(result)
    }

    /// The store's trust policy (empty if it has none).
    pub fn trust_policy(&self) -> Result<TrustPolicy> {
        crate::trust::policy::load(&self.paths.trust())
    }

    /// The store's trusted keys, parsed, ready to check signatures.
    pub fn keyring(&self) -> Result<Keyring> {
        Keyring::new(&self.paths.trust(), &self.trust_policy()?)
    }

    /// Applies `change` to the trust policy and writes it atomically (writers only).
    pub fn update_trust<T>(&self, change: impl FnOnce(&mut TrustPolicy) -> Result<T>) -> Result<T> {
        self.require_writer()?;
        let mut policy = self.trust_policy()?;
        let result = change(&mut policy)?;
        crate::trust::policy::save(&self.paths.trust(), &policy)?;
        Ok(result)
    }

    /// Where the store's files are.
    pub fn paths(&self) -> &StorePaths {
        &self.paths
    }

    /// Loads and checks one of the store's manifests.
    pub fn manifest(&self, id: &ManifestId) -> Result<Manifest> {
        self.manifests.load(id)
    }

    /// Stores a manifest (no-op if an intact identical one exists); returns its id and whether it
    /// was written now.
    pub fn put_manifest(&self, manifest: &Manifest) -> Result<(ManifestId, bool)> {
        self.require_writer()?;
        self.manifests.put(manifest)
    }

    /// The store's manifest files.
    pub(crate) fn manifests(&self) -> &Manifests {
        &self.manifests
    }

    /// Looks up chunk locations in the index, in the order given.
    pub fn locate(&self, ids: &[ChunkId]) -> Result<Vec<Option<Location>>> {
        self.index()?.get_many(ids)
    }

    /// Picks up chunks a writer moved or added since this reader opened the index: a reader of
    /// the store's own index opens a fresh snapshot, one with a private copy brings it up to date.
    /// A writer sees its own index as it is.
    pub fn refresh(&self) -> Result<()> {
        if self.access == Access::Write {
            return Ok(());
        }
        let current = self.index.read().expect("index lock poisoned").clone();
        match current {
            // Not opened yet: the first lookup will open the current state.
            None => Ok(()),
            Some(view) if view.in_cache && view.index.is_writable() => {
                recovery::sync_index_with_packs(&view.index, self.packs.dir())
            }
            Some(view) if view.in_cache => Ok(()),
            Some(_) => {
                let fresh = recovery::open_reader_index(&self.paths, &self.config)?;
                *self.index.write().expect("index lock poisoned") = Some(fresh.into());
                Ok(())
            }
        }
    }

    /// Reads chunk `id` from `location` into `dst` (exactly its decoded length) through
    /// [`chunk::load`]: decoded, and verified unless `check` is [`Check::Trust`]; `stored` is shown
    /// the payload as stored. Pack pages of chunks no other file shares are dropped behind the read,
    /// so the mounted file's pages are the only cached copy.
    pub fn read_chunk(
        &self,
        id: &ChunkId,
        location: &Location,
        dst: &mut [u8],
        check: Check,
        stored: impl FnOnce(&[u8]),
    ) -> Result<()> {
        chunk::load(
            id,
            location,
            dst,
            check,
            |buf| self.packs.read_payload(location, buf),
            stored,
        )?;
        if !self.keeps_pages(id) {
            self.packs.drop_behind(location);
        }
        Ok(())
    }

    /// Reads chunk `id`'s record at `location`, verified, for copying into another pack: returns
    /// its header and leaves the payload as stored in `payload`. `decoded` is scratch space.
    pub fn read_record(
        &self,
        id: &ChunkId,
        location: &Location,
        decoded: &mut Vec<u8>,
        payload: &mut Vec<u8>,
    ) -> Result<RecordHeader> {
        decoded.resize(location.raw_len as usize, 0);
        self.read_chunk(id, location, decoded, Check::Verify, |stored| {
            payload.clear();
            payload.extend_from_slice(stored);
        })?;
        Ok(chunk::record_header(id, location))
    }

    /// Tells the read path which chunks several files share: their pack pages stay cached for
    /// the next file, the others' are dropped once read.
    pub fn set_shared_chunks(&self, shared: SharedChunks) {
        *self.shared.write().expect("shared set lock poisoned") = Some(Arc::new(shared));
    }

    fn keeps_pages(&self, id: &ChunkId) -> bool {
        self.shared
            .read()
            .expect("shared set lock poisoned")
            .as_ref()
            .is_none_or(|s| s.contains(id))
    }

    /// Rebuilds the index of the store at `root` from its packs alone, under the writer lock, and
    /// returns the number of packs indexed. The old index is replaced only once the new one is complete.
    pub fn rebuild_index(root: &Path) -> Result<usize> {
        read_config(root)?;
        let paths = StorePaths::new(root);
        let _lock = take_writer_lock(&paths)?;
        require_free_space(&paths)?;
        recovery::salvage_unsealed_packs(&paths.packs())?;
        recovery::rebuild_index_at(&paths.index(), &paths.packs())?;
        catalog::write(&paths, registry::load(&paths.registry())?.generation)?;
        Ok(Index::open_read_only(&paths.index())?.packs()?.len())
    }

    /// Rewrites `catalog.json` from the packs as they are now (writers only).
    pub fn write_catalog(&self, generation: u64) -> Result<()> {
        self.require_writer()?;
        catalog::write(&self.paths, generation)
    }

    /// Sizes of all sealed pack files, by id.
    pub(crate) fn pack_files(&self) -> Result<Vec<(PackId, u64)>> {
        recovery::list_sealed_packs(self.packs.dir())
    }
}

/// The config of a new store made with `options`: a fresh store id, created now.
pub fn new_config(options: InitOptions) -> StoreConfig {
    StoreConfig {
        format: CONFIG_FORMAT_TAG.to_owned(),
        version: STORE_FORMAT_VERSION,
        store_id: StoreId(random_bytes()),
        created_unix: now_unix(),
        chunking: options.chunking,
        pack_target_bytes: options.pack_target_bytes,
        compression: options.compression,
    }
}

/// Current time in Unix seconds, as recorded in the config and the registry.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
