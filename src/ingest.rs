//! `add`: turn a model file or folder into chunks, packs, manifests and a registry entry.
//!
//! Owns the ingest pipeline: walk the input, map each file, cut it into content-defined chunks,
//! hash them in parallel, look them up in the index, compress the new ones in parallel, append them
//! to packs in order, write the file's manifest, and finally commit the new version to the registry.
//! Until that commit nothing is visible; if anything fails before it, the packs this `add` sealed
//! are removed again, so the store is as it was. Prints nothing; reports through [`Progress`].

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::Digest;
use tracing::{debug, warn};

use crate::chunker::{Chunker, Segment};
use crate::codec::{EncodedChunk, Encoder};
use crate::error::{Error, IoContext, Result};
use crate::format::manifest::{ChunkRef, Manifest};
use crate::format::registry::{FileEntry, Layout, VersionEntry};
use crate::id::{ChunkId, ManifestId};
use crate::modelfile::FileLayout;
use crate::progress::Progress;
use crate::store::registry::{next_version_name, valid_file_path, validate_name};
use crate::store::sink::PackSink;
use crate::store::{Store, now_unix};

/// Chunks hashed, looked up and compressed together; bounds memory to a few times
/// `WINDOW × max chunk size` while giving every core work.
const WINDOW: usize = 64;

/// What to add.
#[derive(Debug, Clone)]
pub struct AddRequest {
    /// Model name.
    pub model: String,
    /// Version name; the next `vN` if `None`.
    pub version: Option<String>,
    /// A file or a folder.
    pub source: PathBuf,
}

/// What an `add` stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddReport {
    /// Model name.
    pub model: String,
    /// Version name given to it.
    pub version: String,
    /// Files added.
    pub files: usize,
    /// Total size of the files.
    pub logical_bytes: u64,
    /// Chunks in the files (with repeats).
    pub chunks: u64,
    /// Chunks the store did not have yet.
    pub new_chunks: u64,
    /// Decoded size of the new chunks.
    pub new_bytes: u64,
    /// Bytes the new chunks take in packs (after compression, with record headers).
    pub stored_bytes: u64,
    /// Files named like a model format (`.gguf`, `.safetensors`) whose header does not parse:
    /// stored as plain bytes, without tensor-aligned chunking.
    pub not_models: Vec<String>,
}

/// One input file.
#[derive(Debug)]
struct Input {
    /// Path inside the model, `/`-separated.
    name: String,
    path: PathBuf,
    size: u64,
}

/// Adds a model version to a writable store.
pub fn add(store: &Store, request: &AddRequest, progress: &dyn Progress) -> Result<AddReport> {
    validate_name("model name", &request.model)?;
    if let Some(version) = &request.version {
        validate_name("version", version)?;
    }
    let version = {
        let registry = store.registry()?;
        let existing = registry.models.get(&request.model);
        let version = request
            .version
            .clone()
            .unwrap_or_else(|| next_version_name(existing));
        if existing.is_some_and(|m| m.versions.iter().any(|v| v.version == version)) {
            return Err(Error::VersionExists {
                model: request.model.clone(),
                version,
            });
        }
        version
    };
    let (layout, inputs) = collect_inputs(&request.source)?;
    let total: u64 = inputs.iter().map(|i| i.size).sum();
    progress.begin(total);

    let mut ingest = Ingest::new(store)?;
    let result = ingest.run(&inputs, progress);
    progress.finish();
    let files = match result {
        Ok(files) => files,
        Err(e) => {
            ingest.roll_back();
            return Err(e);
        }
    };
    let entry = VersionEntry {
        version: version.clone(),
        added_unix: now_unix(),
        layout,
        files,
    };
    let committed = store.update_registry(|registry| {
        let model = registry
            .models
            .entry(request.model.clone())
            .or_insert_with(|| crate::format::registry::ModelEntry {
                versions: Vec::new(),
            });
        if model.versions.iter().any(|v| v.version == version) {
            return Err(Error::VersionExists {
                model: request.model.clone(),
                version: version.clone(),
            });
        }
        model.versions.push(entry);
        Ok(())
    });
    if let Err(e) = committed {
        ingest.roll_back();
        return Err(e);
    }
    Ok(AddReport {
        model: request.model.clone(),
        version,
        files: inputs.len(),
        logical_bytes: total,
        ..ingest.report
    })
}

