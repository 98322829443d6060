//! Writes the seed corpus: valid encodings made by the library (from a real store built like the
//! `store` target's fixture), a few truncated and damaged ones, and damage scripts for the
//! `store` target, a catalog and pack tails of a second small store for `catalog`, and requests
//! for `serve`. Deterministic except for the ids a store draws at random (pack ids, store id).
//!
//! `cargo run --release --manifest-path tools/fuzz/Cargo.toml --bin seed -- tools/fuzz/corpus
//! [TARGET...]` (replaces the generated seeds of those targets, every target by default;
//! `regression-*` inputs stay).

use std::path::{Path, PathBuf};

use modelfs::format::catalog::{self, Catalog, PackEntry};
use modelfs::format::config::{self, ChunkingParams, CompressionParams, StoreConfig};
use modelfs::format::grouped::{GroupedPayload, Plane, PlaneMode};
use modelfs::format::manifest::{ChunkRef, Manifest};
use modelfs::format::pack::{
    Codec, HEADER_LEN, PackHeader, RECORD_HEADER_LEN, RecordHeader, TRAILER_LEN, TableEntry,
    Trailer, decode_table, encode_table,
};
use modelfs::id::{ChunkId, PackId, StoreId};
use modelfs::progress::Silent;
use modelfs::store::{Access, Store};
use modelfs_fuzz::models;
use modelfs_fuzz::store::{FILE_CONFIG, FILE_REGISTRY, Fixture, flags, ops};

struct Corpus {
    dir: PathBuf,
}

impl Corpus {
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.dir.join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(name), bytes).expect("write seed");
    }
}

/// The records of a sealed pack, by its table: (header, payload).
fn records(pack: &[u8]) -> Vec<(RecordHeader, Vec<u8>)> {
    let trailer = Trailer::decode(&pack[pack.len() - TRAILER_LEN..]).expect("sealed pack");
    let table = &pack[trailer.table_offset as usize..pack.len() - TRAILER_LEN];
    decode_table(table)
        .expect("pack table")
        .into_iter()
        .map(|entry| {
            let at = entry.offset as usize + RECORD_HEADER_LEN;
            let payload = pack[at..at + entry.header.stored_len as usize].to_vec();
            (entry.header, payload)
        })
        .collect()
}

fn pack_seeds(corpus: &Corpus, packs: &[Vec<u8>]) {
    let header = PackHeader {
        version: 2,
        pack_id: PackId(std::array::from_fn(|i| i as u8)),
    };
    corpus.put("pack", "header", &header.encode());
    let record = RecordHeader {
        chunk_id: ChunkId::of(b"chunk"),
        codec: Codec::Grouped,
        raw_len: 4096,
        stored_len: 3000,
    };
    corpus.put("pack", "record-header", &record.encode());
    let entries = [
        TableEntry {
            header: RecordHeader {
                codec: Codec::Raw,
                stored_len: 4096,
                ..record
            },
            offset: HEADER_LEN as u64,
        },
        TableEntry {
            header: record,
            offset: (HEADER_LEN + RECORD_HEADER_LEN + 4096) as u64,
        },
    ];
    let table = encode_table(&entries);
    corpus.put("pack", "table", &table);
    let trailer = Trailer {
        table_hash: *ChunkId::of(&table).as_bytes(),
        table_offset: 8272,
        entry_count: 2,
    };
    corpus.put("pack", "trailer", &trailer.encode());
    // Two whole packs of the fixture store (the smallest ones), one truncated, one torn in its table.
    let mut by_size: Vec<&Vec<u8>> = packs.iter().collect();
    by_size.sort_by_key(|p| p.len());
    for (i, pack) in by_size.iter().take(2).enumerate() {
        corpus.put("pack", &format!("pack-{i}"), pack);
    }
    let small = by_size[0];
    corpus.put("pack", "pack-truncated", &small[..small.len() - 20]);
    let mut torn = small.to_vec();
    let at = torn.len() - TRAILER_LEN - 30;
    torn[at] ^= 0x55;
    corpus.put("pack", "pack-torn-table", &torn);
}

