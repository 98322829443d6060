//! Where a store's bytes go: totals for `modelfs stats` and sizes for `modelfs ls`.
//!
//! Owns [`store_stats`]. Reads the registry, manifests and pack sizes; changes nothing.

use std::collections::HashMap;

use crate::error::Result;
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
