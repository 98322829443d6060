//! Damage never turns into wrong bytes: flipped pack bytes, damaged manifests and indexes, and
//! stores on read-only media.

use std::os::unix::fs::FileExt;

use modelfs::format::pack::RECORD_HEADER_LEN;

use crate::util::{SystemMount, TestStore, chunk_places, flip_byte, random_bytes};

#[test]
fn a_flipped_byte_gives_eio_on_exactly_that_chunk_and_verify_names_it() {
    let store = TestStore::new();
    let bytes = random_bytes(11, 2_000_000);
    store.ok(&[
        "add",
        "victim",
        store.file("victim.gguf", &bytes).to_str().unwrap(),
    ]);
    store.ok(&[
        "add",
        "bystander",
        store
            .file("bystander.gguf", &random_bytes(12, 500_000))
            .to_str()
            .unwrap(),
    ]);
    let places = chunk_places(&store.store, "victim");
    let (bad, location, pack) = places[places.len() / 2].clone();
    flip_byte(&pack, location.offset + RECORD_HEADER_LEN as u64 + 100);

    let out = store.run(&["verify"]);
    assert!(!out.status.success(), "verify must fail on damage");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&bad.id.to_hex()),
        "verify names the chunk:\n{report}"
    );
    assert!(report.contains("affects victim@v1/victim.gguf"), "{report}");
    assert!(!report.contains("affects bystander"), "{report}");
    assert!(report.contains("1 problem(s) found"), "{report}");
    store.ok(&["verify", "bystander"]);
    let line = store.fails(&["cat", "victim"]);
    assert!(line.contains(&bad.id.to_hex()), "{line}");

    let mount = store.mount();
    let file = std::fs::File::open(mount.join("victim.gguf")).unwrap();
    let page = 4096u64;
    let mut buf = vec![0u8; page as usize];
    for start in (0..bytes.len() as u64).step_by(page as usize) {
        let len = page.min(bytes.len() as u64 - start);
        let result = file.read_exact_at(&mut buf[..len as usize], start);
        let inside_bad = start >= bad.offset && start + len <= bad.end();
        // Pages sharing a kernel page with the bad chunk may fail too; a page a whole chunk away must not.
        let far_away = start + len + 65_536 <= bad.offset || start >= bad.end() + 65_536;
        if inside_bad {
            assert_eq!(
                result.unwrap_err().raw_os_error(),
                Some(libc::EIO),
                "page at {start}"
            );
        } else if far_away {
            result.unwrap_or_else(|e| panic!("intact page at {start} failed: {e}"));
            assert!(
                buf[..len as usize] == bytes[start as usize..(start + len) as usize],
                "page at {start}"
            );
        }
    }
    assert!(std::fs::read(mount.join("bystander.gguf")).unwrap() == random_bytes(12, 500_000));
    let log = mount.log();
    assert!(
        log.contains("victim@v1/victim.gguf") && log.contains(&bad.id.to_hex()),
        "log names file and chunk:\n{log}"
    );
}

#[test]
fn a_damaged_manifest_is_reported_and_other_models_still_serve() {
    let store = TestStore::new();
    store.ok(&[
        "add",
        "good",
        store
            .file("good.gguf", &random_bytes(1, 100_000))
            .to_str()
            .unwrap(),
    ]);
    store.ok(&[
        "add",
        "hurt",
        store
            .file("hurt.gguf", &random_bytes(2, 100_000))
            .to_str()
            .unwrap(),
    ]);
    let registry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.store.join("registry.json")).unwrap()).unwrap();
    let manifest = registry["models"]["hurt"]["versions"][0]["files"][0]["manifest"]
        .as_str()
        .unwrap();
    flip_byte(&store.store.join("manifests").join(manifest), 60);

    let out = store.run(&["verify"]);
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(manifest) && report.contains("affects hurt@v1/hurt.gguf"),
        "{report}"
    );
    let mount = store.mount();
    assert!(std::fs::read(mount.join("good.gguf")).unwrap() == random_bytes(1, 100_000));
    let err = std::fs::read(mount.join("hurt.gguf")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
}

#[test]
fn a_lost_or_damaged_index_is_rebuilt_from_the_packs() {
    let store = TestStore::new();
    let bytes = random_bytes(3, 800_000);
    store.ok(&["add", "m", store.file("m.gguf", &bytes).to_str().unwrap()]);
    let index = store.store.join("index");

    // Readers rebuild a private copy in the per-machine cache and leave the store alone.
    std::fs::write(index.join("CURRENT"), b"garbage\n").unwrap();
    assert!(store.run(&["cat", "m"]).stdout == bytes);
    assert_eq!(std::fs::read(index.join("CURRENT")).unwrap(), b"garbage\n");
    {
        let mount = store.mount();
        assert!(std::fs::read(mount.join("m.gguf")).unwrap() == bytes);
    }
    // The explicit rebuild, and a writer, repair the store's own index.
    assert!(
        store
            .ok(&["index", "rebuild"])
            .contains("index rebuilt from 1 pack")
    );
    store.ok(&["verify"]);
    std::fs::remove_dir_all(&index).unwrap();
    store.ok(&[
        "add",
        "n",
        store
            .file("n.gguf", &random_bytes(4, 1000))
            .to_str()
            .unwrap(),
    ]);
    assert!(index.join("CURRENT").exists());
    store.ok(&["verify"]);
    assert!(store.run(&["cat", "m"]).stdout == bytes);
}

#[test]
fn a_store_on_a_read_only_bind_mount_mounts_and_serves() {
    let store = TestStore::new();
    let bytes = random_bytes(5, 600_000);
    store.ok(&["add", "m", store.file("m.gguf", &bytes).to_str().unwrap()]);
    let ro = store.path("ro-store");
    let (from, to) = (store.store.display(), ro.display());
    let command = format!("mount --bind {from} {to} && mount -o remount,bind,ro {to}");
    let _bind = SystemMount::new(&ro, &command);

    let ro_store = TestStore {
        dir: tempfile::tempdir().unwrap(),
        store: ro.clone(),
    };
    assert!(ro_store.run(&["cat", "m"]).stdout == bytes);
    ro_store.ok(&["verify"]);
    let line = ro_store.fails(&["add", "x", store.path("m.gguf").to_str().unwrap()]);
    assert!(line.contains("read-only"), "{line}");
    let mount = store.mount_store(&ro);
    assert!(std::fs::read(mount.join("m.gguf")).unwrap() == bytes);
}
