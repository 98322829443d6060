//! A source that shows only signed releases: what `mount --require-signed` reads through.
//!
//! Owns [`SignedOnly`], a decorator over any [`Source`]: its registry keeps only the versions whose
//! release passes the keyring (statement matches the files, enough trusted signatures, not
//! expired), so the mount never lists anything else. A model whose current version is not signed
//! shows its newest signed version instead; a model with none disappears. Chunk reads pass
//! straight through: they are verified against their ids as always, and those ids come from
//! manifests the signed statements name. Verdicts are cached per statement and file list, so a
//! registry refresh costs a lookup per version, not a signature check; expiry is checked every
//! time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tracing::warn;

use super::policy::Keyring;
use super::release;
use crate::error::Result;
use crate::format::manifest::Manifest;
use crate::format::registry::{Registry, VersionEntry};
use crate::id::{ChunkId, ManifestId};
use crate::source::{Place, Source};
use crate::store::chunk::Check;

/// A cached verdict on one release: when its statement expires (`None`: never), or why it was
/// refused.
type Verdict = std::result::Result<Option<u64>, String>;

/// A source showing only releases signed to the keyring's policy.
pub struct SignedOnly {
    inner: Arc<dyn Source>,
    keyring: Keyring,
    /// Checked releases, by blake3 of (model, version entry).
    verdicts: Mutex<HashMap<[u8; 32], Verdict>>,
}

impl SignedOnly {
    /// Wraps `inner`; `keyring` must hold at least one key.
    pub fn new(inner: Arc<dyn Source>, keyring: Keyring) -> SignedOnly {
        SignedOnly {
            inner,
            keyring,
            verdicts: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `model`'s `version` is signed to the policy as of `now`.
    fn admits(&self, model: &str, version: &VersionEntry, now: u64) -> bool {
        let key = {
            let mut hasher = blake3::Hasher::new();
            hasher.update(model.as_bytes());
            hasher.update(&[0]);
            hasher.update(&serde_json::to_vec(version).unwrap_or_default());
            *hasher.finalize().as_bytes()
        };
        let cached = self
            .verdicts
            .lock()
            .expect("verdict lock")
            .get(&key)
            .cloned();
        let verdict = cached.unwrap_or_else(|| {
            // Expiry is judged below, at every refresh: check as if at the dawn of time here.
            let verdict = release::check(model, version, &self.keyring, 0, &mut |id| {
                self.inner.manifest(id)
            })
            .map(|ok| ok.statement.expires_unix)
            .map_err(|reason| reason.to_string());
            if let Err(reason) = &verdict {
                warn!(model, version = %version.version, %reason, "not shown: release not signed to the store's policy");
            }
            self.verdicts
                .lock()
                .expect("verdict lock")
                .insert(key, verdict.clone());
            verdict
        });
        match verdict {
            Ok(expires) => expires.is_none_or(|at| at > now),
            Err(_) => false,
        }
    }
}

impl Source for SignedOnly {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn registry(&self) -> Result<Registry> {
        let mut registry = self.inner.registry()?;
        let now = crate::store::now_unix();
        registry.models.retain(|model, entry| {
            entry.versions.retain(|v| self.admits(model, v, now));
            if entry
                .current
                .as_ref()
                .is_some_and(|c| !entry.versions.iter().any(|v| &v.version == c))
            {
                entry.current = None;
            }
            !entry.versions.is_empty()
        });
        Ok(registry)
    }

    fn manifest(&self, id: &ManifestId) -> Result<Manifest> {
        self.inner.manifest(id)
    }

    fn locate(&self, ids: &[ChunkId]) -> Result<Vec<Option<Place>>> {
        self.inner.locate(ids)
    }

    fn read_stored(&self, id: &ChunkId, place: &Place, dst: &mut [u8]) -> Result<()> {
        self.inner.read_stored(id, place, dst)
    }

    fn read_run(
        &self,
        first: &Place,
        len: u64,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        self.inner.read_run(first, len, each)
    }

    fn traffic(&self) -> Option<(u64, u64)> {
        self.inner.traffic()
    }

    fn run_size(&self) -> u64 {
        self.inner.run_size()
    }

    fn read_chunk(
        &self,
        id: &ChunkId,
        place: &Place,
        dst: &mut [u8],
        check: Check,
        stored: &mut dyn FnMut(&[u8]),
    ) -> Result<Place> {
        self.inner.read_chunk(id, place, dst, check, stored)
    }

    fn refresh(&self) -> Result<()> {
        self.inner.refresh()
    }
}
