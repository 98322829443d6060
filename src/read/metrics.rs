//! What the read path counts: reads and bytes per model version, how long reads take, chunks
//! verified, trusted or read from another source, decoded-cache hits and misses, and failures by
//! cause. The mount serves them at `--metrics` (`mount::metrics`).
//!
//! Owns [`ReadMetrics`] (one per [`Reader`](super::Reader)), [`ReadCounts`] (a snapshot of it),
//! [`FailureCause`] (which label an error counts under) and the latency histogram. Every counter
//! is an atomic bumped on the read path; the only lock is the per-model table's, taken when a file
//! is opened, never per read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Error;

/// Upper bounds of the latency histogram's buckets, in nanoseconds: 100 µs to 10 s (a read
/// answered from the decoded-chunk cache to one waiting on a slow network source).
const LATENCY_BOUNDS_NANOS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// What the reason of a read that ended early says: a record past the end of its pack (local or
/// remote), a body shorter than its range.
const SHORT_READ_MARKERS: [&str; 2] = ["runs past the", "body ended after"];
/// What the reason of a source that ran out of time says (`peer::client`, `peer::bucket`).
const TIMEOUT_MARKERS: [&str; 4] = ["timed out", "deadline", "no answer from", "stalled"];

/// Why a chunk, or a read request, could not be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// The decoded bytes do not hash to the chunk id.
    HashMismatch,
    /// The stored record does not decode, or its lengths disagree with the manifest.
    Decode,
    /// The record runs past the end of its pack, or a body ended early.
    ShortRead,
    /// No source has the chunk.
    MissingChunk,
    /// The pack the index names is gone.
    MissingPack,
    /// A network source did not answer in time.
    SourceTimeout,
    /// A network source failed otherwise, or sent something unusable.
    Source,
    /// The medium failed (an I/O error).
    Io,
    /// Anything else (the index, a manifest).
    Other,
}

impl FailureCause {
    /// Every cause, in the order metrics list them.
    pub const ALL: [FailureCause; 9] = [
        FailureCause::HashMismatch,
        FailureCause::Decode,
        FailureCause::ShortRead,
        FailureCause::MissingChunk,
        FailureCause::MissingPack,
        FailureCause::SourceTimeout,
        FailureCause::Source,
        FailureCause::Io,
        FailureCause::Other,
    ];

    /// The `cause` label value.
    pub fn label(self) -> &'static str {
        match self {
            FailureCause::HashMismatch => "hash_mismatch",
            FailureCause::Decode => "decode",
            FailureCause::ShortRead => "short_read",
            FailureCause::MissingChunk => "missing_chunk",
            FailureCause::MissingPack => "missing_pack",
            FailureCause::SourceTimeout => "source_timeout",
            FailureCause::Source => "source",
            FailureCause::Io => "io",
            FailureCause::Other => "other",
        }
    }

    /// The cause of `error`. A damaged chunk's or a source's reason is the text of the check
    /// that failed (`codec::DecodeError`, the pack read, `peer`'s deadlines); the unit tests pin
    /// the local ones against real failures.
    pub fn of(error: &Error) -> FailureCause {
        let has = |reason: &str, markers: &[&str]| markers.iter().any(|m| reason.contains(m));
        let short = |reason: &str| has(reason, &SHORT_READ_MARKERS);
        match error {
            Error::BadChunk { reason, .. } if reason.starts_with("blake3 mismatch") => {
                FailureCause::HashMismatch
            }
            Error::BadChunk { reason, .. } | Error::Corrupt { reason, .. } if short(reason) => {
                FailureCause::ShortRead
            }
            Error::BadChunk { .. } | Error::Corrupt { .. } => FailureCause::Decode,
            Error::MissingChunk(_) => FailureCause::MissingChunk,
            Error::MissingPack(_) => FailureCause::MissingPack,
            Error::Remote { reason, .. } if has(reason, &TIMEOUT_MARKERS) => {
                FailureCause::SourceTimeout
            }
            Error::Remote { reason, .. } if short(reason) => FailureCause::ShortRead,
            Error::Remote { .. } => FailureCause::Source,
            Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::UnexpectedEof => {
                FailureCause::ShortRead
            }
            Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::TimedOut => {
                FailureCause::SourceTimeout
            }
            Error::Io { .. } => FailureCause::Io,
            _ => FailureCause::Other,
        }
    }
}

