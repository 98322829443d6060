//! The content-addressed chunk store and the layout of its directory.
//!
//! Owns [`Store`]: creating and opening a store, the writer lock, recovery after a crash, locating
//! and reading verified chunks, manifests and the registry. Submodules own one piece each:
//! `index` (RocksDB), `pack` (pack file I/O), `cache` (decoded chunks), `registry` (names and the
//! commit point), `fsutil` (atomic writes), `file` (reading a file through its manifest),
//! `gc` and `scrub` (whole-store maintenance). No FUSE, CLI or printing here.
//!
//! ```text
//! STORE/modelfs.json         config: format version, store id, chunking parameters (written once)
//! STORE/registry.json        models → versions → files → manifest ids (atomically replaced)
//! STORE/manifests/<id>       file manifests, named by their blake3
//! STORE/packs/<id>.pack      sealed packs; <id>.pack.tmp while being written
//! STORE/index/               RocksDB: chunk id → pack location (derived; rebuildable from packs)
//! STORE/lock                 flock'ed by the one writer
//! ```

pub mod cache;
pub mod file;
pub mod fsutil;
pub mod gc;
pub mod index;
mod layers;
pub mod pack;
pub mod registry;
pub mod scrub;
pub mod shared;
pub mod sink;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use tracing::{info, warn};

use crate::codec;
use crate::error::{Error, IoContext, Result};
use crate::format::config::{
    CONFIG_FILE_NAME, CONFIG_FORMAT_TAG, ChunkingParams, CompressionParams, StoreConfig,
};
use crate::format::manifest::Manifest;
use crate::format::pack::{Codec, RECORD_HEADER_LEN, RecordHeader};
use crate::format::registry::Registry;
use crate::format::{STORE_FORMAT_VERSION, check_version};
use crate::id::{ChunkId, ManifestId, PackId, StoreId, random_bytes};
use cache::ChunkCache;
use fsutil::write_atomic;
use index::{Index, Location};
pub use layers::Source;
use pack::{PACK_EXTENSION, PackFiles, UNSEALED_SUFFIX};
use sink::PackSink;

const PACKS_DIR: &str = "packs";
const MANIFESTS_DIR: &str = "manifests";
const INDEX_DIR: &str = "index";
const LOCK_FILE: &str = "lock";

/// Default size at which a pack is sealed: far below FAT's 4 GiB file limit, small enough that
/// `gc` rewrites and interrupted transfers stay cheap, large enough that a 70 GB model is ~300 files.
pub const DEFAULT_PACK_TARGET_BYTES: u64 = 256 << 20;
/// Default compression policy: zstd level 1 (fast to decode), kept only if it saves 3% (Q8_0
/// blocks, grouped, save about 4%; plain zstd on them about 3%).
pub const DEFAULT_COMPRESSION: CompressionParams = CompressionParams {
    zstd_level: 1,
    min_saving_percent: 3,
};
/// Default decoded-chunk cache size for readers.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// Whether a chunk read checks the bytes against the chunk id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Hash the decoded bytes and compare with the id.
    Verify,
    /// Skip the hash: this reader already verified the chunk at this location.
    Trust,
}

