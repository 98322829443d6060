//! `add`: turn a model file or folder into chunks, packs, manifests and a registry entry.
//!
//! Owns the ingest pipeline: walk the input, read each file block by block, cut it into chunks,
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
use std::sync::Arc;

use rayon::prelude::*;
use sha2::Digest;
use tracing::{debug, warn};

use crate::chunker::{Chunker, Segment, Span, Window};
use crate::codec::{EncodedChunk, Encoder};
use crate::error::{Error, Result};
use crate::format::manifest::{ChunkRef, Manifest};
use crate::format::registry::{FileEntry, Layout, Registry, VersionEntry};
use crate::id::{ChunkId, ManifestId};
use crate::modelfile::FileLayout;
use crate::progress::Progress;
use crate::store::fsutil::read_full_at;
use crate::store::registry::{
    check_hf_repo, hf_repo_of, next_version_name, valid_file_path, validate_name,
};
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

/// Model-level settings an `add` may change besides adding the version. Kept apart from
/// [`AddRequest`] so its existing callers stay as they are.
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    /// The model's Hugging Face repo id (`ORG/NAME`) for the mount's `.hf` view; `None` keeps the
    /// one the model has (`modelfs/NAME` unless set).
    pub hf_repo: Option<String>,
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
    /// The sha256 the file must have, when the caller knows it (an Ollama blob's digest).
    sha256: Option<[u8; 32]>,
}

/// Adds a model version to a writable store.
pub fn add(store: &Store, request: &AddRequest, progress: &dyn Progress) -> Result<AddReport> {
    add_with(store, request, &AddOptions::default(), progress)
}

/// Adds a model version to a writable store and applies `options` to the model.
pub fn add_with(
    store: &Store,
    request: &AddRequest,
    options: &AddOptions,
    progress: &dyn Progress,
) -> Result<AddReport> {
    let version = prepare(store, &request.model, request.version.as_deref(), options)?;
    let (layout, inputs) = collect_inputs(&request.source)?;
    ingest_and_commit(
        store,
        &request.model,
        version,
        options,
        layout,
        &inputs,
        progress,
    )
}

/// Adds version `version` of `model` made of `files` — (path inside the model, file to read,
/// expected sha256) — with `layout`, for callers that pick the files themselves (a Hugging Face
/// cache snapshot, whose links lead outside it). A file whose sha256 differs from the expected
/// one fails the add, and nothing of it stays.
pub fn add_files(
    store: &Store,
    model: &str,
    version: &str,
    layout: Layout,
    files: &[(String, PathBuf, Option<[u8; 32]>)],
    options: &AddOptions,
    progress: &dyn Progress,
) -> Result<AddReport> {
    let version = prepare(store, model, Some(version), options)?;
    let mut inputs = Vec::with_capacity(files.len());
    for (name, path, sha256) in files {
        let meta = std::fs::metadata(path).map_err(|e| bad_input(path, &e))?;
        if !meta.is_file() || !valid_file_path(name) {
            return Err(Error::BadInput {
                path: path.clone(),
                reason: format!("is not a regular file that can be named {name:?}"),
            });
        }
        inputs.push(Input {
            name: name.clone(),
            path: path.clone(),
            size: meta.len(),
            sha256: *sha256,
        });
    }
    ingest_and_commit(store, model, version, options, layout, &inputs, progress)
}

/// Checks the names and the repo id, and picks the version name (refusing one that exists).
fn prepare(
    store: &Store,
    model: &str,
    version: Option<&str>,
    options: &AddOptions,
) -> Result<String> {
    validate_name("model name", model)?;
    if let Some(version) = version {
        validate_name("version", version)?;
    }
    if let Some(repo) = options.hf_repo.as_deref() {
        check_hf_repo(repo).map_err(|reason| Error::BadInput {
            path: "--hf-repo".into(),
            reason,
        })?;
    }
    let registry = store.registry()?;
    if let Some(repo) = options.hf_repo.as_deref() {
        hf_repo_free(&registry, model, repo)?;
    }
    let existing = registry.models.get(model);
    let version = version
        .map(str::to_owned)
        .unwrap_or_else(|| next_version_name(existing));
    if existing.is_some_and(|m| m.versions.iter().any(|v| v.version == version)) {
        return Err(Error::VersionExists {
            model: model.to_owned(),
            version,
        });
    }
    Ok(version)
}

