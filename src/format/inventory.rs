//! Inventory layout: what a store holds, as a site sends it to a publisher for an update pack
//! (`modelfs inventory`, read by `modelfs export --have`).
//!
//! Owns [`Inventory`] (the store's id, when it was made, the versions held, the release high-water
//! marks and the chunks held), [`files_digest`] (what tells a version from a same-named other one)
//! and [`ChunkSet`] with its compact encoding. JSON, tag and version checked before the rest:
//!
//! ```json
//! {
//!   "format": "modelfs-inventory",
//!   "version": 1,
//!   "store_id": "32 hex digits",
//!   "created_unix": 1795337000,
//!   "versions": [ { "model": "llama", "version": "v1", "files": "64 hex digits" } ],
//!   "high_water": { "llama": { "stable": 2 } },
//!   "chunks": { "count": 16384, "rice": "base64" }
//! }
//! ```
//!
//! The chunks are a Golomb-coded set: each chunk id's first 8 bytes as a big-endian `u64`, sorted
//! and distinct, the first value and then each gap minus one Rice-coded with parameter
//! `k = leading_zeros(count)` (the quotient in unary, ones ended by a zero, then the `k` low bits;
//! most significant bit first, the last byte padded with zeros), then base64 (standard, padded).
//! That is about `66 - log2(count)` bits a chunk: 5.3 bytes for a 1 TB store of 16 million
//! chunks, against 12 for 12-byte prefixes (sorted random bytes do not compress). Two ids share
//! a prefix with probability `count / 2^64` per chunk asked about; a false "held" only leaves a
//! chunk out of an update pack, which the site's import then reports as missing — never wrong
//! bytes, since every chunk is verified against its full id.
//!
//! An inventory is untrusted input: it is read at most [`MAX_INVENTORY_LEN`] bytes, the count is
//! checked against the bits present before anything is allocated, and only the canonical
//! encoding decodes (strictly increasing values, no bits left over, zero padding).

use std::collections::BTreeMap;
use std::path::Path;

use ct_codecs::{Base64, Decoder, Encoder};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::registry::FileEntry;
use crate::id::{ChunkId, Digest, StoreId};

/// Value of the `format` field.
pub const INVENTORY_FORMAT_TAG: &str = "modelfs-inventory";
/// Inventory layout version written by this build.
pub const INVENTORY_FORMAT_VERSION: u32 = 1;
/// Largest inventory read: about 37 million chunks, a store of some 2 TB.
pub const MAX_INVENTORY_LEN: u64 = 256 << 20;

/// What a store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// The store it describes.
    pub store_id: StoreId,
    /// Unix seconds when it was made.
    pub created_unix: u64,
    /// Every version in the store's registry.
    pub versions: Vec<HeldVersion>,
    /// The store's release high-water marks: per model and channel, the highest sequence number
    /// it accepted (its import refuses releases at or below it).
    pub high_water: BTreeMap<String, BTreeMap<String, u64>>,
    /// The chunks of those versions.
    pub chunks: ChunkSet,
}

/// One version a store holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldVersion {
    /// Model name.
    pub model: String,
    /// Version name.
    pub version: String,
    /// [`files_digest`] of its files.
    pub files: Digest,
}

/// A digest of a version's file list (paths, sizes and manifests, in registry order): equal for
/// the same version in two stores, different for a same-named version of other files. blake3
/// over, per file, the path's length (u64 LE), the path, the size (u64 LE) and the manifest id.
pub fn files_digest(files: &[FileEntry]) -> Digest {
    let mut hasher = blake3::Hasher::new();
    for file in files {
        hasher.update(&(file.path.len() as u64).to_le_bytes());
        hasher.update(file.path.as_bytes());
        hasher.update(&file.size.to_le_bytes());
        hasher.update(file.manifest.as_bytes());
    }
    Digest(*hasher.finalize().as_bytes())
}

/// A set of chunk ids, known by their first 8 bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkSet {
    /// Sorted, distinct.
    prefixes: Vec<u64>,
}

impl ChunkSet {
    /// What the set keeps of a chunk id: its first 8 bytes, big-endian (so values sort as ids do).
    pub fn prefix(id: &ChunkId) -> u64 {
        u64::from_be_bytes(id.0[..8].try_into().expect("a chunk id has 8 bytes"))
    }

    /// The set of `prefixes` (in any order, repeats allowed).
    pub fn from_prefixes(mut prefixes: Vec<u64>) -> ChunkSet {
        prefixes.sort_unstable();
        prefixes.dedup();
        ChunkSet { prefixes }
    }

