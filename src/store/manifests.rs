//! The store's manifest files: `STORE/manifests/<id>`, each named by the blake3 of its bytes.
//!
//! Owns [`Manifests`]: loading one (checked against its id by `format::manifest`), storing one
//! atomically, listing and removing them. The byte layout is `format::manifest`.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::manifest::MAX_MANIFEST_LEN;
use crate::format::manifest::Manifest;
use crate::id::ManifestId;
use crate::store::fsutil::{read_capped, write_atomic};

/// The manifest folder of one store.
#[derive(Debug, Clone)]
pub struct Manifests {
    dir: PathBuf,
}

impl Manifests {
    /// The manifests under `dir`.
    pub fn new(dir: PathBuf) -> Manifests {
        Manifests { dir }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &ManifestId) -> PathBuf {
        self.dir.join(id.to_hex())
    }

    /// Loads and checks manifest `id`.
    pub fn load(&self, id: &ManifestId) -> Result<Manifest> {
        let path = self.path(id);
        let bytes = match read_capped(&path, MAX_MANIFEST_LEN) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingManifest(*id));
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        Manifest::decode(id, &bytes).map_err(|e| Error::corrupt(path, format!("manifest {e}")))
    }

    /// Stores `manifest` (a no-op if an intact identical one exists); returns its id and whether
    /// it was written now.
    pub fn put(&self, manifest: &Manifest) -> Result<(ManifestId, bool)> {
        let bytes = manifest.encode();
        let id = ManifestId::of(&bytes);
        let created = self.load(&id).is_err();
        if created {
            write_atomic(&self.path(&id), &bytes)?;
        }
        Ok((id, created))
    }

    /// Ids of all manifest files present.
    pub fn ids(&self) -> Result<Vec<ManifestId>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&self.dir).at(&self.dir)? {
            let entry = entry.at(&self.dir)?;
            // Only names this store writes: a stray name (upper-case hex, say) is not a manifest.
            let name = entry.file_name();
            let id = name.to_str().and_then(|n| n.parse::<ManifestId>().ok());
            if let Some(id) = id.filter(|id| name.to_str() == Some(id.to_hex().as_str())) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Deletes manifest `id`.
    pub fn remove(&self, id: &ManifestId) -> Result<()> {
        let path = self.path(id);
        std::fs::remove_file(&path).at(path)
    }
}
