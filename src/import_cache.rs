//! `import-hf` and `import-ollama`: models already downloaded by the Hugging Face hub or by
//! Ollama, taken into the store without a second download.
//!
//! Owns reading those caches (never writing them: files are only opened for reading), turning
//! each HF revision and each Ollama tag into a [`Candidate`] version or a [`Skipped`] entry that
//! says why, and adding the candidates through [`crate::ingest::add_files`], which dedups against
//! the store and leaves nothing behind when one fails. Model names: an Ollama `NAME:TAG` becomes
//! version `TAG` of model `NAME` (`NAMESPACE--NAME` outside the `library` namespace); an HF repo
//! `ORG/NAME` becomes model `NAME` with repo id `ORG/NAME`, unless a model already shows under that
//! repo id (then that model), or `NAME` is another model's (then `ORG--NAME`). An HF revision's
//! version is the branch in `refs/` that points at it (`main` first), else its first 12 hex digits.
//! Prints nothing.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::format::registry::{Layout, Registry};
use crate::ingest::{AddOptions, AddReport, add_files, bad_input};
use crate::progress::Progress;
use crate::store::Store;
use crate::store::fsutil::read_capped;
use crate::store::registry::{check_hf_repo, hf_repo_of, validate_name};

/// The Ollama media type of a model's weights (a GGUF file).
const OLLAMA_MODEL_LAYER: &str = "application/vnd.ollama.image.model";

/// Largest Ollama manifest read (real ones are under 2 KiB).
const MAX_MANIFEST_LEN: u64 = 1 << 20;

/// One version to add: files found in a cache, not yet in the store.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Preferred model name (for HF, [`import`] may pick another; see the module docs).
    pub model: String,
    /// Version name.
    pub version: String,
    /// The Hugging Face repo id, for HF caches.
    pub hf_repo: Option<String>,
    /// A single file (Ollama) or a folder (an HF snapshot).
    pub layout: Layout,
    /// (path inside the model, real file in the cache, sha256 it must have if known).
    pub files: Vec<(String, PathBuf, Option<[u8; 32]>)>,
    /// What the cache calls it: `ORG/NAME@REVISION` or `NAME:TAG`.
    pub label: String,
    /// The snapshot folder or manifest it was read from.
    pub from: PathBuf,
    /// Layers of an Ollama manifest not imported (template, params, license, …).
    pub other_layers: usize,
}

/// Something in a cache left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// What the cache calls it.
    pub what: String,
    /// Why it was left out.
    pub reason: String,
}

/// What a cache holds: versions to add and entries left out.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Versions to add.
    pub candidates: Vec<Candidate>,
    /// Entries left out.
    pub skipped: Vec<Skipped>,
}

impl Scan {
    fn skip(&mut self, what: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            what: what.into(),
            reason: reason.into(),
        });
    }
}

/// One version added.
#[derive(Debug, Clone)]
pub struct Added {
    /// Where it was read from.
    pub from: PathBuf,
    /// What `add` stored.
    pub report: AddReport,
}

/// What [`import`] did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Versions added.
    pub added: Vec<Added>,
    /// Candidates the store holds already with the same files (`MODEL@VERSION`).
    pub present: Vec<String>,
    /// Entries left out: the scan's and candidates that failed (nothing of them stays).
    pub skipped: Vec<Skipped>,
    /// Ollama layers of the versions added or present left out (only the GGUF weights are
    /// taken).
    pub other_layers: usize,
    /// Distinct cache files (by inode) of the versions added or present.
    pub cache_files: u64,
    /// Their total size: the disk deleting them from the cache frees.
    pub cache_bytes: u64,
    /// Bytes the store grew by (new chunks in packs).
    pub stored_bytes: u64,
}

/// The default HF hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`; `None` without a home.
pub fn default_hf_cache() -> Option<PathBuf> {
    env_dir("HF_HUB_CACHE")
        .or_else(|| env_dir("HF_HOME").map(|home| home.join("hub")))
        .or_else(|| env_dir("HOME").map(|home| home.join(".cache/huggingface/hub")))
}

