//! Update packs for sites without a network: `inventory` says what a store holds, `export` writes
//! a store holding only what such a site lacks of chosen models, with their signed releases.
//!
//! Owns [`inventory()`] (a store's versions, release high-water marks and chunks, as
//! `format::inventory` lays them out), [`Have`] (what a site holds: from its inventory, or from a
//! previous export that it imported) and [`export`]. An export is `transfer`'s import into a new
//! store, narrowed: the plan of importing the selection into an empty store loses the versions the
//! site holds, releases it would refuse as older than one it accepted, and the chunks it holds,
//! then runs as any import does (every record verified, manifests, one registry commit). The
//! result is a normal store directory, so the site imports it with `modelfs import`: its plan
//! finds the chunks the pack leaves out in the site's own store, and all the pack's versions come
//! in with one registry commit, or none (a chunk neither has fails the plan before anything is
//! copied).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::inventory::{self, ChunkSet, HeldVersion, Inventory, MAX_INVENTORY_LEN};
use crate::format::registry::{Registry, VersionEntry};
use crate::format::release::Statement;
use crate::id::ManifestId;
use crate::progress::Progress;
use crate::store::fsutil::{read_capped, write_atomic};
use crate::store::registry::ModelSpec;
use crate::store::{Access, Store};
use crate::transfer::{Admission, plan_import, run_import, store_like};
use crate::trust::release::check_sequence;

/// Runs of records read at once while exporting (each verified on its way into the pack).
const EXPORT_JOBS: usize = 4;

/// What `store` holds: every version in its registry, its release high-water marks, and the
/// chunks of those versions (not chunks only removed versions used: `gc` may delete those before
/// an update pack arrives).
pub fn inventory(store: &Store) -> Result<Inventory> {
    let registry = store.registry()?;
    let mut manifests = BTreeSet::new();
    let mut versions = Vec::new();
    for (model, entry) in &registry.models {
        for version in &entry.versions {
            manifests.extend(version.files.iter().map(|f| f.manifest));
            versions.push(HeldVersion {
                model: model.clone(),
                version: version.version.clone(),
                files: inventory::files_digest(&version.files),
            });
        }
    }
    Ok(Inventory {
        store_id: store.config().store_id,
        created_unix: crate::store::now_unix(),
        versions,
        high_water: registry.high_water,
        chunks: chunks_of(store, &manifests)?,
    })
}

/// The chunks the files with `manifests` in `store` use.
fn chunks_of(store: &Store, manifests: &BTreeSet<ManifestId>) -> Result<ChunkSet> {
    let mut prefixes = Vec::new();
    for id in manifests {
        let manifest = store.manifest(id)?;
        prefixes.extend(manifest.chunks.iter().map(|c| ChunkSet::prefix(&c.id)));
    }
    Ok(ChunkSet::from_prefixes(prefixes))
}

/// The file in an update pack holding what the site held when the pack was made: its inventory
/// without the chunk list (which would make a small update of a large site large); `--since`
/// counts the chunks of those versions that the exporting store has too.
pub const SITE_INVENTORY_FILE: &str = "site-inventory.json";

/// What a site holds, as an export sees it.
pub struct Have {
    /// Where this came from (an inventory file or a previous export), for messages.
    origin: PathBuf,
    inventory: Inventory,
}

impl Have {
    /// Reads the inventory file at `path` (at most [`MAX_INVENTORY_LEN`] bytes).
    pub fn read(path: &Path) -> Result<Have> {
        let bytes = read_capped(path, MAX_INVENTORY_LEN).at(path)?;
        Ok(Have {
            origin: path.to_owned(),
            inventory: inventory::decode(path, &bytes)?,
        })
    }

