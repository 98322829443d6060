//! Crash recovery and the index's life cycle: everything that reconciles the index with the packs.
//!
//! Owns listing sealed packs, keeping the chunks of packs a crashed writer left unsealed, reading a pack's chunk
//! list (its table, or a record scan when the table is damaged), and opening, bringing up to date and
//! rebuilding the RocksDB index: a writer's own, and a reader's private copy in the per-machine cache
//! when the store's index is unusable. The packs are the truth; the index is derived from them.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::path::Path;

use tracing::{info, warn};

use crate::error::{Error, IoContext, Result};
use crate::format::config::StoreConfig;
use crate::format::pack::{RECORD_HEADER_LEN, TableEntry};
use crate::id::PackId;
use crate::store::fsutil;
use crate::store::index::Index;
use crate::store::pack::{self, PACK_EXTENSION, PackWriter, UNSEALED_SUFFIX};
use crate::store::paths::{INDEX_DIR, StorePaths, machine_cache_dir};

/// Sealed packs in `dir` with their sizes, sorted by id.
pub fn list_sealed_packs(dir: &Path) -> Result<Vec<(PackId, u64)>> {
    let mut packs = Vec::new();
    let suffix = format!(".{PACK_EXTENSION}");
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(&suffix)) else {
            continue;
        };
        if let Ok(id) = stem.parse::<PackId>() {
            packs.push((id, entry.metadata().at(entry.path())?.len()));
        }
    }
    packs.sort();
    Ok(packs)
}

/// Keeps what a writer that died had appended: the records of each unsealed pack that verify are
/// copied into a new sealed pack (indexed when the index is next brought up to date), then the
/// unsealed file is deleted. An `add`, `import` or `pull` killed mid-way so keeps every chunk it
/// had written, and a rerun fetches none of them again. Salvage is best effort: when it fails (a
/// full disk, say) the unsealed pack is deleted as it is, which loses nothing any model refers to.
pub fn salvage_unsealed_packs(dir: &Path) -> Result<()> {
    let mut unsealed = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let name = entry.at(dir)?.file_name();
        if let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(UNSEALED_SUFFIX)) {
            unsealed.push((dir.join(&name), stem.parse::<PackId>().ok()));
        }
    }
    for (path, id) in unsealed {
        match id.map(|id| salvage(dir, &path, &id)) {
            Some(Ok(0)) | None => {}
            Some(Ok(kept)) => {
                info!(pack = %path.display(), chunks = kept, "kept the chunks of a pack left unsealed by an interrupted write")
            }
            Some(Err(e)) => {
                warn!(pack = %path.display(), error = %e, "could not keep the chunks of a pack left unsealed by an interrupted write")
            }
        }
        std::fs::remove_file(&path).at(&path)?;
    }
    Ok(())
}

/// Copies the verified records of the unsealed pack at `path` into a new sealed pack in `dir`;
/// returns how many.
fn salvage(dir: &Path, path: &Path, id: &PackId) -> Result<usize> {
    let records = pack::scan_records(path, id)?;
    if records.is_empty() {
        return Ok(0);
    }
    let file = fsutil::open_regular(path).at(path)?;
    let mut writer = PackWriter::create(dir)?;
    let mut payload = Vec::new();
    let copied = records.iter().try_for_each(|entry| {
        payload.resize(entry.header.stored_len as usize, 0);
        file.read_exact_at(&mut payload, entry.offset + RECORD_HEADER_LEN as u64)
            .at(path)?;
        writer.append(entry.header, &payload).map(drop)
    });
    match copied {
        Ok(()) => writer.seal().map(|_| records.len()),
        Err(e) => {
            writer.abandon();
            Err(e)
        }
    }
}

/// Deletes temp files a writer left behind when it died (`.NAME.<random>.tmp` beside the
/// registry, the config and the manifests). `remove_file` removes a link itself, never its target.
pub fn remove_temp_files(paths: &StorePaths) -> Result<()> {
    for dir in [paths.root.clone(), paths.manifests()] {
        for entry in std::fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(fsutil::TEMP_SUFFIX) {
                std::fs::remove_file(entry.path()).at(entry.path())?;
            }
        }
    }
    Ok(())
}

