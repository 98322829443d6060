//! A store published over HTTP — by `modelfs serve` on a peer, or as plain files by any web server
//! (nginx, a bucket's web endpoint) — as a [`Source`].
//!
//! Owns [`Remote`], written over [`Files`] (a web server today, an object store alike). It reads
//! the store's own files and nothing else: `modelfs.json`,
//! `registry.json`, `catalog.json`, `manifests/<id>` and ranges of `packs/<id>.pack`. Chunks are
//! located by fetching pack tables (one ranged GET of each pack's tail, newest packs first, only
//! until every chunk asked for is found). Chunk bytes come in two ways:
//! - `read_run` (import and pull): one ranged GET per run of neighbouring records;
//! - `read_stored` (a lazy mount): through `Blocks`, a small cache of aligned pack blocks
//!   fetched once however many readers want them (single flight), with the next blocks fetched
//!   ahead when a reader walks a pack in order.
//!
//! Nothing a remote sends is trusted: every file is bounded before it is read, manifests are
//! checked against their ids, tables against their trailers, and chunks against their ids in
//! `store::chunk::load` by the caller.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::error::{Error, Result};
use crate::format::catalog::{self, Catalog, MAX_CATALOG_LEN, PackEntry};
use crate::format::config::{MAX_CONFIG_LEN, StoreConfig};
use crate::format::manifest::{MAX_MANIFEST_LEN, Manifest};
use crate::format::pack::{self, RECORD_HEADER_LEN};
use crate::format::registry::{MAX_REGISTRY_LEN, Registry};
use crate::id::{ChunkId, ManifestId, PackId};
use crate::peer::client::{Http, HttpOptions};
use crate::peer::files::Files;
use crate::source::{Place, Source};
use crate::store::decode_config;
use crate::store::index::Location;
use crate::store::paths::CATALOG_FILE;

/// A store read over HTTP.
pub struct Remote {
    files: Arc<dyn Files>,
    config: StoreConfig,
    state: RwLock<State>,
    blocks: Arc<Blocks>,
    /// When the registry and catalog were last fetched; `registry` fetches them again once this
    /// is older than [`REFRESH_EVERY`], so a mount sees models published after it started.
    fetched: Mutex<Instant>,
}

/// Table rows kept in memory before only the rows asked for are kept (about 400 MiB; a store of
/// 256 GiB at the default chunk size).
const MAX_LOCATED: usize = 4 << 20;

/// How old the remote's catalog may be when a chunk is not found in it before it is fetched
/// again.
const CATALOG_STALE: Duration = Duration::from_secs(2);

/// How old the remote's registry may get before it is fetched again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// What is known of the remote store; replaced piecewise by `refresh`.
struct State {
    registry: Registry,
    catalog: Catalog,
    /// Packs whose tables have been fetched.
    tables: HashSet<PackId>,
    /// Where the fetched tables put each chunk.
    chunks: HashMap<ChunkId, Location>,
}

impl Remote {
    /// Opens the store published on a web server at `url`.
    pub fn open(url: &str, options: HttpOptions) -> Result<Remote> {
        Remote::over(Arc::new(Http::new(url, options)?))
    }

    /// Opens the store whose files `files` reads: fetches and checks its config, registry and
    /// catalog.
    pub fn over(files: Arc<dyn Files>) -> Result<Remote> {
        let bytes = files
            .get("modelfs.json", MAX_CONFIG_LEN)?
            .ok_or_else(|| Error::Remote {
                url: files.base().to_owned(),
                reason: "is not a modelfs store (no modelfs.json): check the URL".into(),
            })?;
        let config = decode_config(Path::new(&files.url("modelfs.json")), &bytes)?;
        let (registry, catalog) = fetch_lists(files.as_ref())?;
        Ok(Remote {
            blocks: Arc::new(Blocks::new(files.clone())),
            files,
            config,
            state: RwLock::new(State {
                registry,
                catalog,
                tables: HashSet::new(),
                chunks: HashMap::new(),
            }),
            fetched: Mutex::new(Instant::now()),
        })
    }

