//! Layered sources: `mount --source` shows the union of several stores, reads each chunk from
//! the first that has it, stands in for a damaged or vanished source with the next one, and with
//! `--fill` keeps what it read in the local store.

use std::path::Path;
use std::time::Duration;

use crate::util::{Mount, SystemMount, TestStore, random_bytes, sh};

/// Mounts `store` (daemon mode) with `sources` behind it, with `--fill` if asked.
fn mount_layered(store: &TestStore, sources: &[&Path], fill: bool) -> Mount {
    let (mountpoint, log) = (store.path("mnt"), store.path("layers.log"));
    std::fs::create_dir(&mountpoint).unwrap();
    let mut args = vec!["mount", "--daemon", "--log", log.to_str().unwrap()];
    if fill {
        args.push("--fill");
    }
    for source in sources {
        args.extend(["--source", source.to_str().unwrap()]);
    }
    args.push(mountpoint.to_str().unwrap());
    store.ok(&args);
    Mount {
        path: mountpoint,
        log,
    }
}

/// Flips a byte inside the stored payload of the first chunk of `model` in `store`.
fn damage_first_chunk(store: &Path, model: &str) {
    let opened = modelfs::Store::open(store, modelfs::Access::Read).unwrap();
    let registry = opened.registry().unwrap();
    let manifest = opened
        .manifest(&registry.models[model].versions[0].files[0].manifest)
        .unwrap();
    let location = opened.locate(&[manifest.chunks[0].id]).unwrap()[0].unwrap();
    let pack = modelfs::store::pack::pack_path(&store.join("packs"), &location.pack);
    drop(opened);
    let at = location.offset + modelfs::format::pack::RECORD_HEADER_LEN as u64 + 10;
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[at as usize] ^= 0x55;
    std::fs::write(&pack, bytes).unwrap();
}

#[test]
fn sources_are_merged_and_a_damaged_chunk_is_read_from_the_next_source() {
    let shared = random_bytes(81, 1_000_000);
    let (first, second) = (TestStore::new(), TestStore::new());
    for store in [&first, &second] {
        store.ok(&[
            "add",
            "shared",
            store.file("shared.gguf", &shared).to_str().unwrap(),
        ]);
    }
    first.ok(&[
        "add",
        "only-first",
        first.file("a.gguf", b"first").to_str().unwrap(),
    ]);
    second.ok(&[
        "add",
        "only-second",
        second.file("b.gguf", b"second").to_str().unwrap(),
    ]);
    second.ok(&[
        "add",
        "shared",
        second
            .file("v2.gguf", b"a second version")
            .to_str()
            .unwrap(),
    ]);
    damage_first_chunk(&first.store, "shared");

    let local = TestStore::new();
    let mount = mount_layered(&local, &[&first.store, &second.store], false);
    assert_eq!(
        std::fs::read(mount.join("only-first.gguf")).unwrap(),
        b"first"
    );
    assert_eq!(
        std::fs::read(mount.join("only-second.gguf")).unwrap(),
        b"second"
    );
    assert!(
        std::fs::read(mount.join(".versions/shared/v1/shared.gguf")).unwrap() == shared,
        "repaired from the second source"
    );
    assert_eq!(
        std::fs::read(mount.join("shared.gguf")).unwrap(),
        b"a second version",
        "versions merged"
    );
    assert!(
        mount.log().contains("chunk read from another source"),
        "{}",
        mount.log()
    );
}

#[test]
fn filled_chunks_stay_readable_after_the_source_is_pulled_and_the_rest_fail_fast() {
    let store = TestStore::new();
    let (kept, lost) = (random_bytes(91, 3_000_000), random_bytes(92, 3_000_000));
    // The source is a store on an exFAT stick.
    let image = store.path("stick.img");
    sh(&format!("truncate -s 64M {}", image.display()));
    let device = sh(&format!("losetup -f --show {}", image.display()))
        .trim()
        .to_owned();
    sh(&format!("mkfs.exfat {device} >/dev/null"));
    let stick = store.path("stick");
    let _stick = SystemMount::new(
        &stick,
        &format!("mount.exfat-fuse {device} {}", stick.display()),
    );
    let source = TestStore {
        dir: tempfile::tempdir().unwrap(),
        store: stick.join("models"),
    };
    source.ok(&["init"]);
    source.ok(&[
        "add",
        "kept",
        store.file("kept.gguf", &kept).to_str().unwrap(),
    ]);
    source.ok(&[
        "add",
        "lost",
        store.file("lost.gguf", &lost).to_str().unwrap(),
    ]);

    let mount = mount_layered(&store, &[&source.store], true);
    assert!(std::fs::read(mount.join("kept.gguf")).unwrap() == kept);
    // The mount seals copied chunks at its next registry check (every 2 s).
    std::thread::sleep(Duration::from_secs(3));

    // Pull the stick: its driver dies, so every access to it fails.
    sh(&format!(
        "pkill -9 -f '^mount.exfat-fuse {device} '; sleep 0.5; sync; echo 3 > /proc/sys/vm/drop_caches"
    ));
    let started = std::time::Instant::now();
    assert!(
        std::fs::read(mount.join("kept.gguf")).unwrap() == kept,
        "filled chunks must stay readable"
    );
    let err = std::fs::read(mount.join("lost.gguf")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "reads after the pull hung"
    );
    drop(mount);
    let _ = nix::mount::umount2(&stick, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::process::Command::new("losetup")
        .arg("-d")
        .arg(&device)
        .status();
    // The local store now holds the kept model's chunks on its own.
    store.ok(&["verify"]);
}

#[test]
fn a_damaged_local_chunk_is_repaired_from_a_source_with_fill() {
    let model = random_bytes(101, 1_500_000);
    let (local, source) = (TestStore::new(), TestStore::new());
    for store in [&local, &source] {
        store.ok(&["add", "m", store.file("m.gguf", &model).to_str().unwrap()]);
    }
    damage_first_chunk(&local.store, "m");
    assert!(!local.run(&["verify"]).status.success());
    let mount = mount_layered(&local, &[&source.store], true);
    assert!(std::fs::read(mount.join("m.gguf")).unwrap() == model);
    drop(mount);
    // The mount process seals the copied chunk as it exits, a moment after the unmount.
    let repaired = (0..20).any(|_| {
        std::thread::sleep(Duration::from_millis(250));
        local.run(&["verify"]).status.success()
    });
    assert!(repaired, "the local store was not repaired");
}
