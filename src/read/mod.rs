//! The read path: from a file offset to verified bytes, over any [`Source`].
//!
//! Owns [`Reader`] — a source, the decoded-chunk cache and the verify policy — and its one chunk
//! call, [`Reader::get_chunk`]: cache → locate → read → decode → verify → stand in from another
//! layer (inside a layered source) or relocate after `gc`, in that order, in one place (the shape
//! of rustic_core's `get_blob_cached`). [`OpenFile`] (`file`) splits a read into per-chunk pieces
//! and calls it once per piece; `table` keeps each open file's resolved chunk places; `metrics`
//! counts what reads did (the mount serves it at `--metrics`).
//! The mount (`vfs`), `cat`, `diff` and the tests all read through here.

mod cache;
mod file;
mod metrics;
mod table;

use std::sync::Arc;

use tracing::warn;

pub use cache::ChunkCache;
pub use file::OpenFile;
use metrics::{ChunkRead, ReadMetrics};
pub use metrics::{FailureCause, LatencyCounts, ModelReadCounts, ReadCounts};
use table::FileChunks;

use crate::error::{Error, Result};
use crate::format::manifest::Manifest;
use crate::format::registry::Layout;
use crate::source::Source;
use crate::store::chunk::Check;
use crate::store::registry::{ModelSpec, resolve};

/// Default decoded-chunk cache size.
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

/// When the read path hashes a chunk read from storage.
///
/// Bytes already in memory are not storage: the kernel's page cache of a mounted file (warm reads
/// never reach modelfs) and the decoded-chunk cache hold only bytes verified on their way in. What
/// the policy decides is whether a chunk read from its medium *again* — after the kernel dropped
/// the file's pages — is hashed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyPolicy {
    /// Every time: bytes that decay or are changed on the medium after a first read are never
    /// served. The default; costs one blake3 per chunk read from storage (~0.25 CPU-s per GB).
    #[default]
    EveryRead,
    /// Only the first time an open file reads the chunk; later reads trust the stored bytes
    /// verified before. For stores on media nobody else can write, to save that hash.
    FirstRead,
}

/// How a [`Reader`] reads.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Bytes of decoded chunks kept for small reads (0 disables the cache).
    pub cache_bytes: usize,
    /// When chunks are hashed.
    pub verify: VerifyPolicy,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            cache_bytes: DEFAULT_CACHE_BYTES,
            verify: VerifyPolicy::default(),
        }
    }
}

/// Reads files of a source.
pub struct Reader {
    source: Arc<dyn Source>,
    /// Decoded, verified chunks reused by small reads; shared by all open files.
    cache: ChunkCache,
    verify: VerifyPolicy,
    metrics: ReadMetrics,
}

impl Reader {
    /// A reader of `source`.
    pub fn new(source: Arc<dyn Source>, options: ReadOptions) -> Arc<Reader> {
        Arc::new(Reader {
            source,
            cache: ChunkCache::new(options.cache_bytes),
            verify: options.verify,
            metrics: ReadMetrics::default(),
        })
    }

    /// What reads did so far: per model version, latency, chunks, cache, failures by cause.
    pub fn counts(&self) -> ReadCounts {
        self.metrics.snapshot()
    }