fn manifest_seeds(corpus: &Corpus, manifests: &[Vec<u8>]) {
    for (i, manifest) in manifests.iter().enumerate() {
        corpus.put("manifest", &format!("fixture-{i}"), manifest);
    }
    let small = Manifest {
        size: 300,
        blake3: [0x11; 32],
        sha256: [0x22; 32],
        chunks: vec![
            ChunkRef {
                offset: 0,
                len: 100,
                id: ChunkId([0x33; 32]),
            },
            ChunkRef {
                offset: 100,
                len: 200,
                id: ChunkId([0x44; 32]),
            },
        ],
    }
    .encode();
    corpus.put("manifest", "two-chunks", &small);
    let mut probed = vec![4u8];
    probed.extend_from_slice(&small);
    probed.extend_from_slice(&150u64.to_le_bytes());
    corpus.put("manifest", "two-chunks-probed", &probed);
    let empty = Manifest {
        size: 0,
        blake3: [0; 32],
        sha256: [0; 32],
        chunks: vec![],
    }
    .encode();
    corpus.put("manifest", "empty-file", &empty);
    corpus.put("manifest", "truncated", &small[..small.len() - 7]);
}

fn registry_seeds(corpus: &Corpus, registry: &[u8]) {
    corpus.put("registry", "fixture", registry);
    corpus.put("registry", "truncated", &registry[..registry.len() / 2]);
    let empty = modelfs::format::registry::encode(&Default::default());
    corpus.put("registry", "empty", &empty);
    corpus.put(
        "registry",
        "newer",
        br#"{"format": "modelfs-registry", "version": 2, "generation": 1, "models": {}}"#,
    );
    let text = String::from_utf8(registry.to_vec()).expect("registry is text");
    corpus.put(
        "registry",
        "bad-path",
        text.replacen("\"tok/vocab.txt\"", "\"tok/../vocab.txt\"", 1)
            .as_bytes(),
    );
}

fn config_seeds(corpus: &Corpus, config_bytes: &[u8]) {
    corpus.put("config", "fixture", config_bytes);
    let golden = StoreConfig {
        format: config::CONFIG_FORMAT_TAG.to_owned(),
        version: 1,
        store_id: StoreId(std::array::from_fn(|i| i as u8)),
        created_unix: 1_700_000_000,
        chunking: ChunkingParams {
            min_size: 16 << 10,
            avg_size: 64 << 10,
            max_size: 256 << 10,
        },
        pack_target_bytes: 1 << 30,
        compression: CompressionParams {
            zstd_level: 3,
            min_saving_percent: 5,
        },
    };
    corpus.put("config", "version-1", &config::encode(&golden));
    corpus.put(
        "config",
        "truncated",
        &config_bytes[..config_bytes.len() - 9],
    );
}

fn grouped_seeds(corpus: &Corpus, packs: &[Vec<u8>]) {
    let mut kept = [0usize; 3];
    for pack in packs {
        for (header, payload) in records(pack) {
            let slot = header.codec as usize;
            if kept[slot] >= 2 || payload.len() > 6000 {
                continue;
            }
            let mut seed = vec![0u8];
            seed.extend_from_slice(&header.raw_len.to_le_bytes());
            seed.extend_from_slice(&payload);
            corpus.put("grouped", &format!("record-{slot}-{}", kept[slot]), &seed);
            kept[slot] += 1;
        }
    }
    let low: Vec<u8> = (0u8..64).collect();
    let payload = GroupedPayload::new(
        &[1, 1],
        &[
            Plane {
                mode: PlaneMode::Raw,
                bytes: &low[..32],
            },
            Plane {
                mode: PlaneMode::Raw,
                bytes: &low[32..],
            },
        ],
        &[0xee],
    )
    .expect("payload")
    .encode()
    .expect("encode");
    let mut seed = vec![0u8];
    seed.extend_from_slice(&65u32.to_le_bytes());
    seed.extend_from_slice(&payload);
    corpus.put("grouped", "raw-planes", &seed);
    for (mode, bytes) in [
        (0x80u8, models::f16_weights(3, 700)),
        (0x82, models::quant_blocks(4, 20, 32)),
        (0x81, models::f32_weights(5, 300)),
    ] {
        let mut seed = vec![mode];
        seed.extend_from_slice(&bytes);
        corpus.put("grouped", &format!("encode-{mode:02x}"), &seed);
    }
}

