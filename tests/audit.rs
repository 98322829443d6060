//! The audit log through the real binary: every change appends a chained entry, `audit verify`
//! names the first edited, removed or reordered entry, and a seal makes truncation show too.

use std::io::Write;

use modelfs::format::audit::entry_hash;

use crate::util::{TestStore, random_bytes, sh};

/// A store that went through add, add, rm, key trust, sign and gc (entries 1 to 6), with the
/// trusted key pair `rel` and an untrusted one, `other`, beside it.
fn logged_store() -> TestStore {
    let store = TestStore::new();
    for seed in [1, 2] {
        let path = store.file("llama.gguf", &random_bytes(seed, 300_000));
        store.ok(&["add", "llama", path.to_str().unwrap()]);
    }
    store.ok(&["rm", "llama@v1"]);
    let out = dir(&store);
    for name in ["rel", "other"] {
        store.ok(&["key", "new", name, "--no-password", "--out", &out]);
    }
    store.ok(&["key", "trust", &key(&store, "rel.pub")]);
    store.ok(&["sign", "llama", "--key", &key(&store, "rel.key")]);
    store.ok(&["gc"]);
    store
}

fn dir(store: &TestStore) -> String {
    store.dir.path().to_str().unwrap().to_owned()
}

fn key(store: &TestStore, name: &str) -> String {
    store.path(name).to_str().unwrap().to_owned()
}

/// A copy of `store` (its scratch directory with it, so keys are at the same names), to damage.
fn copy(store: &TestStore) -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    sh(&format!(
        "cp -a '{}/.' '{}/'",
        store.dir.path().display(),
        dir.path().display()
    ));
    let store = dir.path().join("store");
    TestStore { dir, store }
}

/// The lines of the store's log.
fn lines(store: &TestStore) -> Vec<String> {
    let text = std::fs::read_to_string(store.store.join("audit.log")).unwrap();
    assert!(text.ends_with('\n'), "the log ends with a newline");
    text.lines().map(str::to_owned).collect()
}

fn write_lines(store: &TestStore, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(store.store.join("audit.log"), text).unwrap();
}

/// The user an entry should name: the sudo user under sudo as root, else the effective user.
fn expected_user() -> String {
    let uid = nix::unistd::geteuid();
    if let Some(user) = std::env::var("SUDO_USER")
        .ok()
        .filter(|u| uid.is_root() && !u.is_empty())
    {
        return user;
    }
    nix::unistd::User::from_uid(uid).unwrap().unwrap().name
}

#[test]
fn every_change_is_logged_in_a_chain_that_verifies() {
    let store = logged_store();
    assert_eq!(
        store.ok(&["audit", "verify"]),
        "audit log intact: 6 entries, not sealed\n"
    );
    let json: serde_json::Value = serde_json::from_str(&store.ok(&["audit", "--json"])).unwrap();
    let entries = json.as_array().unwrap();
    let expected = [
        ("add", Some("llama"), Some("v1")),
        ("add", Some("llama"), Some("v2")),
        ("rm", Some("llama"), Some("v1")),
        ("key-trust", None, None),
        ("sign", Some("llama"), Some("v2")),
        ("gc", None, None),
    ];
    assert_eq!(entries.len(), expected.len(), "{json:#}");
    let user = expected_user();
    let uid = u64::from(nix::unistd::geteuid().as_raw());
    let mut prev = "0".repeat(64);
    for (i, (entry, (action, model, version))) in entries.iter().zip(expected).enumerate() {
        assert_eq!(entry["format"], "modelfs-audit");
        assert_eq!(entry["version"], 1);
        assert_eq!(entry["seq"], i as u64 + 1, "{entry}");
        assert_eq!(entry["action"], action, "{entry}");
        assert_eq!(entry["model"].as_str(), model, "{entry}");
        assert_eq!(entry["model_version"].as_str(), version, "{entry}");
        assert_eq!(entry["user"], user.as_str());
        assert_eq!(entry["uid"], uid);
        assert!(entry["time"].as_u64().unwrap() > 1_700_000_000);
        assert_eq!(entry["prev"], prev.as_str(), "{entry}");
        prev = entry_hash(lines(&store)[i].as_bytes()).to_hex();
    }
    // The key and statement the changes were about.
    let key_id = store.ok(&["key", "ls", "--json"]);
    let key_id: serde_json::Value = serde_json::from_str(&key_id).unwrap();
    let key_id = key_id["keys"][0]["id"].as_str().unwrap();
    assert_eq!(entries[3]["digests"][0], key_id);
    assert_eq!(entries[4]["digests"][0], key_id);
    assert!(
        entries[4]["detail"]
            .as_str()
            .unwrap()
            .contains("channel stable")
    );

    let table = store.ok(&["audit"]);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 7, "{table}");
    assert!(rows[0].contains("ACTION") && rows[0].contains("MODEL@VERSION"));
    assert!(
        rows[3].contains(" rm ") && rows[3].contains("llama@v1"),
        "{table}"
    );
    assert!(
        rows[5].contains(" sign ") && rows[5].contains(&user),
        "{table}"
    );

    // Readers read; only writers append.
    let empty = TestStore::new();
    assert_eq!(empty.ok(&["audit", "--json"]), "[\n]\n");
    assert_eq!(empty.ok(&["audit"]), "the audit log is empty\n");
    assert_eq!(
        empty.ok(&["audit", "verify"]),
        "audit log intact: 0 entries, not sealed\n"
    );
    assert!(!empty.store.join("audit.log").exists());
}