thread_local! {
    /// Per-thread buffer for compressed payloads on their way to being decoded.
    pub(crate) static PAYLOAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Per-thread buffer for chunks decoded only to be checked.
    static DECODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

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
struct IndexView {
    index: Arc<Index>,
    /// Whether this is a reader's own copy in the per-machine cache (the store's own index was
    /// unusable); such a copy is kept current by indexing new packs, not by reopening.
    in_cache: bool,
}

/// An open store.
pub struct Store {
    root: PathBuf,
    config: StoreConfig,
    access: Access,
    /// The index, once open: a writer opens it with the store, a reader on its first chunk
    /// lookup (listing models never needs it). Behind a lock so a reader can swap in a fresh
    /// snapshot when a writer moved chunks (`gc`) after this process opened it.
    index: RwLock<Option<IndexView>>,
    packs: PackFiles,
    cache: ChunkCache,
    /// Further sources read after this store (`mount --source`), in order; see `layers`.
    sources: Vec<Box<dyn Source>>,
    /// With `mount --fill`: where chunks read from sources are copied into this store.
    filler: Option<Mutex<PackSink>>,
    /// Chunks more than one file uses, once computed (`refresh_shared_chunks`); until then every
    /// chunk's pack pages are kept in the page cache.
    shared: RwLock<Option<Arc<shared::SharedChunks>>>,
    /// Held for the life of a writable store; `None` for readers.
    _writer_lock: Option<Flock<File>>,
}

impl Store {
    /// Creates a store at `root` (idempotent on an existing store of a format this build reads).
    pub fn init(root: &Path, options: InitOptions) -> Result<InitOutcome> {
        if root.join(CONFIG_FILE_NAME).exists() {
            read_config(root)?;
            return Ok(InitOutcome::AlreadyExists);
        }
        crate::chunker::Chunker::validate(&options.chunking).map_err(|reason| Error::BadInput {
            path: root.to_owned(),
            reason,
        })?;
        for dir in [
            root.to_owned(),
            root.join(PACKS_DIR),
            root.join(MANIFESTS_DIR),
        ] {
            std::fs::create_dir_all(&dir).at(&dir)?;
        }
        drop(Index::open_writable(&root.join(INDEX_DIR))?);
        let config = StoreConfig {
            format: CONFIG_FORMAT_TAG.to_owned(),
            version: STORE_FORMAT_VERSION,
            store_id: StoreId(random_bytes()),
            created_unix: now_unix(),
            chunking: options.chunking,
            pack_target_bytes: options.pack_target_bytes,
            compression: options.compression,
        };
        let bytes = serde_json::to_vec_pretty(&config)
            .map_err(std::io::Error::other)
            .at(root)?;
        // The config is written last: a store exists once its config does.
        write_atomic(&root.join(CONFIG_FILE_NAME), &bytes)?;
        Ok(InitOutcome::Created)
    }

    /// Opens the store at `root`.
    ///
    /// A writer takes the lock, deletes packs a crashed writer left unsealed and indexes sealed
    /// packs the index lacks. A reader writes nothing; if the store's index is missing or damaged it
    /// rebuilds one in the per-machine cache (`$XDG_CACHE_HOME/modelfs/<store id>/index`).
    pub fn open(root: &Path, access: Access) -> Result<Store> {
        let config = read_config(root)?;
        let packs_dir = root.join(PACKS_DIR);
        let (index, writer_lock) = match access {
            Access::Write => {
                let lock = take_writer_lock(root)?;
                upgrade_config(root, &config)?;
                remove_unsealed_packs(&packs_dir)?;
                let index = open_or_rebuild_writable_index(&root.join(INDEX_DIR), &packs_dir)?;
                index_unindexed_packs(&index, &packs_dir)?;
                (
                    Some(IndexView {
                        index: Arc::new(index),
                        in_cache: false,
                    }),
                    Some(lock),
                )
            }
            Access::Read => (None, None),
        };
        Ok(Store {
            root: root.to_owned(),
            config,
            access,
            index: RwLock::new(index),
            packs: PackFiles::new(packs_dir),
            cache: ChunkCache::new(DEFAULT_CACHE_BYTES),
            shared: RwLock::new(None),
            sources: Vec::new(),
            filler: None,
            _writer_lock: writer_lock,
        })
    }

    /// Replaces the decoded-chunk cache with one of `bytes` capacity.
    pub fn set_cache_capacity(&mut self, bytes: usize) {
        self.cache = ChunkCache::new(bytes);
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
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
        let (index, in_cache) = open_reader_index(&self.root, &self.config)?;
        let index = Arc::new(index);
        *slot = Some(IndexView {
            index: index.clone(),
            in_cache,
        });
        Ok(index)
    }

    fn require_writer(&self) -> Result<()> {
        match self.access {
            Access::Write => Ok(()),
            Access::Read => Err(Error::ReadOnlyStore(self.root.clone())),
        }
    }

    /// Path of the registry file.
    pub fn registry_path(&self) -> PathBuf {
        self.root.join(registry::REGISTRY_FILE_NAME)
    }

    /// This store's own registry, without attached sources.
    fn own_registry(&self) -> Result<Registry> {
        registry::load(&self.registry_path())
    }

    /// Applies `change` to the registry and commits it atomically (writers only).
    pub fn update_registry<T>(&self, change: impl FnOnce(&mut Registry) -> Result<T>) -> Result<T> {
        self.require_writer()?;
        let path = self.registry_path();
        let mut registry = registry::load(&path)?;
        let result = change(&mut registry)?;
        registry::save(&path, &mut registry)?;
        Ok(result)
    }

    fn manifest_path(&self, id: &ManifestId) -> PathBuf {
        self.root.join(MANIFESTS_DIR).join(id.to_hex())
    }

    /// Loads and checks a manifest of this store itself.
    fn own_manifest(&self, id: &ManifestId) -> Result<Manifest> {
        let path = self.manifest_path(id);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingManifest(*id));
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        Manifest::decode(id, &bytes).map_err(|e| Error::corrupt(path, format!("manifest {e}")))
    }

    /// Stores a manifest (no-op if an intact identical one exists); returns its id and whether it
    /// was written now.
    pub fn put_manifest(&self, manifest: &Manifest) -> Result<(ManifestId, bool)> {
        self.require_writer()?;
        let bytes = manifest.encode();
        let id = ManifestId::of(&bytes);
        let created = self.own_manifest(&id).is_err();
        if created {
            write_atomic(&self.manifest_path(&id), &bytes)?;
        }
        Ok((id, created))
    }

    /// Ids of all manifest files present.
    pub(crate) fn manifest_ids(&self) -> Result<Vec<ManifestId>> {
        let dir = self.root.join(MANIFESTS_DIR);
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    pub(crate) fn remove_manifest(&self, id: &ManifestId) -> Result<()> {
        let path = self.manifest_path(id);
        std::fs::remove_file(&path).at(path)
    }

    /// Looks up chunk locations in this store's own index, in the order given.
    fn locate_own(&self, ids: &[ChunkId]) -> Result<Vec<Option<Location>>> {
        self.index()?.get_many(ids)
    }

    /// Opens a fresh view of this store's own index, so chunks moved by a writer since this
    /// reader opened it are found at their new place. Writers see their own index as it is.
    fn refresh_own_index(&self) -> Result<()> {
        if self.access == Access::Write {
            return Ok(());
        }
        let current = self
            .index
            .read()
            .expect("index lock poisoned")
            .as_ref()
            .map(|v| (v.index.clone(), v.in_cache));
        match current {
            // Not opened yet: the first lookup will open the current state.
            None => Ok(()),
            Some((index, true)) if index.is_writable() => {
                sync_index_with_packs(&index, self.packs.dir())
            }
            Some((_, true)) => Ok(()),
            Some((_, false)) => {
                let (fresh, in_cache) = open_reader_index(&self.root, &self.config)?;
                *self.index.write().expect("index lock poisoned") = Some(IndexView {
                    index: Arc::new(fresh),
                    in_cache,
                });
                Ok(())
            }
        }
    }

    /// Reads chunk `id` from `location` in this store's own packs into `dst` (exactly its decoded
    /// length), decoded, and verified against `id` unless `check` is [`Check::Trust`]. Raw chunks
    /// are read straight into `dst`; compressed ones through a per-thread buffer, which still holds
    /// the stored payload when this returns.
    fn read_own_chunk_into(
        &self,
        id: &ChunkId,
        location: &Location,
        dst: &mut [u8],
        check: Check,
    ) -> Result<()> {
        let bad = |reason: String| bad_chunk(id, location, reason);
        check_decoded_len(id, location, dst.len())?;
        let read = |payload: &mut [u8]| {
            self.packs
                .read_payload(location, payload)
                .map_err(|e| match e {
                    Error::Corrupt { reason, .. } => bad(reason),
                    other => other,
                })
        };
        match location.codec {
            Codec::Raw => read(dst)?,
            encoded => PAYLOAD.with_borrow_mut(|payload| {
                payload.resize(location.stored_len as usize, 0);
                read(payload)?;
                codec::decode_into(encoded, payload, dst).map_err(|e| bad(e.to_string()))
            })?,
        }
        if !self.keeps_pages(id) {
            self.packs.drop_behind(location);
        }
        if check == Check::Verify {
            codec::verify(id, dst).map_err(|e| bad(e.to_string()))?;
        }
        Ok(())
    }

    /// Reads the whole record of chunk `id` at `location` into `buf` (header, then payload as
    /// stored) and checks that it decodes to bytes hashing to `id`, so it can be copied into
    /// another pack as it is.
    pub fn read_verified_record(
        &self,
        id: &ChunkId,
        location: &Location,
        buf: &mut Vec<u8>,
    ) -> Result<RecordHeader> {
        let bad = |reason: String| bad_chunk(id, location, reason);
        let header = self.packs.read_record(location, buf).map_err(|e| match e {
            Error::Corrupt { reason, .. } => bad(reason),
            other => other,
        })?;
        if header.chunk_id != *id {
            return Err(bad(format!(
                "record holds chunk {}",
                header.chunk_id.short()
            )));
        }
        DECODED.with_borrow_mut(|decoded| {
            codec::decode_verified(&header, &buf[RECORD_HEADER_LEN..], decoded)
                .map_err(|e| bad(e.to_string()))
        })?;
        Ok(header)
    }

    /// Reads chunk `id` into `out` (resized to fit), decoded and verified.
    pub fn read_chunk(&self, id: &ChunkId, location: &Location, out: &mut Vec<u8>) -> Result<()> {
        out.resize(location.raw_len as usize, 0);
        self.read_chunk_into(id, location, out, Check::Verify)
    }

    /// The cached, verified bytes of chunk `id`, if the decoded-chunk cache holds them.
    pub fn chunk_from_cache(&self, id: &ChunkId) -> Option<Arc<[u8]>> {
        self.cache.get(id)
    }

    /// The verified bytes of chunk `id`, from the decoded-chunk cache or read and inserted.
    pub fn cached_chunk(&self, id: &ChunkId, location: &Location) -> Result<Arc<[u8]>> {
        if let Some(bytes) = self.cache.get(id) {
            return Ok(bytes);
        }
        // Built in place (a sized iterator lets `Arc` allocate once), not copied from a Vec.
        let mut bytes: Arc<[u8]> = std::iter::repeat_n(0u8, location.raw_len as usize).collect();
        let dst = Arc::get_mut(&mut bytes).expect("a new Arc has one owner");
        self.read_chunk_into(id, location, dst, Check::Verify)?;
        self.cache.insert(*id, bytes.clone());
        Ok(bytes)
    }

    /// Recomputes which chunks more than one file uses (loads every manifest; run it off the
    /// request path). Until the first call, pack pages are always kept.
    pub fn refresh_shared_chunks(&self) -> Result<()> {
        let shared = shared::SharedChunks::of_store(self)?;
        *self.shared.write().expect("shared set lock poisoned") = Some(Arc::new(shared));
        Ok(())
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
        let _lock = take_writer_lock(root)?;
        let packs_dir = root.join(PACKS_DIR);
        remove_unsealed_packs(&packs_dir)?;
        let path = root.join(INDEX_DIR);
        let rebuilt = path.with_extension("rebuild");
        drop(build_index_into(&rebuilt, &packs_dir)?);
        replace_dir(&rebuilt, &path)?;
        Ok(Index::open_read_only(&path)?.packs()?.len())
    }

    /// Sizes of all sealed pack files, by id.
    pub(crate) fn pack_files(&self) -> Result<Vec<(PackId, u64)>> {
        list_sealed_packs(self.packs.dir())
    }
}

/// The error for chunk `id` at `location` failing for `reason`.
fn bad_chunk(id: &ChunkId, location: &Location, reason: String) -> Error {
    Error::BadChunk {
        chunk: *id,
        pack: location.pack,
        offset: location.offset,
        reason,
    }
}

/// Checks that the index (or source) agrees with the manifest on a chunk's decoded length.
fn check_decoded_len(id: &ChunkId, location: &Location, len: usize) -> Result<()> {
    if len == location.raw_len as usize {
        return Ok(());
    }
    Err(bad_chunk(
        id,
        location,
        format!(
            "its record holds {} bytes, the manifest says {len}",
            location.raw_len
        ),
    ))
}

/// Current time in Unix seconds, as recorded in the config and the registry.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads and checks the config of the store at `root` without opening anything else.
pub fn read_config(root: &Path) -> Result<StoreConfig> {
    let path = root.join(CONFIG_FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotAStore(root.to_owned()));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::corrupt(&path, format!("store config is not JSON: {e}")))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(CONFIG_FORMAT_TAG) {
        return Err(Error::corrupt(&path, "not a modelfs store config"));
    }
    // Check the version before the rest, so a newer store is reported as newer, not as corrupt.
    let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
    check_version("store", &path, version, STORE_FORMAT_VERSION)?;
    serde_json::from_value(value).map_err(|e| Error::corrupt(&path, format!("store config: {e}")))
}