    /// The remote store's config.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Fetches tables (newest pack first) until every chunk in `wanted` is located or every
    /// table was read. Tables are kept whole up to [`MAX_LOCATED`] rows in all; past that only
    /// the rows asked for are kept (and the table is read again when other rows are wanted), so
    /// a remote listing huge tables cannot grow memory without bound.
    fn load_tables(&self, wanted: &[ChunkId]) -> Result<()> {
        let mut scanned = HashSet::new();
        let mut wanted_set: Option<HashSet<ChunkId>> = None;
        loop {
            let next = {
                let state = self.state.read().expect("remote state lock poisoned");
                if wanted.iter().all(|id| state.chunks.contains_key(id)) {
                    return Ok(());
                }
                state
                    .catalog
                    .packs
                    .iter()
                    .rev()
                    .find(|p| !state.tables.contains(&p.id) && !scanned.contains(&p.id))
                    .copied()
            };
            let Some(pack) = next else {
                // Every table was read and some chunks are still missing: the remote may have
                // sealed packs since its catalog was fetched (a peer filling from elsewhere).
                if self.older_than(CATALOG_STALE) {
                    self.refresh()?;
                    continue;
                }
                return Ok(());
            };
            scanned.insert(pack.id);
            let entries = self.fetch_table(&pack)?;
            let mut state = self.state.write().expect("remote state lock poisoned");
            let keep_all = state.chunks.len() + entries.len() <= MAX_LOCATED;
            if keep_all {
                state.tables.insert(pack.id);
            }
            let wanted_set = wanted_set.get_or_insert_with(|| wanted.iter().copied().collect());
            for entry in entries {
                let id = entry.header.chunk_id;
                if keep_all || wanted_set.contains(&id) {
                    state
                        .chunks
                        .entry(id)
                        .or_insert_with(|| Location::of_entry(pack.id, &entry));
                }
            }
        }
    }

    /// Whether the registry and catalog were fetched longer than `age` ago; if so, they count as
    /// fetched now (the caller fetches them), so nothing refetches them more often than that.
    fn older_than(&self, age: Duration) -> bool {
        let mut fetched = self.fetched.lock().expect("remote refresh lock poisoned");
        let stale = fetched.elapsed() >= age;
        if stale {
            *fetched = Instant::now();
        }
        stale
    }

    fn fetch_table(&self, pack: &PackEntry) -> Result<Vec<pack::TableEntry>> {
        let path = pack_url_path(&pack.id);
        let mut tail = vec![0u8; pack.tail_len() as usize];
        self.files.get_range(&path, pack.table_offset, &mut tail)?;
        let entries = pack::decode_tail(&tail, pack.bytes).map_err(|reason| Error::Remote {
            url: self.files.url(&path),
            reason,
        })?;
        self.blocks.set_data_end(pack.id, pack.table_offset);
        debug!(pack = %pack.id, entries = entries.len(), "fetched a pack table");
        Ok(entries)
    }
}

impl Source for Remote {
    fn describe(&self) -> String {
        self.files.base().to_owned()
    }

    fn registry(&self) -> Result<Registry> {
        if self.older_than(REFRESH_EVERY)
            && let Err(e) = self.refresh()
        {
            // A peer that went away keeps its last registry: its chunks may still be elsewhere.
            warn!(source = %self.files.base(), error = %e, "cannot fetch the registry again; keeping the last one");
        }
        Ok(self
            .state
            .read()
            .expect("remote state lock poisoned")
            .registry
            .clone())
    }

    fn manifest(&self, id: &ManifestId) -> Result<Manifest> {
        let path = format!("manifests/{}", id.to_hex());
        let bytes = self
            .files
            .get(&path, MAX_MANIFEST_LEN)?
            .ok_or(Error::MissingManifest(*id))?;
        Manifest::decode(id, &bytes).map_err(|e| Error::Remote {
            url: self.files.url(&path),
            reason: format!("manifest {e}"),
        })
    }

    fn locate(&self, ids: &[ChunkId]) -> Result<Vec<Option<Place>>> {
        self.load_tables(ids)?;
        let state = self.state.read().expect("remote state lock poisoned");
        Ok(ids
            .iter()
            .map(|id| state.chunks.get(id).map(|l| Place::single(*l)))
            .collect())
    }

