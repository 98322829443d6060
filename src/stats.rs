//! Where a store's bytes go: totals for `modelfs stats` and sizes for `modelfs ls`.
//!
//! Owns [`store_stats`], [`StatsCache`] (the same totals for a long-running process: the mount's
//! `--metrics` gauges) and [`StoreStats::totals`], the one list of totals both `stats --json` and
//! the `modelfs_store_*` gauges are named after. Reads the registry, manifests and pack sizes;
//! changes nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::Result;
use crate::format::pack::RECORD_HEADER_LEN;
use crate::format::registry::Registry;
use crate::id::ChunkId;
use crate::store::Store;

/// Totals of a store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// One total of a store: its name (the `stats --json` key; `modelfs_store_NAME` is its gauge),
/// what it counts, and its value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Total {
    /// Key in `stats --json`, and the gauge's name after `modelfs_store_`.
    pub name: &'static str,
    /// What it counts (the gauge's help text).
    pub help: &'static str,
    /// Its value.
    pub value: TotalValue,
}

/// A count, or the dedup ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TotalValue {
    /// Models, files, bytes, chunks, packs.
    Count(u64),
    /// logical / stored.
    Ratio(f64),
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

    /// Every total, named as `stats --json` and the mount's `modelfs_store_*` gauges name it.
    pub fn totals(&self) -> [Total; 9] {
        let count = |name, help, value: u64| Total {
            name,
            help,
            value: TotalValue::Count(value),
        };
        [
            count("models", "Models in the store", self.models as u64),
            count(
                "versions",
                "Versions across all models",
                self.versions as u64,
            ),
            count("files", "Files across all versions", self.files as u64),
            count(
                "logical_bytes",
                "Sum of file sizes across all versions: what the models take without modelfs",
                self.logical_bytes,
            ),
            count("chunks", "Distinct chunks the models refer to", self.chunks),
            count(
                "unique_bytes",
                "Decoded size of the distinct chunks the models refer to",
                self.unique_bytes,
            ),
            count(
                "stored_bytes",
                "Size of all pack files (compressed chunks, tables, unreclaimed garbage)",
                self.stored_bytes,
            ),
            count("packs", "Pack files", self.packs as u64),
            Total {
                name: "dedup_ratio",
                help: "Logical bytes over stored bytes",
                value: TotalValue::Ratio(self.dedup_ratio()),
            },
        ]
    }
}

/// Computes the totals of `store`.
pub fn store_stats(store: &Store) -> Result<StoreStats> {
    let mut stats = registry_stats(store, &store.registry()?)?;
    add_pack_stats(store, &mut stats)?;
    Ok(stats)
}

/// The totals of `store` for a process that asks again and again (a scrape every few seconds):
/// what comes from manifests is read again only when the registry's generation changes; pack
/// sizes are listed each time (`gc`, `--fill` and `import` change them without a new registry).
#[derive(Debug, Default)]
pub struct StatsCache {
    by_registry: Mutex<Option<(u64, StoreStats)>>,
}

impl StatsCache {
    /// The totals of `store` now.
    pub fn stats(&self, store: &Store) -> Result<StoreStats> {
        let registry = store.registry()?;
        let mut cached = self.by_registry.lock().expect("stats cache poisoned");
        let mut stats = match cached.as_ref() {
            Some((generation, stats)) if *generation == registry.generation => stats.clone(),
            _ => {
                let stats = registry_stats(store, &registry)?;
                *cached = Some((registry.generation, stats.clone()));
                stats
            }
        };
        drop(cached);
        add_pack_stats(store, &mut stats)?;
        Ok(stats)
    }
}

/// The totals `registry` and its manifests give (all but the packs).
fn registry_stats(store: &Store, registry: &Registry) -> Result<StoreStats> {
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
    Ok(stats)
}

/// Fills in the pack totals of `stats` from the pack files as they are now.
fn add_pack_stats(store: &Store, stats: &mut StoreStats) -> Result<()> {
    let packs = store.pack_files()?;
    stats.packs = packs.len();
    stats.stored_bytes = packs.iter().map(|(_, bytes)| bytes).sum();
    Ok(())
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