/// Raises an older store's config to the current version before anything newer is written into it.
fn upgrade_config(root: &Path, config: &StoreConfig) -> Result<()> {
    if config.version >= STORE_FORMAT_VERSION {
        return Ok(());
    }
    info!(
        from = config.version,
        to = STORE_FORMAT_VERSION,
        "upgrading the store format"
    );
    let upgraded = StoreConfig {
        version: STORE_FORMAT_VERSION,
        ..config.clone()
    };
    let bytes = serde_json::to_vec_pretty(&upgraded)
        .map_err(std::io::Error::other)
        .at(root)?;
    write_atomic(&root.join(CONFIG_FILE_NAME), &bytes)
}

fn take_writer_lock(root: &Path) -> Result<Flock<File>> {
    let path = root.join(LOCK_FILE);
    let file = match OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM)
            ) =>
        {
            return Err(Error::ReadOnlyStore(root.to_owned()));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        nix::errno::Errno::EWOULDBLOCK => Error::Locked(root.to_owned()),
        other => Error::io(&path, other.into()),
    })
}

fn list_sealed_packs(dir: &Path) -> Result<Vec<(PackId, u64)>> {
    let mut packs = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(stem) = name
            .to_str()
            .and_then(|n| n.strip_suffix(&format!(".{PACK_EXTENSION}")))
        else {
            continue;
        };
        if let Ok(id) = stem.parse::<PackId>() {
            packs.push((id, entry.metadata().at(entry.path())?.len()));
        }
    }
    packs.sort();
    Ok(packs)
}

