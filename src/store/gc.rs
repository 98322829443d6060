//! Garbage collection: reclaim the space of chunks no model references.
//!
//! Owns [`gc`] and retention: versions beyond a model's `keep` count (default 3, never the
//! current one) leave the registry first. What is live comes from the registry and its manifests; where live chunks are comes
//! from the index alone (never from a pack's own table, which may be damaged). Packs the index
//! locates no live chunk in are dropped; packs mostly dead are rewritten (live records copied,
//! verified, into new packs) and then dropped; a pack one of whose live chunks fails verification
//! is kept as it is. Order keeps every step crash-safe and keeps running mounts working: new packs
//! are sealed and indexed before old ones leave the index, and an old pack leaves the index (every
//! row pointing at it) before its file is deleted. A reader that still holds an old pack open keeps
//! reading it; one that does not looks the chunk up again (`read`).
//!
//! `gc` refuses to run on a store it cannot read completely: a missing registry beside manifests
//! or packs, or a manifest that does not load, stops it before anything is deleted.

use std::collections::HashSet;

use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::format::registry::{DEFAULT_KEEP, ModelEntry};
use crate::id::{ChunkId, PackId};
use crate::progress::Progress;
use crate::store::Store;
use crate::store::index::Location;
use crate::store::pack::pack_path;
use crate::store::registry::current_version;
use crate::store::sink::PackSink;

/// A pack is rewritten when less than this share (in percent) of its bytes is live.
const REWRITE_BELOW_LIVE_PERCENT: u64 = 50;

/// What a collection did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Manifest files no version references, deleted.
    pub manifests_removed: usize,
    /// Packs deleted outright (nothing live in them).
    pub packs_dropped: usize,
    /// Packs whose live chunks were copied to new packs before deletion.
    pub packs_rewritten: usize,
    /// Packs left alone because a chunk in them failed verification.
    pub packs_skipped_damaged: usize,
    /// Bytes of pack files before.
    pub bytes_before: u64,
    /// Bytes of pack files after.
    pub bytes_after: u64,
    /// Versions dropped because their model keeps fewer (`keep`), as `MODEL@VERSION`.
    pub versions_pruned: Vec<String>,
    /// Pins of versions the registry no longer lists, dropped with their copies.
    pub pins_dropped: Vec<String>,
}

/// The versions of `entry` retention drops: all but the newest `keep` (default
/// [`DEFAULT_KEEP`]), never the current one.
fn prune(entry: &ModelEntry) -> Vec<String> {
    let keep = entry.keep.unwrap_or(DEFAULT_KEEP) as usize;
    let current = current_version(entry).map(|v| v.version.as_str());
    let old = entry.versions.len().saturating_sub(keep);
    entry.versions[..old]
        .iter()
        .filter(|v| Some(v.version.as_str()) != current)
        .map(|v| v.version.clone())
        .collect()
}