/// Finds the files to add: the file itself, or every file under the folder (symlinks followed).
fn collect_inputs(source: &Path) -> Result<(Layout, Vec<Input>)> {
    let meta = std::fs::metadata(source).map_err(|e| bad_input(source, &e))?;
    if meta.is_file() {
        let name = file_name(source)?;
        return Ok((
            Layout::File,
            vec![Input {
                name,
                path: source.to_owned(),
                size: meta.len(),
            }],
        ));
    }
    if !meta.is_dir() {
        return Err(Error::BadInput {
            path: source.to_owned(),
            reason: "is neither a file nor a folder".into(),
        });
    }
    let mut inputs = Vec::new();
    let mut seen_dirs = HashSet::from([(meta.dev(), meta.ino())]);
    let root = std::fs::canonicalize(source).map_err(|e| bad_input(source, &e))?;
    walk(&root, source, "", &mut seen_dirs, &mut inputs)?;
    if inputs.is_empty() {
        return Err(Error::BadInput {
            path: source.to_owned(),
            reason: "folder holds no files".into(),
        });
    }
    inputs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((Layout::Dir, inputs))
}

/// Collects the files under `dir` (inside the folder being added, whose canonical path is `root`).
/// A link is followed only to a place inside `root`: a link to anywhere else (a root-only file, say)
/// would publish it through the mount.
fn walk(
    root: &Path,
    dir: &Path,
    prefix: &str,
    seen: &mut HashSet<(u64, u64)>,
    out: &mut Vec<Input>,
) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| bad_input(dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| bad_input(dir, &e))?;
        let path = entry.path();
        let name = format!("{prefix}{}", file_name(&path)?);
        if !valid_file_path(&name) {
            return Err(Error::BadInput {
                path,
                reason: "has a name a model file cannot have (control characters)".into(),
            });
        }
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            let target = std::fs::canonicalize(&path).map_err(|e| bad_input(&path, &e))?;
            if !target.starts_with(root) {
                return Err(Error::BadInput {
                    path,
                    reason: format!(
                        "links to {}, outside the folder; modelfs follows links only within the \
                         folder it adds (copy the file in instead)",
                        target.display()
                    ),
                });
            }
        }
        let meta = std::fs::metadata(&path).map_err(|e| bad_input(&path, &e))?;
        if meta.is_file() {
            out.push(Input {
                name,
                path,
                size: meta.len(),
            });
        } else if meta.is_dir() {
            if seen.insert((meta.dev(), meta.ino())) {
                walk(root, &path, &format!("{name}/"), seen, out)?;
            } else {
                warn!(path = %path.display(), "skipping a folder already visited (symlink loop)");
            }
        } else {
            return Err(Error::BadInput {
                path,
                reason: "is not a regular file or folder".into(),
            });
        }
    }
    Ok(())
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| Error::BadInput {
            path: path.to_owned(),
            reason: "file name is not valid UTF-8".into(),
        })
}

fn bad_input(path: &Path, e: &std::io::Error) -> Error {
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".to_owned(),
        std::io::ErrorKind::PermissionDenied => "not readable (permission denied)".to_owned(),
        _ => e.to_string(),
    };
    Error::BadInput {
        path: path.to_owned(),
        reason,
    }
}

thread_local! {
    /// One zstd context per worker thread, created on first use.
    static ENCODER: RefCell<Option<Encoder>> = const { RefCell::new(None) };
}

/// State of one `add` between its first chunk and the registry commit.
struct Ingest<'s> {
    store: &'s Store,
    chunker: Chunker,
    /// Where new chunks go; its sealed packs are removed again if the add fails.
    sink: PackSink,
    /// Manifests this add created, removed again if it fails.
    new_manifests: Vec<ManifestId>,
    report: AddReport,
}

impl<'s> Ingest<'s> {
    fn new(store: &'s Store) -> Result<Self> {
        Ok(Ingest {
            store,
            chunker: Chunker::new(store.config().chunking),
            sink: PackSink::new(store)?,
            new_manifests: Vec::new(),
            report: AddReport::default(),
        })
    }

    fn run(&mut self, inputs: &[Input], progress: &dyn Progress) -> Result<Vec<FileEntry>> {
        let mut files = Vec::with_capacity(inputs.len());
        for input in inputs {
            let manifest = self.add_file(input, progress)?;
            let (id, created) = self.store.put_manifest(&manifest)?;
            if created {
                self.new_manifests.push(id);
            }
            files.push(FileEntry {
                path: input.name.clone(),
                size: manifest.size,
                manifest: id,
            });
        }
        self.sink.seal()?;
        Ok(files)
    }