fn remove_unsealed_packs(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(UNSEALED_SUFFIX))
        {
            warn!(pack = %entry.path().display(), "removing a pack left unsealed by an interrupted write");
            std::fs::remove_file(entry.path()).at(entry.path())?;
        }
    }
    Ok(())
}

/// The chunks of a pack: from its table, or by scanning its records if the table is damaged.
pub(crate) fn pack_entries(
    dir: &Path,
    id: &PackId,
) -> Result<Vec<crate::format::pack::TableEntry>> {
    let path = pack::pack_path(dir, id);
    match pack::read_table(&path, id) {
        Ok(entries) => Ok(entries),
        Err(Error::Corrupt { reason, .. }) => {
            warn!(pack = %path.display(), %reason, "pack table unusable; recovering chunks by scanning records");
            pack::scan_records(&path, id)
        }
        Err(e) => Err(e),
    }
}

fn index_unindexed_packs(index: &Index, dir: &Path) -> Result<()> {
    let known: std::collections::HashSet<PackId> =
        index.packs()?.into_iter().map(|(id, _)| id).collect();
    for (id, bytes) in list_sealed_packs(dir)? {
        if !known.contains(&id) {
            info!(pack = %id, "indexing a sealed pack the index did not list");
            index.add_pack(id, bytes, &pack_entries(dir, &id)?)?;
        }
    }
    Ok(())
}

