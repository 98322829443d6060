//! Helpers for unit tests: seeded pseudo-random bytes and temporary stores.

use std::path::Path;

use crate::store::{Access, InitOptions, Store};

/// `len` deterministic pseudo-random bytes for `seed` (splitmix64).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A new writable store in `dir` with small chunks and packs, so tests exercise many of each.
pub fn small_store(dir: &Path) -> std::sync::Arc<Store> {
    let options = InitOptions {
        chunking: crate::format::config::ChunkingParams {
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
        },
        pack_target_bytes: 256 << 10,
        ..InitOptions::default()
    };
    Store::init(dir, options).unwrap();
    std::sync::Arc::new(Store::open(dir, Access::Write).unwrap())
}

/// Adds `bytes` as the single-file model `model` (the input is written under `dir`).
pub fn add_model(store: &Store, dir: &Path, model: &str, bytes: &[u8]) -> crate::ingest::AddReport {
    let path = dir.join(format!("{model}.bin"));
    std::fs::write(&path, bytes).unwrap();
    let request = crate::ingest::AddRequest {
        model: model.into(),
        version: None,
        source: path,
    };
    crate::ingest::add(store, &request, &crate::progress::Silent).unwrap()
}

/// Opens the newest version of the single-file model `model`, read through `store` alone.
pub fn open_model(store: &std::sync::Arc<Store>, model: &str) -> crate::read::OpenFile {
    let reader = crate::read::Reader::new(store.clone(), Default::default());
    reader.open_file(&model.parse().unwrap()).unwrap()
}

/// All bytes of the newest version of the single-file model `model`.
pub fn read_model(store: &std::sync::Arc<Store>, model: &str) -> Vec<u8> {
    let file = open_model(store, model);
    let mut out = vec![0u8; file.size() as usize];
    assert_eq!(file.read_at(0, &mut out).unwrap(), out.len());
    out
}