/// Ingests `inputs` and commits them as `version` of `model`; on any failure removes what it wrote.
fn ingest_and_commit(
    store: &Store,
    model_name: &str,
    version: String,
    options: &AddOptions,
    layout: Layout,
    inputs: &[Input],
    progress: &dyn Progress,
) -> Result<AddReport> {
    let hf_repo = options.hf_repo.as_deref();
    let total: u64 = inputs.iter().map(|i| i.size).sum();
    progress.begin(total);

    let mut ingest = Ingest::new(store)?;
    let result = ingest.run(inputs, progress);
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
        release: None,
    };
    let committed = store.update_registry(|registry| {
        if let Some(repo) = hf_repo {
            hf_repo_free(registry, model_name, repo)?;
        }
        let model = registry
            .models
            .entry(model_name.to_owned())
            .or_insert_with(|| crate::format::registry::ModelEntry::new(Vec::new()));
        if model.versions.iter().any(|v| v.version == version) {
            return Err(Error::VersionExists {
                model: model_name.to_owned(),
                version: version.clone(),
            });
        }
        model.current = None;
        model.versions.push(entry);
        if let Some(repo) = hf_repo {
            model.hf_repo = Some(repo.to_owned());
        }
        Ok(())
    });
    if let Err(e) = committed {
        ingest.roll_back();
        return Err(e);
    }
    Ok(AddReport {
        model: model_name.to_owned(),
        version,
        files: inputs.len(),
        logical_bytes: total,
        ..ingest.report
    })
}

