//! Moving models between stores: `import` (only missing chunks, resumable) and `pack`.

use std::process::Command;
use std::time::Duration;

use crate::util::{TestStore, corpus, kill_after, random_bytes, sh};

#[test]
fn import_copies_only_what_the_store_lacks() {
    let source = TestStore::new();
    let (base, finetune) = (source.path("base.gguf"), source.path("finetune.gguf"));
    corpus("base", &base, 0.02);
    corpus("finetune", &finetune, 0.02);
    source.ok(&["add", "llama", base.to_str().unwrap()]);
    source.ok(&["add", "llama", finetune.to_str().unwrap()]);
    let local = TestStore::new();
    local.ok(&["add", "llama", base.to_str().unwrap()]);
    let before = local.stored_bytes();

    let out = local.ok(&[
        "import",
        source.store.to_str().unwrap(),
        "--models",
        "llama@v2",
    ]);
    assert!(out.contains("1 version(s) to add"), "{out}");
    let copied = local.stored_bytes() - before;
    let finetune_size = std::fs::metadata(&finetune).unwrap().len();
    assert!(
        copied < finetune_size / 5,
        "copied {copied} bytes of a {finetune_size}-byte fine-tune"
    );
    assert!(local.run(&["cat", "llama@v2"]).stdout == std::fs::read(&finetune).unwrap());
    local.ok(&["verify"]);
    let again = local.ok(&["import", source.store.to_str().unwrap()]);
    assert!(
        again.contains("0 version(s) to add (2 already here); copying 0 B"),
        "{again}"
    );

    let clash = TestStore::new();
    clash.ok(&[
        "add",
        "llama",
        source.file("other.gguf", b"other bytes").to_str().unwrap(),
    ]);
    let line = clash.fails(&["import", source.store.to_str().unwrap()]);
    assert!(line.contains("already has a version \"v1\""), "{line}");
    assert!(
        !clash.ok(&["ls", "llama"]).contains("v2"),
        "nothing imported on a clash"
    );
}

#[test]
fn an_interrupted_import_resumes_without_recopying() {
    let source = TestStore::uninitialised();
    source.ok(&["init", "--avg-chunk-kib", "16", "--pack-size-mib", "4"]);
    let bytes = random_bytes(31, 60_000_000);
    source.ok(&[
        "add",
        "big",
        source.file("big.gguf", &bytes).to_str().unwrap(),
    ]);
    let local = TestStore::uninitialised();
    local.ok(&["init", "--avg-chunk-kib", "16", "--pack-size-mib", "4"]);
    let src = source.store.to_str().unwrap();

    for delay_ms in [150, 300] {
        kill_after(
            &local.store,
            &["import", src],
            Duration::from_millis(delay_ms),
        );
        local.ok(&["verify"]);
        assert!(!local.ok(&["ls"]).contains("big") || local.run(&["cat", "big"]).stdout == bytes);
    }
    local.ok(&["import", src]);
    assert!(local.run(&["cat", "big"]).stdout == bytes);
    local.ok(&["verify"]);
    // Every chunk was stored once: what earlier runs sealed was kept, not copied again.
    let (copied, original) = (local.stored_bytes(), source.stored_bytes());
    assert!(
        copied <= original + original / 100,
        "{copied} bytes stored for {original} in the source"
    );
}

#[test]
fn pack_writes_a_self_contained_store_with_its_scripts() {
    let store = TestStore::new();
    let model = random_bytes(41, 2_000_000);
    store.ok(&[
        "add",
        "keep",
        store.file("keep.gguf", &model).to_str().unwrap(),
    ]);
    store.ok(&[
        "add",
        "skip",
        store
            .file("skip.gguf", &random_bytes(42, 3_000_000))
            .to_str()
            .unwrap(),
    ]);
    let dest = store.path("stick");
    let out = store.ok(&[
        "pack",
        dest.to_str().unwrap(),
        "--models",
        "keep",
        "--with-binary",
    ]);
    assert!(out.contains("packed 1 version(s)"), "{out}");

    let on_stick = dest.join("modelfs");
    let verify = Command::new(&on_stick)
        .arg("--store")
        .arg(&dest)
        .arg("verify")
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let listing = String::from_utf8(
        Command::new(&on_stick)
            .arg("--store")
            .arg(&dest)
            .arg("ls")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        listing.contains("keep") && !listing.contains("skip"),
        "{listing}"
    );
    let size: u64 = std::fs::read_dir(dest.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        size < 2_200_000,
        "the pack holds more than the chosen model: {size} bytes"
    );

    let mountpoint = store.path("stick-mount");
    sh(&format!(
        "XDG_CACHE_HOME={} sh {}/mount.sh {}",
        store.path("cache").display(),
        dest.display(),
        mountpoint.display()
    ));
    let read = std::fs::read(mountpoint.join("keep.gguf"));
    sh(&format!(
        "{} umount {}",
        on_stick.display(),
        mountpoint.display()
    ));
    assert!(read.unwrap() == model);

    let line = store.fails(&[
        "pack",
        store.path("keep.gguf").to_str().unwrap(),
        "--models",
        "keep",
    ]);
    assert!(line.contains("cannot pack"), "{line}");
}
