//! Catalog layout: `catalog.json`, the list of a store's sealed packs and where their tables are.
//!
//! Owns the serde structs of the catalog file. A reader that has only the store's files — a web
//! server or a bucket holding a copy of the store, no RocksDB — needs it to know which packs exist
//! and where each pack's table starts, so one ranged read fetches a table. It is derived data:
//! writers rewrite it at every commit, before the registry, from the packs themselves. Like every
//! byte from another store, a catalog is untrusted: a reader bounds it, checks each pack's trailer
//! against it, and verifies every chunk against its id.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::pack::{MAX_PACK_LEN, MAX_TABLE_ENTRIES, TABLE_ENTRY_LEN, TRAILER_LEN};
use crate::id::PackId;

/// Value of the `format` field.
pub const CATALOG_FORMAT_TAG: &str = "modelfs-catalog";
/// Catalog layout version written by this build.
pub const CATALOG_FORMAT_VERSION: u32 = 1;
/// Largest catalog read: about 100,000 packs (25 TiB of 256 MiB packs).
pub const MAX_CATALOG_LEN: u64 = 16 << 20;

/// The sealed packs of a store, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Always [`CATALOG_FORMAT_TAG`].
    pub format: String,
    /// Layout version.
    pub version: u32,
    /// The registry generation this catalog was written with.
    pub generation: u64,
    /// Packs in the order they were sealed.
    pub packs: Vec<PackEntry>,
}

/// One sealed pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    /// Its id (`packs/<id>.pack`).
    pub id: PackId,
    /// File length.
    pub bytes: u64,
    /// Where its table starts; the table and trailer run from here to the end.
    pub table_offset: u64,
    /// Table rows.
    pub entries: u64,
}

impl PackEntry {
    /// Length of the table and trailer: what one ranged read of the pack's tail fetches.
    pub fn tail_len(&self) -> u64 {
        self.bytes - self.table_offset
    }

    /// Whether the sizes are consistent and within the format's limits, so a reader can size its
    /// buffers from them.
    fn fits(&self) -> bool {
        self.bytes <= MAX_PACK_LEN
            && self.entries <= MAX_TABLE_ENTRIES
            && self.table_offset <= self.bytes
            && self.bytes - self.table_offset
                == self.entries * TABLE_ENTRY_LEN as u64 + TRAILER_LEN as u64
    }
}

impl Catalog {
    /// A catalog of `packs`, written along registry generation `generation`.
    pub fn new(generation: u64, packs: Vec<PackEntry>) -> Catalog {
        Catalog {
            format: CATALOG_FORMAT_TAG.to_owned(),
            version: CATALOG_FORMAT_VERSION,
            generation,
            packs,
        }
    }
}

/// Decodes a catalog read from `path` (named in errors): the tag, then the version, then the
/// rest; every pack's sizes must be consistent and no pack may be listed twice.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Catalog> {
    let invalid = |e: serde_json::Error| Error::corrupt(path, format!("catalog is not valid: {e}"));
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    if value.get("format").and_then(|f| f.as_str()) != Some(CATALOG_FORMAT_TAG) {
        return Err(Error::corrupt(path, "not a modelfs catalog"));
    }
    let version = super::json_version(&value);
    super::check_version("catalog", path, version, CATALOG_FORMAT_VERSION)?;
    let catalog: Catalog = serde_json::from_value(value).map_err(invalid)?;
    let mut seen = std::collections::HashSet::new();
    for pack in &catalog.packs {
        if !pack.fits() {
            return Err(Error::corrupt(
                path,
                format!("catalog gives pack {} impossible sizes", pack.id),
            ));
        }
        if !seen.insert(pack.id) {
            return Err(Error::corrupt(
                path,
                format!("catalog lists pack {} twice", pack.id),
            ));
        }
    }
    Ok(catalog)
}

/// Encodes a catalog as pretty-printed JSON.
pub fn encode(catalog: &Catalog) -> Vec<u8> {
    serde_json::to_vec_pretty(catalog).expect("a Catalog always serializes to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &str = r#"{
  "format": "modelfs-catalog",
  "version": 1,
  "generation": 4,
  "packs": [
    {
      "id": "000102030405060708090a0b0c0d0e0f",
      "bytes": 200,
      "table_offset": 88,
      "entries": 1
    }
  ]
}"#;

    fn pack() -> PackEntry {
        PackEntry {
            id: "000102030405060708090a0b0c0d0e0f".parse().unwrap(),
            bytes: 200,
            table_offset: 88,
            entries: 1,
        }
    }

    #[test]
    fn golden_encoding() {
        let catalog = Catalog::new(4, vec![pack()]);
        assert_eq!(String::from_utf8(encode(&catalog)).unwrap(), GOLDEN);
        assert_eq!(decode(Path::new("c"), GOLDEN.as_bytes()).unwrap(), catalog);
    }

    #[test]
    fn impossible_sizes_and_repeats_are_refused() {
        let mut bad = pack();
        bad.entries = 2;
        for packs in [vec![bad], vec![pack(), pack()]] {
            let bytes = encode(&Catalog::new(1, packs));
            assert!(decode(Path::new("c"), &bytes).is_err());
        }
        let newer = GOLDEN.replace("\"version\": 1", "\"version\": 9");
        assert!(matches!(
            decode(Path::new("c"), newer.as_bytes()),
            Err(Error::NewerFormat { .. })
        ));
    }
}
