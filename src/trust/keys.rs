//! Key pairs in files: making them (`key new`), reading public keys, and signing with a secret key.
//!
//! Owns the minisign `.pub` and `.key` files. A secret key is protected by a passphrase (scrypt, as
//! minisign does) unless made with `--no-password`; the passphrase comes from
//! `MODELFS_KEY_PASSPHRASE`, a file, or a prompt on the terminal, never from an argument (it would
//! show in `ps`). Key files are untrusted input like any other: a file that is not a key gives
//! [`TrustError::NotAKey`], a wrong passphrase [`TrustError::WrongPassphrase`].

use std::io::{Cursor, IsTerminal, Write};
use std::path::{Path, PathBuf};

use minisign::{KeyPair, PublicKey, SecretKey, SecretKeyBox};

use super::{KeyId, Signer, TrustError};
use crate::error::{Error, Result};
use crate::store::fsutil::{read_capped, write_atomic_with};

/// Largest key file read.
const MAX_KEY_FILE_LEN: u64 = 64 << 10;

/// Where a secret key's passphrase comes from.
#[derive(Debug, Clone)]
pub enum Passphrase {
    /// The key has none (`--no-password`).
    None,
    /// Given (from the environment or a file).
    Given(String),
    /// Asked for on the terminal.
    Prompt,
}

impl Passphrase {
    /// `MODELFS_KEY_PASSPHRASE`, else the first line of `file`, else a prompt if stdin is a
    /// terminal; `None` when none of these is there (a key that needs one then says so).
    pub fn from_env_or_file(file: Option<&Path>) -> Result<Passphrase> {
        if let Ok(given) = std::env::var("MODELFS_KEY_PASSPHRASE") {
            return Ok(Passphrase::Given(given));
        }
        if let Some(file) = file {
            let bytes = read_capped(file, MAX_KEY_FILE_LEN).map_err(|e| Error::io(file, e))?;
            let text = String::from_utf8_lossy(&bytes);
            let line = text.lines().next().unwrap_or_default();
            return Ok(Passphrase::Given(line.to_owned()));
        }
        if std::io::stdin().is_terminal() {
            return Ok(Passphrase::Prompt);
        }
        Ok(Passphrase::None)
    }
}

/// A public key read from a `.pub` file (or the base64 line of one).
#[derive(Debug, Clone)]
pub struct PublicKeyText {
    /// Its id.
    pub id: KeyId,
    /// The base64 line.
    pub base64: String,
    /// The file's untrusted comment (empty when only the line was given).
    pub comment: String,
}

/// Parses a public key's base64 line into a key minisign verifies with; only Ed25519 keys
/// (`Ed`) are keys.
pub fn public_key(base64: &str) -> std::result::Result<(KeyId, PublicKey), String> {
    let key = PublicKey::from_base64(base64.trim()).map_err(|e| e.to_string())?;
    let bytes = key.to_bytes();
    if bytes.get(..2) != Some(b"Ed".as_slice()) {
        return Err("not an Ed25519 key".into());
    }
    let id = KeyId::from_slice(key.keynum()).ok_or("key id is not 8 bytes")?;
    Ok((id, key))
}

/// Reads a minisign `.pub` file: two lines, `untrusted comment: …` and the key.
pub fn read_public_key(path: &Path) -> Result<PublicKeyText> {
    let bytes = read_capped(path, MAX_KEY_FILE_LEN).map_err(|e| Error::io(path, e))?;
    parse_public_key(path, &bytes)
}

/// Parses the text of a `.pub` file read from `path` (named in errors).
pub fn parse_public_key(path: &Path, bytes: &[u8]) -> Result<PublicKeyText> {
    let not_a_key = |reason: &str| TrustError::NotAKey {
        path: path.to_owned(),
        what: "public key",
        reason: reason.to_owned(),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| not_a_key("not text"))?;
    let mut lines = text.lines();
    let comment = lines
        .next()
        .and_then(|l| l.strip_prefix("untrusted comment:"))
        .ok_or_else(|| not_a_key("the first line is not `untrusted comment: …`"))?;
    let line = lines.next().ok_or_else(|| not_a_key("no key line"))?;
    let (id, _) = public_key(line).map_err(|reason| not_a_key(&reason))?;
    Ok(PublicKeyText {
        id,
        base64: line.trim().to_owned(),
        comment: comment.trim().chars().filter(|c| !c.is_control()).collect(),
    })
}