    /// What a site holds once it imported the update pack at `dir`: the pack's versions and every
    /// chunk they use (those in the pack and those the site had), and the versions it held when
    /// the pack was made ([`SITE_INVENTORY_FILE`], if the pack has one) with the chunks of those
    /// that `publisher` has too.
    pub fn since(dir: &Path, publisher: &Store) -> Result<Have> {
        let delivered = inventory(&Store::open(dir, Access::Read)?)?;
        let mut inventory = match Have::read(&dir.join(SITE_INVENTORY_FILE)) {
            Ok(before) => merge(before.inventory, delivered),
            Err(Error::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => {
                delivered
            }
            Err(e) => return Err(e),
        };
        let registry = publisher.registry()?;
        let mut known = BTreeSet::new();
        for held in &inventory.versions {
            let same = registry
                .models
                .get(&held.model)
                .and_then(|m| m.versions.iter().find(|v| v.version == held.version))
                .filter(|v| inventory::files_digest(&v.files) == held.files);
            known.extend(
                same.into_iter()
                    .flat_map(|v| v.files.iter().map(|f| f.manifest)),
            );
        }
        inventory.chunks = inventory.chunks.union(&chunks_of(publisher, &known)?);
        Ok(Have {
            origin: dir.to_owned(),
            inventory,
        })
    }

    /// Whether the site holds `model`'s `version` with the same files; an error if it holds a
    /// version of that name with other files (the site's import would refuse the pack).
    fn holds(&self, model: &str, version: &VersionEntry) -> Result<bool> {
        let held = self
            .inventory
            .versions
            .iter()
            .find(|h| h.model == model && h.version == version.version);
        match held {
            None => Ok(false),
            Some(held) if held.files == inventory::files_digest(&version.files) => Ok(true),
            Some(_) => Err(Error::BadInput {
                path: self.origin.clone(),
                reason: format!(
                    "the site holds a {model}@{} of other files than this store's; \
                     the update pack cannot carry this one",
                    version.version
                ),
            }),
        }
    }

    /// Why the site would refuse `version`'s release as older than one it accepted, if it would.
    fn refuses(&self, version: &VersionEntry) -> Option<String> {
        let statement = Statement::decode(&version.release.as_ref()?.statement).ok()?;
        let marks = Registry {
            high_water: self.inventory.high_water.clone(),
            ..Registry::default()
        };
        check_sequence(&marks, &statement)
            .err()
            .map(|refusal| refusal.to_string())
    }
}

/// What a site that held `before` holds after importing a pack that holds `delivered`: its
/// versions and chunks added (a version of the same name replaced), the high-water marks of
/// `before` (an update pack raises none: only the site's policy knows which releases it took).
fn merge(before: Inventory, delivered: Inventory) -> Inventory {
    let mut versions = before.versions;
    versions.retain(|held| {
        !delivered
            .versions
            .iter()
            .any(|new| new.model == held.model && new.version == held.version)
    });
    versions.extend(delivered.versions);
    Inventory {
        versions,
        chunks: before.chunks.union(&delivered.chunks),
        ..before
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Versions written.
    pub versions: usize,
    /// Selected versions the site holds already (left out).
    pub versions_held: usize,
    /// Selected versions left out because the site would refuse their releases as older than
    /// one it accepted: `MODEL@VERSION: reason`.
    pub refused: Vec<String>,
    /// Chunks written.
    pub chunks: usize,
    /// Bytes written into packs.
    pub bytes: u64,
    /// Chunks of the written versions the site holds (left out).
    pub chunks_held: usize,
    /// What those take in this store's packs.
    pub bytes_held: u64,
}

/// Writes into `dest` (a new or empty folder) a store holding the versions of `selection` (a bare
/// name: all its versions) that the site described by `have` lacks, their manifests and releases,
/// only the chunks it lacks, and [`SITE_INVENTORY_FILE`]. On failure, what it wrote is removed.
pub fn export(
    src: &Store,
    dest: &Path,
    selection: &[ModelSpec],
    have: &Have,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    let existed = match std::fs::read_dir(dest).map(|mut entries| entries.next().is_none()) {
        Ok(true) => true,
        Ok(false) => {
            return Err(Error::BadInput {
                path: dest.to_owned(),
                reason: "is not empty; an update pack is written into a new or empty folder".into(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io(dest, e)),
    };
    let write = || -> Result<ExportReport> {
        let dst = store_like(src, dest)?;
        let basis = Inventory {
            chunks: ChunkSet::default(),
            ..have.inventory.clone()
        };
        write_atomic(&dest.join(SITE_INVENTORY_FILE), &inventory::encode(&basis))?;
        let mut plan = plan_import(src, &dst, selection, Admission::open())?;
        let mut report = ExportReport::default();
        // Judged before narrowing, so a clash with the site's versions is an error, not a drop.
        let mut dropped = HashSet::new();
        for (model, version) in &plan.versions {
            if have.holds(model, version)? {
                report.versions_held += 1;
            } else if let Some(reason) = have.refuses(version) {
                report
                    .refused
                    .push(format!("{model}@{}: {reason}", version.version));
            } else {
                continue;
            }
            dropped.insert((model.clone(), version.version.clone()));
        }
        let (chunks_held, bytes_held) = plan.narrow(
            |model, v| dropped.contains(&(model.to_owned(), v.version.clone())),
            |id| have.inventory.chunks.contains(id),
        );
        let written = run_import(src, &dst, plan, EXPORT_JOBS, progress)?;
        report.versions = written.versions_added;
        report.chunks = written.chunks_copied;
        report.bytes = written.bytes_copied;
        report.chunks_held = chunks_held;
        report.bytes_held = bytes_held;
        Ok(report)
    };
    let written = write();
    if written.is_err() {
        // The folder was empty or new: everything in it is this export's.
        let _ = if existed {
            std::fs::read_dir(dest).and_then(|entries| {
                entries
                    .flatten()
                    .try_for_each(|entry| match entry.file_type() {
                        Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(entry.path()),
                        _ => std::fs::remove_file(entry.path()),
                    })
            })
        } else {
            std::fs::remove_dir_all(dest)
        };
    }
    written
}