/// The default Ollama models folder: `$OLLAMA_MODELS`, else `~/.ollama/models`.
pub fn default_ollama_models() -> Option<PathBuf> {
    env_dir("OLLAMA_MODELS").or_else(|| env_dir("HOME").map(|home| home.join(".ollama/models")))
}

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Lists the revisions of an HF hub cache (only of `repos` if any are named) as candidates.
pub fn scan_hf(cache: &Path, repos: &[String]) -> Result<Scan> {
    for repo in repos {
        check_hf_repo(repo).map_err(|reason| Error::BadInput {
            path: "--repo".into(),
            reason,
        })?;
    }
    let mut scan = Scan::default();
    let mut found = HashSet::new();
    for dir in sorted_entries(cache)? {
        let Some(id) = file_name(&dir).strip_prefix("models--").map(str::to_owned) else {
            continue;
        };
        let repo = id.replacen("--", "/", 1);
        if !repos.is_empty() && !repos.contains(&repo) {
            continue;
        }
        found.insert(repo.clone());
        if let Err(reason) = check_hf_repo(&repo) {
            scan.skip(&repo, reason);
            continue;
        }
        scan_hf_repo(&dir, &repo, &mut scan)?;
    }
    for repo in repos.iter().filter(|r| !found.contains(*r)) {
        scan.skip(repo, format!("not in the cache {}", cache.display()));
    }
    Ok(scan)
}

/// Adds the revisions of one repo folder (`models--ORG--NAME`) to `scan`.
fn scan_hf_repo(dir: &Path, repo: &str, scan: &mut Scan) -> Result<()> {
    let (_, name) = repo.split_once('/').unwrap_or(("", repo));
    // Revision → branch names pointing at it (top-level refs only: `refs/pr/N` are not branches).
    let mut branches: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let refs = dir.join("refs");
    if refs.is_dir() {
        for path in sorted_entries(&refs)? {
            if !path.is_file() {
                continue;
            }
            let rev = std::fs::read_to_string(&path).map_err(|e| bad_input(&path, &e))?;
            branches
                .entry(rev.trim().to_owned())
                .or_default()
                .push(file_name(&path));
        }
    }
    let blobs = dir.join("blobs");
    let blobs_real = std::fs::canonicalize(&blobs).ok();
    let mut linked = HashSet::new();
    let snapshots = dir.join("snapshots");
    if !snapshots.is_dir() {
        scan.skip(repo, "has no snapshots (nothing downloaded)");
        return Ok(());
    }
    for snapshot in sorted_entries(&snapshots)? {
        let rev = file_name(&snapshot);
        let label = format!("{repo}@{rev}");
        if rev.len() < 12 || !rev.bytes().all(|b| b.is_ascii_hexdigit()) {
            scan.skip(label, "is not a revision (its name is not a commit hash)");
            continue;
        }
        let version = branches
            .get(&rev)
            .and_then(|names| {
                let main = names.iter().find(|n| *n == "main");
                main.or_else(|| names.iter().find(|n| validate_name("version", n).is_ok()))
            })
            .cloned()
            .unwrap_or_else(|| rev[..12].to_owned());
        let mut files = Vec::new();
        match snapshot_files(&snapshot, "", blobs_real.as_deref(), &mut files) {
            Ok(()) if files.is_empty() => scan.skip(label, "holds no files"),
            Ok(()) => {
                linked.extend(files.iter().map(|(_, real, _)| real.clone()));
                files.sort();
                scan.candidates.push(Candidate {
                    model: name.to_owned(),
                    version,
                    hf_repo: Some(repo.to_owned()),
                    layout: Layout::Dir,
                    files,
                    label,
                    from: snapshot,
                    other_layers: 0,
                });
            }
            Err(reason) => scan.skip(label, reason),
        }
    }
    if blobs.is_dir() {
        for blob in sorted_entries(&blobs)? {
            let blob_name = file_name(&blob);
            if blob_name.ends_with(".incomplete") {
                scan.skip(
                    format!("{repo}: blobs/{blob_name}"),
                    "an unfinished download; left out",
                );
            }
        }
    }
    Ok(())
}

