//! What judges a release, from arbitrary bytes: a release statement (`Statement::decode`), minisign
//! signatures and public keys as they come from another store's registry or a key file, a secret
//! key file, and a store's `trust.json`. The input is split at the first two `\0` bytes into a
//! statement text, a signature text and the rest (a key file, and the data signatures are checked
//! over).
//!
//! Oracles beyond no panic, hang or runaway memory: a statement that decodes re-encodes to exactly
//! its text; a release that passes its bounds check has at most 16 signatures of at most 1 KiB; a
//! signature by the fixed trusted key over other bytes never verifies; a keyring built from a
//! policy that decodes judges without panicking; a public key that parses has a key id that
//! round-trips through its base64.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use modelfs::format::release::{MAX_SIGNATURES, Release, Statement};
use modelfs::format::trust;
use modelfs::trust::Signer;
use modelfs::trust::keys::{self, FileSigner, Passphrase, parse_public_key, signature_key_id};
use modelfs::trust::policy::Keyring;

/// A key pair made once per process, its signature over a fixed text, and a file to write
/// candidate secret keys to.
struct Fixture {
    signer: FileSigner,
    dir: std::path::PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = modelfs_fuzz::scratch_dir("release");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        keys::generate(&dir, "fixed", &Passphrase::None).unwrap();
        let signer = FileSigner::open(&dir.join("fixed.key"), &Passphrase::None).unwrap();
        Fixture { signer, dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let mut parts = data.splitn(3, |&b| b == 0);
    let statement = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let signature = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let rest = parts.next().unwrap_or_default();

    if let Ok(decoded) = Statement::decode(&statement) {
        assert_eq!(
            decoded.encode(),
            statement,
            "a statement decodes only from its canonical text"
        );
    }
    let release = Release {
        statement: statement.clone(),
        signatures: signature.split("\n\n").map(str::to_owned).collect(),
    };
    if release.check_bounds().is_ok() {
        assert!(release.signatures.len() <= MAX_SIGNATURES);
    }

    // Signatures: the key id they name, and whether they verify with the fixed key.
    let _ = signature_key_id(&signature);
    let public = fixture.signer.public_key_text();
    let (id, key) = keys::public_key(public.lines().nth(1).unwrap()).unwrap();
    if keys::verify(&key, statement.as_bytes(), &signature).is_ok() {
        assert_eq!(signature_key_id(&signature), Some(id));
        // A forger who knows no secret key cannot have signed anything but what we signed;
        // the fixture signs only the fixed text below.
        assert_eq!(statement.as_bytes(), b"modelfs fuzz fixed text");
    }
    let good = fixture
        .signer
        .sign(b"modelfs fuzz fixed text", "fixed")
        .unwrap();
    assert!(keys::verify(&key, rest, &good).is_err() || rest == b"modelfs fuzz fixed text");

    // Key files: a public key file, and a secret key file (no passphrase: never runs scrypt).
    if let Ok(parsed) = parse_public_key(Path::new("/stick/key.pub"), rest) {
        let (again, _) = keys::public_key(&parsed.base64).expect("a parsed key parses again");
        assert_eq!(again, parsed.id);
    }
    let path = fixture.dir.join("candidate.key");
    std::fs::write(&path, rest).unwrap();
    if let Ok(signer) = FileSigner::open(&path, &Passphrase::None) {
        let made = signer.sign(b"x", "y").unwrap();
        let line = signer.public_key_text();
        let (_, key) = keys::public_key(line.lines().nth(1).unwrap()).unwrap();
        keys::verify(&key, b"x", &made).expect("a key that opens signs verifiably");
    }

    // A trust policy, and judging the statement and signature with it.
    if let Ok(policy) = trust::decode(Path::new("/store/trust.json"), rest)
        && let Ok(keyring) = Keyring::new(Path::new("/store/trust.json"), &policy)
    {
        let _ = keyring.check(statement.as_bytes(), &release.signatures);
        let _ = keyring.signers(statement.as_bytes(), &release.signatures);
    }
});
