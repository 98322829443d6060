//! Pinned models: `pin` writes verified plain copies, the mount serves them by FUSE passthrough
//! (or by reads from the copy without it), pins survive a remount, `unpin`, `rm` and `gc` keep
//! the pin area consistent, `verify` catches a damaged copy, and `--pin-budget` pins by itself.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::metrics::{mount_with_metrics, sample, scrape};
use crate::netutil::free_port;
use crate::util::{SystemMount, TestStore, flip_byte, random_bytes};

const SIZE: usize = 3 << 20;

/// A store with models `a` and `b` (3 MiB each, different bytes).
fn two_models() -> (TestStore, Vec<u8>, Vec<u8>) {
    let store = TestStore::new();
    let (a, b) = (random_bytes(1, SIZE), random_bytes(2, SIZE));
    store.ok(&["add", "a", store.file("a.bin", &a).to_str().unwrap()]);
    store.ok(&["add", "b", store.file("b.bin", &b).to_str().unwrap()]);
    (store, a, b)
}

/// The copies in the store's pin area.
fn copies(store: &TestStore) -> Vec<PathBuf> {
    match std::fs::read_dir(store.store.join("pins/files")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// `ls --json`'s `pinned` object of `model@version` (null when not pinned).
fn pinned(store: &TestStore, model: &str, version: &str) -> serde_json::Value {
    let models: serde_json::Value = serde_json::from_str(&store.ok(&["ls", "--json"])).unwrap();
    models
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == model)
        .and_then(|m| {
            m["versions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["version"] == version)
        })
        .map_or(serde_json::Value::Null, |v| v["pinned"].clone())
}

/// Reads `path` whole through `read` and through `mmap`, and checks both against `expected`.
fn read_both_ways(path: &std::path::Path, expected: &[u8]) {
    assert!(std::fs::read(path).unwrap() == expected, "read of {path:?}");
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: the mount is read-only, so nobody changes the file while it is mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    assert!(map[..] == expected[..], "mmap of {path:?}");
}

/// (passthrough opens, read opens) of pinned files the mount reports.
fn pinned_opens(url: &str) -> (f64, f64) {
    let text = scrape(url);
    let opens = |mode| sample(&text, "modelfs_mount_pinned_opens_total", &[("mode", mode)]);
    (opens("passthrough").unwrap(), opens("read").unwrap())
}

/// Chunks the mount read from packs and hashed.
fn chunks_verified(url: &str) -> f64 {
    sample(&scrape(url), "modelfs_mount_chunks_verified_total", &[]).unwrap()
}

#[test]
fn pinned_files_are_served_by_passthrough_and_survive_a_remount() {
    let (store, a, b) = two_models();
    let out = store.ok(&["pin", "a"]);
    assert!(out.contains("pinned a@v1: 1 file"), "{out}");
    assert_eq!(copies(&store).len(), 1);
    assert_eq!(pinned(&store, "a", "v1")["auto"], false);
    assert!(pinned(&store, "b", "v1").is_null());
    assert!(store.ok(&["ls"]).contains("pinned"));

    for round in 0..2 {
        let (mount, url) = mount_with_metrics(&store, &[]);
        read_both_ways(&mount.join("a.bin"), &a);
        read_both_ways(&mount.join("b.bin"), &b);
        let (passthrough, read) = pinned_opens(&url);
        assert!(
            passthrough >= 1.0,
            "round {round}: passthrough opens {passthrough}"
        );
        assert_eq!(read, 0.0, "round {round}");
        // The pinned file's bytes never reached the mount: only b's chunks were read.
        let text = scrape(&url);
        let bytes = |model| {
            sample(
                &text,
                "modelfs_mount_read_bytes_total",
                &[("model", model), ("version", "v1")],
            )
        };
        assert!(bytes("a").is_none_or(|n| n == 0.0), "{text}");
        assert!(bytes("b").is_some_and(|n| n >= SIZE as f64));
        drop(mount);
    }
}

#[test]
fn without_passthrough_the_mount_reads_the_copy_without_decoding() {
    let (store, a, _) = two_models();
    store.ok(&["pin", "a"]);
    let (mount, url) = mount_with_metrics(&store, &["--no-passthrough"]);
    read_both_ways(&mount.join("a.bin"), &a);
    let (passthrough, read) = pinned_opens(&url);
    assert_eq!(passthrough, 0.0);
    assert!(read >= 1.0);
    assert_eq!(chunks_verified(&url), 0.0, "no chunk was decoded or hashed");
}

#[test]
fn pins_and_unpins_reach_a_running_mount() {
    let (store, a, _) = two_models();
    let (mount, url) = mount_with_metrics(&store, &[]);
    read_both_ways(&mount.join("a.bin"), &a);
    let before = chunks_verified(&url);
    assert!(before > 0.0);
    store.ok(&["pin", "a"]);
    store.ok(&["refresh", mount.path.to_str().unwrap()]);
    wait_for(|| {
        drop(std::fs::File::open(mount.join("a.bin")).unwrap());
        pinned_opens(&url).0 >= 1.0
    });
    read_both_ways(&mount.join("a.bin"), &a);

    // A file held open keeps reading its copy after unpin (the kernel holds it); a new open
    // reads chunks again.
    let held = std::fs::File::open(mount.join("a.bin")).unwrap();
    store.ok(&["unpin", "a"]);
    assert!(copies(&store).is_empty());
    store.ok(&["refresh", mount.path.to_str().unwrap()]);
    let mut buf = vec![0u8; 4096];
    held.read_exact_at(&mut buf, 8192).unwrap();
    assert!(buf[..] == a[8192..8192 + 4096]);
    drop(held);
    // Until the kernel has released the held handle, a new open joins its passthrough.
    wait_for(|| {
        let before = pinned_opens(&url).0;
        drop(std::fs::File::open(mount.join("a.bin")).unwrap());
        pinned_opens(&url).0 == before
    });
    read_both_ways(&mount.join("a.bin"), &a);
    assert!(store.fails(&["unpin", "a"]).contains("a is not pinned"));
}

/// Polls `done` for up to 30 s.
fn wait_for(mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "gave up waiting");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn unpin_rm_and_gc_keep_pins_consistent() {
    let (store, a, _) = two_models();
    let a2 = random_bytes(3, SIZE);
    store.ok(&["add", "a", store.file("a2.bin", &a2).to_str().unwrap()]);
    store.ok(&["pin", "a@v1"]);
    store.ok(&["pin", "a@v2"]);
    store.ok(&["pin", "b"]);
    assert_eq!(copies(&store).len(), 3);
    // Pinning again is harmless.
    store.ok(&["pin", "b"]);
    assert_eq!(copies(&store).len(), 3);

    store.ok(&["unpin", "b"]);
    assert_eq!(copies(&store).len(), 2);
    assert!(pinned(&store, "b", "v1").is_null());

    // rm of a version drops its pin and copy.
    let out = store.ok(&["rm", "a@v2"]);
    assert!(out.contains("unpinned a@v2"), "{out}");
    assert_eq!(copies(&store).len(), 1);

    // gc dropping versions beyond `keep` drops their pins too.
    store.ok(&["add", "a", store.file("a3.bin", &a2).to_str().unwrap()]);
    store.ok(&["keep", "a", "1"]);
    let out = store.ok(&["gc"]);
    assert!(out.contains("unpinned a@v1"), "{out}");
    assert!(copies(&store).is_empty());
    assert!(pinned(&store, "a", "v1").is_null());

    // What is left mounts and reads as it should.
    let mount = store.mount();
    read_both_ways(&mount.join("a.bin"), &a2);
    drop(mount);
    assert!(a != a2);
    assert!(
        store
            .fails(&["pin", "nope"])
            .contains("no model named \"nope\"")
    );
    assert!(
        store
            .fails(&["pin", "a@v1/a.bin"])
            .contains("whole versions")
    );
}

#[test]
fn a_flipped_byte_in_a_pinned_copy_is_caught() {
    let (store, a, _) = two_models();
    store.ok(&["pin", "a"]);
    let copy = copies(&store).pop().unwrap();
    flip_byte(&copy, 1_000_000);
    let out = store.run(&["verify"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("BAD  pinned copy of a@v1/a.bin") && stdout.contains("differ from chunk"),
        "{stdout}"
    );
    // The damaged copy is gone: the mount reads the store's verified chunks.
    assert!(copies(&store).is_empty());
    assert!(pinned(&store, "a", "v1").is_null());
    let mount = store.mount();
    read_both_ways(&mount.join("a.bin"), &a);
    drop(mount);
    store.ok(&["pin", "a"]);
    store.ok(&["verify"]);
}

#[test]
fn a_pin_budget_pins_the_model_read_most() {
    let (store, a, b) = two_models();
    let (mount, url) = mount_with_metrics(&store, &["--pin-budget", "5M"]);
    // `a` is loaded twice, `b` not at all: the budget (room for one) goes to `a`.
    for _ in 0..2 {
        read_both_ways(&mount.join("a.bin"), &a);
    }
    wait_for(|| pinned(&store, "a", "v1")["auto"] == true);
    assert!(pinned(&store, "b", "v1").is_null());
    wait_for(|| {
        drop(std::fs::File::open(mount.join("a.bin")).unwrap());
        pinned_opens(&url).0 >= 1.0
    });
    read_both_ways(&mount.join("a.bin"), &a);
    // Now `b` is read most: it takes the budget, and `a`, used less recently, makes room.
    for _ in 0..3 {
        read_both_ways(&mount.join("b.bin"), &b);
    }
    wait_for(|| pinned(&store, "b", "v1")["auto"] == true);
    assert!(pinned(&store, "a", "v1").is_null());
    assert_eq!(copies(&store).len(), 1);
}

#[test]
fn a_read_only_store_keeps_its_pins_in_the_machine_cache() {
    let (store, a, _) = two_models();
    let ro = store.path("ro-store");
    let (from, to) = (store.store.display(), ro.display());
    let command = format!("mount --bind {from} {to} && mount -o remount,bind,ro {to}");
    let _bind = SystemMount::new(&ro, &command);
    let run = |args: &[&str]| store.ok_at(&ro, args);
    let out = run(&["pin", "a"]);
    let cache = store.path("cache").join("modelfs");
    assert!(out.contains(cache.to_str().unwrap()), "{out}");
    assert!(!ro.join("pins").exists(), "the store was written");
    let in_cache = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(|dir| std::fs::read_dir(dir.unwrap().path().join("pins/files")).ok())
        .flatten()
        .count();
    assert_eq!(in_cache, 1);
    assert!(run(&["ls"]).contains("pinned"));

    let address = format!("127.0.0.1:{}", free_port());
    let mount = store.mount_store_with(&ro, &["--metrics", &address]);
    read_both_ways(&mount.join("a.bin"), &a);
    assert!(pinned_opens(&format!("http://{address}")).0 >= 1.0);
}

#[test]
fn a_pin_killed_at_any_point_leaves_the_store_and_earlier_pins_as_they_were() {
    let (store, a, b) = two_models();
    store.ok(&["pin", "b"]);
    let big = random_bytes(9, 96 << 20);
    store.ok(&["add", "big", store.file("big.bin", &big).to_str().unwrap()]);
    for delay_ms in [5, 40, 120, 300, 800] {
        let finished = crate::util::kill_after(
            &store.store,
            &["pin", "big"],
            Duration::from_millis(delay_ms),
        );
        // The earlier pin and every model read as before, pinned or not.
        assert!(pinned(&store, "b", "v1").is_object());
        let mount = store.mount();
        assert!(std::fs::read(mount.join("a.bin")).unwrap() == a);
        assert!(std::fs::read(mount.join("b.bin")).unwrap() == b);
        assert!(std::fs::read(mount.join("big.bin")).unwrap() == big);
        drop(mount);
        if finished {
            break;
        }
        assert!(pinned(&store, "big", "v1").is_null());
    }
    // The next pin clears what a killed one left, and finishes.
    store.ok(&["pin", "big"]);
    assert_eq!(
        std::fs::read_dir(store.store.join("pins/tmp"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(copies(&store).len(), 2);
    store.ok(&["verify"]);
}