#[test]
fn verify_names_the_first_edited_removed_or_reordered_entry() {
    let store = logged_store();
    let log = lines(&store);

    let edited = copy(&store);
    let mut changed = log.clone();
    assert!(changed[4].contains("channel stable"));
    changed[4] = changed[4].replace("channel stable", "channel stabLe");
    write_lines(&edited, &changed);
    let line = edited.fails(&["audit", "verify"]);
    assert!(
        line.contains("audit.log: entry 5 (line 5) was edited or replaced"),
        "{line}"
    );

    let removed = copy(&store);
    let mut changed = log.clone();
    changed.remove(2);
    write_lines(&removed, &changed);
    let line = removed.fails(&["audit", "verify"]);
    assert!(
        line.contains("entry 4 (line 3) follows entry 2: entry 3 was removed"),
        "{line}"
    );

    let swapped = copy(&store);
    let mut changed = log.clone();
    changed.swap(1, 2);
    write_lines(&swapped, &changed);
    let line = swapped.fails(&["audit", "verify"]);
    assert!(
        line.contains("entry 3 (line 2)") && line.contains("reordered"),
        "{line}"
    );

    // A forger who recomputes the chain after an edit must also renumber and rehash every later
    // entry; without a seal nothing tells that apart. What cannot be forged by editing alone: a
    // changed entry with its old hash. Cutting entries off the end without a seal leaves a chain
    // that holds: the log cannot know how long it was.
    let cut = copy(&store);
    write_lines(&cut, &log[..5]);
    assert_eq!(
        cut.ok(&["audit", "verify"]),
        "audit log intact: 5 entries, not sealed\n"
    );
}

