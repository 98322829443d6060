//! Moving models between stores: `import` copies into a store what it lacks from another, and
//! `pack` makes a self-contained store of chosen models (for a USB stick).
//!
//! Owns [`plan_import`] (which versions and chunks are missing, and how many bytes that is) and
//! [`run_import`] (copy each missing chunk's record as it is stored, verified on the way, then the
//! manifests, then commit the versions). Copied chunks are sealed into indexed packs as they
//! arrive, so an interrupted import (kill -9, a source pulled out) keeps what arrived and a rerun
//! copies only the rest. Nothing is visible until the registry commit.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::manifest::Manifest;
use crate::format::pack::RECORD_HEADER_LEN;
use crate::format::registry::{ModelEntry, VersionEntry};
use crate::id::{ChunkId, ManifestId};
use crate::progress::Progress;
use crate::store::fsutil::write_atomic_with;
use crate::store::index::Location;
use crate::store::registry::{ModelSpec, resolve};
use crate::store::sink::PackSink;
use crate::store::{Access, InitOptions, Store};

/// What an import will copy.
pub struct ImportPlan {
    /// Versions to add, in the source's order.
    versions: Vec<(String, VersionEntry)>,
    /// Versions the destination already holds with the same files.
    pub versions_present: usize,
    manifests: Vec<(ManifestId, Manifest)>,
    /// Missing chunks and where the source keeps them, in source pack order.
    needed: Vec<(ChunkId, Location)>,
    /// Bytes the missing chunks take in the source's packs: what will be copied.
    pub needed_bytes: u64,
}

impl ImportPlan {
    /// Versions the import adds.
    pub fn versions_to_add(&self) -> usize {
        self.versions.len()
    }