/// Collects a snapshot's files as (path inside it, real file); `Err` (a reason) if the revision
/// is incomplete: a dangling link, a link to an unfinished blob, or one leading out of `blobs`.
fn snapshot_files(
    dir: &Path,
    prefix: &str,
    blobs: Option<&Path>,
    out: &mut Vec<(String, PathBuf, Option<[u8; 32]>)>,
) -> std::result::Result<(), String> {
    let entries = sorted_entries(dir).map_err(|e| e.to_string())?;
    for path in entries {
        let name = format!("{prefix}{}", file_name(&path));
        let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        let real = match std::fs::canonicalize(&path) {
            Ok(real) => real,
            Err(_) => {
                let target = std::fs::read_link(&path).unwrap_or_default();
                let mut unfinished = target.clone().into_os_string();
                unfinished.push(".incomplete");
                let half = dir.join(&unfinished).exists();
                return Err(if half {
                    format!(
                        "half-downloaded: {name} links to {}, still .incomplete",
                        target.display()
                    )
                } else {
                    format!(
                        "half-downloaded: {name} is a dangling link to {}",
                        target.display()
                    )
                });
            }
        };
        if file_name(&real).ends_with(".incomplete") {
            return Err(format!("half-downloaded: {name} is an .incomplete blob"));
        }
        if is_link && !blobs.is_some_and(|b| real.starts_with(b)) {
            return Err(format!(
                "{name} links to {}, outside the repo's blobs",
                real.display()
            ));
        }
        if real.is_dir() {
            snapshot_files(&path, &format!("{name}/"), blobs, out)?;
        } else if real.is_file() {
            out.push((name, real, None));
        } else {
            return Err(format!("{name} is not a regular file"));
        }
    }
    Ok(())
}

/// An Ollama manifest, the parts read here.
#[derive(Debug, Deserialize)]
struct OllamaManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    layers: Vec<OllamaLayer>,
}

#[derive(Debug, Deserialize)]
struct OllamaLayer {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
}

/// Lists the tags of an Ollama models folder (only `models` if any are named: `NAME` or
/// `NAME:TAG`) as candidates: each tag's GGUF model layer, checked against its digest on add.
pub fn scan_ollama(models_dir: &Path, models: &[String]) -> Result<Scan> {
    let manifests = models_dir.join("manifests");
    let mut scan = Scan::default();
    let mut matched = HashSet::new();
    for host in sorted_dirs(&manifests)? {
        for namespace in sorted_dirs(&host)? {
            let ns = file_name(&namespace);
            for model_dir in sorted_dirs(&namespace)? {
                let name = file_name(&model_dir);
                let (model, shown) = if ns == "library" {
                    (name.clone(), name.clone())
                } else {
                    (format!("{ns}--{name}"), format!("{ns}/{name}"))
                };
                for manifest in sorted_entries(&model_dir)? {
                    let tag = file_name(&manifest);
                    let label = format!("{shown}:{tag}");
                    let wanted = models.iter().find(|m| **m == label || **m == shown);
                    if !models.is_empty() && wanted.is_none() {
                        continue;
                    }
                    matched.extend(wanted.cloned());
                    let checked = validate_name("model name", &model)
                        .and_then(|()| validate_name("version", &tag))
                        .map_err(|e| e.to_string())
                        .and_then(|()| ollama_layer(models_dir, &manifest));
                    match checked {
                        Ok((blob, sha256, other_layers)) => {
                            scan.candidates.push(Candidate {
                                files: vec![(format!("{model}.gguf"), blob, Some(sha256))],
                                model: model.clone(),
                                version: tag,
                                hf_repo: None,
                                layout: Layout::File,
                                label,
                                from: manifest,
                                other_layers,
                            });
                        }
                        Err(reason) => scan.skip(label, reason),
                    }
                }
            }
        }
    }
    for model in models.iter().filter(|m| !matched.contains(*m)) {
        scan.skip(model, format!("not in {}", models_dir.display()));
    }
    Ok(scan)
}

