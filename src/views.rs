//! The mount's views for other tools: a Hugging Face hub cache under `/.hf/hub` and an Ollama
//! models directory under `/.ollama/models`.
//!
//! Owns what those two trees hold, path by path: which model files appear where, and the bytes of
//! the small files generated for them (refs, Ollama manifests and config blobs). It knows nothing
//! of inodes or FUSE: [`build`] turns a registry into a list of [`ViewFile`]s, and `vfs` places
//! them, model files as further links to the same inodes (so the kernel caches their pages once),
//! generated ones as inline nodes. Layout:
//! ```text
//! /.hf/hub/models--ORG--NAME/refs/main            REV of the current version (no newline)
//! /.hf/hub/models--ORG--NAME/refs/VERSION         REV of each version (not one named main)
//! /.hf/hub/models--ORG--NAME/snapshots/REV/PATH   the version's files (regular files)
//! /.ollama/models/manifests/registry.ollama.ai/library/NAME/latest    the current version's
//! /.ollama/models/manifests/registry.ollama.ai/library/NAME/VERSION   each version's manifest
//! /.ollama/models/blobs/sha256-HEX                the GGUF file, or a generated config
//! ```
//! What the hub cache needs offline follows `huggingface_hub` (2.4): `file_download.py`
//! `repo_folder_name` (`models--ORG--NAME`), `_hf_hub_download_to_cache_dir` and
//! `_snapshot_download.py` `snapshot_download` (offline, a branch name is read from `refs/NAME`
//! with `f.read()`, so no newline; then `snapshots/<hash>/<path>` must exist, any kind of file;
//! a `REGEX_COMMIT_HASH` revision, `[0-9a-f]{40}`, goes straight to `snapshots/`); the
//! `trees/` listing and `blobs/` are optional (`_raise_if_incomplete_snapshot` skips the check
//! without a listing), so neither is made. REV is the first 20 bytes of a blake3 over the
//! version's sorted (path, manifest) list: the same on every mount and machine, and the same for
//! two versions with the same files.
//!
//! The Ollama layout follows Ollama's Go source (github.com/ollama/ollama): `manifest/manifest.go`
//! (`Manifest`: schemaVersion 2, mediaType `application/vnd.docker.distribution.manifest.v2+json`,
//! `WriteManifest`; a trailing newline as `json.Encoder` writes), `manifest/layer.go` (`Layer`:
//! mediaType, digest `sha256:HEX`, size), `manifest/paths.go` (`BlobsPath`: `blobs/sha256-HEX`),
//! `types/model/name.go` (`Name.Filepath`: `HOST/NAMESPACE/MODEL/TAG`, default host
//! `registry.ollama.ai`, namespace `library`, tag `latest`; `isValidPart`: 1 to 80 of
//! `[A-Za-z0-9_.-]`, first a letter, digit or `_`), `server/images.go` (`GetModel`: the layer of
//! media type `application/vnd.ollama.image.model` is the model, the config blob decodes into
//! `types/model/config.go` `ConfigV2`), and `server/create.go` (`createConfigLayer`: media type
//! `application/vnd.docker.container.image.v1+json`; `model_format` gguf, `model_family` the
//! GGUF's `general.architecture` (`fs/ggml/ggml.go` `KV.Architecture`, "unknown" if absent),
//! `file_type` its `general.file_type` by name (`fs/ggml/type.go` `FileType.String`), `os`
//! linux, `architecture` amd64; `model_type`, the parameter count Ollama takes from the tensor
//! table, is left empty). Only single-file GGUF models appear; the config needs the file's
//! header and its sha256, read lazily ([`probe_gguf`]) when the Ollama tree is first entered, so
//! a mount never waits on model bytes to start.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use sha2::Digest;
use tracing::warn;

use crate::error::Result;
use crate::format::registry::{FileEntry, Layout, ModelEntry, Registry, VersionEntry};
use crate::id::ManifestId;
use crate::read::Reader;
use crate::store::registry::{current_version, hf_repo_of};

