//! `import-hf` and `import-ollama`: faithful fake caches (relative symlinks, refs, unfinished
//! downloads, damaged manifests) imported through the real binary, and left untouched.

use std::os::unix::fs::symlink;
use std::path::Path;

use crate::util::{TestStore, corpus, random_bytes, sh};

/// Every path under `dir` with its size, mtime and link target, sorted.
fn listing(dir: &Path) -> String {
    sh(&format!(
        "find '{}' -printf '%p %s %T@ %l\\n' | sort",
        dir.display()
    ))
}

/// A file's sha256 in hex.
fn sha256(path: &Path) -> String {
    sh(&format!("sha256sum '{}'", path.display()))[..64].to_owned()
}

/// Writes a snapshot of `repo` at `rev` whose files link to `blobs` (relative, as the hub does).
fn snapshot(repo: &Path, rev: &str, files: &[(&str, &str)]) {
    let dir = repo.join("snapshots").join(rev);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, blob) in files {
        symlink(format!("../../blobs/{blob}"), dir.join(name)).unwrap();
    }
}

#[test]
fn import_cache_hf_takes_every_revision_once_and_leaves_the_cache_alone() {
    let store = TestStore::new();
    let hub = store.path("hub");
    let tiny = hub.join("models--acme--tiny");
    let (config, w1, w2) = (
        random_bytes(1, 100),
        random_bytes(2, 300_000),
        random_bytes(3, 300_000),
    );
    store.file("hub/models--acme--tiny/blobs/e1", &config);
    store.file("hub/models--acme--tiny/blobs/e2", &w1);
    store.file("hub/models--acme--tiny/blobs/e3", &w2);
    store.file("hub/models--acme--tiny/blobs/e4.incomplete", &w2[..1000]);
    let (rev1, rev2, rev3, rev4) = (
        "1".repeat(40),
        "2".repeat(40),
        "3".repeat(40),
        "4".repeat(40),
    );
    store.file("hub/models--acme--tiny/refs/main", rev1.as_bytes());
    snapshot(
        &tiny,
        &rev1,
        &[("config.json", "e1"), ("weights.bin", "e2")],
    );
    snapshot(
        &tiny,
        &rev2,
        &[("config.json", "e1"), ("weights.bin", "e3")],
    );
    snapshot(
        &tiny,
        &rev3,
        &[("config.json", "e1"), ("weights.bin", "e4")],
    );
    snapshot(&tiny, &rev4, &[("weights.bin", "gone")]);
    // Another org's repo with the same name: model `other--tiny`.
    let other = hub.join("models--other--tiny");
    store.file(
        "hub/models--other--tiny/blobs/f1",
        &random_bytes(5, 200_000),
    );
    store.file(
        "hub/models--other--tiny/refs/main",
        "5".repeat(40).as_bytes(),
    );
    snapshot(&other, &"5".repeat(40), &[("weights.bin", "f1")]);
    // Repo ids the hub never makes.
    std::fs::create_dir_all(hub.join("models--acme--bad..name/snapshots")).unwrap();
    std::fs::create_dir_all(hub.join("models--acme--has space/snapshots")).unwrap();
    let before = listing(&hub);

    let hub_arg = hub.to_str().unwrap();
    let out = store.ok(&["import-hf", hub_arg]);
    for line in [
        "added tiny@main: 2 files",
        "added tiny@222222222222: 2 files",
        "added other--tiny@main: 1 file",
        "skipped acme/tiny@3333333333333333333333333333333333333333: half-downloaded",
        "still .incomplete",
        "skipped acme/tiny@4444444444444444444444444444444444444444: half-downloaded",
        "dangling link",
        "skipped acme/tiny: blobs/e4.incomplete",
        "skipped acme/bad..name:",
        "skipped acme/has space:",
        "3 added, 0 already present, 5 skipped",
        // e1, e2, e3 and f1, each once although e1 is in both revisions.
        "the cache holds 800.10 kB in 4 files",
        "would free 800.10 kB",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    assert_eq!(listing(&hub), before, "the cache changed");

    let ls = store.ok(&["ls", "tiny"]);
    assert!(ls.contains("main") && ls.contains("222222222222"), "{ls}");
    assert!(
        !ls.contains("333333333333") && !ls.contains("444444444444"),
        "{ls}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&store.ok(&["ls", "tiny", "--json"])).unwrap();
    assert_eq!(json[0]["hf_repo"], "acme/tiny");
    let json: serde_json::Value =
        serde_json::from_str(&store.ok(&["ls", "other--tiny", "--json"])).unwrap();
    assert_eq!(json[0]["hf_repo"], "other/tiny");
    for (spec, bytes) in [
        ("tiny@main/weights.bin", &w1),
        ("tiny@222222222222/weights.bin", &w2),
        ("tiny@main/config.json", &config),
    ] {
        let out = store.run(&["cat", spec]);
        assert!(out.status.success(), "cat {spec}");
        assert!(out.stdout == *bytes, "cat {spec} differs");
    }

    let again = store.ok(&["import-hf", hub_arg, "--repo", "acme/tiny"]);
    assert!(
        again.contains("0 added, 2 already present")
            && again.contains("already in the store: tiny@main"),
        "{again}"
    );
    assert_eq!(listing(&hub), before, "the cache changed");

    let error = store.fails(&["import-hf", hub_arg, "--repo", "acme/a b"]);
    assert!(error.contains("is not ORG/NAME"), "{error}");
    let error = store.fails(&["import-hf", store.path("nowhere").to_str().unwrap()]);
    assert!(error.contains("nowhere"), "{error}");
}

/// Writes an Ollama manifest for `name:tag` with a model layer `(digest, size)` and a template.
fn manifest(models: &Path, name: &str, tag: &str, digest: &str, size: u64) {
    let dir = models
        .join("manifests/registry.ollama.ai/library")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let json = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": format!("sha256:{}", "c".repeat(64)), "size": 2},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model",
             "digest": format!("sha256:{digest}"), "size": size},
            {"mediaType": "application/vnd.ollama.image.template",
             "digest": format!("sha256:{}", "d".repeat(64)), "size": 4},
        ],
    });
    std::fs::write(dir.join(tag), json.to_string()).unwrap();
}

