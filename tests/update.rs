//! Update packs: `inventory` at a site, `export --have` / `--since` at the publisher, `import` of
//! the pack at the site — only the chunks the site lacks travel, and a pack comes in whole or not
//! at all.

use crate::util::{CORPUS, TestStore, sh};
use std::path::Path;

/// Writes the corpus model `kind` at `scale` to `path`; returns the tensor bytes it changed.
fn model(kind: &str, path: &Path, scale: f64) -> u64 {
    let text = sh(&format!(
        "{CORPUS} {kind} {} --scale {scale}",
        path.display()
    ));
    text.split(", ")
        .find_map(|part| part.trim().strip_suffix(" changed)"))
        .unwrap_or_else(|| panic!("no changed bytes in {text:?}"))
        .parse()
        .unwrap()
}

/// Bytes of every file under `dir`, and of its pack files alone.
fn sizes(dir: &Path) -> (u64, u64) {
    let (mut all, mut packs) = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            let (inner, _) = sizes(&entry.path());
            all += inner;
            if entry.file_name() == "packs" {
                packs = inner;
            }
        } else {
            all += entry.metadata().unwrap().len();
        }
    }
    (all, packs)
}

/// A publisher with llama v1 (base) and v2 (fine-tune), and a site with v1; the fine-tune's
/// changed tensor bytes.
fn publisher_and_site() -> (TestStore, TestStore, u64) {
    let publisher = TestStore::new();
    let (base, finetune) = (publisher.path("base.gguf"), publisher.path("finetune.gguf"));
    model("base", &base, 0.01);
    let changed = model("finetune", &finetune, 0.01);
    publisher.ok(&["add", "llama", base.to_str().unwrap()]);
    publisher.ok(&["add", "llama", finetune.to_str().unwrap()]);
    let site = TestStore::new();
    site.ok(&["add", "llama", base.to_str().unwrap()]);
    (publisher, site, changed)
}

/// Checks that the update pack at `dir` is at most 1.02 × the `changed` tensor bytes + 1 MiB
/// (the target), and its pack files alone at most 1.02 × + 64 KiB (one header chunk).
fn assert_small(dir: &Path, changed: u64) {
    let (total, packs) = sizes(dir);
    eprintln!(
        "{}: {total} bytes, {packs} in packs, for {changed} changed",
        dir.display()
    );
    assert!(
        total <= changed * 102 / 100 + (1 << 20) && packs <= changed * 102 / 100 + (64 << 10),
        "update pack of {total} bytes ({packs} in packs) for {changed} changed tensor bytes"
    );
}

/// `export DEST --models llama FLAG FROM` (FLAG: `--have` or `--since`).
fn export_args<'a>(dest: &'a Path, flag: &'a str, from: &'a Path) -> [&'a str; 6] {
    let path = |p: &'a Path| p.to_str().unwrap();
    ["export", path(dest), "--models", "llama", flag, path(from)]
}

