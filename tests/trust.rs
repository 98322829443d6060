//! Signed releases, the trust policy, anti-rollback, rollback and retention, through the real
//! binary: keys made by `key new` (and in SoftHSM2 through PKCS#11), statements signed by `sign`,
//! checked by `import`, `pull`, `verify`, `ls` and a `--require-signed` mount.

use std::path::Path;
use std::process::Command;

use crate::netutil::{Serve, modelfs};
use crate::util::{MODELFS, TestStore, chunk_places, flip_byte, random_bytes};

/// A publisher store with `llama` v1 and v2 (different bytes), and a key pair `rel` beside it.
struct Publisher {
    store: TestStore,
    v1: Vec<u8>,
    v2: Vec<u8>,
}

impl Publisher {
    fn new() -> Publisher {
        let store = TestStore::new();
        let (v1, v2) = (random_bytes(71, 400_000), random_bytes(72, 400_000));
        for bytes in [&v1, &v2] {
            let path = store.file("llama.gguf", bytes);
            store.ok(&["add", "llama", path.to_str().unwrap()]);
        }
        store.ok(&["key", "new", "rel", "--no-password", "--out", &dir(&store)]);
        Publisher { store, v1, v2 }
    }

    fn key(&self, name: &str) -> String {
        self.store.path(name).to_str().unwrap().to_owned()
    }

    fn sign(&self, spec: &str, extra: &[&str]) -> String {
        let key = self.key("rel.key");
        let mut args = vec!["sign", spec, "--key", &key];
        args.extend_from_slice(extra);
        self.store.ok(&args)
    }

    fn src(&self) -> &str {
        self.store.store.to_str().unwrap()
    }
}

fn dir(store: &TestStore) -> String {
    store.dir.path().to_str().unwrap().to_owned()
}

/// A site store trusting `pub_key`.
fn site_trusting(pub_key: &str) -> TestStore {
    let site = TestStore::new();
    site.ok(&["key", "trust", pub_key]);
    site
}

/// What a store holds that a refused change must leave alone: the registry, the policy, the log,
/// the catalog, and the names and sizes of manifests and packs.
fn snapshot(store: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for name in ["registry.json", "trust.json", "audit.log", "catalog.json"] {
        files.push((
            name.to_owned(),
            std::fs::read(store.join(name)).unwrap_or_default(),
        ));
    }
    for dir in ["manifests", "packs"] {
        let mut names: Vec<_> = std::fs::read_dir(store.join(dir))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let len = e.metadata().unwrap().len();
                (
                    format!("{dir}/{}", e.file_name().to_string_lossy()),
                    len.to_le_bytes().to_vec(),
                )
            })
            .collect();
        names.sort();
        files.extend(names);
    }
    files
}

/// Runs a command on `site` that must fail with one line containing `needle` and leave the store
/// exactly as it was.
fn refused(site: &TestStore, args: &[&str], needle: &str) -> String {
    let before = snapshot(&site.store);
    let line = site.fails(args);
    assert!(line.contains(needle), "{args:?}: {line}");
    assert!(
        snapshot(&site.store) == before,
        "{args:?} changed the store"
    );
    line
}

fn registry_json(store: &TestStore) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(store.store.join("registry.json")).unwrap()).unwrap()
}

fn write_registry(store: &TestStore, registry: &serde_json::Value) {
    std::fs::write(
        store.store.join("registry.json"),
        serde_json::to_vec_pretty(registry).unwrap(),
    )
    .unwrap();
}