    /// The chunks in either set.
    pub fn union(&self, other: &ChunkSet) -> ChunkSet {
        ChunkSet::from_prefixes([&self.prefixes[..], &other.prefixes[..]].concat())
    }

    /// Whether a chunk with `id`'s prefix is in the set.
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.prefixes.binary_search(&Self::prefix(id)).is_ok()
    }

    /// Distinct prefixes held.
    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }

    /// The Rice-coded bits (see the module docs).
    fn encode(&self) -> Vec<u8> {
        let k = rice_parameter(self.prefixes.len() as u64);
        let mut bits = BitWriter::default();
        let mut next = 0u64;
        for &value in &self.prefixes {
            let gap = value - next;
            bits.unary(gap >> k);
            bits.put(gap & low_mask(k), k);
            next = value.wrapping_add(1);
        }
        bits.finish()
    }

    /// Decodes `count` Rice-coded values; only the canonical encoding is accepted.
    fn decode(count: u64, bytes: &[u8]) -> std::result::Result<ChunkSet, String> {
        let k = rice_parameter(count);
        // Each value takes at least k + 1 bits: bound the count before allocating for it.
        let most = bytes.len() as u64 * 8 / (u64::from(k) + 1);
        if count > most {
            return Err(format!(
                "claims {count} chunks in {} bytes, room for at most {most}",
                bytes.len()
            ));
        }
        let ended = || format!("the chunk list ends before its {count} chunks");
        let mut bits = BitReader { bytes, pos: 0 };
        let mut prefixes = Vec::with_capacity(count as usize);
        let mut next = 0u128;
        for _ in 0..count {
            let quotient = bits.unary().ok_or_else(ended)?;
            let low = bits.take(k).ok_or_else(ended)?;
            let value = next + (u128::from(quotient) << k | u128::from(low));
            let value = u64::try_from(value)
                .map_err(|_| "a chunk prefix in the list is out of range".to_owned())?;
            prefixes.push(value);
            next = u128::from(value) + 1;
        }
        if !bits.rest_is_padding() {
            return Err("bytes follow the chunk list".into());
        }
        Ok(ChunkSet { prefixes })
    }
}

/// The Rice parameter for `count` values spread over 64 bits: gaps average `2^64 / count`.
fn rice_parameter(count: u64) -> u32 {
    count.leading_zeros().min(63)
}

/// The `bits` low bits set.
fn low_mask(bits: u32) -> u64 {
    u64::MAX.checked_shr(64 - bits).unwrap_or(0)
}

/// Writes bits, most significant first.
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    /// Bits not yet written out, in the low `pending` bits.
    acc: u128,
    pending: u32,
}

impl BitWriter {
    /// Appends the `bits` low bits of `value` (`bits` ≤ 64).
    fn put(&mut self, value: u64, bits: u32) {
        self.acc = self.acc << bits | u128::from(value);
        self.pending += bits;
        while self.pending >= 8 {
            self.pending -= 8;
            self.out.push((self.acc >> self.pending) as u8);
        }
        self.acc &= (1 << self.pending) - 1;
    }

    /// Appends `n` ones and a zero.
    fn unary(&mut self, mut n: u64) {
        while n >= 32 {
            self.put(u64::from(u32::MAX), 32);
            n -= 32;
        }
        self.put(low_mask(n as u32) << 1, n as u32 + 1);
    }

    /// The bytes, the last padded with zero bits.
    fn finish(mut self) -> Vec<u8> {
        if self.pending > 0 {
            self.out.push((self.acc << (8 - self.pending)) as u8);
        }
        self.out
    }
}

/// Reads bits, most significant first.
struct BitReader<'a> {
    bytes: &'a [u8],
    /// Bits read so far.
    pos: usize,
}

impl BitReader<'_> {
    /// The next `bits` bits (≤ 64) as a number, or `None` past the end.
    fn take(&mut self, bits: u32) -> Option<u64> {
        let end = self.pos + bits as usize;
        if end > self.bytes.len() * 8 {
            return None;
        }
        let mut value = 0u128;
        let (first, last) = (self.pos / 8, end.div_ceil(8));
        for &byte in &self.bytes[first..last] {
            value = value << 8 | u128::from(byte);
        }
        value >>= last * 8 - end;
        self.pos = end;
        Some((value & u128::from(low_mask(bits))) as u64)
    }

    /// Counts ones up to the next zero (read too), or `None` if the bytes end first.
    fn unary(&mut self) -> Option<u64> {
        let mut ones = 0u64;
        loop {
            let offset = (self.pos % 8) as u32;
            let rest = self.bytes.get(self.pos / 8)? << offset;
            let run = rest.leading_ones();
            ones += u64::from(run);
            self.pos += run as usize;
            if run < 8 - offset {
                self.pos += 1;
                return Some(ones);
            }
        }
    }

    /// Whether what is left is the zero padding of the last byte.
    fn rest_is_padding(&self) -> bool {
        let end = self.bytes.len() * 8;
        end - self.pos < 8
            && self
                .bytes
                .last()
                .is_none_or(|&last| last & (low_mask((end - self.pos) as u32) as u8) == 0)
    }
}