    fn add_file(&mut self, input: &Input, progress: &dyn Progress) -> Result<Manifest> {
        let file = File::open(&input.path).map_err(|e| bad_input(&input.path, &e))?;
        let map = map_file(&file, &input.path)?;
        let data: &[u8] = map.as_deref().unwrap_or_default();
        if data.len() as u64 != input.size {
            return Err(Error::BadInput {
                path: input.path.clone(),
                reason: "file changed size while being added".into(),
            });
        }
        // Four activities overlap: the whole-file sha256 and blake3 (one thread each), the
        // chunker (a thread sending windows of spans), and hashing, compressing and packing the
        // windows on this thread with the rayon pool.
        let chunker = self.chunker;
        let layout = crate::modelfile::detect(data);
        let claims_a_format = Path::new(&input.name)
            .extension()
            .is_some_and(|ext| ext == "gguf" || ext == "safetensors");
        if layout.is_none() && claims_a_format {
            self.report.not_models.push(input.name.clone());
        }
        let segments = segments_of(data.len(), layout.as_ref());
        let (windows_tx, windows_rx) = std::sync::mpsc::sync_channel::<Vec<Span>>(16);
        let (blake3, sha256, chunks) = std::thread::scope(|scope| {
            let sha256 = scope.spawn(|| sha256_of(data));
            let blake3 = scope.spawn(|| *blake3::hash(data).as_bytes());
            scope.spawn(move || {
                let mut window = Vec::with_capacity(WINDOW);
                for span in chunker.segment_spans(data, segments) {
                    window.push(span);
                    // A closed channel means the consumer failed; stop chunking.
                    if window.len() == WINDOW
                        && windows_tx
                            .send(std::mem::replace(&mut window, Vec::with_capacity(WINDOW)))
                            .is_err()
                    {
                        return;
                    }
                }
                if !window.is_empty() {
                    let _ = windows_tx.send(window);
                }
            });
            let chunks = self.add_chunks(data, windows_rx, progress);
            (
                blake3.join().expect("blake3 thread"),
                sha256.join().expect("sha256 thread"),
                chunks,
            )
        });
        let manifest = Manifest {
            size: input.size,
            blake3,
            sha256,
            chunks: chunks?,
        };
        debug!(file = %input.name, chunks = manifest.chunks.len(), "file chunked");
        Ok(manifest)
    }

    fn add_chunks(
        &mut self,
        data: &[u8],
        windows: std::sync::mpsc::Receiver<Vec<Span>>,
        progress: &dyn Progress,
    ) -> Result<Vec<ChunkRef>> {
        let mut refs = Vec::with_capacity(data.len() / self.chunker.avg_chunk_len() + 1);
        let index = self.store.index()?;
        for window in windows {
            let window = &window[..];
            let ids: Vec<ChunkId> = window
                .par_iter()
                .map(|(span, _)| ChunkId::of(&data[span.clone()]))
                .collect();
            let known = index.get_many(&ids)?;
            let mut fresh: HashMap<ChunkId, usize> = HashMap::new();
            for (i, (id, location)) in ids.iter().zip(&known).enumerate() {
                if location.is_none() && !self.sink.is_pending(id) {
                    fresh.entry(*id).or_insert(i);
                }
            }
            let mut fresh: Vec<usize> = fresh.into_values().collect();
            fresh.sort_unstable();
            let params = self.store.config().compression;
            let encoded: Vec<EncodedChunk> = fresh
                .par_iter()
                .map(|&i| {
                    ENCODER.with_borrow_mut(|slot| {
                        let encoder = match slot {
                            Some(encoder) => encoder,
                            None => {
                                slot.insert(Encoder::new(params).expect("zstd context allocation"))
                            }
                        };
                        let (span, width) = &window[i];
                        encoder.encode(ids[i], &data[span.clone()], *width)
                    })
                })
                .collect();
            for (&i, chunk) in fresh.iter().zip(&encoded) {
                self.append(chunk, &data[window[i].0.clone()])?;
            }
            for ((span, _), id) in window.iter().zip(ids) {
                refs.push(ChunkRef {
                    offset: span.start as u64,
                    len: span.len() as u32,
                    id,
                });
            }
            self.report.chunks += window.len() as u64;
            progress.advance(window.iter().map(|(s, _)| s.len() as u64).sum());
        }
        Ok(refs)
    }

    fn append(&mut self, chunk: &EncodedChunk, raw: &[u8]) -> Result<()> {
        let header = chunk.header();
        self.sink.append(header, chunk.payload(raw))?;
        self.report.new_chunks += 1;
        self.report.new_bytes += u64::from(chunk.raw_len);
        self.report.stored_bytes += header.record_len();
        Ok(())
    }

    /// Undoes a failed add: the packs it wrote and the manifests it created.
    fn roll_back(&mut self) {
        self.sink.roll_back();
        for id in self.new_manifests.drain(..) {
            let _ = self.store.manifests().remove(&id);
        }
    }
}

