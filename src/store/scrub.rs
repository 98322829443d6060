//! Full verification: structure, chunks and whole files of chosen models, re-read and re-hashed.
//!
//! Owns [`scrub`] and its [`ScrubReport`]. Unlike the lazy check on the read path, a scrub reports
//! every problem with the model files it hurts, instead of stopping at the first, in three passes:
//! 1. structure: every pack holding a checked chunk has a valid header, trailer and table, and each
//!    table row matches the record header it points at (damage there breaks `gc`, `index rebuild`
//!    and `import` even when every payload is intact);
//! 2. chunks: every chunk is read once, in pack order, decoded and hashed against its id, and its
//!    length compared with what the manifests claim;
//! 3. files: each file's chunks, in file order, hash to the whole-file blake3 and sha256 its
//!    manifest records (what `ls` shows), so a served file never differs from them unnoticed.
//!
//! It changes nothing.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use rayon::prelude::*;
use sha2::Digest;

use crate::error::{Error, Result};
use crate::format::manifest::Manifest;
use crate::format::pack::{RECORD_HEADER_LEN, RecordHeader};
use crate::id::{ChunkId, PackId};
use crate::progress::Progress;
use crate::store::Store;
use crate::store::chunk::Check;
use crate::store::index::Location;
use crate::store::pack::{pack_path, read_table};
use crate::store::registry::{ModelSpec, resolve};

/// What a scrub found.
#[derive(Debug, Default)]
pub struct ScrubReport {
    /// Model versions checked.
    pub versions: usize,
    /// Files checked.
    pub files: usize,
    /// Distinct chunks checked.
    pub chunks: usize,
    /// Decoded bytes of those chunks.
    pub bytes: u64,
    /// Packs whose structure was checked.
    pub packs: usize,
    /// Everything wrong, each with the files it affects.
    pub problems: Vec<Problem>,
}

/// One damaged or missing piece of the store.
#[derive(Debug)]
pub struct Problem {
    /// What is wrong (names the chunk, pack or manifest).
    pub description: String,
    /// `model@version/file` of every file that needs it.
    pub affected: Vec<String>,
}

/// The files to check: label and manifest (or why it could not be loaded).
type Files = Vec<(String, Result<Manifest>)>;

/// Verifies the models in `selection` (every version of each; all models if empty).
pub fn scrub(
    store: &Store,
    selection: &[ModelSpec],
    progress: &dyn Progress,
) -> Result<ScrubReport> {
    let mut report = ScrubReport::default();
    let files = selected_files(store, selection, &mut report)?;

    // Which files use each chunk, and the length their manifests give it.
    let mut users: HashMap<ChunkId, (u32, Vec<usize>)> = HashMap::new();
    for (index, (label, manifest)) in files.iter().enumerate() {
        let manifest = match manifest {
            Ok(manifest) => manifest,
            Err(e) => {
                report.problem(e.to_string(), vec![label.clone()]);
                continue;
            }
        };
        for chunk in &manifest.chunks {
            let (len, users) = users.entry(chunk.id).or_insert((chunk.len, Vec::new()));
            if *len != chunk.len {
                report.problem(
                    format!(
                        "manifests disagree on the length of chunk {}: {} and {} bytes",
                        chunk.id, len, chunk.len
                    ),
                    vec![label.clone()],
                );
            }
            if users.last() != Some(&index) {
                users.push(index);
            }
        }
    }
    let affected =
        |id: &ChunkId| -> Vec<String> { users[id].1.iter().map(|&i| files[i].0.clone()).collect() };

    let ids: Vec<ChunkId> = users.keys().copied().collect();
    let mut located = Vec::with_capacity(ids.len());
    for batch in ids.chunks(4096) {
        for (id, location) in batch.iter().zip(store.locate(batch)?) {
            match location {
                None => report.problem(Error::MissingChunk(*id).to_string(), affected(id)),
                Some(location) if location.raw_len != users[id].0 => report.problem(
                    format!(
                        "chunk {id} in pack {} holds {} bytes, its manifests say {}",
                        location.pack, location.raw_len, users[id].0
                    ),
                    affected(id),
                ),
                Some(location) => located.push((*id, location)),
            }
        }
    }
    // Pack order turns the chunk pass into mostly sequential reads.
    located.sort_by_key(|(_, location)| (location.pack, location.offset));
    report.chunks = ids.len();
    report.bytes = located.iter().map(|(_, l)| u64::from(l.raw_len)).sum();
    let file_bytes: u64 = files
        .iter()
        .filter_map(|(_, m)| m.as_ref().ok())
        .map(|m| m.size)
        .sum();

    progress.begin(report.bytes + file_bytes);
    check_packs(store, &located, &mut report);
    let bad_chunks = check_chunks(store, &located, progress);
    let bad_ids: std::collections::HashSet<ChunkId> =
        bad_chunks.iter().map(|(id, _)| *id).collect();
    for (id, e) in bad_chunks {
        report.problem(e.to_string(), affected(&id));
    }
    let bad_files = check_files(store, &files, &bad_ids, progress);
    progress.finish();
    for (label, description) in bad_files {
        report.problem(description, vec![label]);
    }
    Ok(report)
}

impl ScrubReport {
    fn problem(&mut self, description: String, affected: Vec<String>) {
        self.problems.push(Problem {
            description,
            affected,
        });
    }
}

