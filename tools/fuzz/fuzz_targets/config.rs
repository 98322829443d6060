//! `modelfs.json` from arbitrary bytes: `format::config::decode` (what decodes encodes and decodes
//! to itself), then the same bytes as a store's config file through `store::read_config`, which
//! adds the checks a store applies on open. A config a store accepts must be one a writer can work
//! with: its chunking and compression parameters drive the chunker and the encoder, as `add` into
//! that store would, without a panic.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use modelfs::chunker::Chunker;
use modelfs::codec::{Encoder, decode_into};
use modelfs::format::config::{self, CONFIG_FILE_NAME};
use modelfs::id::ChunkId;

/// A store directory holding only the config file under test.
static STORE: OnceLock<PathBuf> = OnceLock::new();

fn store_dir() -> &'static Path {
    STORE.get_or_init(|| {
        let dir = modelfs_fuzz::scratch_dir("config");
        std::fs::create_dir_all(&dir).expect("scratch store");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/stick/store/modelfs.json");
    if let Ok(decoded) = config::decode(path, data) {
        let encoded = config::encode(&decoded);
        assert_eq!(
            config::decode(path, &encoded).expect("an encoded config decodes"),
            decoded
        );
    }

    let dir = store_dir();
    std::fs::write(dir.join(CONFIG_FILE_NAME), data).expect("write config");
    let Ok(accepted) = modelfs::store::read_config(dir) else {
        return;
    };
    assert_eq!(
        Ok(&accepted),
        config::decode(path, data).as_ref().map_err(|_| ())
    );
    let chunking = accepted.chunking;
    // What `add` does with a store's parameters.
    let sample = modelfs_fuzz::pseudo_random(7, 6000);
    let mut next = 0;
    for span in Chunker::new(chunking).spans(&sample) {
        assert_eq!(span.start, next);
        assert!(!span.is_empty());
        next = span.end;
    }
    assert_eq!(next, sample.len());
    if let Ok(mut encoder) = Encoder::new(accepted.compression) {
        let raw = b"weights ".repeat(200);
        let chunk = encoder.encode(ChunkId::of(&raw), &raw, Some(&[1, 1]));
        let mut out = vec![0u8; raw.len()];
        decode_into(chunk.codec, chunk.payload(&raw), &mut out).expect("own encoding decodes");
        assert!(out == raw);
    }
});
