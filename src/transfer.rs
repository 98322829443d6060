//! Moving models between stores: `import` copies into a store what it lacks from another, and
//! `pack` makes a self-contained store of chosen models (for a USB stick).
//!
//! Owns [`plan_import`] (which versions and chunks are missing, and how many bytes that is) and
//! [`run_import`] (copy each missing chunk's record as it is stored, verified on the way, then the
//! manifests, then commit the versions). The source is any [`Source`]: another store directory,
//! or a peer or mirror over HTTP (`pull` is an import from a URL). Missing chunks are read in runs
//! of neighbouring records — one read, or one ranged request, per run of up to the source's
//! `run_size` (4 MiB; 16 MiB from an object store) —
//! by several workers at once; each record is verified before it is appended. Copied chunks are
//! sealed into indexed packs as they arrive (and a pack left unsealed by kill -9 is salvaged by
//! the next writer), so an interrupted pull keeps what arrived and a rerun fetches only the rest;
//! an import from a directory (a stick, an update pack) that fails instead removes what it wrote,
//! leaving the store exactly as it was. Nothing is visible until the registry commit, which adds
//! every version of the import at once.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::error::{Error, Result};
use crate::format::manifest::Manifest;
use crate::format::pack::{RECORD_HEADER_LEN, RecordHeader};
use crate::format::registry::{ModelEntry, Registry, VersionEntry};
use crate::format::release::Statement;
use crate::id::{ChunkId, ManifestId};
use crate::progress::Progress;
use crate::source::{Place, Source};
use crate::store::chunk::{self, Check};
use crate::store::fsutil::write_atomic_with;
use crate::store::registry::{ModelSpec, resolve};
use crate::store::sink::PackSink;
use crate::store::{Access, InitOptions, Store};
use crate::trust::policy::Keyring;
use crate::trust::release::{self, Accepted};

/// How an import judges the releases it brings in.
#[derive(Clone, Copy)]
pub struct Admission<'a> {
    /// The destination's trusted keys; `None` (or a keyring without keys): no policy, releases
    /// are carried as they are.
    pub keyring: Option<&'a Keyring>,
    /// Take a release whose sequence number is not above the high-water mark.
    pub allow_downgrade: bool,
    /// Unix seconds now, for expiry.
    pub now: u64,
}

impl Admission<'_> {
    /// No policy: every version is taken, signed or not.
    pub fn open() -> Admission<'static> {
        Admission {
            keyring: None,
            allow_downgrade: false,
            now: crate::store::now_unix(),
        }
    }
}

/// What an import will copy.
pub struct ImportPlan {
    /// Versions to add, in the source's order.
    pub(crate) versions: Vec<(String, VersionEntry)>,
    /// Versions the destination already holds with the same files.
    pub versions_present: usize,
    pub(crate) manifests: Vec<(ManifestId, Manifest)>,
    /// Missing chunks and where the source keeps them, in source pack order.
    pub(crate) needed: Vec<(ChunkId, Place)>,
    /// Bytes the missing chunks take in the source's packs: what will be copied.
    pub needed_bytes: u64,
    /// Releases that passed the destination's policy, whose high-water marks the commit raises.
    pub accepted: Vec<Accepted>,
    /// Releases taken below the high-water mark under `--allow-downgrade`, as `MODEL@VERSION`.
    pub downgrades: Vec<String>,
    /// The source's Hugging Face repo id of each model added, given to models that have none.
    pub(crate) hf_repos: Vec<(String, String)>,
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

    /// Applies the plan to the destination's registry: adds the versions, raises the high-water
    /// marks of the releases it accepted, and gives added models the source's repo id.
    pub(crate) fn commit_to(&self, registry: &mut Registry) -> Result<()> {
        add_versions(registry, self.versions.clone())?;
        for ok in &self.accepted {
            release::raise_high_water(registry, &ok.statement);
        }
        for (model, repo) in &self.hf_repos {
            if let Some(entry) = registry.models.get_mut(model) {
                entry.hf_repo.get_or_insert_with(|| repo.clone());
            }
        }
        Ok(())
    }

    /// The versions the import adds, as (model, version).
    pub fn added(&self) -> Vec<(String, String)> {
        self.versions
            .iter()
            .map(|(model, v)| (model.clone(), v.version.clone()))
            .collect()
    }

