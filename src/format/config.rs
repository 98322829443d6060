//! The store config file, `modelfs.json` at the store's root.
//!
//! Owns [`StoreConfig`]: the store's format version, identity, and the parameters fixed at `init`
//! (chunking, pack size, compression). It is JSON so an operator can read it; it is written once by
//! `init`, and rewritten only to raise an older store's version. [`decode`] checks the tag and the
//! version before anything else, so a store from a newer modelfs is reported as newer, not corrupt.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::StoreId;

/// Value of the `format` field, so a stray JSON file is not taken for a store.
pub const CONFIG_FORMAT_TAG: &str = "modelfs-store";

/// Largest config file read.
pub const MAX_CONFIG_LEN: u64 = 64 << 10;
/// Name of the config file inside the store directory.
pub const CONFIG_FILE_NAME: &str = "modelfs.json";

/// Everything fixed about a store when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    /// Always [`CONFIG_FORMAT_TAG`].
    pub format: String,
    /// Store layout version ([`super::STORE_FORMAT_VERSION`] when written by this build).
    pub version: u32,
    /// Random identity, used to key per-machine caches of this store.
    pub store_id: StoreId,
    /// Unix seconds when `init` ran.
    pub created_unix: u64,
    /// Content-defined chunking parameters; changing them would break dedup with existing chunks.
    pub chunking: ChunkingParams,
    /// A pack is sealed once it reaches this many bytes.
    pub pack_target_bytes: u64,
    /// When to store a chunk compressed.
    pub compression: CompressionParams,
}

/// FastCDC (2020) sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkingParams {
    /// No chunk is shorter (except a file's last).
    pub min_size: u32,
    /// Target average chunk size.
    pub avg_size: u32,
    /// No chunk is longer.
    pub max_size: u32,
}

/// The compression policy applied per chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressionParams {
    /// zstd level used when compressing.
    pub zstd_level: i32,
    /// A chunk is stored compressed only if that saves at least this many percent.
    pub min_saving_percent: u32,
}

/// Decodes the config file read from `path` (named in errors): checks the `format` tag, then the
/// version (so a store written by a newer modelfs gives [`Error::NewerFormat`] even if its other
/// fields changed), then decodes the rest.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<StoreConfig> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt(path, format!("store config is not JSON: {e}")))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(CONFIG_FORMAT_TAG) {
        return Err(Error::corrupt(path, "not a modelfs store config"));
    }
    let version = super::json_version(&value);
    super::check_version("store", path, version, super::STORE_FORMAT_VERSION)?;
    serde_json::from_value(value).map_err(|e| Error::corrupt(path, format!("store config: {e}")))
}

/// Encodes a config as pretty-printed JSON (two-space indent, fields in declaration order).
pub fn encode(config: &StoreConfig) -> Vec<u8> {
    serde_json::to_vec_pretty(config).expect("a StoreConfig always serializes to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &str = r#"{
  "format": "modelfs-store",
  "version": 2,
  "store_id": "000102030405060708090a0b0c0d0e0f",
  "created_unix": 1700000000,
  "chunking": {
    "min_size": 16384,
    "avg_size": 65536,
    "max_size": 262144
  },
  "pack_target_bytes": 1073741824,
  "compression": {
    "zstd_level": 3,
    "min_saving_percent": 5
  }
}"#;

    fn golden() -> StoreConfig {
        StoreConfig {
            format: CONFIG_FORMAT_TAG.to_owned(),
            version: 2,
            store_id: StoreId(std::array::from_fn(|i| i as u8)),
            created_unix: 1_700_000_000,
            chunking: ChunkingParams {
                min_size: 16 << 10,
                avg_size: 64 << 10,
                max_size: 256 << 10,
            },
            pack_target_bytes: 1 << 30,
            compression: CompressionParams {
                zstd_level: 3,
                min_saving_percent: 5,
            },
        }
    }

    fn path() -> &'static Path {
        Path::new("/store/modelfs.json")
    }

    #[test]
    fn golden_text() {
        assert_eq!(String::from_utf8(encode(&golden())).unwrap(), GOLDEN);
        assert_eq!(decode(path(), GOLDEN.as_bytes()).unwrap(), golden());
    }

    #[test]
    fn older_versions_decode() {
        let v1 = GOLDEN.replace(r#""version": 2"#, r#""version": 1"#);
        assert_eq!(decode(path(), v1.as_bytes()).unwrap().version, 1);
    }

    #[test]
    fn a_newer_store_is_newer_even_with_changed_fields() {
        let newer = r#"{"format": "modelfs-store", "version": 99, "store_id": 7, "shards": []}"#;
        match decode(path(), newer.as_bytes()) {
            Err(Error::NewerFormat {
                what: "store",
                found: 99,
                supported,
                ..
            }) => assert_eq!(supported, crate::format::STORE_FORMAT_VERSION),
            other => panic!("{other:?}"),
        }
        let huge = GOLDEN.replace(r#""version": 2"#, r#""version": 4294967297"#);
        assert!(matches!(
            decode(path(), huge.as_bytes()),
            Err(Error::NewerFormat {
                found: u32::MAX,
                ..
            })
        ));
    }

    #[test]
    fn wrong_tag_bad_json_and_bad_fields_are_corrupt() {
        let reason = |bytes: &[u8]| match decode(path(), bytes) {
            Err(Error::Corrupt { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        let wrong_tag = GOLDEN.replace("modelfs-store", "modelfs-registry");
        assert_eq!(reason(wrong_tag.as_bytes()), "not a modelfs store config");
        assert_eq!(
            reason(GOLDEN.replace(r#""version": 2,"#, "").as_bytes()),
            "store has version 0"
        );
        assert!(reason(b"{").starts_with("store config is not JSON: "));
        let bad_field = GOLDEN.replace(r#""created_unix": 1700000000"#, r#""created_unix": "x""#);
        assert!(reason(bad_field.as_bytes()).starts_with("store config: "));
    }
}
