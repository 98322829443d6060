//! Pin table layout: `pins.json`, which model versions are pinned and the plain files that hold them.
//!
//! Owns the serde structs of the table. A pinned file is named by its manifest id in the pin
//! area's `files/` folder, never by anything the table says, so a damaged table cannot point the
//! mount outside the pin area. Where the pin area lives and how files are written is `pin`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ManifestId;

/// Value of the `format` field.
pub const PINS_FORMAT_TAG: &str = "modelfs-pins";
/// Table layout version written by this build.
pub const PINS_FORMAT_VERSION: u32 = 1;
/// Largest table read (a pin costs ~200 bytes per file).
pub const MAX_PINS_LEN: u64 = 16 << 20;

/// The pin table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinTable {
    /// Always [`PINS_FORMAT_TAG`].
    pub format: String,
    /// Layout version.
    pub version: u32,
    /// Pinned versions, in the order they were pinned.
    pub pins: Vec<Pin>,
}

impl Default for PinTable {
    fn default() -> Self {
        PinTable {
            format: PINS_FORMAT_TAG.into(),
            version: PINS_FORMAT_VERSION,
            pins: Vec::new(),
        }
    }
}

/// One pinned model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// Model name.
    pub model: String,
    /// Version name.
    pub version: String,
    /// Pinned by the mount's `--pin-budget` (evicted least-recently-used first), not by `pin`.
    pub auto: bool,
    /// Unix seconds when it was pinned.
    pub pinned_unix: u64,
    /// Unix seconds when the mount last opened one of its files (the pin time until then).
    pub used_unix: u64,
    /// The version's files.
    pub files: Vec<PinnedFile>,
}

/// One pinned file: `files/<manifest id>` in the pin area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedFile {
    /// Path inside the version.
    pub path: String,
    /// The file's manifest: names the pinned copy.
    pub manifest: ManifestId,
    /// Size in bytes.
    pub size: u64,
    /// fs-verity digest (sha256, hex) the kernel measured after enabling verity on the copy;
    /// `None` where the file system has no fs-verity.
    pub verity: Option<String>,
}

/// Decodes the table read from `path`, checking its tag and version.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<PinTable> {
    let invalid =
        |e: serde_json::Error| Error::corrupt(path, format!("pin table is not valid: {e}"));
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    if value.get("format").and_then(|f| f.as_str()) != Some(PINS_FORMAT_TAG) {
        return Err(Error::corrupt(path, "not a modelfs pin table"));
    }
    super::check_version(
        "pin table",
        path,
        super::json_version(&value),
        PINS_FORMAT_VERSION,
    )?;
    let table: PinTable = serde_json::from_value(value).map_err(invalid)?;
    for pin in &table.pins {
        if let Some(digest) = pin
            .files
            .iter()
            .filter_map(|f| f.verity.as_deref())
            .find(|d| {
                d.len() != 64
                    || !d
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
        {
            return Err(Error::corrupt(
                path,
                format!("fs-verity digest {digest:?} is not 64 lower-case hex digits"),
            ));
        }
    }
    Ok(table)
}

/// Encodes the table as pretty-printed JSON.
pub fn encode(table: &PinTable) -> Vec<u8> {
    serde_json::to_vec_pretty(table).expect("a PinTable always serializes to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PinTable {
        PinTable {
            pins: vec![Pin {
                model: "llama".into(),
                version: "v1".into(),
                auto: false,
                pinned_unix: 1_795_000_000,
                used_unix: 1_795_000_100,
                files: vec![PinnedFile {
                    path: "model.gguf".into(),
                    manifest: ManifestId(*blake3::hash(b"m").as_bytes()),
                    size: 7,
                    verity: Some("ab".repeat(32)),
                }],
            }],
            ..PinTable::default()
        }
    }

    #[test]
    fn round_trip_and_checks() {
        let path = Path::new("/store/pins/pins.json");
        assert_eq!(decode(path, &encode(&table())).unwrap(), table());
        let mut bad = table();
        bad.pins[0].files[0].verity = Some("../x".into());
        assert!(decode(path, &encode(&bad)).is_err());
        let newer = String::from_utf8(encode(&table()))
            .unwrap()
            .replace("\"version\": 1,", "\"version\": 9,");
        assert!(matches!(
            decode(path, newer.as_bytes()),
            Err(Error::NewerFormat { .. })
        ));
        assert!(decode(path, b"{\"format\":\"other\"}").is_err());
        assert!(decode(path, b"\xff").is_err());
    }
}
