//! Trust: who may publish models into a store, and the proof that they did.
//!
//! Owns keys and signatures — minisign's Ed25519 format, so `minisign -V` checks what modelfs
//! signs — and the judgement of releases against a store's policy. Submodules own one piece each:
//! - `keys`: key pairs in files (`key new`), public key files, a file key as a [`Signer`];
//! - `pkcs11`: a key held in an HSM as a [`Signer`];
//! - `policy`: the store's `trust.json` — trusted keys and the threshold — and checking a
//!   signature against them;
//! - `release`: release statements made from a store's manifests (`sign`), and the checks every
//!   release passes before `import`, `pull` or a `--require-signed` mount accepts it;
//! - `signed`: the source decorator a `--require-signed` mount reads through.
//!
//! The layouts are `format::trust` and `format::release`; docs/TRUST.md explains the model.

pub mod keys;
pub mod pkcs11;
pub mod policy;
pub mod release;
pub mod signed;

use std::fmt;
use std::path::PathBuf;

/// A minisign key id: 8 bytes, shown as minisign shows it (16 upper-case hex digits of the bytes
/// read as a little-endian number).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The id in a minisign key or signature (`keynum`), if it is 8 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<KeyId> {
        bytes.try_into().ok().map(KeyId)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Something that makes minisign signatures: a key file, or a key in an HSM.
pub trait Signer {
    /// The key's id (as in its public key and in every signature it makes).
    fn key_id(&self) -> KeyId;
    /// The public key, in minisign's `.pub` text format (two lines: `untrusted comment: …` and
    /// base64).
    fn public_key_text(&self) -> String;
    /// Signs `data` (prehashed, algorithm `ED`: Ed25519 over blake2b-512 of the data) with
    /// `trusted_comment`; returns the four-line minisign signature text.
    fn sign(&self, data: &[u8], trusted_comment: &str) -> Result<String, TrustError>;
}

/// What can go wrong with keys, signatures and releases. Each names the key file, module or
/// release involved.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A file given as a key is not one.
    #[error("{path} is not a minisign {what}: {reason}")]
    NotAKey {
        /// The file.
        path: PathBuf,
        /// "public key" or "secret key".
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The passphrase does not open the secret key.
    #[error("wrong passphrase for secret key {0}")]
    WrongPassphrase(PathBuf),
    /// A passphrase is needed and none was given.
    #[error(
        "secret key {0} is protected by a passphrase: set MODELFS_KEY_PASSPHRASE, pass --passphrase-file, or run on a terminal"
    )]
    NeedPassphrase(PathBuf),
    /// The PKCS#11 module or token failed.
    #[error("PKCS#11 module {module}: {reason}")]
    Pkcs11 {
        /// The module's path.
        module: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A release fails the store's policy or its own checks.
    #[error("release {release} refused: {reason}")]
    Refused {
        /// `MODEL@VERSION`.
        release: String,
        /// Why.
        reason: Refusal,
    },
    /// A key or policy operation that makes no sense for this store.
    #[error("{0}")]
    Policy(String),
}

/// Why a release was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It carries no statement or no signature.
    #[error("it is not signed (the store's trust policy requires signed releases)")]
    Unsigned,
    /// The statement cannot be read.
    #[error("its statement is malformed: {0}")]
    Malformed(String),
    /// The statement does not describe this version's files.
    #[error("its statement does not match the model: {0}")]
    Mismatch(String),
    /// No signature is by a trusted key.
    #[error(
        "it is signed only by keys this store does not trust ({0}); `modelfs key trust KEY.pub` to trust one"
    )]
    UntrustedKeys(String),
    /// A signature by a trusted key does not verify.
    #[error("the signature by key {key} does not verify: {reason}")]
    BadSignature {
        /// The key the signature names.
        key: KeyId,
        /// What failed.
        reason: String,
    },
    /// Fewer distinct trusted keys signed than the policy requires.
    #[error("it has {valid} valid signature(s) by trusted keys; the policy requires {threshold}")]
    TooFewSignatures {
        /// Valid signatures by distinct trusted keys.
        valid: usize,
        /// What the policy requires.
        threshold: u32,
    },
    /// The statement has expired.
    #[error("its statement expired at {0} (Unix seconds); ask the publisher for a fresh signature")]
    Expired(u64),
    /// An older (or the same) sequence number than one already accepted.
    #[error(
        "sequence {sequence} on channel {channel:?} is not above {highest}, the highest this store has accepted; pass --allow-downgrade to take it anyway"
    )]
    Downgrade {
        /// The release's sequence number.
        sequence: u64,
        /// Its channel.
        channel: String,
        /// The high-water mark for the model and channel.
        highest: u64,
    },
}