/// Brings a reader's private index up to date: packs sealed since are indexed, rows of packs that
/// are gone (collected by `gc`) are dropped. Chunks a `gc` moved are re-pointed by their new pack.
fn sync_index_with_packs(index: &Index, dir: &Path) -> Result<()> {
    let on_disk: std::collections::HashSet<PackId> = list_sealed_packs(dir)?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    for (pack, _) in index.packs()? {
        if !on_disk.contains(&pack) {
            index.remove_pack(pack, &[])?;
        }
    }
    index_unindexed_packs(index, dir)
}

fn build_index_into(path: &Path, packs_dir: &Path) -> Result<Index> {
    if path.exists() {
        std::fs::remove_dir_all(path).at(path)?;
    }
    let index = Index::open_writable(path)?;
    index_unindexed_packs(&index, packs_dir)?;
    Ok(index)
}

fn replace_dir(new: &Path, old: &Path) -> Result<()> {
    let parked = old.with_extension("old");
    if parked.exists() {
        std::fs::remove_dir_all(&parked).at(&parked)?;
    }
    if old.exists() {
        std::fs::rename(old, &parked).at(old)?;
    }
    std::fs::rename(new, old).at(new)?;
    fsutil::fsync_dir(old.parent().expect("index has a parent"))?;
    if parked.exists() {
        std::fs::remove_dir_all(&parked).at(&parked)?;
    }
    Ok(())
}