/// Writes a new key pair as `dir/NAME.pub` and `dir/NAME.key` (mode 0600), never over existing
/// files; the secret key is encrypted with `passphrase` unless it is [`Passphrase::None`].
pub fn generate(dir: &Path, name: &str, passphrase: &Passphrase) -> Result<(KeyId, PathBuf)> {
    crate::store::registry::validate_name("key name", name)?;
    let (pub_path, key_path) = (
        dir.join(format!("{name}.pub")),
        dir.join(format!("{name}.key")),
    );
    for path in [&pub_path, &key_path] {
        if path.exists() {
            return Err(TrustError::Policy(format!(
                "{} exists; pick another name or folder (keys are never overwritten)",
                path.display()
            ))
            .into());
        }
    }
    let crypto = |e: minisign::PError| TrustError::Policy(format!("cannot make a key: {e}"));
    let pair = match passphrase {
        Passphrase::None => KeyPair::generate_unencrypted_keypair(),
        Passphrase::Given(p) => KeyPair::generate_encrypted_keypair(Some(p.clone())),
        Passphrase::Prompt => KeyPair::generate_encrypted_keypair(None),
    }
    .map_err(crypto)?;
    let id = KeyId::from_slice(pair.pk.keynum()).expect("minisign key ids are 8 bytes");
    let comment = format!("modelfs key {name} {id}");
    let secret = pair.sk.to_box(Some(&comment)).map_err(crypto)?.to_bytes();
    let public = format!("untrusted comment: {comment}\n{}\n", pair.pk.to_base64());
    write_new(&key_path, 0o600, &secret)?;
    write_new(&pub_path, 0o644, public.as_bytes())?;
    Ok((id, pub_path))
}

/// Writes a file that must not exist yet (a key is never replaced).
fn write_new(path: &Path, mode: u32, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, mode, |file| file.write_all(bytes))
}

/// A secret key read from a `.key` file, ready to sign.
pub struct FileSigner {
    secret: SecretKey,
    public: PublicKey,
    id: KeyId,
}

impl FileSigner {
    /// Reads and opens the secret key at `path`.
    pub fn open(path: &Path, passphrase: &Passphrase) -> Result<FileSigner> {
        let bytes = read_capped(path, MAX_KEY_FILE_LEN).map_err(|e| Error::io(path, e))?;
        let not_a_key = |reason: String| TrustError::NotAKey {
            path: path.to_owned(),
            what: "secret key",
            reason,
        };
        let text = String::from_utf8(bytes).map_err(|_| not_a_key("not text".into()))?;
        if !text.starts_with("untrusted comment:") || text.lines().count() < 2 {
            return Err(not_a_key("the first line is not `untrusted comment: …`".into()).into());
        }
        let secret = match SecretKeyBox::from_string(&text)
            .and_then(SecretKeyBox::into_unencrypted_secret_key)
        {
            Ok(secret) => secret,
            Err(e) if e.to_string().contains("might be encrypted") => {
                let given = match passphrase {
                    Passphrase::Given(p) => Some(p.clone()),
                    Passphrase::Prompt => None,
                    Passphrase::None => {
                        return Err(TrustError::NeedPassphrase(path.to_owned()).into());
                    }
                };
                SecretKeyBox::from_string(&text)
                    .and_then(|b| b.into_secret_key(given))
                    .map_err(|e| {
                        if e.to_string().contains("Wrong password") {
                            TrustError::WrongPassphrase(path.to_owned())
                        } else {
                            not_a_key(e.to_string())
                        }
                    })?
            }
            Err(e) => return Err(not_a_key(e.to_string()).into()),
        };
        let public = PublicKey::from_secret_key(&secret).map_err(|e| not_a_key(e.to_string()))?;
        let id =
            KeyId::from_slice(public.keynum()).ok_or_else(|| not_a_key("bad key id".into()))?;
        Ok(FileSigner { secret, public, id })
    }
}

impl Signer for FileSigner {
    fn key_id(&self) -> KeyId {
        self.id
    }

    fn public_key_text(&self) -> String {
        format!(
            "untrusted comment: modelfs key {}\n{}\n",
            self.id,
            self.public.to_base64()
        )
    }

