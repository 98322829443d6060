//! Garbage collection: reclaim the space of chunks no model references.
//!
//! Owns [`gc`]. Packs with no live chunk are dropped; packs mostly dead are rewritten (live records
//! copied, verified, into new packs) and then dropped. Order keeps every step crash-safe and keeps
//! running mounts working: new packs are sealed and indexed before old ones leave the index, and an
//! old pack leaves the index before its file is deleted. A reader that still holds an old pack open
//! keeps reading it; one that does not looks the chunk up again (`read`).

use std::collections::HashSet;

use tracing::{info, warn};

use crate::error::{IoContext, Result};
use crate::format::pack::TableEntry;
use crate::id::{ChunkId, PackId};
use crate::store::Store;
use crate::store::pack::pack_path;
use crate::store::recovery::pack_entries;
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
}

/// Collects garbage in a writable store.
pub fn gc(store: &Store) -> Result<GcReport> {
    store.require_writer()?;
    let registry = store.registry()?;
    let mut report = GcReport::default();

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
    let mut doomed: Vec<(PackId, Vec<TableEntry>)> = Vec::new();
    let mut to_copy: Vec<(PackId, Vec<TableEntry>)> = Vec::new();
    for (pack, row) in index.packs()? {
        report.bytes_before += row.bytes;
        let entries = pack_entries(store.packs_dir(), &pack)?;
        let locations = index.get_many(
            &entries
                .iter()
                .map(|e| e.header.chunk_id)
                .collect::<Vec<_>>(),
        )?;
        let live: Vec<TableEntry> = entries
            .iter()
            .zip(locations)
            .filter(|(entry, location)| {
                live_chunks.contains(&entry.header.chunk_id)
                    && location.is_some_and(|l| l.pack == pack && l.offset == entry.offset)
            })
            .map(|(entry, _)| *entry)
            .collect();
        let live_bytes: u64 = live.iter().map(|e| e.header.record_len()).sum();
        if live.is_empty() {
            doomed.push((pack, entries));
        } else if live_bytes * 100 < row.bytes * REWRITE_BELOW_LIVE_PERCENT {
            to_copy.push((pack, live));
            doomed.push((pack, entries));
        } else {
            report.bytes_after += row.bytes;
        }
    }

    let mut sink = PackSink::new(store)?;
    let (mut decoded, mut payload) = (Vec::new(), Vec::new());
    let mut skipped: HashSet<PackId> = HashSet::new();
    for (pack, live) in &to_copy {
        // Verify the whole pack's live records first, so a damaged pack is kept as it is.
        let mut copies = Vec::with_capacity(live.len());
        for entry in live {
            let location = crate::store::index::Location::of_entry(*pack, entry);
            match store.read_record(
                &entry.header.chunk_id,
                &location,
                &mut decoded,
                &mut payload,
            ) {
                Ok(header) => copies.push((header, payload.clone())),
                Err(e) => {
                    warn!(%pack, chunk = %entry.header.chunk_id, error = %e, "damaged chunk; leaving the pack as it is");
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
        }
        report.packs_rewritten += 1;
    }
    sink.seal()?;
    report.bytes_after += sink.sealed_bytes();

    for (pack, entries) in doomed {
        if skipped.contains(&pack) {
            report.packs_skipped_damaged += 1;
            report.bytes_after += std::fs::metadata(pack_path(store.packs_dir(), &pack))
                .map(|m| m.len())
                .unwrap_or(0);
            continue;
        }
        let ids: Vec<ChunkId> = entries.iter().map(|e| e.header.chunk_id).collect();
        index.remove_pack(pack, &ids)?;
        store.packs().forget(&pack);
        let path = pack_path(store.packs_dir(), &pack);
        std::fs::remove_file(&path).at(&path)?;
        if !to_copy.iter().any(|(p, _)| *p == pack) {
            report.packs_dropped += 1;
        }
    }
    crate::store::fsutil::fsync_dir(store.packs_dir())?;
    info!(?report, "gc finished");
    Ok(report)
}