/// Refuses `repo` if a model other than `model` shows under it in the `.hf` view already.
fn hf_repo_free(registry: &Registry, model: &str, repo: &str) -> Result<()> {
    let taken = registry
        .models
        .iter()
        .find(|(name, entry)| *name != model && hf_repo_of(name, entry).as_deref() == Some(repo));
    match taken {
        Some((other, _)) => Err(Error::BadInput {
            path: "--hf-repo".into(),
            reason: format!("Hugging Face repo id {repo:?} is model {other:?}'s already"),
        }),
        None => Ok(()),
    }
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
                sha256: None,
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
                sha256: None,
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

pub(crate) fn bad_input(path: &Path, e: &std::io::Error) -> Error {
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
            if input
                .sha256
                .is_some_and(|expected| expected != manifest.sha256)
            {
                return Err(Error::BadInput {
                    path: input.path.clone(),
                    reason: "its sha256 differs from the digest it is known by (damaged or \
                             replaced)"
                        .into(),
                });
            }
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
        let before = Snapshot::of(&file, &input.path)?;
        if before.len != input.size {
            return Err(changed(&input.path));
        }
        let _ = nix::fcntl::posix_fadvise(
            &file,
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL,
        );
        let layout = crate::modelfile::detect_by_prefix(input.size, |prefix| {
            read_full_at(&file, 0, prefix).map_err(|e| bad_input(&input.path, &e))
        })?;
        let claims_a_format = Path::new(&input.name)
            .extension()
            .is_some_and(|ext| ext == "gguf" || ext == "safetensors");
        if layout.is_none() && claims_a_format {
            self.report.not_models.push(input.name.clone());
        }
        let segments = segments_of(input.size as usize, layout.as_ref());
        // Four activities overlap: a reader thread reads the file into owned blocks and cuts
        // them into chunks; two threads hash the whole file (sha256, blake3) from the same blocks;
        // this thread hashes, compresses and packs the chunks with the rayon pool. Everything comes
        // from one copy of the bytes, so chunk ids, stored bytes and whole-file digests always
        // agree, whatever happens to the input meanwhile; a change is caught by comparing the
        // file's metadata before and after.
        let chunker = self.chunker;
        let (batches_tx, batches_rx) = std::sync::mpsc::sync_channel::<Batch>(2);
        let (sha_tx, sha_rx) = std::sync::mpsc::sync_channel::<Batch>(4);
        let (b3_tx, b3_rx) = std::sync::mpsc::sync_channel::<Batch>(4);
        let (digests, read, chunks) = std::thread::scope(|scope| {
            let sha256 = scope.spawn(move || {
                let mut hasher = sha2::Sha256::new();
                for batch in sha_rx {
                    hasher.update(batch.fresh());
                }
                <[u8; 32]>::from(hasher.finalize())
            });
            let blake3 = scope.spawn(move || {
                let mut hasher = blake3::Hasher::new();
                for batch in b3_rx {
                    hasher.update(batch.fresh());
                }
                *hasher.finalize().as_bytes()
            });
            let (file, segments) = (&file, &segments);
            // Moves the senders in, so the consumers see the end once the file is read.
            let read = scope.spawn(move || {
                read_and_cut(
                    file,
                    input.size as usize,
                    BLOCK,
                    &chunker,
                    segments,
                    |batch| {
                        // A closed channel means a consumer failed; stop reading.
                        sha_tx.send(batch.clone()).is_ok()
                            && b3_tx.send(batch.clone()).is_ok()
                            && batches_tx.send(batch).is_ok()
                    },
                )
                .map_err(|e| bad_input(&input.path, &e))
            });
            let chunks = self.add_chunks(batches_rx, progress);
            let read = read.join().expect("reader thread");
            let digests = (
                blake3.join().expect("blake3 thread"),
                sha256.join().expect("sha256 thread"),
            );
            (digests, read, chunks)
        });
        read?;
        let chunks = chunks?;
        if Snapshot::of(&file, &input.path)? != before {
            return Err(changed(&input.path));
        }
        let manifest = Manifest {
            size: input.size,
            blake3: digests.0,
            sha256: digests.1,
            chunks,
        };
        debug!(file = %input.name, chunks = manifest.chunks.len(), "file chunked");
        Ok(manifest)
    }

    fn add_chunks(
        &mut self,
        batches: std::sync::mpsc::Receiver<Batch>,
        progress: &dyn Progress,
    ) -> Result<Vec<ChunkRef>> {
        let mut refs = Vec::new();
        let index = self.store.index()?;
        for batch in batches {
            for window in batch.spans.chunks(WINDOW) {
                let bytes = |span: &Range<usize>| batch.bytes(span);
                let ids: Vec<ChunkId> = window
                    .par_iter()
                    .map(|(span, _)| ChunkId::of(bytes(span)))
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
                                None => slot
                                    .insert(Encoder::new(params).expect("zstd context allocation")),
                            };
                            let (span, width) = &window[i];
                            encoder.encode(ids[i], bytes(span), *width)
                        })
                    })
                    .collect();
                for (&i, chunk) in fresh.iter().zip(&encoded) {
                    self.append(chunk, bytes(&window[i].0))?;
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

/// How much of an input is read at a time (plus the unfinished chunk carried over).
const BLOCK: usize = 16 << 20;

/// A block of an input file and the chunks cut in it.
#[derive(Clone)]
struct Batch {
    /// The bytes, from file offset `base`: the unfinished chunk carried over, then new bytes.
    block: Arc<Vec<u8>>,
    base: usize,
    /// Where the bytes not seen in an earlier block start (in `block`).
    fresh_from: usize,
    /// Chunks cut in this block (absolute file ranges).
    spans: Arc<Vec<Span>>,
}

impl Batch {
    /// The bytes of the absolute file range `span`.
    fn bytes(&self, span: &Range<usize>) -> &[u8] {
        &self.block[span.start - self.base..span.end - self.base]
    }

    /// The bytes this block adds to the file (for whole-file digests).
    fn fresh(&self) -> &[u8] {
        &self.block[self.fresh_from..]
    }
}

/// Reads `len` bytes of `file` block by block (never mapping it: a file truncated meanwhile is an
/// error, not a crash) and cuts each block into chunks exactly as chunking the whole file would,
/// handing each block to `send` until it returns false.
fn read_and_cut(
    file: &File,
    len: usize,
    block_len: usize,
    chunker: &Chunker,
    segments: &[Segment],
    mut send: impl FnMut(Batch) -> bool,
) -> std::io::Result<()> {
    let (mut carry, mut from) = (Vec::new(), 0usize);
    let mut read_to = 0usize;
    while read_to < len || !carry.is_empty() {
        let fresh_from = carry.len();
        let want = block_len.min(len - read_to);
        let mut block = carry;
        block.resize(fresh_from + want, 0);
        let n = read_full_at(file, read_to as u64, &mut block[fresh_from..])?;
        if n < want {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shrank while being added",
            ));
        }
        read_to += want;
        let window = Window {
            bytes: &block,
            base: from,
            last: read_to == len,
        };
        let (spans, next) = chunker.window_spans(&window, segments, from);
        carry = block[next - from..].to_vec();
        let batch = Batch {
            block: Arc::new(block),
            base: from,
            fresh_from,
            spans: Arc::new(spans),
        };
        from = next;
        if !send(batch) {
            return Ok(());
        }
        if read_to == len && carry.is_empty() {
            break;
        }
    }
    Ok(())
}