/// Top-level directory of the Hugging Face view.
pub const HF_DIR: &str = ".hf";
/// Top-level directory of the Ollama view.
pub const OLLAMA_DIR: &str = ".ollama";
/// The directory `OLLAMA_MODELS` names, from the mount's root (with a leading `/`).
pub const OLLAMA_MODELS: &str = "/.ollama/models";
/// Where Ollama keeps manifests of models from its default registry, below `.ollama/models`.
const OLLAMA_LIBRARY: &str = ".ollama/models/manifests/registry.ollama.ai/library";
/// The Ollama tag of the current version.
const LATEST: &str = "latest";
/// Most bytes of a GGUF file read for its metadata (the architecture and file type keys come
/// before the tokenizer's arrays in files written by llama.cpp and Ollama), in steps of
/// [`GGUF_PROBE_STEP`] until both are found.
const GGUF_PROBE_BYTES: usize = 1 << 20;
const GGUF_PROBE_STEP: usize = 64 << 10;

/// One file of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewFile<'r> {
    /// Path from the mount's root, `/`-separated, e.g. `.hf/hub/models--acme--tiny/refs/main`.
    pub path: String,
    /// Modification time: when the version it belongs to was added.
    pub mtime_unix: u64,
    /// Its bytes.
    pub content: Content<'r>,
}

/// Where a view file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content<'r> {
    /// A model file: the same inode as `model@version/file` elsewhere in the mount.
    Model {
        /// The model's name.
        model: &'r str,
        /// The version.
        version: &'r VersionEntry,
        /// The file.
        file: &'r FileEntry,
    },
    /// Bytes made here.
    Generated(Vec<u8>),
}

/// A single-file GGUF model file whose header has not been read yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufFile {
    /// Its manifest.
    pub manifest: ManifestId,
    /// Its size, as the registry lists it.
    pub size: u64,
    /// `model@version/path`, for logs and errors.
    pub label: String,
}

/// What the Ollama view needs of a GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufInfo {
    /// sha256 of the whole file: its blob name.
    pub sha256: [u8; 32],
    /// `general.architecture`, or "unknown".
    pub architecture: String,
    /// `general.file_type` by name (`Q4_K_M`, `F16`, …), or "unknown".
    pub file_type: String,
}

/// What is known of a GGUF-named file's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probed {
    /// A GGUF file, ready for the Ollama view.
    Gguf(GgufInfo),
    /// Read, and not a GGUF file (or unusable): not shown.
    NotGguf,
    /// Not read yet (or its last read failed a while ago): not shown, to be read.
    Unknown,
}

/// The views' directories and files.
#[derive(Debug, Default)]
pub struct Views<'r> {
    /// Directories that exist even when empty (Ollama creates `manifests/` and `blobs/` if they
    /// are missing, which a read-only mount refuses), from the root.
    pub dirs: Vec<String>,
    /// Every file.
    pub files: Vec<ViewFile<'r>>,
    /// GGUF files whose headers are still to be read before their models show in the Ollama view.
    pub unprobed: Vec<GgufFile>,
}

/// The views of `registry`. `probed` tells what is known of a GGUF file's header.
pub fn build<'r>(registry: &'r Registry, probed: &dyn Fn(&ManifestId) -> Probed) -> Views<'r> {
    let mut views = Views {
        dirs: vec![
            format!("{HF_DIR}/hub"),
            format!("{OLLAMA_DIR}/models/blobs"),
            format!("{OLLAMA_DIR}/models/manifests"),
        ],
        ..Views::default()
    };
    hugging_face(registry, &mut views);
    ollama(registry, probed, &mut views);
    views
}

/// The 40-hex-digit revision the hub cache shows `version` under.
pub fn hf_revision(version: &VersionEntry) -> String {
    let mut files: Vec<&FileEntry> = version.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"modelfs hf revision 1\n");
    for file in files {
        // Paths hold no NUL (the registry refuses control characters), so this splits one way.
        hasher.update(file.path.as_bytes());
        hasher.update(b"\0");
        hasher.update(file.manifest.as_bytes());
    }
    hex(&hasher.finalize().as_bytes()[..20])
}

fn hugging_face<'r>(registry: &'r Registry, views: &mut Views<'r>) {
    let mut claimed: BTreeMap<String, &str> = BTreeMap::new();
    for (model, entry) in &registry.models {
        let Some(repo) = hf_repo_of(model, entry) else {
            continue;
        };
        if let Some(first) = claimed.get(&repo) {
            warn!(
                model = %model,
                repo = %repo,
                shown = %first,
                "two models claim the same Hugging Face repo id; the first one keeps it"
            );
            continue;
        }
        claimed.insert(repo.clone(), model);
        hf_repo(model, entry, &repo, views);
    }
}

