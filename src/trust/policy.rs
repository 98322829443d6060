//! The store's trust policy: which keys it trusts, how many must sign, and checking signatures.
//!
//! Owns reading and writing `STORE/trust.json` (layout: `format::trust`) and [`Keyring`], the
//! parsed keys a signature is checked against. A store without a policy file, or with no keys in
//! it, has no policy: releases are carried and shown, but nothing is refused for want of a
//! signature.

use std::path::Path;

use minisign::PublicKey;

use super::keys::{self, PublicKeyText};
use super::{KeyId, Refusal};
use crate::error::{Error, Result};
use crate::format::trust::{self as layout, MAX_TRUST_LEN, TrustPolicy, TrustedKey};
use crate::store::fsutil::{read_capped, write_atomic};

/// Reads the policy at `path`; a missing file is the empty policy.
pub fn load(path: &Path) -> Result<TrustPolicy> {
    match read_capped(path, MAX_TRUST_LEN) {
        Ok(bytes) => layout::decode(path, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustPolicy::default()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Writes the policy at `path` atomically.
pub fn save(path: &Path, policy: &TrustPolicy) -> Result<()> {
    write_atomic(path, &layout::encode(policy))
}

/// Adds `key` to `policy`; returns false if it was already trusted.
pub fn trust(policy: &mut TrustPolicy, key: &PublicKeyText, now: u64) -> Result<bool> {
    let id = key.id.to_string();
    if let Some(known) = policy.keys.iter().find(|k| k.id == id) {
        if known.public_key != key.base64 {
            return Err(super::TrustError::Policy(format!(
                "a different key with id {id} is already trusted; `modelfs key untrust {id}` first"
            ))
            .into());
        }
        return Ok(false);
    }
    if policy.keys.len() >= layout::MAX_TRUSTED_KEYS {
        return Err(super::TrustError::Policy(format!(
            "the policy already holds {} keys, the most it may",
            layout::MAX_TRUSTED_KEYS
        ))
        .into());
    }
    policy.keys.push(TrustedKey {
        id,
        public_key: key.base64.clone(),
        comment: key.comment.clone(),
        added_unix: now,
    });
    Ok(true)
}

/// Removes the key with `id` (as `key ls` shows it); the threshold is lowered to fit.
pub fn untrust(policy: &mut TrustPolicy, id: &str) -> Result<()> {
    let before = policy.keys.len();
    policy.keys.retain(|k| !k.id.eq_ignore_ascii_case(id));
    if policy.keys.len() == before {
        return Err(super::TrustError::Policy(format!(
            "no trusted key has id {id}; `modelfs key ls` lists them"
        ))
        .into());
    }
    policy.threshold = policy.threshold.min(policy.keys.len().max(1) as u32);
    Ok(())
}

/// Sets how many distinct trusted keys must sign a release.
pub fn set_threshold(policy: &mut TrustPolicy, threshold: u32) -> Result<()> {
    if threshold == 0 || threshold as usize > policy.keys.len() {
        return Err(super::TrustError::Policy(format!(
            "a threshold of {threshold} needs at least that many trusted keys; the store trusts {}",
            policy.keys.len()
        ))
        .into());
    }
    policy.threshold = threshold;
    Ok(())
}

/// The trusted keys of a policy, parsed, and its threshold.
pub struct Keyring {
    keys: Vec<(KeyId, PublicKey)>,
    threshold: u32,
}

impl Keyring {
    /// Parses the keys of `policy` (read from `path`, named in errors).
    pub fn new(path: &Path, policy: &TrustPolicy) -> Result<Keyring> {
        let keys = policy
            .keys
            .iter()
            .map(|k| {
                keys::public_key(&k.public_key).map_err(|reason| {
                    Error::corrupt(path, format!("trusted key {}: {reason}", k.id))
                })
            })
            .collect::<Result<_>>()?;
        Ok(Keyring {
            keys,
            threshold: policy.threshold,
        })
    }

    /// Whether there is a policy to enforce (at least one trusted key).
    pub fn is_active(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks `signatures` of `data`: returns the distinct trusted keys whose signatures verify,
    /// if there are at least as many as the threshold. A signature by a trusted key that does not
    /// verify is an error of its own (someone changed the statement or the signature); signatures
    /// by other keys are ignored unless no trusted key signed at all.
    pub fn check(
        &self,
        data: &[u8],
        signatures: &[String],
    ) -> std::result::Result<Vec<KeyId>, Refusal> {
        if signatures.is_empty() {
            return Err(Refusal::Unsigned);
        }
        let mut valid: Vec<KeyId> = Vec::new();
        let mut strangers: Vec<String> = Vec::new();
        for signature in signatures {
            let Some(id) = keys::signature_key_id(signature) else {
                return Err(Refusal::Malformed(
                    "a signature is not a minisign signature".into(),
                ));
            };
            match self.keys.iter().find(|(known, _)| *known == id) {
                Some((_, key)) => {
                    keys::verify(key, data, signature)
                        .map_err(|reason| Refusal::BadSignature { key: id, reason })?;
                    if !valid.contains(&id) {
                        valid.push(id);
                    }
                }
                None => strangers.push(id.to_string()),
            }
        }
        if valid.is_empty() {
            return Err(Refusal::UntrustedKeys(strangers.join(", ")));
        }
        if valid.len() < self.threshold as usize {
            return Err(Refusal::TooFewSignatures {
                valid: valid.len(),
                threshold: self.threshold,
            });
        }
        Ok(valid)
    }

    /// Which of `signatures` verify against a trusted key (for `ls` and `verify`, which show
    /// rather than refuse).
    pub fn signers(&self, data: &[u8], signatures: &[String]) -> Vec<(KeyId, bool)> {
        signatures
            .iter()
            .filter_map(|signature| {
                let id = keys::signature_key_id(signature)?;
                let good = self
                    .keys
                    .iter()
                    .any(|(known, key)| *known == id && keys::verify(key, data, signature).is_ok());
                Some((id, good))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::Signer;
    use crate::trust::keys::{FileSigner, Passphrase, generate, read_public_key};

    #[test]
    fn distinct_trusted_signers_count_toward_the_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let mut policy = TrustPolicy::default();
        let mut signers = Vec::new();
        for name in ["a", "b", "c"] {
            let (_, public) = generate(dir.path(), name, &Passphrase::None).unwrap();
            let key = dir.path().join(format!("{name}.key"));
            signers.push(FileSigner::open(&key, &Passphrase::None).unwrap());
            if name != "c" {
                assert!(trust(&mut policy, &read_public_key(&public).unwrap(), 0).unwrap());
            }
        }
        set_threshold(&mut policy, 2).unwrap();
        assert!(set_threshold(&mut policy, 3).is_err());
        let keyring = Keyring::new(Path::new("trust.json"), &policy).unwrap();
        let sign = |i: usize| signers[i].sign(b"statement", "t").unwrap();

        assert_eq!(keyring.check(b"statement", &[]), Err(Refusal::Unsigned));
        // The same key twice is one signer; an untrusted key adds nothing.
        assert_eq!(
            keyring.check(b"statement", &[sign(0), sign(0), sign(2)]),
            Err(Refusal::TooFewSignatures {
                valid: 1,
                threshold: 2
            })
        );
        assert!(matches!(
            keyring.check(b"statement", &[sign(2)]),
            Err(Refusal::UntrustedKeys(_))
        ));
        assert_eq!(
            keyring
                .check(b"statement", &[sign(0), sign(1)])
                .unwrap()
                .len(),
            2
        );
        // A trusted key's signature over other bytes is a forgery, not a missing signature.
        assert!(matches!(
            keyring.check(b"statemenT", &[sign(0), sign(1)]),
            Err(Refusal::BadSignature { .. })
        ));
        untrust(&mut policy, &signers[1].key_id().to_string()).unwrap();
        assert_eq!(policy.threshold, 1);
    }
}
