//! Commands, their output, and clear one-line errors for bad input.

use crate::util::{MODELFS, TestStore, random_bytes};

#[test]
fn help_lists_every_command_and_each_has_its_own_help() {
    let out = std::process::Command::new(MODELFS)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for command in [
        "init",
        "add",
        "ls",
        "cat",
        "mount",
        "umount",
        "refresh",
        "diff",
        "import",
        "pack",
        "verify",
        "rm",
        "gc",
        "stats",
        "index",
        "key",
        "sign",
        "rollback",
        "keep",
        "audit",
        "inventory",
        "export",
        "import-hf",
        "import-ollama",
        "doctor",
    ] {
        assert!(
            help.contains(&format!("  {command} ")),
            "--help lacks {command}:\n{help}"
        );
        let sub = std::process::Command::new(MODELFS)
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(
            sub.status.success() && !sub.stdout.is_empty(),
            "{command} --help failed"
        );
    }
}

#[test]
fn init_is_idempotent() {
    let store = TestStore::new();
    assert!(store.ok(&["init"]).contains("already exists"));
}

#[test]
fn add_ls_cat_rm_round_trip() {
    let store = TestStore::new();
    let v1 = random_bytes(1, 300_000);
    let v2 = random_bytes(2, 310_000);
    store.ok(&[
        "add",
        "tiny",
        store.file("a/tiny.gguf", &v1).to_str().unwrap(),
    ]);
    let out = store.ok(&[
        "add",
        "tiny",
        store.file("b/tiny.gguf", &v2).to_str().unwrap(),
        "--version",
        "q4",
    ]);
    assert!(out.contains("added tiny@q4"), "{out}");

    let listing = store.ok(&["ls"]);
    assert!(
        listing.contains("tiny") && listing.contains("q4") && listing.contains("tiny.gguf"),
        "{listing}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&store.ok(&["ls", "tiny", "--json"])).unwrap();
    let versions = json[0]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["files"][0]["size"], 300_000);
    let sha = versions[1]["files"][0]["sha256"].as_str().unwrap();
    assert_eq!(
        sha,
        crate::util::sh(&format!(
            "sha256sum {}",
            store.path("b/tiny.gguf").display()
        ))[..64]
            .to_owned()
    );

    let out = store.run(&["cat", "tiny@v1"]);
    assert!(out.status.success());
    assert!(out.stdout == v1);
    assert!(
        store.run(&["cat", "tiny"]).stdout == v2,
        "a bare name means the newest version"
    );

    store.ok(&["rm", "tiny@v1"]);
    assert!(
        store
            .fails(&["cat", "tiny@v1"])
            .contains("no version \"v1\"")
    );
    store.ok(&["rm", "tiny"]);
    assert!(store.ok(&["ls"]).contains("no models yet"));
    let gc = store.ok(&["gc"]);
    assert!(gc.contains("dropped"), "{gc}");
    let stats: serde_json::Value = serde_json::from_str(&store.ok(&["stats", "--json"])).unwrap();
    assert_eq!(
        stats["stored_bytes"], 0,
        "gc of an empty registry frees every pack"
    );
}

#[test]
fn folder_models_keep_their_tree() {
    let store = TestStore::new();
    store.file("hf/config.json", b"{\"hidden_size\": 64}");
    store.file(
        "hf/model-00001-of-00002.safetensors",
        &random_bytes(3, 100_000),
    );
    store.file(
        "hf/model-00002-of-00002.safetensors",
        &random_bytes(4, 50_000),
    );
    store.file("hf/tokenizer/vocab.txt", b"a\nb\n");
    store.ok(&["add", "minilm", store.path("hf").to_str().unwrap()]);
    let detail = store.ok(&["ls", "minilm"]);
    for file in [
        "config.json",
        "model-00001-of-00002.safetensors",
        "tokenizer/vocab.txt",
    ] {
        assert!(detail.contains(file), "{detail}");
    }
    assert!(store.run(&["cat", "minilm/tokenizer/vocab.txt"]).stdout == b"a\nb\n");
    assert!(
        store
            .fails(&["cat", "minilm"])
            .contains("is a folder; name one of its files")
    );
}

#[test]
fn bad_input_gets_one_clear_line_and_changes_nothing() {
    let store = TestStore::new();
    let file = store.file("m.gguf", &random_bytes(5, 10_000));
    let file = file.to_str().unwrap();
    store.ok(&["add", "m", file]);
    let before = store.ok(&["stats", "--json"]);

    assert!(
        store
            .fails(&["add", "bad name", file])
            .contains("invalid model name \"bad name\"")
    );
    assert!(
        store
            .fails(&["add", "x", "/no/such/model.gguf"])
            .contains("no such file or folder")
    );
    assert!(
        store
            .fails(&["add", "m", file, "--version", "v1"])
            .contains("already has a version \"v1\"")
    );
    assert!(
        store
            .fails(&["add", "m", file, "--version", "../x"])
            .contains("invalid version")
    );
    std::fs::create_dir(store.path("empty")).unwrap();
    assert!(
        store
            .fails(&["add", "e", store.path("empty").to_str().unwrap()])
            .contains("folder holds no files")
    );
    assert!(
        store
            .fails(&["cat", "nope"])
            .contains("no model named \"nope\"")
    );
    assert_eq!(store.ok(&["stats", "--json"]), before);

    let missing = TestStore::uninitialised();
    let line = missing.fails(&["ls"]);
    assert!(
        line.contains("no modelfs store at") && line.contains("modelfs init"),
        "{line}"
    );
    assert!(!missing.store.exists(), "reading must not create a store");
}

#[test]
fn a_store_of_a_newer_format_is_refused() {
    let store = TestStore::new();
    let config = store.store.join("modelfs.json");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("\"version\": 2", "\"version\": 7");
    std::fs::write(&config, text).unwrap();
    let line = store.fails(&["ls"]);
    assert!(
        line.contains("format version 7") && line.contains("upgrade modelfs"),
        "{line}"
    );
    assert!(store.fails(&["init"]).contains("format version 7"));
}

#[test]
fn the_binary_needs_only_the_c_and_cpp_runtime() {
    // It must run from a USB stick on a machine without librocksdb, libzstd and the like.
    let ldd = crate::util::sh(&format!("ldd {MODELFS}"));
    let allowed = [
        "linux-vdso",
        "libc.so",
        "libm.so",
        "libgcc_s.so",
        "libstdc++.so",
        "ld-linux",
        "libpthread.so",
        "libdl.so",
    ];
    for line in ldd.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            allowed.iter().any(|lib| line.contains(lib)),
            "unexpected shared library: {line}"
        );
    }
}