/// Reads a manifest: its model layer's blob, that blob's sha256, and how many other layers it has.
fn ollama_layer(
    models_dir: &Path,
    manifest: &Path,
) -> std::result::Result<(PathBuf, [u8; 32], usize), String> {
    let text = read_capped(manifest, MAX_MANIFEST_LEN)
        .map_err(|e| format!("cannot read its manifest: {e}"))?;
    let parsed: OllamaManifest = serde_json::from_slice(&text)
        .map_err(|e| format!("manifest is not an Ollama manifest: {e}"))?;
    if parsed.schema_version != 2 {
        return Err(format!(
            "manifest schemaVersion {} is not 2",
            parsed.schema_version
        ));
    }
    let mut models = parsed
        .layers
        .iter()
        .filter(|l| l.media_type == OLLAMA_MODEL_LAYER);
    let (Some(layer), None) = (models.next(), models.next()) else {
        return Err("manifest does not have exactly one model layer".into());
    };
    let hex = layer
        .digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or_else(|| format!("model layer digest {:?} is not sha256:HEX", layer.digest))?;
    let mut sha256 = [0u8; 32];
    for (byte, pair) in sha256.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|e| e.to_string())?;
    }
    let blob = models_dir.join("blobs").join(format!("sha256-{hex}"));
    let meta = std::fs::metadata(&blob)
        .map_err(|e| format!("model blob {} is missing: {e}", blob.display()))?;
    if !meta.is_file() || meta.len() != layer.size {
        return Err(format!(
            "model blob {} has {} bytes, its manifest says {}",
            blob.display(),
            meta.len(),
            layer.size
        ));
    }
    Ok((blob, sha256, parsed.layers.len() - 1))
}

/// Adds each candidate as a version, unless the store holds it already with the same files; a
/// candidate whose files turn out bad (a digest mismatch, a file gone) is skipped, and nothing of
/// it stays. Store failures end the import (versions added before stay, each complete).
pub fn import(store: &Store, scan: Scan, progress: &dyn Progress) -> Result<Report> {
    let mut report = Report {
        skipped: scan.skipped,
        ..Report::default()
    };
    let mut counted = HashSet::new();
    for candidate in scan.candidates {
        let registry = store.registry()?;
        let model = model_name(&registry, &candidate);
        let existing = registry
            .models
            .get(&model)
            .and_then(|m| m.versions.iter().find(|v| v.version == candidate.version));
        let release = format!("{model}@{}", candidate.version);
        if let Some(existing) = existing {
            let same = existing.files.len() == candidate.files.len()
                && existing
                    .files
                    .iter()
                    .zip(&candidate.files)
                    .all(|(had, (name, path, _))| {
                        had.path == *name
                            && std::fs::metadata(path).is_ok_and(|m| m.len() == had.size)
                    });
            if same {
                report.present.push(release);
                count_files(&candidate, &mut counted, &mut report);
            } else {
                report.skipped.push(Skipped {
                    what: candidate.label,
                    reason: format!("the store has {release} already, with other files"),
                });
            }
            continue;
        }
        let options = AddOptions {
            hf_repo: candidate.hf_repo.clone(),
        };
        let added = add_files(
            store,
            &model,
            &candidate.version,
            candidate.layout,
            &candidate.files,
            &options,
            progress,
        );
        match added {
            Ok(added) => {
                count_files(&candidate, &mut counted, &mut report);
                report.stored_bytes += added.stored_bytes;
                report.added.push(Added {
                    from: candidate.from,
                    report: added,
                });
            }
            Err(Error::BadInput { path, reason }) => report.skipped.push(Skipped {
                what: candidate.label,
                reason: format!("{}: {reason}; nothing of it was added", path.display()),
            }),
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// The model a candidate goes into (see the module docs).
fn model_name(registry: &Registry, candidate: &Candidate) -> String {
    let Some(repo) = &candidate.hf_repo else {
        return candidate.model.clone();
    };
    if let Some((name, _)) = registry
        .models
        .iter()
        .find(|(name, entry)| hf_repo_of(name, entry).as_deref() == Some(repo))
    {
        return name.clone();
    }
    if registry.models.contains_key(&candidate.model) {
        repo.replacen('/', "--", 1)
    } else {
        candidate.model.clone()
    }
}

/// Adds the candidate's cache files not counted yet (by inode) and its layers left out to the
/// report's totals.
fn count_files(candidate: &Candidate, counted: &mut HashSet<(u64, u64)>, report: &mut Report) {
    report.other_layers += candidate.other_layers;
    for (_, path, _) in &candidate.files {
        if let Ok(meta) = std::fs::metadata(path)
            && counted.insert((meta.dev(), meta.ino()))
        {
            report.cache_files += 1;
            report.cache_bytes += meta.len();
        }
    }
}

/// The entries of a folder, sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| bad_input(dir, &e))?;
    let mut paths = entries
        .map(|entry| entry.map(|e| e.path()).map_err(|e| bad_input(dir, &e)))
        .collect::<Result<Vec<_>>>()?;
    paths.sort();
    Ok(paths)
}

/// The sub-folders of a folder, sorted by name.
fn sorted_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