/// Collects garbage in a writable store: first drops versions beyond each model's retention
/// (`keep`), then everything no version references.
pub fn gc(store: &Store, progress: &dyn Progress) -> Result<GcReport> {
    store.require_writer()?;
    refuse_without_registry(store)?;
    let mut report = GcReport::default();
    if store
        .registry()?
        .models
        .values()
        .any(|m| !prune(m).is_empty())
    {
        report.versions_pruned = store.update_registry(|registry| {
            let mut pruned = Vec::new();
            for (name, entry) in &mut registry.models {
                let dropped = prune(entry);
                entry.versions.retain(|v| !dropped.contains(&v.version));
                pruned.extend(dropped.into_iter().map(|v| format!("{name}@{v}")));
            }
            Ok(pruned)
        })?;
    }
    let registry = store.registry()?;
    // Pins are an accelerator: one that cannot be dropped now costs disk, never correctness
    // (the mount serves only copies of files the registry lists), so it does not stop the
    // collection.
    match crate::pin::PinArea::of(store).and_then(|area| area.retain(&registry)) {
        Ok(dropped) => report.pins_dropped = dropped,
        Err(e) => warn!(error = %e, "cannot drop the pins of removed versions"),
    }

    // A manifest that fails to load aborts the collection: without it we cannot know what is live.
    let live_manifests: HashSet<_> = registry
        .models
        .values()
        .flat_map(|m| &m.versions)
        .flat_map(|v| &v.files)
        .map(|f| f.manifest)
        .collect();
    let mut live_chunks: HashSet<ChunkId> = HashSet::new();
    for id in &live_manifests {
        live_chunks.extend(store.manifest(id)?.chunks.iter().map(|c| c.id));
    }
    for id in store.manifests().ids()? {
        if !live_manifests.contains(&id) {
            store.manifests().remove(&id)?;
            report.manifests_removed += 1;
        }
    }

    let index = store.index()?;
    let mut located = index.located_by_pack()?;
    // A live chunk the index does not locate may still sit in a pack whose table is damaged:
    // collecting now could delete its only copy.
    let located_ids: HashSet<ChunkId> = located.values().flatten().map(|(id, _)| *id).collect();
    if let Some(missing) = live_chunks.iter().find(|id| !located_ids.contains(id)) {
        let count = live_chunks
            .iter()
            .filter(|id| !located_ids.contains(id))
            .count();
        return Err(Error::Index {
            path: store.root().join(crate::store::paths::INDEX_DIR),
            reason: format!(
                "{count} chunk(s) of live models are in no indexed pack (first: {missing}); gc \
                 stops so it cannot delete them. Run `modelfs index rebuild`, then `modelfs verify`"
            ),
        });
    }
    // (pack, every chunk the index locates in it) to delete; (pack, its live chunks) to copy first.
    let mut doomed: Vec<(PackId, Vec<ChunkId>)> = Vec::new();
    let mut to_copy: Vec<(PackId, Vec<(ChunkId, Location)>)> = Vec::new();
    for (pack, row) in index.packs()? {
        report.bytes_before += row.bytes;
        let in_pack = located.remove(&pack).unwrap_or_default();
        let live: Vec<(ChunkId, Location)> = in_pack
            .iter()
            .filter(|(id, _)| live_chunks.contains(id))
            .copied()
            .collect();
        let live_bytes: u64 = live
            .iter()
            .map(|(id, l)| crate::store::chunk::record_header(id, l).record_len())
            .sum();
        let ids = in_pack.into_iter().map(|(id, _)| id).collect();
        if live.is_empty() {
            doomed.push((pack, ids));
        } else if live_bytes * 100 < row.bytes * REWRITE_BELOW_LIVE_PERCENT {
            to_copy.push((pack, live));
            doomed.push((pack, ids));
        } else {
            report.bytes_after += row.bytes;
        }
    }

    let mut sink = PackSink::new(store)?;
    let (mut decoded, mut payload) = (Vec::new(), Vec::new());
    progress.begin(
        to_copy
            .iter()
            .flat_map(|(_, live)| live)
            .map(|(id, l)| crate::store::chunk::record_header(id, l).record_len())
            .sum(),
    );
    let mut skipped: HashSet<PackId> = HashSet::new();
    for (pack, live) in &to_copy {
        // Verify the whole pack's live records first, so a damaged pack is kept as it is.
        let mut copies = Vec::with_capacity(live.len());
        for (id, location) in live {
            match store.read_record(id, location, &mut decoded, &mut payload) {
                Ok(header) => copies.push((header, payload.clone())),
                Err(e) => {
                    warn!(%pack, chunk = %id, error = %e, "damaged chunk; leaving the pack as it is");
                    skipped.insert(*pack);
                    break;
                }
            }
        }
        if skipped.contains(pack) {
            continue;
        }
        for (header, payload) in copies {
            sink.append(header, &payload)?;
            progress.advance(header.record_len());
        }
        report.packs_rewritten += 1;
    }
    progress.finish();
    sink.seal()?;
    report.bytes_after += sink.sealed_bytes();
    // Remote readers find the new packs before the old ones go, and lose the old ones after.
    let generation = store.registry()?.generation;
    store.write_catalog(generation)?;

    for (pack, ids) in doomed {
        let path = pack_path(store.packs_dir(), &pack);
        if skipped.contains(&pack) {
            report.packs_skipped_damaged += 1;
            report.bytes_after += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            continue;
        }
        index.remove_pack(pack, &ids)?;
        store.packs().forget(&pack);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
        if !to_copy.iter().any(|(p, _)| *p == pack) {
            report.packs_dropped += 1;
        }
    }
    crate::store::fsutil::fsync_dir(store.packs_dir())?;
    store.write_catalog(generation)?;
    info!(?report, "gc finished");
    Ok(report)
}

/// A store whose registry is gone but which still holds manifests or packs has lost its list of
/// models, not its models: collecting would delete them all.
fn refuse_without_registry(store: &Store) -> Result<()> {
    let path = store.registry_path();
    match std::fs::symlink_metadata(&path) {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    let (manifests, packs) = (store.manifests().ids()?.len(), store.pack_files()?.len());
    if manifests == 0 && packs == 0 {
        return Ok(());
    }
    Err(Error::corrupt(
        path,
        format!(
            "is missing although the store holds {manifests} manifests and {packs} packs; gc would \
             delete every model, so it stops. Restore registry.json (a backup, or a copy of this \
             store), then run gc again"
        ),
    ))
}