/// The file as written.
#[derive(Serialize, Deserialize)]
struct InventoryFile {
    format: String,
    version: u32,
    store_id: StoreId,
    created_unix: u64,
    versions: Vec<HeldVersion>,
    #[serde(default)]
    high_water: BTreeMap<String, BTreeMap<String, u64>>,
    chunks: EncodedChunks,
}

/// A [`ChunkSet`] as written.
#[derive(Serialize, Deserialize)]
struct EncodedChunks {
    count: u64,
    rice: String,
}

/// Encodes an inventory as pretty-printed JSON (two-space indent, fields in declaration order).
pub fn encode(inventory: &Inventory) -> Vec<u8> {
    let file = InventoryFile {
        format: INVENTORY_FORMAT_TAG.to_owned(),
        version: INVENTORY_FORMAT_VERSION,
        store_id: inventory.store_id,
        created_unix: inventory.created_unix,
        versions: inventory.versions.clone(),
        high_water: inventory.high_water.clone(),
        chunks: EncodedChunks {
            count: inventory.chunks.len() as u64,
            rice: Base64::encode_to_string(inventory.chunks.encode())
                .expect("base64 of an in-memory buffer fits"),
        },
    };
    serde_json::to_vec_pretty(&file).expect("an inventory always serializes to JSON")
}

