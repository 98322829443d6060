//! Trust policy layout: `trust.json`, the keys a store accepts releases from and how many must sign.
//!
//! Owns the serde structs of the policy file. The policy is this store's own decision and never
//! travels: `import`, `pull`, `pack` and `serve` carry releases and their signatures, never the
//! keys that judge them. Parsing a key's text and checking signatures is `trust`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Value of the `format` field.
pub const TRUST_FORMAT_TAG: &str = "modelfs-trust";
/// Policy layout version written by this build.
pub const TRUST_FORMAT_VERSION: u32 = 1;
/// Largest policy file read.
pub const MAX_TRUST_LEN: u64 = 1 << 20;
/// Most keys a policy holds.
pub const MAX_TRUSTED_KEYS: usize = 256;

/// The store's trust policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPolicy {
    /// Always [`TRUST_FORMAT_TAG`].
    pub format: String,
    /// Layout version.
    pub version: u32,
    /// Signatures by distinct trusted keys a release needs (at least 1, at most the key count).
    pub threshold: u32,
    /// Trusted keys, in the order they were added.
    pub keys: Vec<TrustedKey>,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        TrustPolicy {
            format: TRUST_FORMAT_TAG.into(),
            version: TRUST_FORMAT_VERSION,
            threshold: 1,
            keys: Vec::new(),
        }
    }
}

/// One trusted key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    /// Key id as minisign shows it: 16 upper-case hex digits.
    pub id: String,
    /// The public key's base64 line, as in a minisign `.pub` file.
    pub public_key: String,
    /// The `.pub` file's untrusted comment, to tell keys apart in `key ls`.
    pub comment: String,
    /// Unix seconds when it was trusted.
    pub added_unix: u64,
}

/// Decodes the policy read from `path`, checking the tag, version, key count and threshold.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<TrustPolicy> {
    let invalid =
        |e: serde_json::Error| Error::corrupt(path, format!("trust policy is not valid: {e}"));
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    if value.get("format").and_then(|f| f.as_str()) != Some(TRUST_FORMAT_TAG) {
        return Err(Error::corrupt(path, "not a modelfs trust policy"));
    }
    super::check_version(
        "trust policy",
        path,
        super::json_version(&value),
        TRUST_FORMAT_VERSION,
    )?;
    let policy: TrustPolicy = serde_json::from_value(value).map_err(invalid)?;
    if policy.keys.len() > MAX_TRUSTED_KEYS {
        return Err(Error::corrupt(
            path,
            format!("{} keys, more than {MAX_TRUSTED_KEYS}", policy.keys.len()),
        ));
    }
    if policy.threshold == 0
        || (!policy.keys.is_empty() && policy.threshold as usize > policy.keys.len())
    {
        return Err(Error::corrupt(
            path,
            format!(
                "threshold {} does not fit {} trusted keys",
                policy.threshold,
                policy.keys.len()
            ),
        ));
    }
    Ok(policy)
}

/// Encodes the policy as pretty-printed JSON.
pub fn encode(policy: &TrustPolicy) -> Vec<u8> {
    serde_json::to_vec_pretty(policy).expect("a TrustPolicy always serializes to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checks() {
        let path = Path::new("/store/trust.json");
        let mut policy = TrustPolicy::default();
        policy.keys.push(TrustedKey {
            id: "0123456789ABCDEF".into(),
            public_key: "RWQ".into(),
            comment: "release key".into(),
            added_unix: 1_795_000_000,
        });
        assert_eq!(decode(path, &encode(&policy)).unwrap(), policy);
        policy.threshold = 2;
        assert!(decode(path, &encode(&policy)).is_err());
        policy.threshold = 0;
        assert!(decode(path, &encode(&policy)).is_err());
        assert!(decode(path, b"{\"format\":\"modelfs-trust\",\"version\":7}").is_err());
        assert!(decode(path, b"[]").is_err());
    }
}