    /// Narrows the plan to what another store lacks (an update pack for a site): drops the
    /// versions `drop_version` picks (with their releases and the manifests and chunks only they
    /// use), then the chunks `held` says that store has. Returns the chunks dropped for `held` and
    /// the bytes they take in the source's packs.
    pub fn narrow(
        &mut self,
        drop_version: impl Fn(&str, &VersionEntry) -> bool,
        held: impl Fn(&ChunkId) -> bool,
    ) -> (usize, u64) {
        self.versions.retain(|(model, v)| !drop_version(model, v));
        let kept: HashSet<(&str, &str)> = self
            .versions
            .iter()
            .map(|(model, v)| (model.as_str(), v.version.as_str()))
            .collect();
        self.accepted.retain(|ok| {
            kept.contains(&(
                ok.statement.model.as_str(),
                ok.statement.model_version.as_str(),
            ))
        });
        self.downgrades.retain(|release| {
            release
                .split_once('@')
                .is_some_and(|(model, version)| kept.contains(&(model, version)))
        });
        let used: HashSet<ManifestId> = self
            .versions
            .iter()
            .flat_map(|(_, v)| v.files.iter().map(|f| f.manifest))
            .collect();
        self.manifests.retain(|(id, _)| used.contains(id));
        let live: HashSet<ChunkId> = self
            .manifests
            .iter()
            .flat_map(|(_, m)| m.chunks.iter().map(|c| c.id))
            .collect();
        self.needed.retain(|(id, _)| live.contains(id));
        let (elsewhere, needed): (Vec<_>, Vec<_>) =
            self.needed.drain(..).partition(|(id, _)| held(id));
        self.needed = needed;
        self.needed_bytes = stored_bytes(&self.needed);
        (elsewhere.len(), stored_bytes(&elsewhere))
    }
}

/// Bytes `records` take in their packs, headers included.
fn stored_bytes(records: &[(ChunkId, Place)]) -> u64 {
    records
        .iter()
        .map(|(_, p)| RECORD_HEADER_LEN as u64 + u64::from(p.location.stored_len))
        .sum()
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
    /// Releases taken below their high-water mark under `--allow-downgrade`.
    pub downgrades: Vec<String>,
}

/// Works out what importing `selection` (every model if empty; a bare name means all its
/// versions) from `src` into `dst` needs. Fails before copying anything if a version name is taken
/// in `dst` by different files, or if a release fails `admission` (then nothing is copied: an
/// update pack comes in whole or not at all).
pub fn plan_import(
    src: &dyn Source,
    dst: &dyn Source,
    selection: &[ModelSpec],
    admission: Admission<'_>,
) -> Result<ImportPlan> {
    let src_root = PathBuf::from(src.describe());
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
                            src_root.join("manifests"),
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
                    src_root.join("registry.json"),
                    format!(
                        "lists {model}@{}/{} as {} bytes, its manifest as {}",
                        version.version, file.path, file.size, sizes[&file.manifest]
                    ),
                ));
            }
        }
    }
    let (accepted, downgrades) = admit(&versions, &manifests, &existing, admission)?;
    let hf_repos = versions
        .iter()
        .filter_map(|(model, _)| {
            let repo = registry.models.get(model)?.hf_repo.clone()?;
            Some((model.clone(), repo))
        })
        .collect();
    let ids: Vec<ChunkId> = wanted.keys().copied().collect();
    let mut needed = Vec::new();
    for batch in ids.chunks(4096) {
        let have = dst.locate(batch)?;
        // Only what the destination lacks is looked up in the source: an update pack holds little
        // of a version, and a remote source reads pack tables until it finds every id asked for.
        let lacking: Vec<ChunkId> = batch
            .iter()
            .zip(&have)
            .filter_map(|(id, have)| have.is_none().then_some(*id))
            .collect();
        let mut found = src.locate(&lacking)?.into_iter();
        for (id, have) in batch.iter().zip(have) {
            let source = if have.is_none() {
                found.next().flatten()
            } else {
                None
            };
            // Manifests that claim another length than the chunk has would make every read of
            // their files fail here: they are not copied.
            let holds = have.or(source).map(|p| p.location.raw_len);
            if let Some(holds) = holds.filter(|&holds| holds != wanted[id]) {
                return Err(Error::corrupt(
                    src_root.join("manifests"),
                    format!(
                        "a manifest says chunk {id} holds {} bytes; it holds {holds}",
                        wanted[id]
                    ),
                ));
            }
            if have.is_none() {
                let place = source.ok_or_else(|| {
                    Error::corrupt(
                        src_root.join("manifests"),
                        format!(
                            "a manifest lists chunk {id}, which neither this store nor {} holds \
                             (an update pack made for a store that has more?)",
                            dst.describe()
                        ),
                    )
                })?;
                needed.push((*id, place));
            }
        }
    }
    needed.sort_by_key(|(_, p)| (p.layer, p.location.pack, p.location.offset));
    let needed_bytes = stored_bytes(&needed);
    Ok(ImportPlan {
        versions,
        versions_present,
        manifests,
        needed,
        needed_bytes,
        accepted,
        downgrades,
        hf_repos,
    })
}

