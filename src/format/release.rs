//! Release statement layout: what a publisher signs about one version of a model.
//!
//! Owns [`Statement`] (the canonical JSON text a signature covers) and [`Release`] (a statement with
//! its minisign signatures, as the registry carries it). A statement names the model, its version,
//! a channel, a sequence number that only grows per model and channel, when it was made and when it
//! expires, and every file with its size, blake3, sha256 and manifest id. A manifest lists chunk ids
//! and every chunk is verified against its id when read, so a signature over the statement covers
//! every byte of the model.
//!
//! The encoding is canonical: compact JSON, fields in declaration order, files sorted by path.
//! [`Statement::decode`] accepts only bytes that re-encode to themselves, so one statement has one
//! text, and what was signed is what is shown. Statements come from other stores and are
//! untrusted: their size, field values and signature count are bounded before anything uses them.
//! Checking a statement against keys and manifests is `trust::release`; nothing here does I/O.

use serde::{Deserialize, Serialize};

use crate::format::registry::Layout;
use crate::id::{Digest, ManifestId};

/// Value of the `format` field.
pub const RELEASE_FORMAT_TAG: &str = "modelfs-release";
/// Statement layout version written by this build.
pub const RELEASE_FORMAT_VERSION: u32 = 1;
/// Largest statement accepted: a folder model of about 20,000 files.
pub const MAX_STATEMENT_LEN: usize = 8 << 20;
/// Most signatures one release carries.
pub const MAX_SIGNATURES: usize = 16;
/// Largest signature text accepted (a minisign signature with a short trusted comment is ~300 B).
pub const MAX_SIGNATURE_LEN: usize = 1024;

/// What a publisher states about one version of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Always [`RELEASE_FORMAT_TAG`].
    pub format: String,
    /// Layout version.
    pub version: u32,
    /// Model name.
    pub model: String,
    /// The model's version name.
    pub model_version: String,
    /// Release channel (`stable`, `beta`, …); sequence numbers count per model and channel.
    pub channel: String,
    /// Higher than every earlier release of this model on this channel.
    pub sequence: u64,
    /// Unix seconds when the statement was made.
    pub created_unix: u64,
    /// Unix seconds after which the statement is no longer accepted; `None`: never expires.
    pub expires_unix: Option<u64>,
    /// Single file or folder.
    pub layout: Layout,
    /// Every file, sorted by path.
    pub files: Vec<StatementFile>,
}

/// One file of a released version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementFile {
    /// Path relative to the model root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// blake3 of the whole file.
    pub blake3: Digest,
    /// sha256 of the whole file.
    pub sha256: Digest,
    /// The file's manifest.
    pub manifest: ManifestId,
}

/// A statement and the signatures made over its text, as the registry carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The statement's canonical text ([`Statement::encode`]), exactly as signed.
    pub statement: String,
    /// Minisign signatures of `statement`, each the four-line text of a `.minisig` file.
    pub signatures: Vec<String>,
}

/// Why a statement or release failed to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseFormatError {
    /// Larger than [`MAX_STATEMENT_LEN`], or more or larger signatures than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// Not a statement of this layout.
    #[error("not a release statement: {0}")]
    Malformed(String),
    /// Written by a newer modelfs.
    #[error("statement format version {0} is newer than this build reads")]
    NewerVersion(u32),
    /// Valid JSON, but not in canonical form: not the text a signer produces.
    #[error("statement is not in canonical form")]
    NotCanonical,
}

impl Statement {
    /// The canonical text: compact JSON, fields in declaration order.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a Statement always serializes to JSON")
    }

    /// Decodes a statement's text, accepting only the canonical form.
    pub fn decode(text: &str) -> Result<Statement, ReleaseFormatError> {
        if text.len() > MAX_STATEMENT_LEN {
            return Err(ReleaseFormatError::TooLarge(format!(
                "statement of {} bytes is larger than {MAX_STATEMENT_LEN}",
                text.len()
            )));
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ReleaseFormatError::Malformed(e.to_string()))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(RELEASE_FORMAT_TAG) {
            return Err(ReleaseFormatError::Malformed("wrong format tag".into()));
        }
        let version = super::json_version(&value);
        if version > RELEASE_FORMAT_VERSION {
            return Err(ReleaseFormatError::NewerVersion(version));
        }
        let statement: Statement = serde_json::from_value(value)
            .map_err(|e| ReleaseFormatError::Malformed(e.to_string()))?;
        if statement.version == 0 {
            return Err(ReleaseFormatError::Malformed("version 0".into()));
        }
        if statement.encode() != text {
            return Err(ReleaseFormatError::NotCanonical);
        }
        Ok(statement)
    }
}