/// What identifies an input's content for change detection: size, modification and change times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Snapshot {
    fn of(file: &File, path: &Path) -> Result<Snapshot> {
        let meta = file.metadata().map_err(|e| bad_input(path, &e))?;
        Ok(Snapshot {
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

/// The error for an input written to while `add` read it.
fn changed(path: &Path) -> Error {
    Error::BadInput {
        path: path.to_owned(),
        reason: "changed while being added; nothing was added (add it again once it is complete)"
            .into(),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use crate::testutil::{add_model, open_model, random_bytes, small_store};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn reading_in_blocks_cuts_what_chunking_the_whole_file_cuts(
            seed in any::<u64>(),
            len in 0usize..1_500_000,
            block_len in 1usize..400_000,
            cuts in prop::collection::vec(0usize..1_500_000, 0..6),
        ) {
            let data = random_bytes(seed, len);
            // Segments at random cut points, every other one of 2-byte records.
            let mut points: Vec<usize> = cuts.into_iter().filter(|&c| c < len).collect();
            points.extend([0, len]);
            points.sort_unstable();
            points.dedup();
            let segments: Vec<Segment> = points
                .windows(2)
                .enumerate()
                .map(|(i, w)| Segment {
                    range: w[0]..w[1],
                    record: (i % 2 == 1).then_some(&[1u8, 1][..]),
                })
                .collect();
            let chunker = Chunker::new(crate::format::config::ChunkingParams {
                min_size: 2048,
                avg_size: 8192,
                max_size: 32768,
            });
            let whole: Vec<Span> = chunker.segment_spans(&data, segments.clone()).collect();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("input");
            std::fs::write(&path, &data).unwrap();
            let file = File::open(&path).unwrap();
            let mut in_blocks = Vec::new();
            read_and_cut(&file, len, block_len, &chunker, &segments, |batch| {
                for span in batch.spans.iter() {
                    assert_eq!(batch.bytes(&span.0), &data[span.0.clone()]);
                }
                in_blocks.extend(batch.spans.iter().cloned());
                true
            })
            .unwrap();
            prop_assert_eq!(in_blocks, whole);
        }

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

    #[test]
    fn a_repo_id_is_set_kept_checked_and_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(&dir.path().join("store"));
        let path = dir.path().join("m.bin");
        std::fs::write(&path, b"weights").unwrap();
        let request = |model: &str| AddRequest {
            model: model.into(),
            version: None,
            source: path.clone(),
        };
        let with = |repo: &str| AddOptions {
            hf_repo: Some(repo.into()),
        };
        add_with(&store, &request("a"), &with("acme/tiny"), &Silent).unwrap();
        add(&store, &request("a"), &Silent).unwrap();
        let registry = store.registry().unwrap();
        assert_eq!(
            registry.models["a"].hf_repo.as_deref(),
            Some("acme/tiny"),
            "kept by v2"
        );
        for bad in ["acme/../x", "acme//x", "acme/x y", "x"] {
            assert!(matches!(
                add_with(&store, &request("b"), &with(bad), &Silent),
                Err(Error::BadInput { .. })
            ));
        }
        let taken = add_with(&store, &request("b"), &with("acme/tiny"), &Silent).unwrap_err();
        assert!(
            taken.to_string().contains("model \"a\"'s already"),
            "{taken}"
        );
        add(&store, &request("c"), &Silent).unwrap();
        let default_taken =
            add_with(&store, &request("b"), &with("modelfs/c"), &Silent).unwrap_err();
        assert!(
            default_taken.to_string().contains("model \"c\"'s"),
            "{default_taken}"
        );
        assert_eq!(store.registry().unwrap().models.len(), 2, "nothing added");
        add_with(&store, &request("b"), &with("modelfs/b"), &Silent).unwrap();
        add_with(&store, &request("a"), &with("acme/tiny2"), &Silent).unwrap();
        let registry = store.registry().unwrap();
        assert_eq!(registry.models["a"].hf_repo.as_deref(), Some("acme/tiny2"));
        assert_eq!(registry.models["b"].hf_repo.as_deref(), Some("modelfs/b"));
    }
}