fn open_or_rebuild_writable_index(path: &Path, packs_dir: &Path) -> Result<Index> {
    match Index::open_writable(path) {
        Ok(index) => Ok(index),
        Err(e @ Error::NewerFormat { .. }) => Err(e),
        Err(e) => {
            warn!(error = %e, "index unusable; rebuilding it from the packs");
            let rebuilt = path.with_extension("rebuild");
            drop(build_index_into(&rebuilt, packs_dir)?);
            replace_dir(&rebuilt, path)?;
            Index::open_writable(path)
        }
    }
}

/// This machine's modelfs cache directory: `$XDG_CACHE_HOME/modelfs` (`~/.cache/modelfs`).
pub fn machine_cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("modelfs")
}

/// Per-machine cache directory for a store: `$XDG_CACHE_HOME/modelfs/<store id>`.
pub fn machine_cache_dir(store_id: &StoreId) -> PathBuf {
    machine_cache_root().join(store_id.to_hex())
}

/// Opens the index a reader uses: the store's own, or (if that is unusable) a private copy in the
/// per-machine cache, built or brought up to date from the packs. Returns whether it is the copy.
fn open_reader_index(root: &Path, config: &StoreConfig) -> Result<(Index, bool)> {
    let e = match Index::open_read_only(&root.join(INDEX_DIR)) {
        Ok(index) => return Ok((index, false)),
        Err(e @ Error::NewerFormat { .. }) => return Err(e),
        Err(e) => e,
    };
    let cached = machine_cache_dir(&config.store_id).join(INDEX_DIR);
    warn!(error = %e, cache = %cached.display(), "store index unusable; using a copy in the local cache");
    if let Some(parent) = cached.parent() {
        std::fs::create_dir_all(parent).at(parent)?;
    }
    let packs_dir = root.join(PACKS_DIR);
    match Index::open_writable(&cached) {
        Ok(index) => {
            sync_index_with_packs(&index, &packs_dir)?;
            Ok((index, true))
        }
        // Another process of this machine keeps the copy current; read its latest state.
        Err(_) if cached.join("CURRENT").exists() => Ok((Index::open_read_only(&cached)?, true)),
        Err(_) => Ok((build_index_into(&cached, &packs_dir)?, true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{add_model, random_bytes, read_model, small_store};

    fn store_with_model(dir: &Path, bytes: &[u8]) -> PathBuf {
        let root = dir.join("store");
        let store = small_store(&root);
        add_model(&store, dir, "m", bytes);
        root
    }

    #[test]
    fn index_rebuilds_from_packs_alone() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = random_bytes(1, 2_000_000);
        let root = store_with_model(dir.path(), &bytes);
        let packs_before = Store::open(&root, Access::Read)
            .unwrap()
            .index()
            .unwrap()
            .packs()
            .unwrap()
            .len();
        assert!(packs_before > 1, "the test wants several packs");
        std::fs::remove_dir_all(root.join(INDEX_DIR)).unwrap();
        assert_eq!(Store::rebuild_index(&root).unwrap(), packs_before);
        assert_eq!(
            read_model(&Store::open(&root, Access::Read).unwrap(), "m"),
            bytes
        );
    }

    #[test]
    fn readers_of_a_store_without_index_rebuild_one_in_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = random_bytes(2, 300_000);
        let root = store_with_model(dir.path(), &bytes);
        std::fs::remove_dir_all(root.join(INDEX_DIR)).unwrap();
        // SAFETY of the test: XDG_CACHE_HOME is only read by this process's store code.
        unsafe { std::env::set_var("XDG_CACHE_HOME", dir.path().join("cache")) };
        let store = Store::open(&root, Access::Read).unwrap();
        assert_eq!(read_model(&store, "m"), bytes);
        assert!(
            !root.join(INDEX_DIR).exists(),
            "a reader must not write to the store"
        );
    }

    #[test]
    fn writers_clean_up_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = random_bytes(3, 500_000);
        let root = store_with_model(dir.path(), &bytes);
        // A writer died mid-pack, and another after sealing a pack but before indexing it.
        let torn = root
            .join(PACKS_DIR)
            .join(format!("{}{UNSEALED_SUFFIX}", PackId([5; 16])));
        std::fs::write(&torn, b"MFSPACK\0partial").unwrap();
        let orphan_bytes = random_bytes(4, 100_000);
        let orphan = {
            let mut writer = pack::PackWriter::create(&root.join(PACKS_DIR)).unwrap();
            let id = ChunkId::of(&orphan_bytes);
            let chunk = crate::codec::Encoder::new(DEFAULT_COMPRESSION)
                .unwrap()
                .encode(id, &orphan_bytes, None);
            writer
                .append(chunk.header(), chunk.payload(&orphan_bytes))
                .unwrap();
            (writer.seal().unwrap().id, id)
        };
        let store = Store::open(&root, Access::Write).unwrap();
        assert!(!torn.exists());
        assert_eq!(
            store.locate(&[orphan.1]).unwrap()[0].map(|l| l.pack),
            Some(orphan.0)
        );
        assert_eq!(read_model(&store, "m"), bytes);
    }

    #[test]
    fn a_version_1_store_is_read_as_is_and_upgraded_by_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = random_bytes(9, 100_000);
        let root = store_with_model(dir.path(), &bytes);
        let config_path = root.join(CONFIG_FILE_NAME);
        let v1 = std::fs::read_to_string(&config_path)
            .unwrap()
            .replace("\"version\": 2", "\"version\": 1");
        std::fs::write(&config_path, &v1).unwrap();
        assert_eq!(
            read_model(&Store::open(&root, Access::Read).unwrap(), "m"),
            bytes
        );
        assert_eq!(
            std::fs::read_to_string(&config_path).unwrap(),
            v1,
            "readers change nothing"
        );
        drop(Store::open(&root, Access::Write).unwrap());
        assert_eq!(read_config(&root).unwrap().version, STORE_FORMAT_VERSION);
    }

    #[test]
    fn one_writer_at_a_time_and_newer_formats_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = store_with_model(dir.path(), b"abc");
        let _writer = Store::open(&root, Access::Write).unwrap();
        assert!(matches!(
            Store::open(&root, Access::Write),
            Err(Error::Locked(_))
        ));
        assert!(
            Store::open(&root, Access::Read).is_ok(),
            "readers never wait for the writer"
        );

        let config_path = root.join(CONFIG_FILE_NAME);
        let text = std::fs::read_to_string(&config_path)
            .unwrap()
            .replace("\"version\": 2", "\"version\": 99");
        std::fs::write(&config_path, text).unwrap();
        let err = Store::open(&root, Access::Read).err().unwrap();
        assert!(matches!(err, Error::NewerFormat { found: 99, .. }), "{err}");
    }
}
