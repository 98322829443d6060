//! Interrupted and failed writes: `kill -9` during `add` and `gc`, a full disk, and `gc` under a
//! running mount.

use std::time::Duration;

use crate::util::{SystemMount, TestStore, kill_after, random_bytes, sh};

#[test]
fn kill_9_during_add_leaves_earlier_models_intact_and_the_add_invisible() {
    let store = TestStore::uninitialised();
    store.ok(&["init", "--avg-chunk-kib", "16", "--pack-size-mib", "4"]);
    let earlier = random_bytes(1, 3_000_000);
    store.ok(&[
        "add",
        "earlier",
        store.file("earlier.gguf", &earlier).to_str().unwrap(),
    ]);
    let big = store.file("big.gguf", &random_bytes(2, 120_000_000));

    for delay_ms in [5, 40, 150, 400, 900] {
        let args = ["add", "big", big.to_str().unwrap()];
        if kill_after(&store.store, &args, Duration::from_millis(delay_ms)) {
            // The add won the race; take it out again so the next round starts from the same state.
            store.ok(&["rm", "big"]);
            continue;
        }
        let verify = store.ok(&["verify"]);
        assert!(
            verify.contains("all good"),
            "after kill at {delay_ms} ms: {verify}"
        );
        assert!(
            store.run(&["cat", "earlier"]).stdout == earlier,
            "after kill at {delay_ms} ms"
        );
        // Killed after its commit (the process had not exited yet): then the model is whole.
        if store.ok(&["ls"]).contains("big") {
            let bytes = store.run(&["cat", "big"]).stdout;
            assert!(
                bytes == std::fs::read(&big).unwrap(),
                "half-added model visible after kill at {delay_ms} ms"
            );
            store.ok(&["rm", "big"]);
        }
    }
    store.ok(&["add", "big", big.to_str().unwrap()]);
    store.ok(&["verify"]);
    let unsealed = sh(&format!(
        "ls {}/packs | grep -c tmp || true",
        store.store.display()
    ));
    assert_eq!(unsealed.trim(), "0", "no unsealed pack left behind");
}

#[test]
fn a_full_disk_during_add_leaves_the_store_as_it_was() {
    let store = TestStore::uninitialised();
    let small_fs = store.path("small-fs");
    let command = format!(
        "mount -t tmpfs -o size=48m modelfs-test {}",
        small_fs.display()
    );
    let _small_fs = SystemMount::new(&small_fs, &command);
    let on_small = TestStore {
        dir: tempfile::tempdir().unwrap(),
        store: small_fs.join("store"),
    };
    on_small.ok(&["init", "--avg-chunk-kib", "16", "--pack-size-mib", "8"]);
    let earlier = random_bytes(3, 5_000_000);
    on_small.ok(&[
        "add",
        "earlier",
        store.file("earlier.gguf", &earlier).to_str().unwrap(),
    ]);
    let before = on_small.stats();

    let too_big = store.file("too-big.gguf", &random_bytes(4, 80_000_000));
    let line = on_small.fails(&["add", "huge", too_big.to_str().unwrap()]);
    assert!(
        line.contains("no space left") && line.contains("the store is unchanged"),
        "{line}"
    );
    assert_eq!(
        on_small.stats(),
        before,
        "the failed add left pack bytes behind"
    );
    assert!(on_small.ok(&["verify"]).contains("all good"));
    assert!(on_small.run(&["cat", "earlier"]).stdout == earlier);
    assert!(!on_small.ok(&["ls"]).contains("huge"));
    on_small.ok(&[
        "add",
        "small",
        store
            .file("small.gguf", &random_bytes(5, 1_000_000))
            .to_str()
            .unwrap(),
    ]);
}

/// Adds a folder model `drop` holding `keep` and `drop_len` other bytes (one add writes one pack),
/// then `keep` alone as the model `keep`, whose chunks are therefore all in `drop`'s pack.
fn add_sharing_one_pack(store: &TestStore, keep: &[u8], drop_len: usize) {
    store.file("both/keep.gguf", keep);
    store.file("both/other.gguf", &random_bytes(99, drop_len));
    store.ok(&["add", "drop", store.path("both").to_str().unwrap()]);
    let out = store.ok(&[
        "add",
        "keep",
        store.file("keep.gguf", keep).to_str().unwrap(),
    ]);
    assert!(out.contains("new: 0 B"), "{out}");
}

#[test]
fn gc_reclaims_space_without_breaking_a_running_mount() {
    let store = TestStore::new();
    let keep = random_bytes(6, 6_000_000);
    add_sharing_one_pack(&store, &keep, 20_000_000);
    let before = store.stored_bytes();

    let mount = store.mount();
    let file = std::fs::File::open(mount.join("keep.gguf")).unwrap();
    let mut head = vec![0u8; 1_000_000];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0).unwrap();
    assert!(head == keep[..1_000_000]);

    store.ok(&["rm", "drop"]);
    let gc = store.ok(&["gc"]);
    assert!(
        gc.contains("1 rewritten"),
        "the shared pack is rewritten: {gc}"
    );
    let after = store.stored_bytes();
    assert!(
        after < before / 2,
        "gc freed too little: {before} -> {after}"
    );

    // The open file keeps reading, and so does a fresh open of a file the mount had not touched.
    let mut rest = vec![0u8; keep.len() - 1_000_000];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut rest, 1_000_000).unwrap();
    assert!(rest == keep[1_000_000..]);
    assert!(std::fs::read(mount.join(".versions/keep/v1/keep.gguf")).unwrap() == keep);
    drop(file);
    drop(mount);
    let fresh = store.mount();
    assert!(std::fs::read(fresh.join("keep.gguf")).unwrap() == keep);
    store.ok(&["verify"]);
}

#[test]
fn a_mount_finds_chunks_that_gc_moved_before_it_read_them() {
    let store = TestStore::new();
    let keep = random_bytes(8, 3_000_000);
    add_sharing_one_pack(&store, &keep, 12_000_000);
    let mount = store.mount();
    store.ok(&["rm", "drop"]);
    assert!(store.ok(&["gc"]).contains("1 rewritten"));
    // The mount looked nothing up before gc moved the chunks; it must find them at their new place.
    assert!(std::fs::read(mount.join("keep.gguf")).unwrap() == keep);
}

#[test]
fn kill_9_during_gc_leaves_every_model_readable() {
    let store = TestStore::uninitialised();
    store.ok(&["init", "--avg-chunk-kib", "16", "--pack-size-mib", "2"]);
    let keep = random_bytes(10, 12_000_000);
    add_sharing_one_pack(&store, &keep, 40_000_000);
    store.ok(&["rm", "drop"]);
    for delay_ms in [2, 10, 30, 80, 200] {
        kill_after(&store.store, &["gc"], Duration::from_millis(delay_ms));
        assert!(
            store.ok(&["verify"]).contains("all good"),
            "after kill at {delay_ms} ms"
        );
        assert!(
            store.run(&["cat", "keep"]).stdout == keep,
            "after kill at {delay_ms} ms"
        );
    }
    store.ok(&["gc"]);
    assert!(store.run(&["cat", "keep"]).stdout == keep);
    let stored = store.stored_bytes();
    assert!(
        stored < 14_000_000,
        "gc finished the job: {stored} bytes stored"
    );
}
