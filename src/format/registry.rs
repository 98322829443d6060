//! Registry layout: `registry.json`, the list of models, their versions and files.
//!
//! Owns the serde structs of the registry file. The registry is the store's commit point: a model
//! exists once the registry naming it has been atomically renamed into place. Name rules and the
//! read-modify-write cycle live in `store::registry`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::id::ManifestId;

/// Value of the `format` field.
pub const REGISTRY_FORMAT_TAG: &str = "modelfs-registry";
/// Registry layout version written by this build.
pub const REGISTRY_FORMAT_VERSION: u32 = 1;

/// All models in a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// Always [`REGISTRY_FORMAT_TAG`].
    pub format: String,
    /// Layout version.
    pub version: u32,
    /// Incremented by every write, so readers can tell that the registry changed.
    pub generation: u64,
    /// Models by name.
    pub models: BTreeMap<String, ModelEntry>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            format: REGISTRY_FORMAT_TAG.to_owned(),
            version: REGISTRY_FORMAT_VERSION,
            generation: 0,
            models: BTreeMap::new(),
        }
    }
}

/// One model: its versions, oldest first; the last is what a bare name means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Versions in the order they were added.
    pub versions: Vec<VersionEntry>,
}

/// One version of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionEntry {
    /// Version name (`v1`, `v2`, … or chosen with `--version`).
    pub version: String,
    /// Unix seconds when it was added; shown as the files' mtime.
    pub added_unix: u64,
    /// Whether the model was a single file or a folder.
    pub layout: Layout,
    /// The files, sorted by path.
    pub files: Vec<FileEntry>,
}

/// Shape of a model as added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// One file, shown as `NAME.EXT`.
    File,
    /// A folder, shown as the directory `NAME/`.
    Dir,
}

/// One file of a model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the model root, `/`-separated (for a single-file model: the file's name).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// The file's manifest.
    pub manifest: ManifestId,
}