fn hf_repo<'r>(model: &'r str, entry: &'r ModelEntry, repo: &str, views: &mut Views<'r>) {
    let folder = format!("{HF_DIR}/hub/models--{}", repo.replace('/', "--"));
    let mut refs: BTreeMap<&str, (String, u64)> = BTreeMap::new();
    if let Some(current) = current_version(entry) {
        refs.insert("main", (hf_revision(current), current.added_unix));
    }
    let mut snapshots = HashSet::new();
    for version in &entry.versions {
        let rev = hf_revision(version);
        refs.entry(&version.version)
            .or_insert_with(|| (rev.clone(), version.added_unix));
        if !snapshots.insert(rev.clone()) {
            continue; // Another version with the same files: the same snapshot.
        }
        for file in &version.files {
            views.files.push(ViewFile {
                path: format!("{folder}/snapshots/{rev}/{}", file.path),
                mtime_unix: version.added_unix,
                content: Content::Model {
                    model,
                    version,
                    file,
                },
            });
        }
    }
    for (name, (rev, mtime_unix)) in refs {
        views.files.push(ViewFile {
            path: format!("{folder}/refs/{name}"),
            mtime_unix,
            content: Content::Generated(rev.into_bytes()),
        });
    }
}

/// Whether `part` is a valid model name or tag for Ollama (`types/model/name.go` `isValidPart`).
pub fn ollama_part(part: &str) -> bool {
    (1..=80).contains(&part.len())
        && part
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The GGUF file of `version` if it is a single-file model named `*.gguf`.
fn gguf_file(version: &VersionEntry) -> Option<&FileEntry> {
    match (version.layout, version.files.as_slice()) {
        (Layout::File, [file]) if file.path.to_ascii_lowercase().ends_with(".gguf") => Some(file),
        _ => None,
    }
}

fn ollama<'r>(
    registry: &'r Registry,
    probed: &dyn Fn(&ManifestId) -> Probed,
    views: &mut Views<'r>,
) {
    let mut blobs = HashSet::new();
    let mut unprobed = HashSet::new();
    for (model, entry) in &registry.models {
        if !ollama_part(model) || !entry.versions.iter().any(|v| gguf_file(v).is_some()) {
            continue;
        }
        let mut tags: Vec<(&str, &VersionEntry)> = Vec::new();
        if let Some(current) = current_version(entry) {
            tags.push((LATEST, current));
        }
        for version in &entry.versions {
            if version.version != LATEST && ollama_part(&version.version) {
                tags.push((&version.version, version));
            }
        }
        for (tag, version) in tags {
            let Some(file) = gguf_file(version) else {
                continue;
            };
            let info = match probed(&file.manifest) {
                Probed::Gguf(info) => info,
                Probed::NotGguf => continue,
                Probed::Unknown => {
                    if unprobed.insert(file.manifest) {
                        views.unprobed.push(GgufFile {
                            manifest: file.manifest,
                            size: file.size,
                            label: format!("{model}@{}/{}", version.version, file.path),
                        });
                    }
                    continue;
                }
            };
            let config = ollama_config(&info);
            let config_digest = sha256_hex(&config);
            let manifest = ollama_manifest(&config_digest, config.len() as u64, &info, file.size);
            views.files.push(ViewFile {
                path: format!("{OLLAMA_LIBRARY}/{model}/{tag}"),
                mtime_unix: version.added_unix,
                content: Content::Generated(manifest),
            });
            let model_digest = hex(&info.sha256);
            if blobs.insert(model_digest.clone()) {
                views.files.push(ViewFile {
                    path: format!("{OLLAMA_DIR}/models/blobs/sha256-{model_digest}"),
                    mtime_unix: version.added_unix,
                    content: Content::Model {
                        model,
                        version,
                        file,
                    },
                });
            }
            if blobs.insert(config_digest.clone()) {
                views.files.push(ViewFile {
                    path: format!("{OLLAMA_DIR}/models/blobs/sha256-{config_digest}"),
                    mtime_unix: version.added_unix,
                    content: Content::Generated(config),
                });
            }
        }
    }
}

