//! Where a store's bytes go: totals for `modelfs stats` and sizes for `modelfs ls`.
//!
//! Owns [`store_stats`]. Reads the registry, manifests and pack sizes; changes nothing.

use std::collections::HashMap;

use crate::error::Result;
use crate::format::pack::RECORD_HEADER_LEN;
use crate::id::ChunkId;
use crate::store::Store;

/// Totals of a store.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Models.
    pub models: usize,
    /// Versions across all models.
    pub versions: usize,
    /// Files across all versions.
    pub files: usize,
    /// Sum of file sizes across all versions: what the models would take without modelfs.
    pub logical_bytes: u64,
    /// Distinct chunks referenced.
    pub chunks: u64,
    /// Decoded size of the distinct chunks referenced.
    pub unique_bytes: u64,
    /// Size of all pack files (compressed chunks, headers, tables and unreclaimed garbage).
    pub stored_bytes: u64,
    /// Pack files.
    pub packs: usize,
}

impl StoreStats {
    /// logical / stored: how many times over the store's packs would be needed without it.
    pub fn dedup_ratio(&self) -> f64 {
        if self.stored_bytes == 0 {
            0.0
        } else {
            self.logical_bytes as f64 / self.stored_bytes as f64
        }
    }
}

/// Computes the totals of `store`.
pub fn store_stats(store: &Store) -> Result<StoreStats> {
    let registry = store.registry()?;
    let mut stats = StoreStats {
        models: registry.models.len(),
        ..StoreStats::default()
    };
    let mut chunks: HashMap<ChunkId, u32> = HashMap::new();
    let mut manifests_seen = std::collections::HashSet::new();
    for version in registry.models.values().flat_map(|m| &m.versions) {
        stats.versions += 1;
        for file in &version.files {
            stats.files += 1;
            stats.logical_bytes += file.size;
            if manifests_seen.insert(file.manifest) {
                for chunk in store.manifest(&file.manifest)?.chunks {
                    chunks.insert(chunk.id, chunk.len);
                }
            }
        }
    }
    stats.chunks = chunks.len() as u64;
    stats.unique_bytes = chunks.values().map(|&len| u64::from(len)).sum();
    let packs = store.pack_files()?;
    stats.packs = packs.len();
    stats.stored_bytes = packs.iter().map(|(_, bytes)| bytes).sum();
    Ok(stats)
}

/// Where the bytes of one model, or one version of it, go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Total size of its files.
    pub logical_bytes: u64,
    /// Decoded bytes of its distinct chunks that something else also uses.
    pub shared_bytes: u64,
    /// Decoded bytes of its distinct chunks nothing else uses.
    pub unique_bytes: u64,
    /// Pack bytes of those unique chunks: what removing it (then `gc`) frees.
    pub unique_stored_bytes: u64,
}

/// Usage of a model as a whole and of each of its versions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelUsage {
    /// Model name.
    pub model: String,
    /// The model with all its versions, against other models.
    pub total: Usage,
    /// Each version, against every other version of any model.
    pub versions: Vec<(String, Usage)>,
}

/// Who references a chunk: whether more than one version does, the first model seen, and
/// whether other models do.
#[derive(Clone, Copy)]
struct Users {
    many_versions: bool,
    model: usize,
    many_models: bool,
    len: u32,
}

/// One version's model (by registry position), its distinct chunks with their lengths, and its size.
type VersionChunks = (usize, Vec<(ChunkId, u32)>, u64);

/// Computes shared and unique bytes for every model and version of `store`.
pub fn model_usage(store: &Store) -> Result<Vec<ModelUsage>> {
    let registry = store.registry()?;
    let mut manifests = HashMap::new();
    // Distinct chunks of every version, in registry order.
    let mut versions: Vec<VersionChunks> = Vec::new();
    for (model_index, entry) in registry.models.values().enumerate() {
        for version in &entry.versions {
            let mut seen = std::collections::HashSet::new();
            let mut chunks = Vec::new();
            for file in &version.files {
                let manifest = match manifests.entry(file.manifest) {
                    std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(store.manifest(&file.manifest)?)
                    }
                };
                for chunk in &manifest.chunks {
                    if seen.insert(chunk.id) {
                        chunks.push((chunk.id, chunk.len));
                    }
                }
            }
            let logical = version.files.iter().map(|f| f.size).sum();
            versions.push((model_index, chunks, logical));
        }
    }
    let mut users: HashMap<ChunkId, Users> = HashMap::new();
    for (model_index, chunks, _) in &versions {
        for &(id, len) in chunks {
            users
                .entry(id)
                .and_modify(|u| {
                    u.many_versions = true;
                    u.many_models |= u.model != *model_index;
                })
                .or_insert(Users {
                    many_versions: false,
                    model: *model_index,
                    many_models: false,
                    len,
                });
        }
    }
    let unique_ids: Vec<ChunkId> = users
        .iter()
        .filter(|(_, u)| !u.many_models)
        .map(|(id, _)| *id)
        .collect();
    let mut stored: HashMap<ChunkId, u64> = HashMap::with_capacity(unique_ids.len());
    for batch in unique_ids.chunks(4096) {
        for (id, location) in batch.iter().zip(store.locate(batch)?) {
            let record = |l: crate::store::index::Location| {
                u64::from(l.stored_len) + RECORD_HEADER_LEN as u64
            };
            stored.insert(*id, location.map_or(0, record));
        }
    }

    let mut result = Vec::new();
    let mut version_index = 0;
    for (name, entry) in &registry.models {
        let mut total = Usage::default();
        let mut model_seen = std::collections::HashSet::new();
        let mut rows = Vec::new();
        for version in &entry.versions {
            let (_, chunks, logical) = &versions[version_index];
            let mut usage = Usage {
                logical_bytes: *logical,
                ..Usage::default()
            };
            for (id, len) in chunks {
                let who = users[id];
                if who.many_versions {
                    usage.shared_bytes += u64::from(*len);
                } else {
                    usage.unique_bytes += u64::from(*len);
                    usage.unique_stored_bytes += stored.get(id).copied().unwrap_or(0);
                }
                if model_seen.insert(*id) {
                    if who.many_models {
                        total.shared_bytes += u64::from(who.len);
                    } else {
                        total.unique_bytes += u64::from(who.len);
                        total.unique_stored_bytes += stored.get(id).copied().unwrap_or(0);
                    }
                }
            }
            total.logical_bytes += logical;
            rows.push((version.version.clone(), usage));
            version_index += 1;
        }
        result.push(ModelUsage {
            model: name.clone(),
            total,
            versions: rows,
        });
    }
    Ok(result)
}