    fn sign(&self, data: &[u8], trusted_comment: &str) -> std::result::Result<String, TrustError> {
        minisign::sign(
            Some(&self.public),
            &self.secret,
            Cursor::new(data),
            Some(trusted_comment),
            Some(&format!("signature from modelfs key {}", self.id)),
        )
        .map(|signature| signature.into_string())
        .map_err(|e| TrustError::Policy(format!("cannot sign with key {}: {e}", self.id)))
    }
}

/// Checks the four-line minisign `signature` of `data` against `key`.
pub fn verify(key: &PublicKey, data: &[u8], signature: &str) -> std::result::Result<(), String> {
    let signature = signature_box(signature)?;
    minisign::verify(key, &signature, Cursor::new(data), true, false, false)
        .map_err(|e| e.to_string())
}

/// The key id a minisign signature text names, if it parses.
pub fn signature_key_id(signature: &str) -> Option<KeyId> {
    KeyId::from_slice(signature_box(signature).ok()?.keynum())
}

/// Base64 of a 64-byte Ed25519 signature: 86 characters and two `=` of padding.
const GLOBAL_SIGNATURE_BASE64_LEN: usize = 88;

/// Parses a minisign signature text. minisign does not check the length of the global signature
/// (the fourth line, over the signature and the trusted comment) and panics verifying one shorter
/// than 64 bytes, so a signature from an update pack or a peer is refused here first unless that
/// line is exactly the base64 of 64 bytes.
fn signature_box(signature: &str) -> std::result::Result<minisign::SignatureBox, String> {
    let parsed = minisign::SignatureBox::from_string(signature).map_err(|e| e.to_string())?;
    let global = signature.lines().nth(3).map_or("", str::trim);
    if global.len() != GLOBAL_SIGNATURE_BASE64_LEN || !global.ends_with("==") {
        return Err("the global signature (fourth line) is not 64 bytes".into());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_sign_verify_and_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let (id, pub_path) = generate(dir.path(), "release", &Passphrase::None).unwrap();
        let public = read_public_key(&pub_path).unwrap();
        assert_eq!(public.id, id);
        let signer = FileSigner::open(&dir.path().join("release.key"), &Passphrase::None).unwrap();
        assert_eq!(signer.key_id(), id);
        let signature = signer.sign(b"statement", "modelfs").unwrap();
        assert_eq!(signature_key_id(&signature), Some(id));
        let (_, key) = public_key(&public.base64).unwrap();
        verify(&key, b"statement", &signature).unwrap();
        assert!(verify(&key, b"statemenT", &signature).is_err());
        // A global signature of the wrong length is refused, not verified: minisign panicked on
        // one of 22 bytes (found by the `release` fuzz target).
        let lines: Vec<&str> = signature.lines().collect();
        for global in ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", &lines[3][..84], ""] {
            let short = format!("{}\n{}\n{}\n{global}\n", lines[0], lines[1], lines[2]);
            let refused = verify(&key, b"statement", &short).unwrap_err();
            assert!(
                refused.contains("global signature") || refused.contains("Missing"),
                "{refused}"
            );
        }
        assert!(generate(dir.path(), "release", &Passphrase::None).is_err());
        std::fs::write(dir.path().join("junk.pub"), "hello\nworld\n").unwrap();
        assert!(read_public_key(&dir.path().join("junk.pub")).is_err());
        assert!(FileSigner::open(&dir.path().join("junk.pub"), &Passphrase::None).is_err());
        assert!(FileSigner::open(&pub_path, &Passphrase::None).is_err());
    }

    #[test]
    fn a_wrong_passphrase_is_named() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), "k", &Passphrase::Given("right".into())).unwrap();
        let path = dir.path().join("k.key");
        match FileSigner::open(&path, &Passphrase::Given("wrong".into())) {
            Err(Error::Trust(TrustError::WrongPassphrase(p))) => assert_eq!(p, path),
            other => panic!("{:?}", other.err()),
        }
        match FileSigner::open(&path, &Passphrase::None) {
            Err(Error::Trust(TrustError::NeedPassphrase(_))) => {}
            other => panic!("{:?}", other.err()),
        }
        FileSigner::open(&path, &Passphrase::Given("right".into())).unwrap();
    }
}