fn modelfile_seeds(corpus: &Corpus) {
    let gguf = models::gguf(
        1,
        &[
            ("a.weight", 256, models::GGML_F16),
            ("b.weight", 64, models::GGML_Q8_0),
            ("c.weight", 64, models::GGML_F32),
        ],
    );
    let safetensors = models::safetensors(2, &[("x", "F16", 300), ("y", "F32", 200)]);
    for (name, file) in [("gguf", &gguf), ("safetensors", &safetensors)] {
        let mut seed = vec![255u8];
        seed.extend_from_slice(file);
        corpus.put("modelfile", name, &seed);
        seed[0] = 128;
        corpus.put("modelfile", &format!("{name}-half-prefix"), &seed);
        seed[0] = 255;
        corpus.put(
            "modelfile",
            &format!("{name}-truncated"),
            &seed[..seed.len() * 2 / 3],
        );
    }
}

/// A damage script for the `store` target.
struct Script {
    bytes: Vec<u8>,
    ops: u8,
}

impl Script {
    fn new(flags: u8) -> Script {
        Script {
            bytes: vec![flags, 0],
            ops: 0,
        }
    }

    fn op(mut self, file: usize, kind: u8, args: &[u8]) -> Script {
        self.bytes.push(file as u8);
        self.bytes.push(kind);
        self.bytes.extend_from_slice(args);
        self.ops += 1;
        self.bytes[1] = self.ops;
        self
    }

    fn reads(mut self, reads: &[(u32, u16)]) -> Vec<u8> {
        for (offset, len) in reads {
            self.bytes.extend_from_slice(&offset.to_le_bytes());
            self.bytes.extend_from_slice(&len.to_le_bytes());
        }
        self.bytes
    }
}

fn args(at: u32, rest: &[u8]) -> Vec<u8> {
    let mut out = at.to_le_bytes().to_vec();
    out.extend_from_slice(rest);
    out
}

fn set_int(at: u32, width_selector: u8, value: u64) -> Vec<u8> {
    let mut out = args(at, &[width_selector]);
    out.extend_from_slice(&value.to_le_bytes());
    out
}

/// Offset of the first `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> u32 {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("fixture registry text") as u32
}