/// Maps a file for reading; `None` for an empty file (which cannot be mapped).
fn map_file(file: &File, path: &Path) -> Result<Option<memmap2::Mmap>> {
    if file.metadata().at(path)?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: the map is read-only and lives only while this file is ingested. If another process
    // truncates the file meanwhile, reads fault; modelfs documents that inputs must not change
    // during `add`, and the size check after mapping catches the common case of a file still growing.
    let map = unsafe { memmap2::MmapOptions::new().map(file) }.at(path)?;
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(Some(map))
}

/// A chunk's byte range and the fields of the records in it (if any).
type Span = (Range<usize>, Option<crate::codec::Fields>);

/// The segments chunked separately: the header and each tensor of a recognised model file (and
/// the gaps between them), or the whole file.
pub(crate) fn segments_of(len: usize, layout: Option<&FileLayout>) -> Vec<Segment> {
    let Some(layout) = layout else {
        return vec![Segment {
            range: 0..len,
            record: None,
        }];
    };
    let mut segments = Vec::with_capacity(layout.tensors.len() * 2 + 2);
    let mut pos = 0usize;
    fn gap_to(segments: &mut Vec<Segment>, pos: &mut usize, to: usize) {
        if to > *pos {
            segments.push(Segment {
                range: *pos..to,
                record: None,
            });
            *pos = to;
        }
    }
    gap_to(&mut segments, &mut pos, layout.header.end as usize);
    for tensor in &layout.tensors {
        gap_to(&mut segments, &mut pos, tensor.range.start as usize);
        segments.push(Segment {
            range: tensor.range.start as usize..tensor.range.end as usize,
            record: tensor.element.record_fields(),
        });
        pos = tensor.range.end as usize;
    }
    gap_to(&mut segments, &mut pos, len);
    segments
}

fn sha256_of(data: &[u8]) -> [u8; 32] {
    let digest = sha2::Sha256::digest(data);
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use crate::testutil::{add_model, open_model, random_bytes, small_store};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn reads_reassemble_the_file(seed in any::<u64>(), len in 0usize..300_000, reads in prop::collection::vec((any::<u64>(), 0usize..70_000), 1..20)) {
            let dir = tempfile::tempdir().unwrap();
            let store = small_store(&dir.path().join("store"));
            let mut bytes = random_bytes(seed, len);
            // Make part of it compressible so both codecs are exercised.
            for b in bytes.iter_mut().take(len / 3) { *b &= 0x0f; }
            add_model(&store, dir.path(), "m", &bytes);
            let file = open_model(&store, "m");
            prop_assert_eq!(file.size(), len as u64);
            let mut whole = vec![0u8; len];
            prop_assert_eq!(file.read_at(0, &mut whole).unwrap(), len);
            prop_assert!(whole == bytes);
            for (offset, size) in reads {
                let offset = if len == 0 { 0 } else { offset % (len as u64 + 10) };
                let mut buf = vec![0u8; size];
                let n = file.read_at(offset, &mut buf).unwrap();
                let start = (offset as usize).min(len);
                let expected = &bytes[start..(start + size).min(len)];
                prop_assert_eq!(&buf[..n], expected);
            }
        }
    }

    #[test]
    fn identical_content_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(&dir.path().join("store"));
        let bytes = random_bytes(7, 500_000);
        let first = add_model(&store, dir.path(), "a", &bytes);
        assert_eq!(first.new_bytes, 500_000);
        let second = add_model(&store, dir.path(), "b", &bytes);
        assert_eq!((second.new_chunks, second.new_bytes), (0, 0));
        let mut shifted = random_bytes(8, 100);
        shifted.extend_from_slice(&bytes);
        let third = add_model(&store, dir.path(), "c", &shifted);
        assert!(
            third.new_bytes < 60_000,
            "a shifted copy re-stored {} bytes",
            third.new_bytes
        );
    }

    #[test]
    fn duplicate_versions_and_bad_names_are_refused_without_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(&dir.path().join("store"));
        add_model(&store, dir.path(), "a", b"hello");
        let path = dir.path().join("a.bin");
        let again = AddRequest {
            model: "a".into(),
            version: Some("v1".into()),
            source: path.clone(),
        };
        assert!(matches!(
            add(&store, &again, &Silent),
            Err(Error::VersionExists { .. })
        ));
        let bad = AddRequest {
            model: "no/slash".into(),
            version: None,
            source: path,
        };
        assert!(matches!(
            add(&store, &bad, &Silent),
            Err(Error::InvalidName { .. })
        ));
        let missing = AddRequest {
            model: "x".into(),
            version: None,
            source: dir.path().join("nope"),
        };
        assert!(matches!(
            add(&store, &missing, &Silent),
            Err(Error::BadInput { .. })
        ));
        assert_eq!(store.registry().unwrap().models.len(), 1);
    }
}
