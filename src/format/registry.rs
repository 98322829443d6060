//! Registry layout: `registry.json`, the list of models, their versions and files.
//!
//! Owns the serde structs of the registry file. The registry is the store's commit point: a model
//! exists once the registry naming it has been atomically renamed into place. Name rules and the
//! read-modify-write cycle (bumping the generation) live in `store::registry`. [`decode`] checks
//! the tag and the version before anything else, so a registry from a newer modelfs is reported
//! as newer, not corrupt.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::release::Release;
use crate::id::ManifestId;

/// Value of the `format` field.
pub const REGISTRY_FORMAT_TAG: &str = "modelfs-registry";
/// Largest registry file read.
pub const MAX_REGISTRY_LEN: u64 = 64 << 20;
/// Newest registry layout version this build reads and writes. Version 2 adds releases, the
/// rollback choice, retention, high-water marks and Hugging Face repo ids; a registry that uses
/// none of them is still written as version 1, so older builds keep reading it.
pub const REGISTRY_FORMAT_VERSION: u32 = 2;

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
    /// The highest release sequence number accepted per model and channel (v2). Kept when a
    /// model is removed, so an older release cannot come back in after `rm` and `gc`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub high_water: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            format: REGISTRY_FORMAT_TAG.to_owned(),
            // An empty registry uses nothing of version 2 (see `needed_version`).
            version: 1,
            generation: 0,
            models: BTreeMap::new(),
            high_water: BTreeMap::new(),
        }
    }
}

/// One model: its versions, oldest first; the last is what a bare name means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Versions in the order they were added.
    pub versions: Vec<VersionEntry>,
    /// The version a bare name means when it is not the newest: set by `rollback` (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// How many versions `gc` retains, newest first (v2); `None`: [`DEFAULT_KEEP`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<u32>,
    /// The Hugging Face repo id (`ORG/NAME`) the mount's `.hf` view shows the model under (v2);
    /// `None`: `modelfs/NAME`, computed, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hf_repo: Option<String>,
}

/// Versions of a model `gc` retains unless `keep` says otherwise.
pub const DEFAULT_KEEP: u32 = 3;

impl ModelEntry {
    /// A model with these versions and no rollback choice, retention setting or repo id.
    pub fn new(versions: Vec<VersionEntry>) -> ModelEntry {
        ModelEntry {
            versions,
            current: None,
            keep: None,
            hf_repo: None,
        }
    }
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
    /// The signed release statement of this version, if it has one (v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
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

/// Decodes the registry read from `path` (named in errors): checks the `format` tag, then the
/// version (so a registry written by a newer modelfs gives [`Error::NewerFormat`] even if its
/// other fields changed), then decodes the rest.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Registry> {
    let invalid =
        |e: serde_json::Error| Error::corrupt(path, format!("registry is not valid: {e}"));
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    if value.get("format").and_then(|f| f.as_str()) != Some(REGISTRY_FORMAT_TAG) {
        return Err(Error::corrupt(path, "not a modelfs registry"));
    }
    let version = super::json_version(&value);
    super::check_version("registry", path, version, REGISTRY_FORMAT_VERSION)?;
    serde_json::from_value(value).map_err(invalid)
}

/// The layout version `registry` needs: 2 if it uses a field version 1 lacks, else 1.
pub fn needed_version(registry: &Registry) -> u32 {
    let v2 = !registry.high_water.is_empty()
        || registry.models.values().any(|m| {
            m.current.is_some()
                || m.keep.is_some()
                || m.hf_repo.is_some()
                || m.versions.iter().any(|v| v.release.is_some())
        });
    if v2 { 2 } else { 1 }
}