/// Runs `export_args` at `publisher`, which must succeed; returns its stdout and stderr.
fn export(publisher: &TestStore, dest: &Path, flag: &str, from: &Path) -> (String, String) {
    let out = publisher.run(&export_args(dest, flag, from));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "export failed: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// The site's registry file, to compare before and after a refused import.
fn registry(store: &TestStore) -> Vec<u8> {
    std::fs::read(store.store.join("registry.json")).unwrap()
}

#[test]
fn an_update_pack_carries_only_what_the_site_lacks() {
    let (publisher, site, changed) = publisher_and_site();
    let have = site.path("have.json");
    site.ok(&["inventory", "--out", have.to_str().unwrap()]);
    let inventory: serde_json::Value =
        serde_json::from_str(&site.ok(&["inventory"])).expect("inventory prints JSON");
    assert_eq!(inventory["format"], "modelfs-inventory");
    assert_eq!(inventory["versions"].as_array().unwrap().len(), 1);

    let pack = publisher.path("update-1");
    let (out, _) = export(&publisher, &pack, "--have", &have);
    assert!(out.starts_with("exported 1 version(s) into"), "{out}");
    assert!(out.contains("1 version(s)\n"), "v1 left out: {out}");
    assert_small(&pack, changed);

    let out = site.ok(&["import", pack.to_str().unwrap()]);
    assert!(out.contains("imported 1 version(s)"), "{out}");
    let finetune = std::fs::read(publisher.path("finetune.gguf")).unwrap();
    assert!(site.run(&["cat", "llama@v2"]).stdout == finetune);
    site.ok(&["verify"]);

    // The next update, from what the site held when the last pack was made plus that pack: only
    // the one changed tensor travels, with no new inventory.
    let third = publisher.path("one-tensor.gguf");
    let changed = model("one-tensor", &third, 0.01);
    publisher.ok(&["add", "llama", third.to_str().unwrap()]);
    let next = publisher.path("update-2");
    let (out, _) = export(&publisher, &next, "--since", &pack);
    assert!(out.starts_with("exported 1 version(s)"), "{out}");
    assert!(out.contains("2 version(s)\n"), "v1 and v2 left out: {out}");
    assert_small(&next, changed);
    site.ok(&["import", next.to_str().unwrap()]);
    assert!(site.run(&["cat", "llama@v3"]).stdout == std::fs::read(&third).unwrap());
    site.ok(&["verify"]);

    // Nothing new: an empty pack, and importing it changes nothing.
    site.ok(&["inventory", "--out", have.to_str().unwrap()]);
    let empty = publisher.path("update-3");
    let (out, _) = export(&publisher, &empty, "--have", &have);
    assert!(out.starts_with("exported 0 version(s)"), "{out}");
    let before = site.ok(&["ls", "llama"]);
    site.ok(&["import", empty.to_str().unwrap()]);
    assert_eq!(site.ok(&["ls", "llama"]), before);
}

#[test]
fn export_refuses_a_used_folder_and_a_bad_inventory() {
    let (publisher, site, _) = publisher_and_site();
    let have = site.path("have.json");
    site.ok(&["inventory", "--out", have.to_str().unwrap()]);
    let refused =
        |dest: &Path, flag: &str, from: &Path| publisher.fails(&export_args(dest, flag, from));

    let used = publisher.path("used");
    std::fs::create_dir(&used).unwrap();
    std::fs::write(used.join("notes.txt"), b"mine").unwrap();
    let line = refused(&used, "--have", &have);
    assert!(line.contains("is not empty"), "{line}");
    assert_eq!(std::fs::read_dir(&used).unwrap().count(), 1);
    assert_eq!(std::fs::read(used.join("notes.txt")).unwrap(), b"mine");

    let text = std::fs::read(&have).unwrap();
    let dest = publisher.path("pack");
    let bad: [(&str, Vec<u8>, &str); 5] = [
        (
            "garbage",
            b"\x00\x01 not json".to_vec(),
            "inventory is not valid",
        ),
        (
            "truncated",
            text[..text.len() / 2].to_vec(),
            "inventory is not valid",
        ),
        ("registry", registry(&site), "not a modelfs inventory"),
        (
            "newer",
            String::from_utf8(text.clone())
                .unwrap()
                .replacen("\"version\": 1", "\"version\": 9", 1)
                .into_bytes(),
            "upgrade modelfs",
        ),
        (
            "chunks",
            String::from_utf8(text.clone())
                .unwrap()
                .replacen("\"count\": ", "\"count\": 1", 1)
                .into_bytes(),
            "chunks in",
        ),
    ];
    for (name, bytes, expected) in bad {
        let file = site.file(&format!("{name}.json"), &bytes);
        let line = refused(&dest, "--have", &file);
        assert!(
            line.contains("cannot tell what the site holds") && line.contains(expected),
            "{name}: {line}"
        );
        assert!(!dest.exists(), "{name}: export wrote {}", dest.display());
    }
    let line = refused(&dest, "--since", &site.path("nowhere"));
    assert!(line.contains("no modelfs store"), "{line}");
    let out = publisher.run(&["export", dest.to_str().unwrap(), "--models", "llama"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--have <FILE>|--since <DIR>"));
    assert!(!dest.exists());

    // A site that holds a same-named version of other files: refused, nothing left behind.
    let other = TestStore::new();
    other.ok(&[
        "add",
        "llama",
        other.file("x.gguf", b"other bytes").to_str().unwrap(),
    ]);
    let theirs = other.path("have.json");
    other.ok(&["inventory", "--out", theirs.to_str().unwrap()]);
    let line = refused(&dest, "--have", &theirs);
    assert!(line.contains("llama@v1 of other files"), "{line}");
    assert!(!dest.exists());
}

#[test]
fn an_update_pack_comes_in_whole_or_not_at_all() {
    let (publisher, site, _) = publisher_and_site();
    let have = site.path("have.json");
    site.ok(&["inventory", "--out", have.to_str().unwrap()]);
    let pack = publisher.path("update");
    export(&publisher, &pack, "--have", &have);

    // A site without the base: the pack lacks chunks it would need.
    let bare = TestStore::new();
    bare.ok(&[
        "add",
        "other",
        bare.file("other.gguf", b"other bytes").to_str().unwrap(),
    ]);
    let before = registry(&bare);
    let line = bare.fails(&["import", pack.to_str().unwrap()]);
    assert!(line.contains("neither this store nor"), "{line}");
    assert_eq!(registry(&bare), before);

    // A pack cut short in the middle of a pack file.
    let cut = publisher.path("cut");
    crate::util::sh(&format!("cp -r {} {}", pack.display(), cut.display()));
    let file = std::fs::read_dir(cut.join("packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .unwrap();
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let before = registry(&site);
    let line = site.fails(&["import", cut.to_str().unwrap()]);
    assert!(line.contains("cut/packs/"), "{line}");
    assert_eq!(registry(&site), before);
    assert!(!site.ok(&["ls", "llama"]).contains("v2"));
    site.ok(&["verify"]);

    // The whole pack still goes in afterwards.
    site.ok(&["import", pack.to_str().unwrap()]);
    let finetune = std::fs::read(publisher.path("finetune.gguf")).unwrap();
    assert!(site.run(&["cat", "llama@v2"]).stdout == finetune);
}

#[test]
fn signed_releases_travel_and_an_older_one_is_refused() {
    let publisher = TestStore::new();
    let (base, finetune) = (publisher.path("base.gguf"), publisher.path("finetune.gguf"));
    model("base", &base, 0.005);
    model("finetune", &finetune, 0.005);
    let keys = publisher.path("keys");
    std::fs::create_dir(&keys).unwrap();
    publisher.ok(&[
        "key",
        "new",
        "publisher",
        "--no-password",
        "--out",
        keys.to_str().unwrap(),
    ]);
    let key = keys.join("publisher.key");
    let site = TestStore::new();
    site.ok(&["key", "trust", keys.join("publisher.pub").to_str().unwrap()]);
    let have = site.path("have.json");
    // Exports what the site lacks now; returns the pack and what the export printed on stderr.
    let export = |name: &str| {
        site.ok(&["inventory", "--out", have.to_str().unwrap()]);
        let pack = publisher.path(name);
        let (_, stderr) = export(&publisher, &pack, "--have", &have);
        (pack, stderr)
    };
    publisher.ok(&["add", "llama", base.to_str().unwrap()]);
    publisher.ok(&["sign", "llama@v1", "--key", key.to_str().unwrap()]);
    let (first, _) = export("first");
    site.ok(&["import", first.to_str().unwrap()]);
    publisher.ok(&["add", "llama", finetune.to_str().unwrap()]);
    // Unsigned, v2 is refused by the site's policy, and nothing of the pack comes in.
    let (unsigned, _) = export("unsigned");
    let before = registry(&site);
    site.fails(&["import", unsigned.to_str().unwrap()]);
    assert_eq!(registry(&site), before);

    publisher.ok(&["sign", "llama@v2", "--key", key.to_str().unwrap()]);
    let (second, _) = export("second");
    site.ok(&["import", second.to_str().unwrap()]);
    assert!(site.run(&["cat", "llama@v2"]).stdout == std::fs::read(&finetune).unwrap());
    assert!(site.ok(&["ls", "llama"]).contains("stable#2"));

    // v1 (sequence 1) after v2 (sequence 2) was accepted, on a site that removed v1.
    site.ok(&["rm", "llama@v1"]);
    site.ok(&["gc"]);
    let before = registry(&site);
    let line = site.fails(&["import", first.to_str().unwrap()]);
    assert!(line.contains("not above 2"), "{line}");
    assert_eq!(registry(&site), before);
    // The publisher's export leaves it out instead of making a pack the site refuses.
    let (third, warnings) = export("third");
    assert!(warnings.contains("left out llama@v1"), "{warnings}");
    assert!(
        site.ok(&["import", third.to_str().unwrap()])
            .contains("imported 0 version(s)")
    );
}