/// The config blob: `types/model/config.go` `ConfigV2`, as `server/create.go` fills it for a GGUF
/// model, encoded as Go's `json.Encoder` does (fields in order, a trailing newline).
pub fn ollama_config(info: &GgufInfo) -> Vec<u8> {
    #[derive(Serialize)]
    struct ConfigV2<'a> {
        model_format: &'a str,
        model_family: &'a str,
        model_families: [&'a str; 1],
        model_type: &'a str,
        file_type: &'a str,
        architecture: &'a str,
        os: &'a str,
    }
    let config = ConfigV2 {
        model_format: "gguf",
        model_family: &info.architecture,
        model_families: [&info.architecture],
        // Ollama shows the parameter count here, counted from the tensor table; left empty.
        model_type: "",
        file_type: &info.file_type,
        architecture: "amd64",
        os: "linux",
    };
    json_line(&config)
}

/// A manifest naming the config blob and the GGUF file (`manifest/manifest.go` `Manifest`).
pub fn ollama_manifest(
    config_digest: &str,
    config_size: u64,
    info: &GgufInfo,
    size: u64,
) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Manifest {
        schema_version: u32,
        media_type: &'static str,
        config: Layer,
        layers: [Layer; 1],
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Layer {
        media_type: &'static str,
        digest: String,
        size: u64,
    }
    json_line(&Manifest {
        schema_version: 2,
        media_type: "application/vnd.docker.distribution.manifest.v2+json",
        config: Layer {
            media_type: "application/vnd.docker.container.image.v1+json",
            digest: format!("sha256:{config_digest}"),
            size: config_size,
        },
        layers: [Layer {
            media_type: "application/vnd.ollama.image.model",
            digest: format!("sha256:{}", hex(&info.sha256)),
            size,
        }],
    })
}

fn json_line(value: &impl Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).expect("view JSON always serializes");
    bytes.push(b'\n');
    bytes
}

/// Reads what the Ollama view needs of `file`: its manifest's sha256 and the metadata at the
/// start of its header. A file that is not GGUF is [`Probed::NotGguf`]; a read that fails is an
/// error (the caller tries again later).
pub fn probe_gguf(reader: &std::sync::Arc<Reader>, file: &GgufFile) -> Result<Probed> {
    let open = reader.open_listed(file.label.clone(), &file.manifest, file.size)?;
    let limit = GGUF_PROBE_BYTES.min(usize::try_from(file.size).unwrap_or(usize::MAX));
    let mut header = Vec::new();
    let metadata = loop {
        let filled = header.len();
        header.resize((filled + GGUF_PROBE_STEP).min(limit), 0);
        let n = open.read_at(filled as u64, &mut header[filled..])?;
        header.truncate(filled + n);
        let metadata = gguf_metadata(&header);
        let done = match &metadata {
            Some((architecture, file_type)) => architecture.is_some() && file_type.is_some(),
            None => true,
        };
        if done || n == 0 || header.len() >= limit {
            break metadata;
        }
    };
    Ok(match metadata {
        Some((architecture, file_type)) => Probed::Gguf(GgufInfo {
            sha256: open.manifest().sha256,
            architecture: architecture.unwrap_or_else(|| "unknown".into()),
            file_type: file_type_name(file_type.unwrap_or(0)).into(),
        }),
        None => Probed::NotGguf,
    })
}