impl Release {
    /// Checks the bounds of a release read from a registry: statement size, signature count and
    /// sizes. The statement itself is decoded with [`Statement::decode`].
    pub fn check_bounds(&self) -> Result<(), ReleaseFormatError> {
        if self.statement.len() > MAX_STATEMENT_LEN {
            return Err(ReleaseFormatError::TooLarge(format!(
                "statement of {} bytes is larger than {MAX_STATEMENT_LEN}",
                self.statement.len()
            )));
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(ReleaseFormatError::TooLarge(format!(
                "{} signatures, more than {MAX_SIGNATURES}",
                self.signatures.len()
            )));
        }
        if let Some(long) = self.signatures.iter().find(|s| s.len() > MAX_SIGNATURE_LEN) {
            return Err(ReleaseFormatError::TooLarge(format!(
                "a signature of {} bytes, larger than {MAX_SIGNATURE_LEN}",
                long.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &str = r#"{"format":"modelfs-release","version":1,"model":"llama","model_version":"v2","channel":"stable","sequence":3,"created_unix":1795000000,"expires_unix":1802776000,"layout":"file","files":[{"path":"llama.gguf","size":4096,"blake3":"0101010101010101010101010101010101010101010101010101010101010101","sha256":"0202020202020202020202020202020202020202020202020202020202020202","manifest":"0303030303030303030303030303030303030303030303030303030303030303"}]}"#;

    fn golden() -> Statement {
        Statement {
            format: RELEASE_FORMAT_TAG.into(),
            version: 1,
            model: "llama".into(),
            model_version: "v2".into(),
            channel: "stable".into(),
            sequence: 3,
            created_unix: 1_795_000_000,
            expires_unix: Some(1_802_776_000),
            layout: Layout::File,
            files: vec![StatementFile {
                path: "llama.gguf".into(),
                size: 4096,
                blake3: Digest([1; 32]),
                sha256: Digest([2; 32]),
                manifest: ManifestId([3; 32]),
            }],
        }
    }

    #[test]
    fn golden_text_round_trips() {
        assert_eq!(golden().encode(), GOLDEN);
        assert_eq!(Statement::decode(GOLDEN).unwrap(), golden());
    }

    #[test]
    fn only_the_canonical_text_decodes() {
        let spaced = GOLDEN.replace(r#""sequence":3"#, r#""sequence": 3"#);
        assert_eq!(
            Statement::decode(&spaced),
            Err(ReleaseFormatError::NotCanonical)
        );
        let upper = GOLDEN.replace("0101", "0A0A");
        assert!(Statement::decode(&upper).is_err());
        let extra = GOLDEN.replace(r#""layout""#, r#""owner":"x","layout""#);
        assert!(matches!(
            Statement::decode(&extra),
            Err(ReleaseFormatError::Malformed(_))
        ));
        let newer = GOLDEN.replace(r#""version":1"#, r#""version":9"#);
        assert_eq!(
            Statement::decode(&newer),
            Err(ReleaseFormatError::NewerVersion(9))
        );
        let huge = " ".repeat(MAX_STATEMENT_LEN + 1);
        assert!(matches!(
            Statement::decode(&huge),
            Err(ReleaseFormatError::TooLarge(_))
        ));
    }

    #[test]
    fn bounds_are_checked() {
        let mut release = Release {
            statement: GOLDEN.into(),
            signatures: vec!["x".into(); MAX_SIGNATURES],
        };
        release.check_bounds().unwrap();
        release.signatures.push("x".into());
        assert!(release.check_bounds().is_err());
        release.signatures = vec!["x".repeat(MAX_SIGNATURE_LEN + 1)];
        assert!(release.check_bounds().is_err());
    }
}