/// The chunks of a pack: from its table, or by scanning its records if the table is damaged.
pub fn pack_entries(dir: &Path, id: &PackId) -> Result<Vec<TableEntry>> {
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

/// Indexes every sealed pack in `dir` the index does not list yet.
pub fn index_unindexed_packs(index: &Index, dir: &Path) -> Result<()> {
    let known: HashSet<PackId> = index.packs()?.into_iter().map(|(id, _)| id).collect();
    for (id, bytes) in list_sealed_packs(dir)? {
        if known.contains(&id) {
            continue;
        }
        info!(pack = %id, "indexing a sealed pack the index did not list");
        match pack_entries(dir, &id) {
            Ok(entries) => index.add_pack(id, bytes, &entries)?,
            // One unreadable pack must not make the whole store unusable: its chunks stay
            // unindexed (and the pack on disk, untouched) until it can be read.
            Err(e) => {
                warn!(pack = %id, error = %e, "cannot read a pack; its chunks are not indexed")
            }
        }
    }
    Ok(())
}

/// Brings a reader's private index up to date: packs sealed since are indexed, rows of packs that
/// are gone (collected by `gc`) are dropped. Chunks a `gc` moved are re-pointed by their new pack.
pub fn sync_index_with_packs(index: &Index, dir: &Path) -> Result<()> {
    let on_disk: HashSet<PackId> = list_sealed_packs(dir)?
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

/// Builds a new index at `path` (replacing whatever is there) from the packs in `packs_dir`.
fn build_index_into(path: &Path, packs_dir: &Path) -> Result<Index> {
    if path.exists() {
        std::fs::remove_dir_all(path).at(path)?;
    }
    let index = Index::open_writable(path)?;
    index_unindexed_packs(&index, packs_dir)?;
    Ok(index)
}

/// Builds an index beside `path` from the packs, then swaps it in: the old index is replaced only
/// once the new one is complete.
pub fn rebuild_index_at(path: &Path, packs_dir: &Path) -> Result<()> {
    let rebuilt = path.with_extension("rebuild");
    drop(build_index_into(&rebuilt, packs_dir)?);
    let parked = path.with_extension("old");
    if parked.exists() {
        std::fs::remove_dir_all(&parked).at(&parked)?;
    }
    if path.exists() {
        std::fs::rename(path, &parked).at(path)?;
    }
    std::fs::rename(&rebuilt, path).at(&rebuilt)?;
    fsutil::fsync_dir(path.parent().expect("index has a parent"))?;
    if parked.exists() {
        std::fs::remove_dir_all(&parked).at(&parked)?;
    }
    Ok(())
}

/// Opens a writer's index, rebuilding it from the packs if it is unusable, and indexes sealed
/// packs it lacks (a writer died between sealing a pack and indexing it).
pub fn open_writer_index(paths: &StorePaths) -> Result<Index> {
    let (path, packs_dir) = (paths.index(), paths.packs());
    // An index folder that is a link or holds anything but regular files is rebuilt, not opened:
    // RocksDB would write through the link, or block on a FIFO.
    let opened = fsutil::check_plain_dir(&path).and_then(|()| Index::open_writable(&path));
    let index = match opened {
        Ok(index) => index,
        Err(e @ Error::NewerFormat { .. }) => return Err(e),
        Err(e) => {
            warn!(error = %e, "index unusable; rebuilding it from the packs");
            rebuild_index_at(&path, &packs_dir)?;
            Index::open_writable(&path)?
        }
    };
    index_unindexed_packs(&index, &packs_dir)?;
    Ok(index)
}

/// An index opened by a reader, and where it came from.
pub struct ReaderIndex {
    /// The open index.
    pub index: Index,
    /// Whether this is a private copy in the per-machine cache (the store's own index was
    /// unusable); such a copy is kept current by indexing new packs, not by reopening.
    pub in_cache: bool,
}

/// Opens the index a reader uses: the store's own, or (if that is unusable) a private copy in the
/// per-machine cache, built or brought up to date from the packs.
pub fn open_reader_index(paths: &StorePaths, config: &StoreConfig) -> Result<ReaderIndex> {
    let own = fsutil::check_plain_dir(&paths.index())
        .and_then(|()| Index::open_read_only(&paths.index()));
    let e = match own {
        Ok(index) => {
            return Ok(ReaderIndex {
                index,
                in_cache: false,
            });
        }
        Err(e @ Error::NewerFormat { .. }) => return Err(e),
        Err(e) => e,
    };
    let cached = machine_cache_dir(&config.store_id)?.join(INDEX_DIR);
    warn!(error = %e, cache = %cached.display(), "store index unusable; using a copy in the local cache");
    if let Some(parent) = cached.parent() {
        std::fs::create_dir_all(parent).at(parent)?;
    }
    let packs_dir = paths.packs();
    // Readers of one store that start together take turns building or updating the copy.
    let lock_path = cached.with_extension("lock");
    let lock_file = fsutil::open_lock_file(&lock_path).at(&lock_path)?;
    let _turn = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| Error::io(&lock_path, errno.into()))?;
    let index = match Index::open_writable(&cached) {
        Ok(index) => {
            sync_index_with_packs(&index, &packs_dir)?;
            index
        }
        // Another process of this machine keeps the copy current; read its latest state.
        Err(_) if cached.join("CURRENT").exists() => Index::open_read_only(&cached)?,
        Err(_) => build_index_into(&cached, &packs_dir)?,
    };
    // Before the next reader's turn, so one that opens the copy read-only sees all of it.
    if index.is_writable() {
        index.flush()?;
    }
    Ok(ReaderIndex {
        index,
        in_cache: true,
    })
}