/// `general.architecture` and `general.file_type` from the start of a GGUF file (v2 or v3), as
/// far as `header` holds its key-value section; `None` if it is not GGUF. Never trusts a length:
/// every read is bounds-checked, so a lying header ends the scan.
pub fn gguf_metadata(header: &[u8]) -> Option<(Option<String>, Option<u32>)> {
    let mut at = Cursor {
        bytes: header,
        at: 0,
    };
    if at.take(4)? != b"GGUF" || !matches!(at.u32()?, 2 | 3) {
        return None;
    }
    let (mut architecture, mut file_type) = (None, None);
    let scan = |at: &mut Cursor, architecture: &mut Option<String>, file_type: &mut Option<u32>| {
        let _tensors = at.u64()?;
        let kvs = at.u64()?;
        for _ in 0..kvs {
            let key = at.string()?;
            let kind = at.u32()?;
            match (key, kind) {
                (b"general.architecture", 8) => {
                    let value = at.string()?;
                    *architecture = std::str::from_utf8(value)
                        .ok()
                        .filter(|v| !v.is_empty() && v.len() <= 256)
                        .map(str::to_owned);
                }
                (b"general.file_type", 0 | 2 | 4 | 10) => {
                    let size = [1, 0, 2, 0, 4, 0, 0, 0, 0, 0, 8][kind as usize];
                    let bytes = at.take(size)?;
                    let mut value = [0u8; 8];
                    value[..size].copy_from_slice(bytes);
                    *file_type = u32::try_from(u64::from_le_bytes(value)).ok();
                }
                _ => at.skip_value(kind, 0)?,
            }
            if architecture.is_some() && file_type.is_some() {
                break;
            }
        }
        Some(())
    };
    // A header cut short by the probe's length just ends the scan.
    let _ = scan(&mut at, &mut architecture, &mut file_type);
    Some((architecture, file_type))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Some(taken)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u64()?).ok()?;
        self.take(len)
    }

    fn skip_value(&mut self, kind: u32, depth: u32) -> Option<()> {
        match kind {
            0 | 1 | 7 => self.take(1).map(drop),
            2 | 3 => self.take(2).map(drop),
            4..=6 => self.take(4).map(drop),
            10..=12 => self.take(8).map(drop),
            8 => self.string().map(drop),
            9 if depth < 4 => {
                let inner = self.u32()?;
                let count = self.u64()?;
                let fixed = match inner {
                    0 | 1 | 7 => Some(1),
                    2 | 3 => Some(2),
                    4..=6 => Some(4),
                    10..=12 => Some(8),
                    _ => None,
                };
                match fixed {
                    Some(size) => self
                        .take(usize::try_from(count.checked_mul(size)?).ok()?)
                        .map(drop),
                    // Each element takes at least 8 bytes, so a lying count runs out of bytes.
                    None => (0..count).try_for_each(|_| self.skip_value(inner, depth + 1)),
                }
            }
            _ => None,
        }
    }
}