/// Decodes the inventory read from `path` (named in errors): the tag, then the version (so one
/// from a newer modelfs reads as newer, not damaged), then the rest, the chunk list last.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Inventory> {
    if bytes.len() as u64 > MAX_INVENTORY_LEN {
        return Err(Error::corrupt(
            path,
            format!("is {} bytes, more than an inventory may be", bytes.len()),
        ));
    }
    let invalid =
        |e: serde_json::Error| Error::corrupt(path, format!("inventory is not valid: {e}"));
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    if value.get("format").and_then(|f| f.as_str()) != Some(INVENTORY_FORMAT_TAG) {
        return Err(Error::corrupt(
            path,
            "not a modelfs inventory (make one with `modelfs inventory` at the site)",
        ));
    }
    super::check_version(
        "inventory",
        path,
        super::json_version(&value),
        INVENTORY_FORMAT_VERSION,
    )?;
    let file: InventoryFile = serde_json::from_value(value).map_err(invalid)?;
    let rice = Base64::decode_to_vec(&file.chunks.rice, None)
        .map_err(|_| Error::corrupt(path, "the chunk list is not base64"))?;
    let chunks = ChunkSet::decode(file.chunks.count, &rice).map_err(|e| Error::corrupt(path, e))?;
    Ok(Inventory {
        store_id: file.store_id,
        created_unix: file.created_unix,
        versions: file.versions,
        high_water: file.high_water,
        chunks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ManifestId;

    const GOLDEN: &str = r#"{
  "format": "modelfs-inventory",
  "version": 1,
  "store_id": "000102030405060708090a0b0c0d0e0f",
  "created_unix": 1795000000,
  "versions": [
    {
      "model": "llama",
      "version": "v1",
      "files": "0505050505050505050505050505050505050505050505050505050505050505"
    }
  ],
  "high_water": {
    "llama": {
      "stable": 2
    }
  },
  "chunks": {
    "count": 3,
    "rice": "AAAAAAAAAAIAAAAAAAAAA7/////////8"
  }
}"#;

    fn golden() -> Inventory {
        Inventory {
            store_id: StoreId(std::array::from_fn(|i| i as u8)),
            created_unix: 1_795_000_000,
            versions: vec![HeldVersion {
                model: "llama".into(),
                version: "v1".into(),
                files: Digest([5; 32]),
            }],
            high_water: BTreeMap::from([("llama".into(), BTreeMap::from([("stable".into(), 2)]))]),
            // k = 62 for 3 values: 1 → "0" and 1 in 62 bits; 2 → gap 0: "0" and 62 zeros;
            // u64::MAX → gap 2^64 - 4: quotient 3 "1110", then 60 ones and 2 zeros.
            chunks: ChunkSet::from_prefixes(vec![u64::MAX, 1, 2, 1]),
        }
    }

    fn path() -> &'static Path {
        Path::new("/site/have.json")
    }

    fn reason(bytes: &[u8]) -> String {
        match decode(path(), bytes) {
            Err(Error::Corrupt { reason, .. }) => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn golden_text_round_trips() {
        assert_eq!(String::from_utf8(encode(&golden())).unwrap(), GOLDEN);
        assert_eq!(decode(path(), GOLDEN.as_bytes()).unwrap(), golden());
    }

    #[test]
    fn rice_coding_round_trips_and_is_compact() {
        for count in [0usize, 1, 2, 7, 1000, 100_000] {
            let ids = crate::testutil::random_bytes(count as u64, count * 8);
            let set = ChunkSet::from_prefixes(
                ids.chunks(8)
                    .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
                    .collect(),
            );
            let bytes = set.encode();
            assert_eq!(ChunkSet::decode(set.len() as u64, &bytes), Ok(set.clone()));
            if count >= 1000 {
                let bits = (bytes.len() * 8) as f64 / count as f64;
                let bound = 66.0 - (count as f64).log2() + 0.5;
                assert!(
                    bits <= bound,
                    "{bits} bits a chunk for {count}, over {bound}"
                );
            }
        }
        let edges = ChunkSet::from_prefixes(vec![0, 1, u64::MAX - 1, u64::MAX]);
        assert_eq!(ChunkSet::decode(4, &edges.encode()), Ok(edges));
    }

    #[test]
    fn contains_looks_at_the_prefix() {
        let id = |first: u8, rest: u8| {
            let mut bytes = [rest; 32];
            bytes[0] = first;
            ChunkId(bytes)
        };
        let set = ChunkSet::from_prefixes(vec![ChunkSet::prefix(&id(1, 9))]);
        assert!(set.contains(&id(1, 9)));
        assert!(!set.contains(&id(2, 9)));
        let mut same_prefix = id(1, 9);
        same_prefix.0[31] = 0;
        assert!(set.contains(&same_prefix));
    }

    #[test]
    fn files_digest_tells_versions_apart() {
        let file = |path: &str, size, byte| FileEntry {
            path: path.into(),
            size,
            manifest: ManifestId([byte; 32]),
        };
        let one = [file("a", 1, 1), file("b", 2, 2)];
        assert_eq!(files_digest(&one), files_digest(&one.clone()));
        for other in [
            vec![file("a", 1, 1)],
            vec![file("a", 1, 1), file("b", 2, 3)],
            vec![file("a", 1, 1), file("b", 3, 2)],
            vec![file("a", 1, 1), file("c", 2, 2)],
            vec![file("ab", 1, 1), file("", 2, 2)],
        ] {
            assert_ne!(files_digest(&one), files_digest(&other));
        }
    }

    #[test]
    fn damaged_inventories_are_refused() {
        assert_eq!(
            reason(b"{}"),
            "not a modelfs inventory (make one with `modelfs inventory` at the site)"
        );
        assert!(reason(&GOLDEN.as_bytes()[..200]).starts_with("inventory is not valid: "));
        let with = |count: u64, bits: &[u8]| {
            let text = GOLDEN
                .replace(r#""count": 3"#, &format!(r#""count": {count}"#))
                .replace(
                    "AAAAAAAAAAIAAAAAAAAAA7/////////8",
                    &Base64::encode_to_string(bits).unwrap(),
                );
            reason(text.as_bytes())
        };
        let good = golden().chunks.encode();
        assert_eq!(
            with(3, &good[..23]),
            "claims 3 chunks in 23 bytes, room for at most 2"
        );
        assert_eq!(
            with(3, &[0xff; 24]),
            "the chunk list ends before its 3 chunks"
        );
        assert_eq!(
            with(3, &[&good[..], &[0]].concat()),
            "bytes follow the chunk list"
        );
        // Two values leave two bits of padding; set one.
        let mut padded = ChunkSet::from_prefixes(vec![1, 2]).encode();
        *padded.last_mut().unwrap() |= 1;
        assert_eq!(with(2, &padded), "bytes follow the chunk list");
        // A last gap that runs past 2^64.
        let mut past = BitWriter::default();
        past.put(1, 63);
        past.put(0, 63);
        past.unary(4);
        past.put(0, 62);
        assert_eq!(
            with(3, &past.finish()),
            "a chunk prefix in the list is out of range"
        );
        let text = GOLDEN.replace("AAAAAAAAAAIAAAAAAAAAA7/////////8", "AAAA*AAA");
        assert_eq!(reason(text.as_bytes()), "the chunk list is not base64");
        let newer = GOLDEN.replace(r#""version": 1"#, r#""version": 7"#);
        assert!(matches!(
            decode(path(), newer.as_bytes()),
            Err(Error::NewerFormat {
                what: "inventory",
                found: 7,
                ..
            })
        ));
    }
}