/// Judges the releases of `versions` by `admission` against the destination's registry
/// `existing`: every version needs a release that passes the keyring, and a sequence number above
/// the high-water mark unless downgrades are allowed. Without a policy, nothing is judged.
fn admit(
    versions: &[(String, VersionEntry)],
    manifests: &[(ManifestId, Manifest)],
    existing: &Registry,
    admission: Admission<'_>,
) -> Result<(Vec<Accepted>, Vec<String>)> {
    let Some(keyring) = admission.keyring.filter(|k| k.is_active()) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let by_id: HashMap<&ManifestId, &Manifest> = manifests.iter().map(|(id, m)| (id, m)).collect();
    let mut lookup = |id: &ManifestId| {
        by_id
            .get(id)
            .map(|m| (*m).clone())
            .ok_or(Error::MissingManifest(*id))
    };
    let (mut accepted, mut downgrades) = (Vec::new(), Vec::new());
    for (model, version) in versions {
        let refused = |reason| Error::from(release::refused(model, &version.version, reason));
        let ok =
            release::check(model, version, keyring, admission.now, &mut lookup).map_err(refused)?;
        if let Err(reason) = release::check_sequence(existing, &ok.statement) {
            if !admission.allow_downgrade {
                return Err(refused(reason));
            }
            downgrades.push(format!("{model}@{}", version.version));
        }
        accepted.push(ok);
    }
    Ok((accepted, downgrades))
}

/// Appended bytes after which the open pack is handed to the kernel (a kill loses at most this
/// much of what was written).
const FLUSH_EVERY: u64 = 256 << 10;
/// Largest gap between two needed records read through rather than split into two runs.
const RUN_GAP: u64 = 64 << 10;

/// Carries out `plan`: copies the missing chunks (each verified) with `jobs` runs in flight, then
/// the manifests, then commits the versions to `dst`'s registry.
pub fn run_import(
    src: &dyn Source,
    dst: &Store,
    plan: ImportPlan,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let mut sink = PackSink::new(dst)?;
    progress.begin(plan.needed_bytes);
    let mut unflushed = 0;
    let copied = copy_runs(
        src,
        &runs(&plan.needed, src.run_size()),
        jobs,
        |header, payload| {
            sink.append(header, payload)?;
            report.chunks_copied += 1;
            report.bytes_copied += header.record_len();
            progress.advance(header.record_len());
            // Records handed to the kernel survive a kill: keep what sits in memory small.
            unflushed += header.record_len();
            if unflushed >= FLUSH_EVERY {
                sink.flush()?;
                unflushed = 0;
            }
            Ok(())
        },
    )
    .and_then(|()| sink.seal());
    progress.finish();
    if let Err(e) = copied {
        match src.traffic() {
            // From the network, keep what arrived (sealed and indexed), so a rerun fetches
            // only the rest.
            Some(_) => {
                let _ = sink.seal();
            }
            // From a stick or an update pack, a rerun costs a local read: leave the store
            // exactly as it was.
            None => sink.roll_back(),
        }
        return Err(e);
    }
    for (_, manifest) in &plan.manifests {
        dst.put_manifest(manifest)?;
    }
    report.versions_added = plan.versions.len();
    report.downgrades = plan.downgrades.clone();
    dst.update_registry(|registry| plan.commit_to(registry))?;
    Ok(report)
}

/// Adds `versions` to `registry`; a version name taken by other files is an error, the same
/// files are fine (already there).
fn add_versions(registry: &mut Registry, versions: Vec<(String, VersionEntry)>) -> Result<()> {
    for (model, version) in versions {
        let entry = registry
            .models
            .entry(model.clone())
            .or_insert_with(|| ModelEntry::new(Vec::new()));
        match entry.versions.iter().find(|v| v.version == version.version) {
            Some(other) if other.files == version.files => {}
            Some(_) => {
                return Err(Error::VersionExists {
                    model,
                    version: version.version,
                });
            }
            None => {
                // A new version is what the bare name means again, whatever was rolled back to;
                // a signed release goes before the releases of its channel with higher sequence
                // numbers, so an older release taken late does not become the newest.
                entry.current = None;
                let at = release_order(&version).and_then(|(channel, sequence)| {
                    entry.versions.iter().position(|v| {
                        release_order(v).is_some_and(|(c, s)| c == channel && s > sequence)
                    })
                });
                entry
                    .versions
                    .insert(at.unwrap_or(entry.versions.len()), version);
            }
        }
    }
    Ok(())
}

/// The channel and sequence number a version's statement claims, if it has a readable one.
fn release_order(version: &VersionEntry) -> Option<(String, u64)> {
    let statement = Statement::decode(&version.release.as_ref()?.statement).ok()?;
    Some((statement.channel, statement.sequence))
}