/// Counters per cause.
#[derive(Default)]
struct ByCause([AtomicU64; FailureCause::ALL.len()]);

impl ByCause {
    fn count(&self, error: &Error) {
        let cause = FailureCause::of(error);
        let slot = FailureCause::ALL
            .iter()
            .position(|c| *c == cause)
            .expect("every cause is listed");
        self.0[slot].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Vec<(FailureCause, u64)> {
        FailureCause::ALL
            .iter()
            .zip(&self.0)
            .map(|(cause, n)| (*cause, n.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Read requests and bytes of one model version; each open file holds its model's.
#[derive(Default)]
pub(super) struct ModelReads {
    reads: AtomicU64,
    bytes: AtomicU64,
}

/// Request latencies in fixed buckets.
#[derive(Default)]
struct Latency {
    /// One counter per bound, then the overflow (+Inf) bucket.
    buckets: [AtomicU64; LATENCY_BOUNDS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Latency {
    fn observe(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn snapshot(&self) -> LatencyCounts {
        let bounds = LATENCY_BOUNDS_NANOS
            .iter()
            .map(|&nanos| nanos as f64 / 1e9)
            .chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.buckets)
            .map(|(bound, n)| (bound, n.load(Ordering::Relaxed)))
            .collect();
        LatencyCounts {
            count: buckets.iter().map(|(_, n)| n).sum(),
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            buckets,
        }
    }
}

/// A reader's counters.
#[derive(Default)]
pub(super) struct ReadMetrics {
    /// By (model, version), as the files' labels name them.
    models: Mutex<BTreeMap<(String, String), Arc<ModelReads>>>,
    latency: Latency,
    chunks_verified: AtomicU64,
    chunks_trusted: AtomicU64,
    chunks_recovered: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    chunk_failures: ByCause,
    read_failures: ByCause,
}

/// What a chunk read from storage did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChunkRead {
    /// Hashed against its id.
    Verified,
    /// Not hashed: verified at that place before (`--verify first-read`).
    Trusted,
    /// The place it was looked up at failed; another source's copy was read, verified.
    Recovered,
}

impl ReadMetrics {
    /// The counters of the model version a file labelled `model@version/path` belongs to.
    pub(super) fn model(&self, label: &str) -> Arc<ModelReads> {
        let name = label.split('/').next().unwrap_or(label);
        let (model, version) = name.split_once('@').unwrap_or((name, ""));
        self.models
            .lock()
            .expect("model counters poisoned")
            .entry((model.to_owned(), version.to_owned()))
            .or_default()
            .clone()
    }

    /// Counts one read request of `file` that took `took`.
    pub(super) fn read(
        &self,
        file: &ModelReads,
        result: &crate::error::Result<usize>,
        took: Duration,
    ) {
        self.latency.observe(took);
        match result {
            Ok(n) => {
                file.reads.fetch_add(1, Ordering::Relaxed);
                file.bytes.fetch_add(*n as u64, Ordering::Relaxed);
            }
            Err(e) => self.read_failures.count(e),
        }
    }

    /// Counts a decoded-chunk cache lookup.
    pub(super) fn cache_lookup(&self, hit: bool) {
        let counter = match hit {
            true => &self.cache_hits,
            false => &self.cache_misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a chunk read from storage.
    pub(super) fn chunk_read(&self, how: ChunkRead) {
        let counter = match how {
            ChunkRead::Verified => &self.chunks_verified,
            ChunkRead::Trusted => &self.chunks_trusted,
            ChunkRead::Recovered => &self.chunks_recovered,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a chunk that could not be served.
    pub(super) fn chunk_failed(&self, error: &Error) {
        self.chunk_failures.count(error);
    }

    pub(super) fn snapshot(&self) -> ReadCounts {
        let models = self.models.lock().expect("model counters poisoned");
        ReadCounts {
            models: models
                .iter()
                .map(|((model, version), reads)| ModelReadCounts {
                    model: model.clone(),
                    version: version.clone(),
                    reads: reads.reads.load(Ordering::Relaxed),
                    bytes: reads.bytes.load(Ordering::Relaxed),
                })
                .collect(),
            latency: self.latency.snapshot(),
            chunks_verified: self.chunks_verified.load(Ordering::Relaxed),
            chunks_trusted: self.chunks_trusted.load(Ordering::Relaxed),
            chunks_recovered: self.chunks_recovered.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            chunk_failures: self.chunk_failures.snapshot(),
            read_failures: self.read_failures.snapshot(),
        }
    }
}

/// Read requests answered with bytes, and those bytes, for one model version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelReadCounts {
    /// The model.
    pub model: String,
    /// Its version.
    pub version: String,
    /// Read requests answered with bytes.
    pub reads: u64,
    /// Bytes returned.
    pub bytes: u64,
}

/// How long read requests took.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyCounts {
    /// (upper bound in seconds, requests in this bucket alone), the last bound infinite.
    pub buckets: Vec<(f64, u64)>,
    /// Seconds taken by all requests together.
    pub sum_seconds: f64,
    /// Requests observed.
    pub count: u64,
}

/// A snapshot of a reader's counters, all counted since it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadCounts {
    /// Per model version read from, by name.
    pub models: Vec<ModelReadCounts>,
    /// Every read request, answered with bytes or an error.
    pub latency: LatencyCounts,
    /// Chunks read from storage and hashed against their id.
    pub chunks_verified: u64,
    /// Chunks read from storage without hashing (verified at that place before).
    pub chunks_trusted: u64,
    /// Chunks whose source failed and that another source served, verified.
    pub chunks_recovered: u64,
    /// Chunk pieces served from the decoded-chunk cache.
    pub cache_hits: u64,
    /// Chunk pieces the cache did not hold.
    pub cache_misses: u64,
    /// Chunks that could not be served verified, by cause (every cause listed).
    pub chunk_failures: Vec<(FailureCause, u64)>,
    /// Read requests answered with an error (EIO), by the cause of the first failing chunk.
    pub read_failures: Vec<(FailureCause, u64)>,
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::format::pack::{Codec, RECORD_HEADER_LEN};
    use crate::read::Reader;
    use crate::store::Store;
    use crate::store::index::Location;
    use crate::testutil::{add_model, random_bytes, small_store};

    fn count(counts: &[(FailureCause, u64)], cause: FailureCause) -> u64 {
        counts
            .iter()
            .find(|(c, _)| *c == cause)
            .map_or(0, |(_, n)| *n)
    }

    /// Where the first chunk of model `model` is stored.
    fn first_chunk(store: &Store, model: &str) -> Location {
        let registry = store.registry().unwrap();
        let file = &registry.models[model].versions[0].files[0];
        let id = store.manifest(&file.manifest).unwrap().chunks[0].id;
        store.locate(&[id]).unwrap()[0].unwrap()
    }

    #[test]
    fn reads_are_counted_per_model_with_cache_and_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(dir.path());
        let bytes = random_bytes(11, 100_000);
        add_model(&store, dir.path(), "m", &bytes);
        let version = store.registry().unwrap().models["m"].versions[0]
            .version
            .clone();
        let reader = Reader::new(store.clone(), Default::default());
        let file = reader.open_file(&"m".parse().unwrap()).unwrap();
        let chunks = file.manifest().chunks.len() as u64;
        let mut whole = vec![0u8; bytes.len()];
        assert_eq!(file.read_at(0, &mut whole).unwrap(), bytes.len());
        let mut small = [0u8; 10];
        for _ in 0..2 {
            assert_eq!(file.read_at(5, &mut small).unwrap(), 10);
        }
        let counts = reader.counts();
        assert_eq!(
            counts.models,
            vec![ModelReadCounts {
                model: "m".into(),
                version,
                reads: 3,
                bytes: bytes.len() as u64 + 20,
            }]
        );
        // The whole file: every chunk a miss, read and verified; the first small read decodes
        // chunk 0 again into the cache, the second finds it there.
        assert_eq!(counts.chunks_verified, chunks + 1);
        assert_eq!(counts.cache_misses, chunks + 1);
        assert_eq!(counts.cache_hits, 1);
        assert_eq!(counts.latency.count, 3);
        assert!(counts.latency.sum_seconds > 0.0);
        assert!(counts.latency.buckets.last().unwrap().0.is_infinite());
        assert!(counts.chunk_failures.iter().all(|(_, n)| *n == 0));
    }

    /// Each cause is recognised from real damage: a flipped byte of a raw chunk (hash), of a
    /// compressed one (decode), a pack cut short.
    #[test]
    fn damage_is_counted_by_cause() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(&dir.path().join("store"));
        add_model(&store, dir.path(), "raw", &random_bytes(12, 60_000));
        let text: Vec<u8> = (0..60_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        add_model(&store, dir.path(), "packed", &text);
        let reader = Reader::new(store.clone(), Default::default());
        let damage = |model: &str, cause: FailureCause, how: &dyn Fn(&std::fs::File, Location)| {
            let at = first_chunk(&store, model);
            let pack = crate::store::pack::pack_path(store.packs_dir(), &at.pack);
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(pack)
                .unwrap();
            how(&file, at);
            let before = reader.counts();
            let opened = reader.open_file(&model.parse().unwrap()).unwrap();
            let error = opened.read_at(0, &mut [0u8; 100]).unwrap_err();
            assert_eq!(FailureCause::of(&error), cause, "{error}");
            let after = reader.counts();
            for (name, was, is) in [
                ("chunk", &before.chunk_failures, &after.chunk_failures),
                ("read", &before.read_failures, &after.read_failures),
            ] {
                assert_eq!(count(is, cause), count(was, cause) + 1, "{name} failures");
            }
        };
        let flip_payload = |file: &std::fs::File, at: Location| {
            let offset = at.offset + RECORD_HEADER_LEN as u64 + 1;
            let mut byte = [0u8];
            file.read_exact_at(&mut byte, offset).unwrap();
            file.write_all_at(&[byte[0] ^ 0xff], offset).unwrap();
        };
        assert_eq!(first_chunk(&store, "raw").codec, Codec::Raw);
        damage("raw", FailureCause::HashMismatch, &flip_payload);
        assert_ne!(first_chunk(&store, "packed").codec, Codec::Raw);
        damage("packed", FailureCause::Decode, &flip_payload);
        damage("raw", FailureCause::ShortRead, &|file, at| {
            file.set_len(at.offset + RECORD_HEADER_LEN as u64).unwrap()
        });
        assert_eq!(reader.counts().chunks_verified, 0);
    }

    #[test]
    fn errors_without_a_chunk_get_their_cause() {
        let remote = |reason: &str| Error::Remote {
            url: "http://peer:7420/packs/x.pack".into(),
            reason: reason.into(),
        };
        for (error, cause) in [
            (
                Error::MissingChunk(crate::id::ChunkId([1; 32])),
                FailureCause::MissingChunk,
            ),
            (
                remote("timed out: operation timed out"),
                FailureCause::SourceTimeout,
            ),
            (
                remote("too slow: the reply did not arrive within its deadline"),
                FailureCause::SourceTimeout,
            ),
            (
                remote("body ended after 3 of 9 bytes"),
                FailureCause::ShortRead,
            ),
            (
                remote("answered 500 Internal Server Error"),
                FailureCause::Source,
            ),
            (
                Error::io("/p", std::io::ErrorKind::UnexpectedEof.into()),
                FailureCause::ShortRead,
            ),
            (
                Error::io("/p", std::io::Error::from_raw_os_error(libc::EIO)),
                FailureCause::Io,
            ),
            (Error::Cancelled, FailureCause::Other),
        ] {
            assert_eq!(FailureCause::of(&error), cause, "{error}");
        }
    }
}