    /// The source read from.
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.source
    }

    /// Opens a file by its manifest; `label` (`model@version/path`) names it in logs and errors,
    /// and its `model@version` the counters its reads are counted under.
    pub fn open(self: &Arc<Self>, label: String, manifest: Manifest) -> OpenFile {
        let reads = self.metrics.model(&label);
        OpenFile::new(self.clone(), FileChunks::new(label, manifest), reads)
    }

    /// Opens the file a registry lists with manifest `id` and `size` bytes. A registry and a
    /// manifest that disagree on the size are refused, so every reader sees the same bytes.
    pub fn open_listed(
        self: &Arc<Self>,
        label: String,
        id: &crate::id::ManifestId,
        size: u64,
    ) -> Result<OpenFile> {
        let manifest = self.source.manifest(id)?;
        if manifest.size != size {
            return Err(Error::corrupt(
                label,
                format!(
                    "the registry lists it as {size} bytes, its manifest as {}",
                    manifest.size
                ),
            ));
        }
        Ok(self.open(label, manifest))
    }

    /// Opens the file `spec` names: `NAME[@VERSION]` of a single-file model, or
    /// `NAME[@VERSION]/FILE` of any model.
    pub fn open_file(self: &Arc<Self>, spec: &ModelSpec) -> Result<OpenFile> {
        let registry = self.source.registry()?;
        let (_, version) = resolve(&registry, &spec.model, spec.version.as_deref())?;
        let file = match (&spec.file, version.layout) {
            (Some(path), _) => version.files.iter().find(|f| &f.path == path),
            (None, Layout::File) => version.files.first(),
            (None, Layout::Dir) => {
                return Err(Error::IsAFolderModel {
                    model: spec.model.clone(),
                    version: version.version.clone(),
                    example: version
                        .files
                        .first()
                        .map(|f| f.path.clone())
                        .unwrap_or_default(),
                });
            }
        };
        let file = file.ok_or_else(|| Error::UnknownFile {
            model: spec.model.clone(),
            version: version.version.clone(),
            file: spec.file.clone().unwrap_or_default(),
        })?;
        let label = format!("{}@{}/{}", spec.model, version.version, file.path);
        self.open_listed(label, &file.manifest, file.size)
    }

    /// The one chunk call: copies bytes `within..within + dst.len()` of chunk `index` of `file`
    /// into `dst`. A chunk the cache holds is copied from there; a whole chunk is read straight
    /// into `dst`; part of one goes through the cache so the neighbouring small reads that usually
    /// follow do not decode it again. A chunk whose pack is gone (a writer's `gc` moved it) is
    /// looked up again, once; any other failure is returned (the mount logs it with the file and
    /// answers EIO; `cat` prints it).
    fn get_chunk(
        &self,
        file: &FileChunks,
        index: usize,
        within: usize,
        dst: &mut [u8],
    ) -> Result<()> {
        self.fetch_chunk(file, index, within, dst)
            .inspect_err(|e| self.metrics.chunk_failed(e))
    }

    /// [`Reader::get_chunk`] before failures are counted.
    fn fetch_chunk(
        &self,
        file: &FileChunks,
        index: usize,
        within: usize,
        dst: &mut [u8],
    ) -> Result<()> {
        let chunk = file.chunk(index);
        let cached = self.cache.get(&chunk.id);
        self.metrics.cache_lookup(cached.is_some());
        if let Some(bytes) = cached {
            // The cache holds the chunk's verified bytes; a manifest that claims another length
            // lies, and must not make this read run off the end.
            if bytes.len() != chunk.len as usize {
                return Err(Error::corrupt(
                    file.label(),
                    format!(
                        "its manifest says chunk {} holds {} bytes; it holds {}",
                        chunk.id.short(),
                        chunk.len,
                        bytes.len()
                    ),
                ));
            }
            dst.copy_from_slice(&bytes[within..][..dst.len()]);
            return Ok(());
        }
        let whole = within == 0 && dst.len() == chunk.len as usize;
        let mut relocated = false;
        loop {
            let (place, verified) = file.place(self.source.as_ref(), index)?;
            // Part of a chunk goes into the cache, which holds verified bytes only.
            let check = match whole && self.verify == VerifyPolicy::FirstRead && verified {
                true => Check::Trust,
                false => Check::Verify,
            };
            let result = if whole {
                self.source
                    .read_chunk(&chunk.id, &place, dst, check, &mut |_| {})
            } else {
                // Built in place (a sized iterator lets `Arc` allocate once), not copied from a Vec.
                let mut bytes: Arc<[u8]> = std::iter::repeat_n(0u8, chunk.len as usize).collect();
                let buf = Arc::get_mut(&mut bytes).expect("a new Arc has one owner");
                self.source
                    .read_chunk(&chunk.id, &place, buf, check, &mut |_| {})
                    .inspect(|_| {
                        dst.copy_from_slice(&bytes[within..][..dst.len()]);
                        self.cache.insert(chunk.id, bytes);
                    })
            };
            match result {
                // The bytes were verified where they were read: only that place is trusted
                // later (a union of sources may have read a good copy elsewhere).
                Ok(read_from) => {
                    if !verified || read_from != place {
                        file.verified_at(index, read_from);
                    }
                    self.metrics.chunk_read(match (read_from == place, check) {
                        (false, _) => ChunkRead::Recovered,
                        (true, Check::Verify) => ChunkRead::Verified,
                        (true, Check::Trust) => ChunkRead::Trusted,
                    });
                    return Ok(());
                }
                Err(Error::MissingPack(_)) if !relocated => {
                    relocated = true;
                    warn!(file = %file.label(), chunk = %chunk.id.short(), "pack gone; looking the chunk up again");
                    self.source.refresh()?;
                    file.forget(index);
                }
                Err(e) => return Err(e),
            }
        }
    }
}