fn cat(store: &TestStore, spec: &str) -> Vec<u8> {
    let out = store.run(&["cat", spec]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn signed_releases_come_in_and_older_ones_stay_out_even_after_rm_and_gc() {
    let publisher = Publisher::new();
    let signed = publisher.sign("llama@v1", &[]);
    assert!(signed.contains("sequence 1"), "{signed}");
    assert!(publisher.sign("llama@v2", &[]).contains("sequence 2"));
    let site = site_trusting(&publisher.key("rel.pub"));

    site.ok(&["import", publisher.src(), "--models", "llama@v2"]);
    assert!(cat(&site, "llama") == publisher.v2);
    let listing = site.ok(&["ls"]);
    assert!(listing.contains("stable#2 by "), "{listing}");
    assert!(site.ok(&["verify"]).contains("ok   llama@v2: signed by"));

    // An older release is a downgrade, even once the newer one is gone and collected.
    let line = refused(
        &site,
        &["import", publisher.src(), "--models", "llama@v1"],
        "sequence 1 on channel \"stable\" is not above 2",
    );
    assert!(line.contains("release llama@v1 refused"), "{line}");
    site.ok(&["rm", "llama"]);
    site.ok(&["gc"]);
    refused(
        &site,
        &["import", publisher.src(), "--models", "llama@v1"],
        "--allow-downgrade",
    );

    // Taken on purpose, it is logged.
    site.ok(&[
        "import",
        publisher.src(),
        "--models",
        "llama@v1",
        "--allow-downgrade",
    ]);
    assert!(cat(&site, "llama") == publisher.v1);
    let log = std::fs::read_to_string(site.store.join("audit.log")).unwrap();
    assert!(log.contains("downgrade allowed"), "{log}");
}

#[test]
fn bad_releases_are_refused_with_one_line_and_the_store_unchanged() {
    let publisher = Publisher::new();
    publisher.sign("llama@v1", &[]);
    let site = site_trusting(&publisher.key("rel.pub"));
    let base = site.file("base.bin", &random_bytes(5, 100_000));
    site.ok(&["add", "base", base.to_str().unwrap()]);

    // Unsigned: v2 has no release.
    refused(
        &site,
        &["import", publisher.src(), "--models", "llama@v2"],
        "release llama@v2 refused: it is not signed",
    );
    // A pack carrying an extra unsigned model: nothing of it comes in.
    refused(&site, &["import", publisher.src()], "it is not signed");

    // Signed by a key the site does not trust.
    publisher.store.ok(&[
        "key",
        "new",
        "stranger",
        "--no-password",
        "--out",
        &dir(&publisher.store),
    ]);
    let stranger = publisher.key("stranger.key");
    publisher
        .store
        .ok(&["sign", "llama@v2", "--key", &stranger]);
    refused(
        &site,
        &["import", publisher.src(), "--models", "llama@v2"],
        "signed only by keys this store does not trust",
    );

    // A signature over a different statement: the statement was edited after signing.
    let edited = TestStore::new();
    copy_store(&publisher.store.store, &edited.store);
    let mut registry = registry_json(&edited);
    let release = &mut registry["models"]["llama"]["versions"][0]["release"];
    let statement = release["statement"]
        .as_str()
        .unwrap()
        .replace("\"channel\":\"stable\"", "\"channel\":\"stablE\"");
    release["statement"] = statement.into();
    write_registry(&edited, &registry);
    refused(
        &site,
        &[
            "import",
            edited.store.to_str().unwrap(),
            "--models",
            "llama@v1",
        ],
        "does not verify",
    );

    // A validly signed statement whose files are not the version's.
    let lying = TestStore::new();
    copy_store(&publisher.store.store, &lying.store);
    let mut registry = registry_json(&lying);
    let v1 = registry["models"]["llama"]["versions"][0].clone();
    let mut statement =
        modelfs::format::release::Statement::decode(v1["release"]["statement"].as_str().unwrap())
            .unwrap();
    statement.files[0].sha256 = modelfs::id::Digest([0; 32]);
    let text = statement.encode();
    let signer = modelfs::trust::keys::FileSigner::open(
        Path::new(&publisher.key("rel.key")),
        &modelfs::trust::keys::Passphrase::None,
    )
    .unwrap();
    let signature =
        modelfs::trust::Signer::sign(&signer, text.as_bytes(), "modelfs release").unwrap();
    registry["models"]["llama"]["versions"][0]["release"] =
        serde_json::json!({"statement": text, "signatures": [signature]});
    write_registry(&lying, &registry);
    refused(
        &site,
        &[
            "import",
            lying.store.to_str().unwrap(),
            "--models",
            "llama@v1",
        ],
        "digests it lists for \"llama.gguf\" are not the file's",
    );
    // The release of one version on another.
    let mut registry = registry_json(&lying);
    registry["models"]["llama"]["versions"][1]["release"] = v1["release"].clone();
    write_registry(&lying, &registry);
    refused(
        &site,
        &[
            "import",
            lying.store.to_str().unwrap(),
            "--models",
            "llama@v2",
        ],
        "it is the statement of llama@v1",
    );

    // A flipped byte in a pack: the import stops at the chunk and takes nothing.
    let damaged = TestStore::new();
    copy_store(&publisher.store.store, &damaged.store);
    damaged.ok(&["rm", "llama@v2"]);
    let places = chunk_places(&damaged.store, "llama");
    let (_, location, pack) = &places[places.len() / 2];
    flip_byte(pack, location.offset + 48 + 100);
    refused(
        &site,
        &[
            "import",
            damaged.store.to_str().unwrap(),
            "--models",
            "llama@v1",
        ],
        "is corrupt",
    );

    // An expired statement.
    let expiring = TestStore::new();
    copy_store(&publisher.store.store, &expiring.store);
    let key = publisher.key("rel.key");
    expiring.ok(&["sign", "llama@v2", "--key", &key, "--expires", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    refused(
        &site,
        &[
            "import",
            expiring.store.to_str().unwrap(),
            "--models",
            "llama@v2",
        ],
        "statement expired",
    );

    // Key files that are not keys, and a wrong passphrase.
    let junk = site.file("junk.pub", b"untrusted comment: hello\nnot base64 at all\n");
    refused(
        &site,
        &["key", "trust", junk.to_str().unwrap()],
        "is not a minisign public key",
    );
    refused(
        &site,
        &["sign", "base", "--key", junk.to_str().unwrap()],
        "is not a minisign secret key",
    );
    let out = Command::new(MODELFS)
        .args(["key", "new", "locked", "--out", &dir(&site)])
        .env("MODELFS_KEY_PASSPHRASE", "right horse")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = snapshot(&site.store);
    let out = Command::new(MODELFS)
        .arg("--store")
        .arg(&site.store)
        .args([
            "sign",
            "base",
            "--key",
            site.path("locked.key").to_str().unwrap(),
        ])
        .env("MODELFS_KEY_PASSPHRASE", "wrong horse")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("wrong passphrase for secret key"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(snapshot(&site.store) == before);

    // The site still has exactly what it had, and all of it reads.
    let listing = site.ok(&["ls"]);
    assert!(
        listing.contains("base") && !listing.contains("llama"),
        "{listing}"
    );
    site.ok(&["verify"]);
}

/// Copies a store directory (its files only: no mount or lock is open on it).
fn copy_store(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_threshold_needs_that_many_distinct_trusted_keys() {
    let publisher = Publisher::new();
    publisher.store.ok(&[
        "key",
        "new",
        "second",
        "--no-password",
        "--out",
        &dir(&publisher.store),
    ]);
    publisher.sign("llama@v2", &[]);
    let site = site_trusting(&publisher.key("rel.pub"));
    site.ok(&["key", "trust", &publisher.key("second.pub")]);
    site.fails(&["key", "policy", "--threshold", "3"]);
    site.ok(&["key", "policy", "--threshold", "2"]);
    assert!(
        site.ok(&["key", "ls"])
            .contains("a release needs 2 of these 2 key(s)")
    );
    refused(
        &site,
        &["import", publisher.src(), "--models", "llama@v2"],
        "1 valid signature(s) by trusted keys; the policy requires 2",
    );
    // The second key co-signs the same statement (same sequence number).
    let key = publisher.key("second.key");
    let cosigned = publisher.store.ok(&["sign", "llama@v2", "--key", &key]);
    assert!(cosigned.contains("sequence 1"), "{cosigned}");
    site.ok(&["import", publisher.src(), "--models", "llama@v2"]);
    assert!(cat(&site, "llama") == publisher.v2);
    let json: serde_json::Value = serde_json::from_str(&site.ok(&["ls", "--json"])).unwrap();
    let signers = &json[0]["versions"][0]["release"]["signers"];
    assert_eq!(signers.as_array().unwrap().len(), 2, "{json}");
    assert_eq!(json[0]["versions"][0]["release"]["verdict"], "ok");
}

#[test]
fn rollback_switches_a_running_mount_and_keep_bounds_what_gc_retains() {
    let store = TestStore::new();
    let versions: Vec<Vec<u8>> = (0..4).map(|i| random_bytes(80 + i, 300_000)).collect();
    for bytes in &versions {
        let path = store.file("m.bin", bytes);
        store.ok(&["add", "m", path.to_str().unwrap()]);
    }
    let mount = store.mount();
    let file = mount.join("m.bin");
    assert!(std::fs::read(&file).unwrap() == versions[3]);
    let open = std::fs::File::open(&file).unwrap();

    let out = store.ok(&["rollback", "m"]);
    assert!(out.contains("m now shows v3 (was v4)"), "{out}");
    assert!(cat(&store, "m") == versions[2]);
    store.ok(&["refresh", mount.path.to_str().unwrap()]);
    // Well inside the kernel's 10 s name cache: the mount tells the kernel the name moved.
    let asked = std::time::Instant::now();
    while std::fs::read(&file).unwrap() != versions[2] {
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(3),
            "the mount did not switch within 3 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A file opened before keeps its bytes.
    let mut held = Vec::new();
    std::io::Read::read_to_end(&mut &open, &mut held).unwrap();
    assert!(held == versions[3], "an open file changed under its reader");
    assert!(store.ok(&["ls", "m"]).contains("m@v3 (current)"));

    store.ok(&["rollback", "m", "--to", "v1"]);
    assert!(cat(&store, "m") == versions[0]);
    // gc keeps the newest three and the current one.
    store.ok(&["gc"]);
    let listing = store.ok(&["ls", "m"]);
    assert!(listing.contains("m@v1 (current)"), "{listing}");
    assert_eq!(listing.matches("added").count(), 4, "{listing}");
    store.ok(&["keep", "m", "1"]);
    store.ok(&["rollback", "m", "--to", "v4"]);
    let out = store.ok(&["gc"]);
    assert!(
        out.contains("dropped m@v1") && out.contains("dropped m@v3"),
        "{out}"
    );
    assert!(cat(&store, "m") == versions[3]);
    assert!(cat(&store, "m@v4") == versions[3]);
    store.fails(&["rollback", "m"]);
    // Each change is in the audit log.
    let log = std::fs::read_to_string(store.store.join("audit.log")).unwrap();
    for action in ["\"rollback\"", "\"keep\"", "\"gc\"", "\"add\""] {
        assert!(log.contains(action), "{action} missing from {log}");
    }
    drop(open);
}

#[test]
fn a_require_signed_mount_shows_only_signed_releases() {
    let publisher = Publisher::new();
    publisher.sign("llama@v1", &[]);
    let extra = publisher.store.file("other.bin", &random_bytes(9, 50_000));
    publisher
        .store
        .ok(&["add", "other", extra.to_str().unwrap()]);
    let mountpoint = publisher.store.path("signed-mount");
    std::fs::create_dir_all(&mountpoint).unwrap();
    let mount = |store: &TestStore| {
        store.run(&[
            "mount",
            "--daemon",
            "--require-signed",
            mountpoint.to_str().unwrap(),
        ])
    };
    // Without a policy there is nothing to require.
    let out = mount(&publisher.store);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a trust policy"));

    publisher
        .store
        .ok(&["key", "trust", &publisher.key("rel.pub")]);
    let out = mount(&publisher.store);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _unmount = crate::util::SystemMount(mountpoint.clone());
    let mut names: Vec<String> = std::fs::read_dir(&mountpoint)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // llama shows v1, its newest signed version; `other` is not shown at all.
    assert_eq!(
        names,
        [".hf", ".ollama", ".versions", "llama.gguf"],
        "{names:?}"
    );
    assert!(std::fs::read(mountpoint.join("llama.gguf")).unwrap() == publisher.v1);
    assert!(!mountpoint.join(".versions/llama/v2").exists());
}

#[test]
fn releases_travel_with_pack_serve_and_pull() {
    let publisher = Publisher::new();
    publisher.sign("llama@v2", &["--channel", "beta", "--expires", "30d"]);
    // pack → import
    let stick = publisher.store.path("stick");
    publisher
        .store
        .ok(&["pack", stick.to_str().unwrap(), "--models", "llama@v2"]);
    let site = site_trusting(&publisher.key("rel.pub"));
    site.ok(&["import", stick.to_str().unwrap()]);
    assert!(site.ok(&["ls"]).contains("beta#1 by "));
    // serve → pull
    let serve = Serve::start(&publisher.store, &[]);
    let other = site_trusting(&publisher.key("rel.pub"));
    let out = modelfs(&other, &["pull", "llama@v2", "--from", &serve.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(cat(&other, "llama") == publisher.v2);
    let verified = other.ok(&["verify"]);
    assert!(verified.contains("ok   llama@v2: signed by"), "{verified}");
    // The unsigned v1 is refused from the same peer.
    let out = modelfs(&other, &["pull", "llama@v1", "--from", &serve.url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("release llama@v1 refused: it is not signed")
    );
}

/// SoftHSM2's PKCS#11 module, where Debian installs it.
const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

#[test]
fn a_key_held_in_an_hsm_signs_through_pkcs11() {
    assert!(
        Path::new(SOFTHSM).exists(),
        "SoftHSM2 is not installed (tools/test.sh installs softhsm2)"
    );
    let publisher = Publisher::new();
    let tokens = publisher.store.path("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = publisher.store.file(
        "softhsm2.conf",
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        )
        .as_bytes(),
    );
    let hsm = |command: &mut Command| {
        command
            .env("SOFTHSM2_CONF", &conf)
            .env("MODELFS_PKCS11_PIN", "1234")
            .output()
            .unwrap()
    };
    let out = hsm(Command::new("softhsm2-util").args([
        "--init-token",
        "--free",
        "--label",
        "modelfs",
        "--pin",
        "1234",
        "--so-pin",
        "5678",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hsm(Command::new(MODELFS).args([
        "key",
        "new",
        "release-hsm",
        "--pkcs11-module",
        SOFTHSM,
        "--out",
        &dir(&publisher.store),
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hsm(modelfs(
        &publisher.store,
        &[
            "sign",
            "llama@v2",
            "--pkcs11-module",
            SOFTHSM,
            "--key-label",
            "release-hsm",
        ],
    )
    .env("SOFTHSM2_CONF", &conf));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let site = site_trusting(&publisher.key("release-hsm.pub"));
    site.ok(&["import", publisher.src(), "--models", "llama@v2"]);
    assert!(cat(&site, "llama") == publisher.v2);
    // An unknown label and a wrong PIN are one-line errors.
    let sign_fails = |label: &str, pin: &str| {
        let out = modelfs(
            &publisher.store,
            &[
                "sign",
                "llama@v1",
                "--pkcs11-module",
                SOFTHSM,
                "--key-label",
                label,
            ],
        )
        .env("SOFTHSM2_CONF", &conf)
        .env("MODELFS_PKCS11_PIN", pin)
        .output()
        .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = sign_fails("nope", "1234");
    assert!(stderr.contains("PKCS#11 module"), "{stderr}");
    let stderr = sign_fails("release-hsm", "9999");
    assert!(stderr.to_lowercase().contains("pin"), "{stderr}");
}