/// A GGUF `general.file_type` by name, as Ollama's `fs/ggml/type.go` `FileType.String` gives it
/// (0 reads as unknown there too: `KV.FileType` takes only values above 0).
pub fn file_type_name(file_type: u32) -> &'static str {
    const NAMES: [&str; 41] = [
        "unknown",
        "F16",
        "Q4_0",
        "Q4_1",
        "",
        "",
        "",
        "Q8_0",
        "Q5_0",
        "Q5_1",
        "Q2_K",
        "Q3_K_S",
        "Q3_K_M",
        "Q3_K_L",
        "Q4_K_S",
        "Q4_K_M",
        "Q5_K_S",
        "Q5_K_M",
        "Q6_K",
        "IQ2_XXS",
        "IQ2_XS",
        "Q2_K_S",
        "IQ3_XS",
        "IQ3_XXS",
        "IQ1_S",
        "IQ4_NL",
        "IQ3_S",
        "IQ3_M",
        "IQ2_S",
        "IQ2_M",
        "IQ4_XS",
        "IQ1_M",
        "BF16",
        "",
        "",
        "",
        "TQ1_0",
        "TQ2_0",
        "MXFP4_MOE",
        "NVFP4",
        "Q1_0",
    ];
    match NAMES.get(file_type as usize) {
        Some(name) if !name.is_empty() => name,
        _ => "unknown",
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::tests::tiny_gguf;

    fn version(name: &str, files: &[(&str, u8)]) -> VersionEntry {
        VersionEntry {
            version: name.into(),
            added_unix: 1_700_000_000,
            layout: Layout::Dir,
            files: files
                .iter()
                .map(|&(path, byte)| FileEntry {
                    path: path.into(),
                    size: 1,
                    manifest: ManifestId([byte; 32]),
                })
                .collect(),
            release: None,
        }
    }

    #[test]
    fn revisions_are_stable_hex_and_follow_the_content_only() {
        let a = version("v1", &[("a", 1), ("b/c", 2)]);
        let rev = hf_revision(&a);
        assert_eq!(rev.len(), 40);
        assert!(rev.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        let mut reordered = version("v2", &[("b/c", 2), ("a", 1)]);
        assert_eq!(hf_revision(&reordered), rev, "order and name do not matter");
        reordered.files[0].manifest = ManifestId([3; 32]);
        assert_ne!(hf_revision(&reordered), rev);
        assert_ne!(hf_revision(&version("v1", &[("a", 1), ("b/d", 2)])), rev);
        // Pinned: a revision must not change between builds, or caches keyed by it break.
        assert_eq!(
            hf_revision(&version("v1", &[("config.json", 7)])),
            PINNED_REVISION
        );
    }

    const PINNED_REVISION: &str = "1cb61d874aca87dc797025ac99175397dcadd305";

    #[test]
    fn gguf_metadata_is_read_from_the_header_and_lies_end_the_scan() {
        let gguf = tiny_gguf("llama", 7);
        assert_eq!(gguf_metadata(&gguf), Some((Some("llama".into()), Some(7))));
        // Cut anywhere: whatever was read so far, never a panic.
        for cut in 0..gguf.len().min(200) {
            let _ = gguf_metadata(&gguf[..cut]);
        }
        assert_eq!(
            gguf_metadata(&gguf[..80]),
            Some((Some("llama".into()), None))
        );
        assert_eq!(gguf_metadata(b"GGUF\x01\0\0\0"), None, "version 1");
        assert_eq!(gguf_metadata(b"not a gguf"), None);
        // A string array claiming 2^62 elements runs out of bytes.
        let mut lying = gguf.clone();
        let at = gguf
            .windows(8)
            .position(|w| w == 2u64.to_le_bytes())
            .unwrap();
        lying[at..at + 8].copy_from_slice(&(1u64 << 62).to_le_bytes());
        assert_eq!(gguf_metadata(&lying), Some((Some("llama".into()), None)));
        assert_eq!(file_type_name(15), "Q4_K_M");
        assert_eq!(file_type_name(1), "F16");
        assert_eq!(file_type_name(32), "BF16");
        assert_eq!(
            file_type_name(0),
            "unknown",
            "as Ollama's KV.FileType reads 0"
        );
        assert_eq!(file_type_name(4), "unknown");
        assert_eq!(file_type_name(9999), "unknown");
    }

    #[test]
    fn ollama_names_follow_its_rules_and_only_gguf_files_show() {
        for good in ["llama", "Qwen2.5_0.5B", "_x", "a-b", &"x".repeat(80)] {
            assert!(ollama_part(good), "{good:?}");
        }
        for bad in ["", "-x", ".x", "a:b", "a/b", "a b", &"x".repeat(81)] {
            assert!(!ollama_part(bad), "{bad:?}");
        }
        let info = GgufInfo {
            sha256: [0xab; 32],
            architecture: "llama".into(),
            file_type: "Q8_0".into(),
        };
        let mut registry = Registry::default();
        let mut gguf = version("v1", &[("m.GGUF", 1)]);
        gguf.layout = Layout::File;
        let mut named = gguf.clone();
        named.version = "latest".into();
        named.files[0].manifest = ManifestId([2; 32]);
        registry
            .models
            .insert("m".into(), ModelEntry::new(vec![gguf.clone(), named]));
        registry
            .models
            .insert("-dash".into(), ModelEntry::new(vec![gguf.clone()]));
        registry.models.insert(
            "folder".into(),
            ModelEntry::new(vec![version("v1", &[("m.gguf", 1)])]),
        );
        let views = build(&registry, &|id| match id.0[0] {
            1 => Probed::Gguf(info.clone()),
            _ => Probed::Unknown,
        });
        let paths: Vec<&str> = views
            .files
            .iter()
            .map(|f| f.path.as_str())
            .filter(|p| p.starts_with(".ollama"))
            .collect();
        let config = ollama_config(&info);
        let digest = sha256_hex(&config);
        assert_eq!(
            paths,
            [
                ".ollama/models/manifests/registry.ollama.ai/library/m/v1".to_owned(),
                format!(".ollama/models/blobs/sha256-{}", hex(&[0xab; 32])),
                format!(".ollama/models/blobs/sha256-{digest}"),
            ],
            "the current version (tag `latest` taken by `latest`'s own name) is unread"
        );
        assert_eq!(views.unprobed.len(), 1);
        assert_eq!(views.unprobed[0].label, "m@latest/m.GGUF");
        assert_eq!(
            String::from_utf8(ollama_manifest(&digest, config.len() as u64, &info, 1234)).unwrap(),
            format!(
                "{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\",\
                 \"config\":{{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\
                 \"digest\":\"sha256:{digest}\",\"size\":{}}},\"layers\":[{{\"mediaType\":\
                 \"application/vnd.ollama.image.model\",\"digest\":\"sha256:{}\",\"size\":1234}}]}}\n",
                config.len(),
                hex(&[0xab; 32])
            )
        );
    }
}