    /// Chunks the import copies.
    pub fn needed_chunks(&self) -> usize {
        self.needed.len()
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Versions added.
    pub versions_added: usize,
    /// Chunks copied.
    pub chunks_copied: usize,
    /// Bytes copied (as stored).
    pub bytes_copied: u64,
}

/// Works out what importing `selection` (every model if empty; a bare name means all its
/// versions) from `src` into `dst` needs. Fails before copying anything if a version name is taken
/// in `dst` by different files.
pub fn plan_import(src: &Store, dst: &Store, selection: &[ModelSpec]) -> Result<ImportPlan> {
    let registry = src.registry()?;
    let mut chosen: Vec<(String, VersionEntry)> = Vec::new();
    if selection.is_empty() {
        for (name, entry) in &registry.models {
            chosen.extend(entry.versions.iter().map(|v| (name.clone(), v.clone())));
        }
    } else {
        for spec in selection {
            let (entry, version) = resolve(&registry, &spec.model, spec.version.as_deref())?;
            match spec.version {
                Some(_) => chosen.push((spec.model.clone(), version.clone())),
                None => chosen.extend(
                    entry
                        .versions
                        .iter()
                        .map(|v| (spec.model.clone(), v.clone())),
                ),
            }
        }
    }

    let existing = dst.registry()?;
    let mut versions = Vec::new();
    let mut versions_present = 0;
    for (model, version) in chosen {
        let present = existing
            .models
            .get(&model)
            .and_then(|m| m.versions.iter().find(|v| v.version == version.version));
        match present {
            Some(other) if other.files == version.files => versions_present += 1,
            Some(_) => {
                return Err(Error::VersionExists {
                    model,
                    version: version.version,
                });
            }
            None => versions.push((model, version)),
        }
    }

    let mut manifests = Vec::new();
    let mut seen = HashSet::new();
    // Each chunk's length as the manifests give it.
    let mut wanted: HashMap<ChunkId, u32> = HashMap::new();
    let mut sizes: HashMap<ManifestId, u64> = HashMap::new();
    for (model, version) in &versions {
        for file in &version.files {
            if seen.insert(file.manifest) {
                let manifest = src.manifest(&file.manifest)?;
                for chunk in &manifest.chunks {
                    let len = *wanted.entry(chunk.id).or_insert(chunk.len);
                    if len != chunk.len {
                        return Err(Error::corrupt(
                            src.root().join("manifests"),
                            format!(
                                "manifests disagree on the length of chunk {}: {len} and {} bytes",
                                chunk.id, chunk.len
                            ),
                        ));
                    }
                }
                sizes.insert(file.manifest, manifest.size);
                manifests.push((file.manifest, manifest));
            }
            // A registry that disagrees with its manifests is not copied into this store.
            if sizes[&file.manifest] != file.size {
                return Err(Error::corrupt(
                    src.registry_path(),
                    format!(
                        "lists {model}@{}/{} as {} bytes, its manifest as {}",
                        version.version, file.path, file.size, sizes[&file.manifest]
                    ),
                ));
            }
        }
    }
    let ids: Vec<ChunkId> = wanted.keys().copied().collect();
    let mut needed = Vec::new();
    for batch in ids.chunks(4096) {
        let (have, source) = (dst.locate(batch)?, src.locate(batch)?);
        for ((id, have), source) in batch.iter().zip(have).zip(source) {
            // Manifests that claim another length than the chunk has would make every read of
            // their files fail here: they are not copied.
            let holds = have.or(source).map(|l| l.raw_len);
            if let Some(holds) = holds.filter(|&holds| holds != wanted[id]) {
                return Err(Error::corrupt(
                    src.root().join("manifests"),
                    format!(
                        "a manifest says chunk {id} holds {} bytes; it holds {holds}",
                        wanted[id]
                    ),
                ));
            }
            if have.is_none() {
                needed.push((*id, source.ok_or(Error::MissingChunk(*id))?));
            }
        }
    }
    needed.sort_by_key(|(_, location)| (location.pack, location.offset));
    let needed_bytes = needed
        .iter()
        .map(|(_, l)| RECORD_HEADER_LEN as u64 + u64::from(l.stored_len))
        .sum();
    Ok(ImportPlan {
        versions,
        versions_present,
        manifests,
        needed,
        needed_bytes,
    })
}

/// Carries out `plan`: copies the missing chunks (each verified), the manifests, then commits
/// the versions to `dst`'s registry.
pub fn run_import(
    src: &Store,
    dst: &Store,
    plan: ImportPlan,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let mut sink = PackSink::new(dst)?;
    let (mut decoded, mut payload) = (Vec::new(), Vec::new());
    progress.begin(plan.needed_bytes);
    let copied = (|| {
        for (id, location) in &plan.needed {
            let header = src.read_record(id, location, &mut decoded, &mut payload)?;
            sink.append(header, &payload)?;
            report.chunks_copied += 1;
            report.bytes_copied += header.record_len();
            progress.advance(header.record_len());
        }
        sink.seal()
    })();
    progress.finish();
    if let Err(e) = copied {
        // Keep what arrived (sealed and indexed), so a rerun copies only the rest.
        let _ = sink.seal();
        return Err(e);
    }
    for (_, manifest) in &plan.manifests {
        dst.put_manifest(manifest)?;
    }
    report.versions_added = plan.versions.len();
    dst.update_registry(|registry| {
        for (model, version) in plan.versions {
            let entry = registry
                .models
                .entry(model.clone())
                .or_insert_with(|| ModelEntry {
                    versions: Vec::new(),
                });
            match entry.versions.iter().find(|v| v.version == version.version) {
                Some(other) if other.files == version.files => {}
                Some(_) => {
                    return Err(Error::VersionExists {
                        model,
                        version: version.version,
                    });
                }
                None => entry.versions.push(version),
            }
        }
        Ok(())
    })?;
    Ok(report)
}

/// Creates (or reuses) a store at `dest` with `src`'s parameters and imports `selection` into it.
pub fn pack(
    src: &Store,
    dest: &Path,
    selection: &[ModelSpec],
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let options = InitOptions {
        chunking: src.config().chunking,
        pack_target_bytes: src.config().pack_target_bytes,
        compression: src.config().compression,
    };
    if dest.exists() && crate::store::read_config(dest).is_err() && !holds_only_a_new_store(dest) {
        return Err(Error::BadInput {
            path: dest.to_owned(),
            reason: "is not empty and not a modelfs store; pick an empty folder".into(),
        });
    }
    Store::init(dest, options)?;
    let dst = Store::open(dest, Access::Write)?;
    let plan = plan_import(src, &dst, selection)?;
    run_import(src, &dst, plan, progress)
}

/// Whether `dest` is empty, or holds only what an interrupted `init` of a store leaves there
/// (its folders, lock and temp files, no config yet): then `pack` may go on into it.
fn holds_only_a_new_store(dest: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dest) else {
        return false;
    };
    entries.into_iter().all(|entry| {
        entry.is_ok_and(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            matches!(
                name.as_ref(),
                "packs" | "manifests" | "index" | "index.rebuild" | "lock"
            ) || (name.starts_with('.') && name.ends_with(crate::store::fsutil::TEMP_SUFFIX))
        })
    })
}

/// Adds what a machine without modelfs needs to use the store at `dest`: a copy of the executable
/// `exe` as `dest/modelfs` and the `scripts` (name, text), all mode 0755 where the file system has
/// modes (a FAT stick does not: run `sh mount.sh`). Each is written under a new temp name and
/// renamed into place, so a link planted at one of the names is replaced, never written through.
/// The executable is copied with plain reads and writes: FUSE FAT drivers refuse the in-kernel
/// copy (`copy_file_range`) that `std::io::copy` uses.
pub fn write_launcher(dest: &Path, exe: &Path, scripts: &[(&str, &str)]) -> Result<()> {
    let mut source = std::fs::File::open(exe).map_err(|e| Error::io(exe, e))?;
    write_atomic_with(&dest.join("modelfs"), 0o755, |target| {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = source.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            target.write_all(&buf[..n])?;
        }
    })?;
    for (name, text) in scripts {
        write_atomic_with(&dest.join(name), 0o755, |target| {
            target.write_all(text.as_bytes())
        })?;
    }
    Ok(())
}