/// Encodes a registry as pretty-printed JSON (two-space indent, fields in declaration order,
/// models sorted by name). The caller sets the version and generation.
pub fn encode(registry: &Registry) -> Vec<u8> {
    serde_json::to_vec_pretty(registry).expect("a Registry always serializes to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &str = r#"{
  "format": "modelfs-registry",
  "version": 1,
  "generation": 7,
  "models": {
    "llama": {
      "versions": [
        {
          "version": "v1",
          "added_unix": 1700000000,
          "layout": "file",
          "files": [
            {
              "path": "llama.gguf",
              "size": 4096,
              "manifest": "0101010101010101010101010101010101010101010101010101010101010101"
            }
          ]
        }
      ]
    },
    "minilm": {
      "versions": [
        {
          "version": "v1",
          "added_unix": 1700000100,
          "layout": "dir",
          "files": [
            {
              "path": "config.json",
              "size": 12,
              "manifest": "0202020202020202020202020202020202020202020202020202020202020202"
            },
            {
              "path": "onnx/model.onnx",
              "size": 0,
              "manifest": "0303030303030303030303030303030303030303030303030303030303030303"
            }
          ]
        }
      ]
    }
  }
}"#;

    fn golden() -> Registry {
        let file = |path: &str, size, byte| FileEntry {
            path: path.to_owned(),
            size,
            manifest: ManifestId([byte; 32]),
        };
        let model = |added_unix, layout, files| {
            ModelEntry::new(vec![VersionEntry {
                version: "v1".to_owned(),
                added_unix,
                layout,
                files,
                release: None,
            }])
        };
        let mut registry = Registry {
            generation: 7,
            ..Registry::default()
        };
        // Inserted out of order: the encoding sorts models by name.
        registry.models.insert(
            "minilm".to_owned(),
            model(
                1_700_000_100,
                Layout::Dir,
                vec![file("config.json", 12, 2), file("onnx/model.onnx", 0, 3)],
            ),
        );
        registry.models.insert(
            "llama".to_owned(),
            model(
                1_700_000_000,
                Layout::File,
                vec![file("llama.gguf", 4096, 1)],
            ),
        );
        registry
    }

    fn path() -> &'static Path {
        Path::new("/store/registry.json")
    }

    #[test]
    fn golden_text() {
        assert_eq!(String::from_utf8(encode(&golden())).unwrap(), GOLDEN);
        assert_eq!(decode(path(), GOLDEN.as_bytes()).unwrap(), golden());
        let empty = Registry::default();
        assert_eq!(
            String::from_utf8(encode(&empty)).unwrap(),
            "{\n  \"format\": \"modelfs-registry\",\n  \"version\": 1,\n  \"generation\": 0,\n  \"models\": {}\n}"
        );
    }

    #[test]
    fn a_newer_registry_is_newer_even_with_changed_fields() {
        let newer = r#"{"format": "modelfs-registry", "version": 99, "generation": "x", "models": [], "tags": {}}"#;
        match decode(path(), newer.as_bytes()) {
            Err(Error::NewerFormat {
                what: "registry",
                found: 99,
                supported: REGISTRY_FORMAT_VERSION,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn wrong_tag_bad_json_and_bad_fields_are_corrupt() {
        let reason = |bytes: &[u8]| match decode(path(), bytes) {
            Err(Error::Corrupt { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        let wrong_tag = GOLDEN.replace("modelfs-registry", "modelfs-store");
        assert_eq!(reason(wrong_tag.as_bytes()), "not a modelfs registry");
        assert_eq!(reason(b"[]"), "not a modelfs registry");
        assert_eq!(
            reason(GOLDEN.replace(r#""version": 1,"#, "").as_bytes()),
            "registry has version 0"
        );
        assert!(reason(b"{").starts_with("registry is not valid: "));
        let bad_layout = GOLDEN.replace(r#""layout": "dir""#, r#""layout": "tree""#);
        assert!(reason(bad_layout.as_bytes()).starts_with("registry is not valid: "));
    }

    #[test]
    fn a_repo_id_is_a_version_2_field_omitted_when_unset() {
        let mut registry = golden();
        assert_eq!(needed_version(&registry), 1);
        let minilm = registry.models.get_mut("minilm").unwrap();
        minilm.hf_repo = Some("acme/minilm".into());
        assert_eq!(needed_version(&registry), 2);
        registry.version = 2;
        let text = String::from_utf8(encode(&registry)).unwrap();
        assert!(
            text.contains("      ],\n      \"hf_repo\": \"acme/minilm\"\n    }"),
            "{text}"
        );
        assert_eq!(decode(path(), text.as_bytes()).unwrap(), registry);
        assert_eq!(text.matches("hf_repo").count(), 1, "omitted where unset");
    }
}