    fn read_stored(&self, _id: &ChunkId, place: &Place, dst: &mut [u8]) -> Result<()> {
        let at = place.location.offset + RECORD_HEADER_LEN as u64;
        self.blocks.read(&place.location.pack, at, dst)
    }

    fn read_run(
        &self,
        first: &Place,
        len: u64,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let pack = first.location.pack;
        self.files
            .get_range_each(&pack_url_path(&pack), first.location.offset, len, each)
            .map_err(|e| missing_pack(e, pack))
    }

    fn run_size(&self) -> u64 {
        self.files.run_size()
    }

    fn traffic(&self) -> Option<(u64, u64)> {
        Some(self.files.counters())
    }

    fn refresh(&self) -> Result<()> {
        let (registry, catalog) = fetch_lists(self.files.as_ref())?;
        let mut state = self.state.write().expect("remote state lock poisoned");
        let listed: HashSet<PackId> = catalog.packs.iter().map(|p| p.id).collect();
        state.tables.retain(|id| listed.contains(id));
        state.chunks.retain(|_, l| listed.contains(&l.pack));
        state.registry = registry;
        state.catalog = catalog;
        Ok(())
    }
}

/// The URL path of a pack.
fn pack_url_path(id: &PackId) -> String {
    format!("packs/{id}.pack")
}

/// A pack the remote no longer has (gc there) is [`Error::MissingPack`], so readers look again.
fn missing_pack(error: Error, pack: PackId) -> Error {
    match &error {
        Error::Remote { reason, .. } if reason == "not found" => Error::MissingPack(pack),
        _ => error,
    }
}

/// Fetches and checks the registry and the catalog.
fn fetch_lists(files: &dyn Files) -> Result<(Registry, Catalog)> {
    let registry = match files.get("registry.json", MAX_REGISTRY_LEN)? {
        Some(bytes) => {
            crate::store::registry::decode_checked(Path::new(&files.url("registry.json")), &bytes)?
        }
        None => Registry::default(),
    };
    let bytes = files
        .get(CATALOG_FILE, MAX_CATALOG_LEN)?
        .ok_or_else(|| Error::Remote {
            url: files.url(CATALOG_FILE),
            reason: "not found: the store was published without its catalog; run `modelfs index \
                 rebuild` on it (or any write with this modelfs), then publish it again"
                .into(),
        })?;
    let catalog = catalog::decode(Path::new(&files.url(CATALOG_FILE)), &bytes)?;
    Ok((registry, catalog))
}

/// Bytes of blocks kept.
const BLOCK_BYTES_KEPT: u64 = 64 << 20;
/// Blocks fetched ahead of a reader walking a pack in order.
const READ_AHEAD: u64 = 2;
/// How long a failed block fetch is remembered, so readers waiting on it fail at once instead of
/// each waiting out the deadline again.
const FAILURE_KEPT: Duration = Duration::from_secs(2);

/// Aligned blocks of remote packs, fetched once each however many readers want them.
struct Blocks {
    files: Arc<dyn Files>,
    /// Block size ([`Files::block_size`]).
    block: u64,
    slots: Mutex<Slots>,
    /// Woken whenever a slot leaves `Loading`.
    filled: Condvar,
    /// Where each pack's records end (its table offset): blocks stop there.
    data_end: RwLock<HashMap<PackId, u64>>,
}

/// Blocks by (pack, block number), and the order they were filled in (oldest first).
#[derive(Default)]
struct Slots {
    by_key: HashMap<BlockKey, Slot>,
    order: VecDeque<BlockKey>,
}

/// A block: its pack and its number (offset / block size).
type BlockKey = (PackId, u64);

enum Slot {
    Loading,
    Ready(Arc<Vec<u8>>),
    Failed(Instant, String),
}

impl Blocks {
    fn new(files: Arc<dyn Files>) -> Blocks {
        Blocks {
            block: files.block_size().max(1 << 16),
            files,
            slots: Mutex::new(Slots::default()),
            filled: Condvar::new(),
            data_end: RwLock::new(HashMap::new()),
        }
    }