#[test]
fn a_seal_makes_truncation_and_rewriting_show() {
    let store = logged_store();
    let out = store.ok(&["audit", "seal", "--key", &key(&store, "rel.key")]);
    assert!(
        out.starts_with("sealed the audit log: entries 1 to 7"),
        "{out}"
    );
    assert!(!out.contains("note:"), "{out}");
    let verified = store.ok(&["audit", "verify"]);
    assert!(
        verified.starts_with("audit log intact: 7 entries, sealed at entry 7 by key "),
        "{verified}"
    );
    let log = lines(&store);
    assert!(log[6].contains(r#""action":"seal""#), "{}", log[6]);

    // Changes after the seal are logged and not covered, which verify says.
    store.ok(&["keep", "llama", "2"]);
    let verified = store.ok(&["audit", "verify"]);
    assert!(
        verified.contains("8 entries, sealed at entry 7") && verified.contains("entry 8 is newer"),
        "{verified}"
    );

    // The seal's own entry is covered: cutting it off shows.
    let cut = copy(&store);
    write_lines(&cut, &log[..6]);
    let line = cut.fails(&["audit", "verify"]);
    assert!(
        line.contains(
            "entry 7 (line 7) is missing: the log was truncated: the seal covers 7 entries, the \
             log has 6"
        ),
        "{line}"
    );

    // A rewritten log that is long enough and chains does not match the sealed head.
    let rewritten = copy(&store);
    let mut prev = "0".repeat(64);
    let forged: Vec<String> = log
        .iter()
        .map(|line| {
            let line = line.replace("removed llama@v1", "removed nothing");
            let at = line.rfind(r#""prev":""#).unwrap();
            let text = format!(r#"{}"prev":"{prev}"}}"#, &line[..at]);
            prev = entry_hash(text.as_bytes()).to_hex();
            text
        })
        .collect();
    write_lines(&rewritten, &forged);
    let line = rewritten.fails(&["audit", "verify"]);
    assert!(
        line.contains("entry 7 (line 7) is not the entry the seal covers"),
        "{line}"
    );

    // A seal by a key the store does not trust proves nothing to it, but checks against that key.
    let untrusted = copy(&store);
    untrusted.ok(&["audit", "seal", "--key", &key(&untrusted, "other.key")]);
    let line = untrusted.fails(&["audit", "verify"]);
    assert!(line.contains("which this store does not trust"), "{line}");
    let verified = untrusted.ok(&["audit", "verify", "--key", &key(&untrusted, "other.pub")]);
    assert!(
        verified.starts_with("audit log intact: 9 entries, sealed at entry 9"),
        "{verified}"
    );
    let line = untrusted.fails(&["audit", "verify", "--key", &key(&untrusted, "rel.pub")]);
    assert!(line.contains("not by the key given"), "{line}");

    // An edited seal, and another store's seal, are refused.
    let edited = copy(&store);
    let seal_path = edited.store.join("audit.seal");
    let seal = std::fs::read_to_string(&seal_path).unwrap();
    std::fs::write(
        &seal_path,
        seal.replace(r#"\"entries\":7"#, r#"\"entries\":6"#),
    )
    .unwrap();
    let line = edited.fails(&["audit", "verify"]);
    assert!(line.contains("does not verify"), "{line}");
    let other = TestStore::new();
    std::fs::copy(
        store.store.join("audit.seal"),
        other.store.join("audit.seal"),
    )
    .unwrap();
    let line = other.fails(&["audit", "verify"]);
    assert!(line.contains("seals the audit log of store"), "{line}");

    // A copy of the seal kept elsewhere still shows a truncation after the seal file is removed.
    let kept = store.path("kept.seal");
    std::fs::copy(store.store.join("audit.seal"), &kept).unwrap();
    let gone = copy(&store);
    std::fs::remove_file(gone.store.join("audit.seal")).unwrap();
    write_lines(&gone, &log[..6]);
    gone.ok(&["audit", "verify"]);
    let line = gone.fails(&["audit", "verify", "--seal", kept.to_str().unwrap()]);
    assert!(line.contains("truncated"), "{line}");

    // Sealing again refuses a log that does not extend the seal there is.
    let line = cut.fails(&["audit", "seal", "--key", &key(&cut, "rel.key")]);
    assert!(line.contains("truncated"), "{line}");
}

#[test]
fn a_garbage_log_is_one_clean_error_and_writers_still_append() {
    let store = logged_store();
    let damaged = copy(&store);
    let path = damaged.store.join("audit.log");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let garbage = vec![b'A'; 10 << 20];
    file.write_all(&garbage).unwrap();
    drop(garbage);
    file.write_all(b"\n").unwrap();
    drop(file);
    for args in [&["audit", "verify"][..], &["audit"], &["audit", "--json"]] {
        let line = damaged.fails(args);
        assert!(
            line.contains("entry 7 (line 7) is longer than 16384 bytes"),
            "{args:?}: {line}"
        );
    }
    // Writers keep logging, chained to what is there; verify still names the damage first.
    damaged.ok(&["keep", "llama", "2"]);
    let text = std::fs::read(&path).unwrap();
    let last = text[..text.len() - 1]
        .rsplit(|&b| b == b'\n')
        .next()
        .unwrap();
    let entry: serde_json::Value = serde_json::from_slice(last).unwrap();
    assert_eq!(entry["seq"], 8, "{entry}");
    assert!(
        damaged
            .fails(&["audit", "verify"])
            .contains("entry 7 (line 7)")
    );

    // A torn last write: the next entry goes on a line of its own.
    let torn = copy(&store);
    let path = torn.store.join("audit.log");
    let log = std::fs::read(&path).unwrap();
    std::fs::write(&path, &log[..log.len() - 20]).unwrap();
    let line = torn.fails(&["audit", "verify"]);
    assert!(line.contains("entry 6 (line 6) is incomplete"), "{line}");
    torn.ok(&["keep", "llama", "2"]);
    let line = torn.fails(&["audit", "verify"]);
    assert!(
        line.contains("entry 6 (line 6) is not a valid entry"),
        "{line}"
    );
    assert_eq!(lines(&torn).len(), 7);
}
