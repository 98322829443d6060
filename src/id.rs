//! Identifier newtypes.
//!
//! Owns [`ChunkId`], [`ManifestId`] (blake3 digests of content), [`Digest`] (a whole file's
//! blake3 or sha256), [`PackId`] and [`StoreId`] (random names): their hex form for file names and messages, parsing, and serde. Nothing else: how ids are
//! computed belongs to `codec` and `format`.

use std::fmt;
use std::str::FromStr;

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length of the id in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex, as used in file names.
            pub fn to_hex(&self) -> String {
                hex_encode(&self.0)
            }

            /// The first 12 hex digits, for log lines.
            pub fn short(&self) -> String {
                hex_encode(&self.0[..6])
            }

            /// Builds an id from a byte slice of exactly [`Self::LEN`] bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                bytes.try_into().ok().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = InvalidHex;
            fn from_str(s: &str) -> Result<Self, InvalidHex> {
                let bytes = hex_decode(s).ok_or(InvalidHex)?;
                Self::from_slice(&bytes).ok_or(InvalidHex)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(|_| serde::de::Error::custom(concat!("invalid ", stringify!($name))))
            }
        }
    };
}

define_id!(
    /// blake3 of a chunk's decoded bytes.
    ChunkId,
    32
);
define_id!(
    /// blake3 of an encoded manifest; also its file name under `manifests/`.
    ManifestId,
    32
);
define_id!(
    /// Random name of a pack file, never reused.
    PackId,
    16
);
define_id!(
    /// Random identity of a store, fixed at `init`.
    StoreId,
    16
);
define_id!(
    /// A 32-byte digest of a whole file (its blake3 or sha256), as release statements list them.
    Digest,
    32
);

impl ChunkId {
    /// The id of `data`: its blake3 hash.
    pub fn of(data: &[u8]) -> ChunkId {
        ChunkId(*blake3::hash(data).as_bytes())
    }
}

impl ManifestId {
    /// The id of an encoded manifest.
    pub fn of(encoded: &[u8]) -> ManifestId {
        ManifestId(*blake3::hash(encoded).as_bytes())
    }
}

/// Fills a random id from the operating system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes
}

/// A string that is not the hex form of an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidHex;

impl fmt::Display for InvalidHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a hex id of the right length")
    }
}

impl std::error::Error for InvalidHex {}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ChunkId::of(b"hello");
        assert_eq!(id.to_hex().parse::<ChunkId>().unwrap(), id);
        assert_eq!(
            id.to_hex(),
            "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
        );
        assert!("zz".parse::<PackId>().is_err());
        assert!(
            id.to_hex().parse::<PackId>().is_err(),
            "wrong length must be rejected"
        );
    }
}