    /// Where `pack`'s records end, once its table was read.
    fn data_end(&self, pack: &PackId) -> Option<u64> {
        self.data_end
            .read()
            .expect("block bounds lock poisoned")
            .get(pack)
            .copied()
    }

    fn set_data_end(&self, pack: PackId, end: u64) {
        self.data_end
            .write()
            .expect("block bounds lock poisoned")
            .insert(pack, end);
    }

    /// Copies `dst.len()` bytes of `pack` at `offset` out of its blocks, fetching those missing.
    fn read(self: &Arc<Self>, pack: &PackId, offset: u64, dst: &mut [u8]) -> Result<()> {
        let mut at = offset;
        let mut filled = 0;
        while filled < dst.len() {
            let number = at / self.block;
            let block = self.block(pack, number)?;
            let start = (at - number * self.block) as usize;
            let n = (dst.len() - filled).min(block.len().saturating_sub(start));
            if n == 0 {
                return Err(Error::Remote {
                    url: self.files.url(&pack_url_path(pack)),
                    reason: format!("record at {offset} runs past the pack's records"),
                });
            }
            dst[filled..filled + n].copy_from_slice(&block[start..start + n]);
            filled += n;
            at += n as u64;
            self.read_ahead(pack, number);
        }
        Ok(())
    }

    /// Block `number` of `pack`: cached, being fetched by another reader (wait for it), or
    /// fetched now.
    fn block(&self, pack: &PackId, number: u64) -> Result<Arc<Vec<u8>>> {
        let key = (*pack, number);
        let mut slots = self.slots.lock().expect("block cache lock poisoned");
        loop {
            match slots.by_key.get(&key) {
                Some(Slot::Ready(bytes)) => return Ok(bytes.clone()),
                Some(Slot::Loading) => {
                    slots = self.filled.wait(slots).expect("block cache lock poisoned");
                }
                Some(Slot::Failed(at, reason)) if at.elapsed() < FAILURE_KEPT => {
                    return Err(Error::Remote {
                        url: self.files.url(&pack_url_path(pack)),
                        reason: reason.clone(),
                    });
                }
                _ => break,
            }
        }
        slots.by_key.insert(key, Slot::Loading);
        drop(slots);
        let fetched = self.fetch(pack, number);
        let mut slots = self.slots.lock().expect("block cache lock poisoned");
        let slot = match &fetched {
            Ok(bytes) => Slot::Ready(bytes.clone()),
            Err(e) => Slot::Failed(Instant::now(), e.to_string()),
        };
        slots.by_key.insert(key, slot);
        slots.order.push_back(key);
        while slots.order.len() as u64 * self.block > BLOCK_BYTES_KEPT {
            if let Some(old) = slots.order.pop_front() {
                slots.by_key.remove(&old);
            }
        }
        drop(slots);
        self.filled.notify_all();
        fetched.map_err(|e| missing_pack(e, *pack))
    }

    fn fetch(&self, pack: &PackId, number: u64) -> Result<Arc<Vec<u8>>> {
        let start = number * self.block;
        let end = self
            .data_end(pack)
            .unwrap_or(start + self.block)
            .min(start + self.block);
        let mut bytes = vec![0u8; end.saturating_sub(start) as usize];
        self.files
            .get_range(&pack_url_path(pack), start, &mut bytes)?;
        Ok(Arc::new(bytes))
    }

    /// When block `number - 1` of `pack` was read too, the reader walks the pack in order: the
    /// next blocks are fetched in the background.
    fn read_ahead(self: &Arc<Self>, pack: &PackId, number: u64) {
        let end = self.data_end(pack).unwrap_or(0);
        let wanted: Vec<u64> = {
            let slots = self.slots.lock().expect("block cache lock poisoned");
            if number == 0 || !slots.by_key.contains_key(&(*pack, number - 1)) {
                return;
            }
            (number + 1..=number + READ_AHEAD)
                .filter(|n| n * self.block < end && !slots.by_key.contains_key(&(*pack, *n)))
                .collect()
        };
        for n in wanted {
            let (blocks, pack) = (self.clone(), *pack);
            std::thread::spawn(move || {
                let _ = blocks.block(&pack, n);
            });
        }
    }
}
