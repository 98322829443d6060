//! On-disk layouts of a modelfs store, kept apart from the code that walks them.
//!
//! Owns the magic numbers, version constants, version checks and byte layouts of every file a
//! store holds: the store config ([`config`]), pack files ([`pack`]), the pack catalog
//! ([`catalog`]) and the grouped payload of a pack record ([`grouped`]), file manifests
//! ([`manifest`]), the registry ([`registry`]), release statements ([`release`]), the trust
//! policy ([`trust`]), the audit log and its seal ([`audit`]), the inventory a site sends a
//! publisher ([`inventory`]), and the table of pinned models ([`pins`]).
//! Everything here encodes to and decodes from bytes; nothing opens files, touches RocksDB or
//! knows where a file lives (that is `store`). Each module pins its encoding with golden-byte
//! tests, so a format change shows up as a reviewed diff. `docs/FORMAT.md` describes the same
//! layouts byte by byte.

pub mod audit;
pub mod catalog;
pub mod config;
pub mod grouped;
pub mod inventory;
pub mod manifest;
pub mod pack;
pub mod pins;
pub mod registry;
pub mod release;
pub mod trust;

use std::path::Path;

use crate::error::{Error, Result};

/// Version of the store layout as a whole. Version 2 stores may hold version 2 packs (byte-grouped
/// chunks); a writer opening a version 1 store raises it to 2 before writing (nothing else changes).
pub const STORE_FORMAT_VERSION: u32 = 2;

/// Rejects structures written by a newer modelfs (or with a nonsensical version 0).
pub fn check_version(what: &'static str, path: &Path, found: u32, supported: u32) -> Result<()> {
    if found > supported {
        return Err(Error::NewerFormat {
            what,
            path: path.to_owned(),
            found,
            supported,
        });
    }
    if found == 0 {
        return Err(Error::corrupt(path, format!("{what} has version 0")));
    }
    Ok(())
}

/// A little-endian decoding cursor over a byte slice; every read is bounds-checked.
pub(crate) struct LeReader<'a> {
    bytes: &'a [u8],
}

impl<'a> LeReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        LeReader { bytes }
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)
            .map(|b| b.try_into().expect("take returned N bytes"))
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|b| b[0])
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    /// The bytes not yet read.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.bytes
    }
}

/// The version of a JSON layout: its `version` field, 0 (rejected by [`check_version`]) if
/// missing or not an integer, saturated so a huge version still reads as newer.
fn json_version(value: &serde_json::Value) -> u32 {
    value
        .get("version")
        .and_then(|v| v.as_u64())
        .map_or(0, |v| u32::try_from(v).unwrap_or(u32::MAX))
}

/// Bytes from annotated hex, for golden tests: whitespace is ignored and `#` starts a comment
/// that runs to the end of the line.
#[cfg(test)]
pub(crate) fn unhex(annotated: &str) -> Vec<u8> {
    let digits: String = annotated
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Lowercase hex of `bytes`, for golden tests.
#[cfg(test)]
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
