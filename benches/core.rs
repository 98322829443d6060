//! Micro-benchmarks of the pieces on the ingest and read paths: chunking, hashing, compression,
//! offset-to-chunk lookup, and the store's read path without FUSE (sequential MB/s, and ns per
//! 4 KiB read with the decoded-chunk cache cold and warm), and checking the signed release of a
//! 7 GB model (manifest read from disk, statement, signature).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use modelfs::chunker::{Chunker, DEFAULT_CHUNKING};
use modelfs::codec::{Encoder, decode_into};
use modelfs::format::manifest::{ChunkRef, Manifest};
use modelfs::id::ChunkId;
use modelfs::ingest::{AddRequest, add};
use modelfs::progress::Silent;
use modelfs::read::{ReadOptions, Reader, VerifyPolicy};
use modelfs::store::{Access, DEFAULT_COMPRESSION, InitOptions, Store};
use std::sync::Arc;

/// fp16 values ~N(0, 0.02), like model weights.
fn fp16_weights(len: usize) -> Vec<u8> {
    let mut state = 0x1234_5678_u64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = state >> 11;
        let normal =
            ((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff)) as f32 / 65535.0 - 1.5;
        out.extend_from_slice(&half::f16::from_f32(normal * 2.0 * 0.02).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn chunking_and_hashing(c: &mut Criterion) {
    let data = fp16_weights(64 << 20);
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.bench_function("fastcdc_64KiB", |b| {
        let chunker = Chunker::new(DEFAULT_CHUNKING);
        b.iter(|| chunker.spans(black_box(&data)).count())
    });
    group.bench_function("blake3_per_64KiB_chunk", |b| {
        b.iter(|| {
            data.chunks(64 << 10)
                .map(|c| ChunkId::of(black_box(c)).0[0])
                .fold(0u8, |a, x| a ^ x)
        })
    });
    group.finish();

    let chunk = &data[..64 << 10];
    let mut group = c.benchmark_group("codec_64KiB_fp16");
    group.throughput(Throughput::Bytes(chunk.len() as u64));
    let mut encoder = Encoder::new(DEFAULT_COMPRESSION).unwrap();
    let encoded = encoder.encode(ChunkId::of(chunk), chunk, Some(&[1, 1]));
    group.bench_function("encode", |b| {
        b.iter(|| {
            encoder
                .encode(ChunkId::of(chunk), black_box(chunk), Some(&[1, 1]))
                .stored_len()
        })
    });
    let mut out = vec![0u8; chunk.len()];
    group.bench_function("decode", |b| {
        b.iter(|| decode_into(encoded.codec, black_box(encoded.payload(chunk)), &mut out).unwrap())
    });
    group.finish();
}

fn offset_lookup(c: &mut Criterion) {
    // A 1 GiB file in 64 KiB chunks.
    let chunks: Vec<ChunkRef> = (0..16_384u64)
        .map(|i| ChunkRef {
            offset: i << 16,
            len: 1 << 16,
            id: ChunkId::of(&i.to_le_bytes()),
        })
        .collect();
    let manifest = Manifest {
        size: 1 << 30,
        blake3: [0; 32],
        sha256: [0; 32],
        chunks,
    };
    c.bench_function("offset_to_chunk_16k_chunks", |b| {
        let mut offset = 0u64;
        b.iter(|| {
            offset = (offset + 7_919 * 4096) % (1 << 30);
            manifest.chunk_index_at(black_box(offset))
        })
    });
}

fn store_read_path(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    Store::init(&root, InitOptions::default()).unwrap();
    let data = fp16_weights(256 << 20);
    let input = dir.path().join("model.gguf");
    std::fs::write(&input, &data).unwrap();
    {
        let store = Store::open(&root, Access::Write).unwrap();
        let request = AddRequest {
            model: "m".into(),
            version: None,
            source: input,
        };
        add(&store, &request, &Silent).unwrap();
    }
    let open = |cache_bytes: usize| {
        let store = Arc::new(Store::open(&root, Access::Read).unwrap());
        let options = ReadOptions {
            cache_bytes,
            verify: VerifyPolicy::EveryRead,
        };
        Reader::new(store, options)
            .open_file(&"m".parse().unwrap())
            .unwrap()
    };

    let mut group = c.benchmark_group("store_read");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(data.len() as u64));
    let file = open(64 << 20);
    let mut buf = vec![0u8; 1 << 20];
    group.bench_function("sequential_1MiB_reads_verified", |b| {
        b.iter(|| {
            for offset in (0..data.len() as u64).step_by(1 << 20) {
                file.read_at(offset, &mut buf).unwrap();
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("store_read_4KiB_random");
    group.throughput(Throughput::Elements(1));
    for (name, cache) in [("cold_cache", 0usize), ("warm_cache", 512 << 20)] {
        let file = open(cache);
        let mut page = vec![0u8; 4096];
        let mut offset = 0u64;
        if cache > 0 {
            for at in (0..data.len() as u64).step_by(4096 * 8) {
                file.read_at(at, &mut page).unwrap();
            }
        }
        group.bench_with_input(BenchmarkId::from_parameter(name), &cache, |b, _| {
            b.iter(|| {
                offset = (offset + 7_919 * 4096 * 8) % data.len() as u64;
                file.read_at(offset, &mut page).unwrap()
            })
        });
    }
    group.finish();
}

/// Checks the signed release of a 7 GB single-file model: its manifest (about 107,000 chunks of
/// 64 KiB, 4.7 MB) read from the store and hashed against its id, the statement decoded and
/// compared with the version's files and digests, and the signature verified. This is what
/// `import`, `pull` and a `--require-signed` mount pay per release; chunk hashes are checked as
/// chunks are read or copied, not here.
fn release_check(c: &mut Criterion) {
    use modelfs::format::registry::{FileEntry, Layout, VersionEntry};
    use modelfs::trust::keys::{FileSigner, Passphrase, generate, read_public_key};
    use modelfs::trust::release::{StatementTerms, add_signature, check, make_statement};

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    Store::init(&root, InitOptions::default()).unwrap();
    let store = Store::open(&root, Access::Write).unwrap();
    let size: u64 = 7_000_000_000;
    let chunk = 64u64 << 10;
    let chunks = (0..size.div_ceil(chunk))
        .map(|i| ChunkRef {
            offset: i * chunk,
            len: chunk.min(size - i * chunk) as u32,
            id: ChunkId::of(&i.to_le_bytes()),
        })
        .collect();
    let manifest = Manifest {
        size,
        blake3: [7; 32],
        sha256: [8; 32],
        chunks,
    };
    let (id, _) = store.put_manifest(&manifest).unwrap();
    let mut version = VersionEntry {
        version: "v1".into(),
        added_unix: 0,
        layout: Layout::File,
        files: vec![FileEntry {
            path: "big.gguf".into(),
            size,
            manifest: id,
        }],
        release: None,
    };
    let (_, public) = generate(dir.path(), "k", &Passphrase::None).unwrap();
    let signer = FileSigner::open(&dir.path().join("k.key"), &Passphrase::None).unwrap();
    let terms = StatementTerms {
        channel: "stable".into(),
        sequence: 1,
        created_unix: 0,
        expires_unix: None,
    };
    let statement = make_statement("big", &version, terms, &mut |id| store.manifest(id)).unwrap();
    version.release = Some(add_signature(None, &statement, &signer).unwrap());
    store
        .update_trust(|p| modelfs::trust::policy::trust(p, &read_public_key(&public).unwrap(), 0))
        .unwrap();
    let keyring = store.keyring().unwrap();

    let mut group = c.benchmark_group("release_check");
    group.sample_size(20);
    group.bench_function("7GB_model", |b| {
        b.iter(|| check("big", &version, &keyring, 1, &mut |id| store.manifest(id)).unwrap())
    });
    group.finish();
}

criterion_group!(
    benches,
    chunking_and_hashing,
    offset_lookup,
    store_read_path,
    release_check
);
criterion_main!(benches);