#[test]
fn import_cache_ollama_checks_digests_and_names() {
    let store = TestStore::new();
    let models = store.path("ollama");
    let blobs = models.join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let gguf = store.path("model.gguf");
    corpus("base", &gguf, 0.001);
    let digest = sha256(&gguf);
    let blob = blobs.join(format!("sha256-{digest}"));
    std::fs::copy(&gguf, &blob).unwrap();
    let size = std::fs::metadata(&blob).unwrap().len();
    std::fs::write(blobs.join(format!("sha256-{}", "d".repeat(64))), b"tmpl").unwrap();
    // A blob whose bytes are not what its name says.
    let wrong = "e".repeat(64);
    std::fs::write(
        blobs.join(format!("sha256-{wrong}")),
        random_bytes(7, size as usize),
    )
    .unwrap();
    manifest(&models, "tinyllama", "latest", &digest, size);
    manifest(&models, "tinyllama", "bad", &wrong, size);
    manifest(&models, "tinyllama", "missing", &"f".repeat(64), size);
    manifest(&models, "tinyllama", "q4:0", &digest, size);
    let before = listing(&models);

    let models_arg = models.to_str().unwrap();
    let out = store.ok(&["import-ollama", models_arg]);
    for line in [
        "added tinyllama@latest: 1 file",
        "skipped tinyllama:bad:",
        "sha256 differs",
        "nothing of it was added",
        "skipped tinyllama:missing: model blob",
        "is missing",
        "skipped tinyllama:q4:0: invalid version",
        "note: 1 non-model layer (template, params, license, …) not imported",
        "1 added, 0 already present, 3 skipped",
        "in 1 file of these models",
    ] {
        assert!(out.contains(line), "{line:?} not in:\n{out}");
    }
    assert_eq!(listing(&models), before, "the models folder changed");
    let ls = store.ok(&["ls", "tinyllama"]);
    assert!(ls.contains("latest") && !ls.contains("bad"), "{ls}");
    let cat = store.run(&["cat", "tinyllama@latest"]);
    assert!(cat.status.success() && cat.stdout == std::fs::read(&gguf).unwrap());

    let again = store.ok(&["import-ollama", models_arg, "--model", "tinyllama:latest"]);
    assert!(
        again.contains("0 added, 1 already present, 0 skipped"),
        "{again}"
    );
}