/// Groups needed records (sorted by place) into runs: neighbours in one pack, at most
/// [`RUN_GAP`] apart, at most `max` long (a single larger record is a run of its own).
pub(crate) fn runs(needed: &[(ChunkId, Place)], max: u64) -> Vec<&[(ChunkId, Place)]> {
    let end =
        |p: &Place| p.location.offset + RECORD_HEADER_LEN as u64 + u64::from(p.location.stored_len);
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=needed.len() {
        let split = needed.get(i).is_none_or(|(_, next)| {
            let (first, prev) = (&needed[start].1, &needed[i - 1].1);
            next.layer != first.layer
                || next.location.pack != first.location.pack
                || next.location.offset < end(prev)
                || next.location.offset - end(prev) > RUN_GAP
                || end(next) - first.location.offset > max
        });
        if split {
            runs.push(&needed[start..i]);
            start = i;
        }
    }
    runs
}

/// Records verified by the workers waiting for the writer: enough to keep it busy, few enough that
/// a kill loses little (each is at most a chunk, 256 KiB by default).
const QUEUED_RECORDS: usize = 8;

/// Reads `runs` from `src` with `jobs` workers, cuts each into records as its bytes arrive,
/// verifies them, and hands each verified record to `deliver` on the calling thread at once.
/// Stops at the first error.
pub(crate) fn copy_runs(
    src: &dyn Source,
    runs: &[&[(ChunkId, Place)]],
    jobs: usize,
    mut deliver: impl FnMut(RecordHeader, &[u8]) -> Result<()>,
) -> Result<()> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::sync_channel::<Result<(RecordHeader, Vec<u8>)>>(QUEUED_RECORDS);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, runs.len().max(1)) {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(run) = runs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    let sent = read_run(src, run, &mut |record| {
                        tx.send(Ok(record)).map_err(|_| Error::Cancelled)
                    });
                    if let Err(e) = sent
                        && tx.send(Err(e)).is_err()
                    {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let result = rx
            .iter()
            .try_for_each(|record| record.and_then(|(header, payload)| deliver(header, &payload)));
        stop.store(true, Ordering::Relaxed);
        // Unblock workers waiting to send, so the scope can end.
        drop(rx);
        result
    })
}

/// Reads one run in a single read and sends each needed record, verified, as soon as its bytes
/// are in.
fn read_run(
    src: &dyn Source,
    run: &[(ChunkId, Place)],
    send: &mut dyn FnMut((RecordHeader, Vec<u8>)) -> Result<()>,
) -> Result<()> {
    let end =
        |p: &Place| p.location.offset + RECORD_HEADER_LEN as u64 + u64::from(p.location.stored_len);
    let (first, last) = (&run[0].1, &run[run.len() - 1].1);
    let start = first.location.offset;
    let len = end(last) - start;
    let mut bytes = Vec::with_capacity(len as usize);
    let mut decoded = Vec::new();
    let mut kept = 0;
    src.read_run(first, len, &mut |piece| {
        bytes.extend_from_slice(piece);
        while let Some((id, place)) = run.get(kept) {
            if end(place) - start > bytes.len() as u64 {
                break;
            }
            let location = &place.location;
            let at = (location.offset - start) as usize + RECORD_HEADER_LEN;
            let stored = &bytes[at..at + location.stored_len as usize];
            decoded.resize(location.raw_len as usize, 0);
            chunk::load(
                id,
                location,
                &mut decoded,
                Check::Verify,
                |buf| {
                    buf.copy_from_slice(stored);
                    Ok(())
                },
                |_| {},
            )?;
            send((chunk::record_header(id, location), stored.to_vec()))?;
            kept += 1;
        }
        Ok(())
    })
}

/// Creates (or reuses) a store at `dest` with `src`'s parameters and imports `selection` into it.
pub fn pack(
    src: &Store,
    dest: &Path,
    selection: &[ModelSpec],
    progress: &dyn Progress,
) -> Result<ImportReport> {
    if dest.exists() && crate::store::read_config(dest).is_err() && !holds_only_a_new_store(dest) {
        return Err(Error::BadInput {
            path: dest.to_owned(),
            reason: "is not empty and not a modelfs store; pick an empty folder".into(),
        });
    }
    let dst = store_like(src, dest)?;
    let plan = plan_import(src, &dst, selection, Admission::open())?;
    run_import(src, &dst, plan, 1, progress)
}

/// Creates (or reuses) a store at `dest` with `src`'s chunking, pack size and compression, so
/// chunks copied into it keep their ids and records; opens it to write.
pub(crate) fn store_like(src: &Store, dest: &Path) -> Result<Store> {
    let options = InitOptions {
        chunking: src.config().chunking,
        pack_target_bytes: src.config().pack_target_bytes,
        compression: src.config().compression,
    };
    Store::init(dest, options)?;
    Store::open(dest, Access::Write)
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