fn store_seeds(corpus: &Corpus, fixture: &Fixture) {
    let names = fixture.file_names();
    let registry = fixture.file_bytes(usize::from(FILE_REGISTRY));
    let manifests: Vec<usize> = (0..names.len())
        .filter(|&i| names[i].starts_with("manifests"))
        .collect();
    let packs: Vec<usize> = (0..names.len())
        .filter(|&i| names[i].starts_with("packs"))
        .collect();
    let (m, p) = (manifests[0], packs[0]);
    let pack_len = fixture.file_bytes(p).len() as u32;
    let table_at = pack_len - TRAILER_LEN as u32 - 56;
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("intact", Script::new(0).reads(&[(100, 5000), (30_000, 70)])),
        (
            "intact-no-index",
            Script::new(flags::DELETE_INDEX | flags::SCAN_PACKS).reads(&[]),
        ),
        (
            "intact-import",
            Script::new(flags::IMPORT | flags::NO_CACHE | flags::EVERY_READ).reads(&[]),
        ),
        (
            "pack-byte",
            Script::new(0)
                .op(p, ops::OVERWRITE, &args(200, &[1, 0xff]))
                .reads(&[(0, 3000)]),
        ),
        (
            "pack-record-length",
            Script::new(flags::DELETE_INDEX | flags::SCAN_PACKS)
                .op(p, ops::ADD_INT, &args(72, &[2, 1]))
                .reads(&[]),
        ),
        (
            "pack-truncated",
            Script::new(flags::DELETE_INDEX | flags::SCAN_PACKS)
                .op(p, ops::TRUNCATE, &args(pack_len / 2, &[]))
                .reads(&[]),
        ),
        (
            "pack-table-resealed",
            Script::new(flags::DELETE_INDEX | flags::RESEAL_PACKS | flags::SCRUB_FIRST)
                .op(p, ops::SET_INT, &set_int(table_at + 36, 2, 4096))
                .reads(&[]),
        ),
        (
            "pack-deleted-import",
            Script::new(flags::IMPORT)
                .op(packs[packs.len() - 1], ops::DELETE, &[])
                .reads(&[]),
        ),
        (
            "manifest-byte",
            Script::new(0)
                .op(m, ops::OVERWRITE, &args(130, &[1, 0x00]))
                .reads(&[]),
        ),
        (
            "manifest-forged-length",
            Script::new(flags::REHASH_MANIFESTS)
                .op(m, ops::SET_INT, &set_int(104 + 8, 2, 0x7fff_0000))
                .reads(&[(10, 100)]),
        ),
        (
            "manifest-forged-order",
            Script::new(flags::REHASH_MANIFESTS | flags::IMPORT)
                .op(m, ops::COPY, &{
                    let mut a = args(104 + 12, &[]);
                    a.extend_from_slice(&(104 + 44 + 12u32).to_le_bytes());
                    a.extend_from_slice(&32u16.to_le_bytes());
                    a
                })
                .reads(&[]),
        ),
        (
            "manifest-deleted",
            Script::new(0).op(manifests[1], ops::DELETE, &[]).reads(&[]),
        ),
        (
            "registry-name",
            Script::new(0)
                .op(
                    usize::from(FILE_REGISTRY),
                    ops::OVERWRITE,
                    &args(find(registry, b"\"llama\"") + 1, &[1, b'.']),
                )
                .reads(&[]),
        ),
        (
            "registry-size",
            Script::new(flags::IMPORT)
                .op(
                    usize::from(FILE_REGISTRY),
                    ops::OVERWRITE,
                    &args(find(registry, b"\"size\": ") + 8, &[1, b'9']),
                )
                .reads(&[]),
        ),
        (
            "registry-manifest-swapped",
            Script::new(0)
                .op(usize::from(FILE_REGISTRY), ops::COPY, &{
                    let from = find(registry, b"\"manifest\": \"") + 13;
                    let to = find(&registry[from as usize..], b"\"manifest\": \"") + from + 13;
                    let mut a = args(from, &[]);
                    a.extend_from_slice(&to.to_le_bytes());
                    a.extend_from_slice(&64u16.to_le_bytes());
                    a
                })
                .reads(&[]),
        ),
        (
            "config-replaced",
            Script::new(0)
                .op(usize::from(FILE_CONFIG), ops::REPLACE, &{
                    let text = br#"{"format":"modelfs-store","version":2,"store_id":"000102030405060708090a0b0c0d0e0f","created_unix":1,"chunking":{"min_size":1024,"avg_size":2048,"max_size":8192},"pack_target_bytes":16384,"compression":{"zstd_level":1,"min_saving_percent":3}}"#;
                    let mut a = (text.len() as u16).to_le_bytes().to_vec();
                    a.extend_from_slice(text);
                    a
                })
                .reads(&[]),
        ),
        (
            "config-deleted",
            Script::new(0)
                .op(usize::from(FILE_CONFIG), ops::DELETE, &[])
                .reads(&[]),
        ),
    ];
    for (name, seed) in seeds {
        corpus.put("store", name, &seed);
    }
}