/// The files of the selected versions, with their manifests loaded.
fn selected_files(
    store: &Store,
    selection: &[ModelSpec],
    report: &mut ScrubReport,
) -> Result<Files> {
    let registry = store.registry()?;
    let mut targets = Vec::new();
    if selection.is_empty() {
        for (name, entry) in &registry.models {
            targets.extend(entry.versions.iter().map(|v| (name.clone(), v)));
        }
    } else {
        for spec in selection {
            let (entry, version) = resolve(&registry, &spec.model, spec.version.as_deref())?;
            match spec.version {
                Some(_) => targets.push((spec.model.clone(), version)),
                None => targets.extend(entry.versions.iter().map(|v| (spec.model.clone(), v))),
            }
        }
    }
    report.versions = targets.len();
    let mut files = Vec::new();
    for (model, version) in targets {
        for file in &version.files {
            let label = format!("{model}@{}/{}", version.version, file.path);
            let manifest = store.manifest(&file.manifest).and_then(|m| {
                if m.size == file.size {
                    Ok(m)
                } else {
                    Err(Error::corrupt(
                        store.registry_path(),
                        format!(
                            "lists {label} as {} bytes, its manifest as {}",
                            file.size, m.size
                        ),
                    ))
                }
            });
            files.push((label, manifest));
        }
    }
    report.files = files.len();
    Ok(files)
}

/// Pass 1: each pack holding a checked chunk has a valid header, trailer and table, and each
/// checked chunk's record header matches what the index says.
fn check_packs(store: &Store, located: &[(ChunkId, Location)], report: &mut ScrubReport) {
    let mut by_pack: BTreeMap<PackId, Vec<&(ChunkId, Location)>> = BTreeMap::new();
    for entry in located {
        by_pack.entry(entry.1.pack).or_default().push(entry);
    }
    report.packs = by_pack.len();
    for (pack, chunks) in by_pack {
        let path = pack_path(store.packs_dir(), &pack);
        if let Err(e) = read_table(&path, &pack) {
            report.problem(
                format!("{e} (gc, index rebuild and import need it)"),
                Vec::new(),
            );
        }
        let Ok(file) = crate::store::fsutil::open_regular(&path) else {
            continue; // The chunk pass reports an unreadable pack, with the files it hurts.
        };
        let mut header = [0u8; RECORD_HEADER_LEN];
        for (id, location) in chunks {
            let matches = file.read_exact_at(&mut header, location.offset).is_ok()
                && RecordHeader::decode(&header)
                    .is_some_and(|h| h == crate::store::chunk::record_header(id, location));
            if !matches {
                report.problem(
                    format!(
                        "{}: record header of chunk {id} at offset {} is damaged",
                        path.display(),
                        location.offset
                    ),
                    Vec::new(),
                );
            }
        }
    }
}

/// Pass 2: every chunk read once, in pack order, decoded and hashed; returns the failures.
fn check_chunks(
    store: &Store,
    located: &[(ChunkId, Location)],
    progress: &dyn Progress,
) -> Vec<(ChunkId, Error)> {
    let failures = Mutex::new(Vec::new());
    located
        .par_chunks(64)
        .for_each_init(Vec::new, |buf, batch| {
            for (id, location) in batch {
                buf.resize(location.raw_len as usize, 0);
                if let Err(e) = store.read_chunk(id, location, buf, Check::Verify, |_| {}) {
                    failures
                        .lock()
                        .expect("failure list poisoned")
                        .push((*id, e));
                }
                progress.advance(u64::from(location.raw_len));
            }
        });
    failures.into_inner().expect("failure list poisoned")
}

/// Pass 3: each file whose chunks are all intact hashes, in file order, to the whole-file digests
/// its manifest records. Returns (file, what is wrong).
fn check_files(
    store: &Store,
    files: &Files,
    bad_chunks: &std::collections::HashSet<ChunkId>,
    progress: &dyn Progress,
) -> Vec<(String, String)> {
    files
        .par_iter()
        .filter_map(|(label, manifest)| {
            let manifest = manifest.as_ref().ok()?;
            if manifest.chunks.iter().any(|c| bad_chunks.contains(&c.id)) {
                return None; // Already reported with the chunk.
            }
            let (mut blake3, mut sha256) = (blake3::Hasher::new(), sha2::Sha256::new());
            let mut buf = Vec::new();
            let ids: Vec<ChunkId> = manifest.chunks.iter().map(|c| c.id).collect();
            for (chunks, refs) in ids.chunks(256).zip(manifest.chunks.chunks(256)) {
                let locations = match store.locate(chunks) {
                    Ok(locations) => locations,
                    Err(e) => return Some((label.clone(), e.to_string())),
                };
                for (chunk, location) in refs.iter().zip(locations) {
                    let location = location?; // Missing: reported with the chunk.
                    buf.resize(chunk.len as usize, 0);
                    if let Err(e) =
                        store.read_chunk(&chunk.id, &location, &mut buf, Check::Verify, |_| {})
                    {
                        return Some((label.clone(), e.to_string()));
                    }
                    blake3.update(&buf);
                    sha256.update(&buf);
                    progress.advance(u64::from(chunk.len));
                }
            }
            let blake3_ok = blake3.finalize().as_bytes() == &manifest.blake3;
            let sha256_ok = sha256.finalize().as_slice() == manifest.sha256;
            match (blake3_ok, sha256_ok) {
                (true, true) => None,
                _ => Some((
                    label.clone(),
                    format!(
                        "{label}: its bytes do not match the whole-file {} its manifest records",
                        match (blake3_ok, sha256_ok) {
                            (false, false) => "blake3 and sha256",
                            (false, true) => "blake3",
                            _ => "sha256",
                        }
                    ),
                )),
            }
        })
        .collect()
}
