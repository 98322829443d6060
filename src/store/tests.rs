//! Tests of opening, recovering and upgrading a store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use crate::format::config::CONFIG_FILE_NAME;
use crate::store::pack::UNSEALED_SUFFIX;
use crate::store::paths::{INDEX_DIR, PACKS_DIR};
use crate::testutil::{add_model, random_bytes, read_model, small_store};

fn store_with_model(dir: &Path, bytes: &[u8]) -> PathBuf {
    let root = dir.join("store");
    let store = small_store(&root);
    add_model(&store, dir, "m", bytes);
    root
}

#[test]
fn index_rebuilds_from_packs_alone() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = random_bytes(1, 2_000_000);
    let root = store_with_model(dir.path(), &bytes);
    let packs_before = Store::open(&root, Access::Read)
        .unwrap()
        .index()
        .unwrap()
        .packs()
        .unwrap()
        .len();
    assert!(packs_before > 1, "the test wants several packs");
    std::fs::remove_dir_all(root.join(INDEX_DIR)).unwrap();
    assert_eq!(Store::rebuild_index(&root).unwrap(), packs_before);
    assert_eq!(
        read_model(&Arc::new(Store::open(&root, Access::Read).unwrap()), "m"),
        bytes
    );
}

#[test]
fn readers_of_a_store_without_index_rebuild_one_in_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = random_bytes(2, 300_000);
    let root = store_with_model(dir.path(), &bytes);
    std::fs::remove_dir_all(root.join(INDEX_DIR)).unwrap();
    // SAFETY of the test: XDG_CACHE_HOME is only read by this process's store code.
    unsafe { std::env::set_var("XDG_CACHE_HOME", dir.path().join("cache")) };
    let store = Arc::new(Store::open(&root, Access::Read).unwrap());
    assert_eq!(read_model(&store, "m"), bytes);
    assert!(
        !root.join(INDEX_DIR).exists(),
        "a reader must not write to the store"
    );
}

#[test]
fn writers_clean_up_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = random_bytes(3, 500_000);
    let root = store_with_model(dir.path(), &bytes);
    // A writer died mid-pack, and another after sealing a pack but before indexing it.
    let torn = root
        .join(PACKS_DIR)
        .join(format!("{}{UNSEALED_SUFFIX}", PackId([5; 16])));
    std::fs::write(&torn, b"MFSPACK\0partial").unwrap();
    let orphan_bytes = random_bytes(4, 100_000);
    let orphan = {
        let mut writer = pack::PackWriter::create(&root.join(PACKS_DIR)).unwrap();
        let id = ChunkId::of(&orphan_bytes);
        let chunk = crate::codec::Encoder::new(DEFAULT_COMPRESSION)
            .unwrap()
            .encode(id, &orphan_bytes, None);
        writer
            .append(chunk.header(), chunk.payload(&orphan_bytes))
            .unwrap();
        (writer.seal().unwrap().id, id)
    };
    let store = Arc::new(Store::open(&root, Access::Write).unwrap());
    assert!(!torn.exists());
    assert_eq!(
        store.locate(&[orphan.1]).unwrap()[0].map(|l| l.pack),
        Some(orphan.0)
    );
    assert_eq!(read_model(&store, "m"), bytes);
}

#[test]
fn a_version_1_store_is_read_as_is_and_upgraded_by_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = random_bytes(9, 100_000);
    let root = store_with_model(dir.path(), &bytes);
    let config_path = root.join(CONFIG_FILE_NAME);
    let v1 = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace("\"version\": 2", "\"version\": 1");
    std::fs::write(&config_path, &v1).unwrap();
    assert_eq!(
        read_model(&Arc::new(Store::open(&root, Access::Read).unwrap()), "m"),
        bytes
    );
    assert_eq!(
        std::fs::read_to_string(&config_path).unwrap(),
        v1,
        "readers change nothing"
    );
    drop(Store::open(&root, Access::Write).unwrap());
    assert_eq!(read_config(&root).unwrap().version, STORE_FORMAT_VERSION);
}

#[test]
fn one_writer_at_a_time_and_newer_formats_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = store_with_model(dir.path(), b"abc");
    let _writer = Store::open(&root, Access::Write).unwrap();
    assert!(matches!(
        Store::open(&root, Access::Write),
        Err(Error::Locked(_))
    ));
    assert!(
        Store::open(&root, Access::Read).is_ok(),
        "readers never wait for the writer"
    );

    let config_path = root.join(CONFIG_FILE_NAME);
    let text = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace("\"version\": 2", "\"version\": 99");
    std::fs::write(&config_path, text).unwrap();
    let err = Store::open(&root, Access::Read).err().unwrap();
    assert!(matches!(err, Error::NewerFormat { found: 99, .. }), "{err}");
}