/// A small store written by the library (a GGUF model and a folder model, small packs), as
/// `serve` and remote readers see one: its `catalog.json` and its packs.
fn network_store() -> (Vec<u8>, Vec<Vec<u8>>) {
    let scratch = modelfs_fuzz::scratch_dir("seed-catalog");
    let _ = std::fs::remove_dir_all(&scratch);
    let root = scratch.join("store");
    Store::init(&root, modelfs_fuzz::store::options()).expect("init seed store");
    let inputs = scratch.join("inputs");
    std::fs::create_dir_all(inputs.join("bert")).expect("input dirs");
    {
        let store = Store::open(&root, Access::Write).expect("open seed store");
        let add = |model: &str, source: PathBuf| {
            let request = modelfs::ingest::AddRequest {
                model: model.into(),
                version: None,
                source,
            };
            modelfs::ingest::add(&store, &request, &Silent).expect("add seed model");
        };
        let gguf = inputs.join("llama.gguf");
        std::fs::write(&gguf, models::small_gguf(7)).expect("write input");
        add("llama", gguf);
        std::fs::write(
            inputs.join("bert/model.safetensors"),
            models::small_safetensors(8),
        )
        .expect("write input");
        std::fs::write(inputs.join("bert/config.json"), br#"{"hidden_size": 64}"#)
            .expect("write input");
        add("bert", inputs.join("bert"));
    }
    let catalog_bytes = std::fs::read(root.join("catalog.json")).expect("read catalog.json");
    let decoded = catalog::decode(Path::new("catalog.json"), &catalog_bytes).expect("catalog");
    let packs = decoded
        .packs
        .iter()
        .map(|p| std::fs::read(root.join("packs").join(format!("{}.pack", p.id))).expect("pack"))
        .collect();
    let _ = std::fs::remove_dir_all(&scratch);
    (catalog_bytes, packs)
}

fn catalog_seeds(corpus: &Corpus) {
    let (bytes, packs) = network_store();
    corpus.put("catalog", "catalog", &bytes);
    corpus.put(
        "catalog",
        "catalog-truncated",
        &bytes[..bytes.len() * 2 / 3],
    );
    let real = catalog::decode(Path::new("catalog.json"), &bytes).expect("catalog");
    let first = real.packs[0];
    let variants: [(&str, Catalog); 5] = [
        ("catalog-empty", Catalog::new(1, vec![])),
        ("catalog-pack-twice", Catalog::new(3, vec![first, first])),
        (
            "catalog-impossible-sizes",
            Catalog::new(
                3,
                vec![PackEntry {
                    entries: first.entries + 1,
                    ..first
                }],
            ),
        ),
        (
            "catalog-over-4gib",
            Catalog::new(
                3,
                vec![PackEntry {
                    bytes: (4 << 30) + first.tail_len(),
                    table_offset: 4 << 30,
                    ..first
                }],
            ),
        ),
        (
            "catalog-newer",
            Catalog {
                version: catalog::CATALOG_FORMAT_VERSION + 1,
                ..real.clone()
            },
        ),
    ];
    for (name, variant) in variants {
        corpus.put("catalog", name, &catalog::encode(&variant));
    }
    // Pack tails (table and trailer) as a remote reader fetches them, after the pack's length.
    for (i, pack) in packs.iter().take(2).enumerate() {
        let trailer = Trailer::decode(&pack[pack.len() - TRAILER_LEN..]).expect("sealed pack");
        let tail = &pack[trailer.table_offset as usize..];
        let mut seed = (pack.len() as u64).to_le_bytes().to_vec();
        seed.extend_from_slice(tail);
        corpus.put("catalog", &format!("tail-{i}"), &seed);
        if i == 0 {
            let mut torn = seed.clone();
            torn[8 + 40] ^= 0x01;
            corpus.put("catalog", "tail-torn", &torn);
            corpus.put("catalog", "tail-bare", tail);
        }
    }
    for (name, text) in [
        ("range-start-end", "bytes=0-99"),
        ("range-suffix", "bytes=-56"),
        ("range-open", "bytes=100-"),
        ("range-several", "bytes=0-1,3-4"),
        ("source-http", "http://peer:7420/"),
        ("source-https-upper", "HTTPS://Peer.local:7420/store"),
        ("source-dir", "/media/stick/store"),
        ("source-s3", "s3://bucket/prefix"),
        ("rate-mega", "20M"),
        ("rate-kibi", "512Ki"),
    ] {
        corpus.put("catalog", name, text.as_bytes());
    }
}

/// A request for the `serve` target: flags (method, options, which headers, placeholder
/// expansion), then the path, the Range header and the Authorization header, one per line.
fn serve_request(flags: u8, path: &str, range: &str, auth: &str) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(format!("{path}\n{range}\n{auth}").as_bytes());
    out
}

fn serve_seeds(corpus: &Corpus) {
    // Flag bits (fuzz_targets/serve.rs): method in 0-2 (0 GET, 1 HEAD, 2 POST), 8 --models,
    // 16 token, 32 Range, 64 Authorization, 128 expand @pD / @mD into pack / manifest ids.
    const HEAD: u8 = 1;
    const POST: u8 = 2;
    const MODELS: u8 = 8;
    const TOKEN: u8 = 16;
    const RANGE: u8 = 32;
    const AUTH: u8 = 64;
    const EXPAND: u8 = 128;
    let bearer = "Bearer fuzz-token";
    let seeds: [(&str, Vec<u8>); 22] = [
        ("health", serve_request(0, "/health", "", "")),
        ("metrics", serve_request(0, "/metrics", "", "")),
        ("config", serve_request(0, "/modelfs.json", "", "")),
        ("registry", serve_request(0, "/registry.json", "", "")),
        (
            "registry-models",
            serve_request(MODELS, "/registry.json", "", ""),
        ),
        ("catalog", serve_request(0, "/catalog.json?x=1", "", "")),
        ("manifest", serve_request(EXPAND, "/manifests/@m0", "", "")),
        (
            "manifest-models",
            serve_request(EXPAND | MODELS, "/manifests/@m1", "", ""),
        ),
        (
            "manifest-upper",
            serve_request(EXPAND | MODELS, "/manifests/@M2", "", ""),
        ),
        ("pack", serve_request(EXPAND, "/packs/@p0.pack", "", "")),
        (
            "pack-range",
            serve_request(EXPAND | RANGE, "/packs/@p1.pack", "bytes=0-99", ""),
        ),
        (
            "pack-head-suffix",
            serve_request(EXPAND | RANGE | HEAD, "/packs/@p0.pack", "bytes=-56", ""),
        ),
        (
            "pack-models-range",
            serve_request(EXPAND | RANGE | MODELS, "/packs/@P2.pack", "bytes=40-", ""),
        ),
        (
            "pack-unsatisfiable",
            serve_request(EXPAND | RANGE, "/packs/@p0.pack", "bytes=99999999-", ""),
        ),
        (
            "pack-absolute-uri",
            serve_request(EXPAND, "http://peer:7420/packs/@p1.pack", "", ""),
        ),
        (
            "pack-missing",
            serve_request(0, "/packs/000102030405060708090a0b0c0d0e0f.pack", "", ""),
        ),
        (
            "token",
            serve_request(TOKEN | AUTH, "/registry.json", "", bearer),
        ),
        (
            "token-missing",
            serve_request(TOKEN | EXPAND, "/packs/@p0.pack", "", ""),
        ),
        (
            "token-wrong-health",
            serve_request(TOKEN | AUTH, "/health", "", "Bearer guess"),
        ),
        (
            "traversal-pack",
            serve_request(0, "/packs/..%2F..%2Fmodelfs.json", "", ""),
        ),
        (
            "traversal-manifest",
            serve_request(TOKEN | AUTH, "/manifests/%2e%2e/registry.json", "", bearer),
        ),
        (
            "post",
            serve_request(POST | TOKEN | AUTH, "/registry.json", "", bearer),
        ),
    ];
    for (name, seed) in seeds {
        corpus.put("serve", name, &seed);
    }
}

/// Every target with seeds, in the order they are written.
const TARGETS: [&str; 9] = [
    "pack",
    "manifest",
    "registry",
    "config",
    "grouped",
    "modelfile",
    "store",
    "catalog",
    "serve",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let mut targets: Vec<String> = args.collect();
    if let Some(unknown) = targets.iter().find(|t| !TARGETS.contains(&t.as_str())) {
        eprintln!("seed: no target {unknown:?} (have: {})", TARGETS.join(" "));
        std::process::exit(2);
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    let wanted = |target: &str| targets.iter().any(|t| t == target);
    for target in &targets {
        // Regression inputs (crashes found and fixed) stay; the generated seeds are replaced.
        let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry
                .file_name()
                .to_string_lossy()
                .starts_with("regression-")
            {
                std::fs::remove_file(entry.path()).expect("remove old seed");
            }
        }
    }
    let corpus = Corpus { dir };
    if TARGETS[..7].iter().any(|t| wanted(t)) {
        let fixture = Fixture::build();
        let names = fixture.file_names();
        let bytes = |i: usize| fixture.file_bytes(i).to_vec();
        let manifests: Vec<Vec<u8>> = (0..names.len())
            .filter(|&i| names[i].starts_with("manifests"))
            .map(bytes)
            .collect();
        let packs: Vec<Vec<u8>> = (0..names.len())
            .filter(|&i| names[i].starts_with("packs"))
            .map(bytes)
            .collect();
        if wanted("pack") {
            pack_seeds(&corpus, &packs);
        }
        if wanted("manifest") {
            manifest_seeds(&corpus, &manifests);
        }
        if wanted("registry") {
            registry_seeds(&corpus, fixture.file_bytes(usize::from(FILE_REGISTRY)));
        }
        if wanted("config") {
            config_seeds(&corpus, fixture.file_bytes(usize::from(FILE_CONFIG)));
        }
        if wanted("grouped") {
            grouped_seeds(&corpus, &packs);
        }
        if wanted("modelfile") {
            modelfile_seeds(&corpus);
        }
        if wanted("store") {
            store_seeds(&corpus, &fixture);
        }
        println!(
            "fixture store: {} manifests, {} packs",
            manifests.len(),
            packs.len()
        );
    }
    if wanted("catalog") {
        catalog_seeds(&corpus);
    }
    if wanted("serve") {
        serve_seeds(&corpus);
    }
    println!(
        "seeds of {} written to {}",
        targets.join(" "),
        corpus.dir.display()
    );
}
