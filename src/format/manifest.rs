//! File manifest layout: a file's size, whole-file digests, and its chunks in order.
//!
//! ```text
//! magic "MFSMANI\0" | version u32 | reserved u32
//! file size u64 | blake3 [32] | sha256 [32] | chunk count u64
//! chunk count × (logical offset u64 | length u32 | chunk id [32])      44 B each
//! ```
//! Little-endian. A manifest is stored under the blake3 of its encoding ([`ManifestId`]), so its
//! name is its checksum: [`Manifest::decode`] refuses bytes that do not hash to the expected id.

use super::LeReader;
use super::pack::MAX_RECORD_PAYLOAD;
use crate::id::{ChunkId, ManifestId};

/// First bytes of every manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"MFSMANI\0";
/// Manifest layout version written by this build.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;
/// Largest manifest file read: 6 million chunks, a 400 GB file at 64 KiB chunks.
pub const MAX_MANIFEST_LEN: u64 = 256 << 20;
const FIXED_LEN: usize = 16 + 8 + 32 + 32 + 8;
const ENTRY_LEN: usize = 8 + 4 + 32;

/// One chunk of a file, at its logical position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    /// Offset of the chunk's first byte in the file.
    pub offset: u64,
    /// Length of the chunk in bytes.
    pub len: u32,
    /// The chunk.
    pub id: ChunkId,
}

impl ChunkRef {
    /// Offset just past the chunk's last byte.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// A file as an ordered list of chunks, plus digests of the whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// File size in bytes.
    pub size: u64,
    /// blake3 of the whole file.
    pub blake3: [u8; 32],
    /// sha256 of the whole file (the name Ollama and the Hugging Face hub give it).
    pub sha256: [u8; 32],
    /// The chunks, contiguous from offset 0 to `size`.
    pub chunks: Vec<ChunkRef>,
}

/// Why a manifest failed to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The bytes do not hash to the id they are stored under.
    #[error("content does not match its id")]
    IdMismatch,
    /// Wrong magic or truncated.
    #[error("not a manifest or truncated")]
    Malformed,
    /// Written by a newer modelfs.
    #[error("format version {0} is newer than this build reads")]
    NewerVersion(u32),
    /// The chunk list does not tile the file.
    #[error("chunk list does not cover the file contiguously")]
    BadChunkList,
}

impl Manifest {
    /// Encodes the manifest; its id is `ManifestId::of(&bytes)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_LEN + self.chunks.len() * ENTRY_LEN);
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&MANIFEST_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.blake3);
        out.extend_from_slice(&self.sha256);
        out.extend_from_slice(&(self.chunks.len() as u64).to_le_bytes());
        for chunk in &self.chunks {
            out.extend_from_slice(&chunk.offset.to_le_bytes());
            out.extend_from_slice(&chunk.len.to_le_bytes());
            out.extend_from_slice(chunk.id.as_bytes());
        }
        out
    }

    /// Decodes a manifest stored under `id`, checking the id and the chunk list.
    pub fn decode(id: &ManifestId, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if ManifestId::of(bytes) != *id {
            return Err(ManifestError::IdMismatch);
        }
        Self::decode_unchecked(bytes)
    }

    fn decode_unchecked(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let mut r = LeReader::new(bytes);
        let malformed = ManifestError::Malformed;
        if r.array::<8>().ok_or(malformed.clone())? != MANIFEST_MAGIC {
            return Err(malformed);
        }
        let version = r.u32().ok_or(malformed.clone())?;
        if version > MANIFEST_FORMAT_VERSION {
            return Err(ManifestError::NewerVersion(version));
        }
        r.u32().ok_or(malformed.clone())?;
        let size = r.u64().ok_or(malformed.clone())?;
        let blake3 = r.array().ok_or(malformed.clone())?;
        let sha256 = r.array().ok_or(malformed.clone())?;
        let count = r.u64().ok_or(malformed.clone())?;
        if count.checked_mul(ENTRY_LEN as u64) != Some(r.remaining() as u64) {
            return Err(malformed);
        }
        let mut chunks = Vec::with_capacity(count as usize);
        let mut expected_offset = 0u64;
        for _ in 0..count {
            let offset = r.u64().ok_or(malformed.clone())?;
            let len = r.u32().ok_or(malformed.clone())?;
            let id = ChunkId(r.array().ok_or(malformed.clone())?);
            if offset != expected_offset || len == 0 || len > MAX_RECORD_PAYLOAD {
                return Err(ManifestError::BadChunkList);
            }
            expected_offset += u64::from(len);
            chunks.push(ChunkRef { offset, len, id });
        }
        if expected_offset != size {
            return Err(ManifestError::BadChunkList);
        }
        Ok(Manifest {
            size,
            blake3,
            sha256,
            chunks,
        })
    }

    /// Index of the chunk holding byte `offset`, by binary search; `None` past the end.
    pub fn chunk_index_at(&self, offset: u64) -> Option<usize> {
        if offset >= self.size {
            return None;
        }
        Some(self.chunks.partition_point(|chunk| chunk.end() <= offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::unhex;
    use proptest::prelude::*;

    const GOLDEN: &str = "
        4d46534d414e4900                    # magic MFSMANI\0
        01000000                            # version 1
        00000000                            # reserved
        2c01000000000000                    # file size 300
        1111111111111111111111111111111111111111111111111111111111111111    # blake3
        2222222222222222222222222222222222222222222222222222222222222222    # sha256
        0200000000000000                    # 2 chunks
        0000000000000000 64000000           # at 0, 100 bytes
        3333333333333333333333333333333333333333333333333333333333333333
        6400000000000000 c8000000           # at 100, 200 bytes
        4444444444444444444444444444444444444444444444444444444444444444
    ";

    const GOLDEN_ID: &str = "7fb2e80d5b126c540080a78643f1b308c91d60454ee308d4e5464c7350ff8728";

    #[test]
    fn golden_bytes() {
        let manifest = Manifest {
            size: 300,
            blake3: [0x11; 32],
            sha256: [0x22; 32],
            chunks: vec![
                ChunkRef {
                    offset: 0,
                    len: 100,
                    id: ChunkId([0x33; 32]),
                },
                ChunkRef {
                    offset: 100,
                    len: 200,
                    id: ChunkId([0x44; 32]),
                },
            ],
        };
        let golden = unhex(GOLDEN);
        assert_eq!(manifest.encode(), golden);
        let id = ManifestId::of(&golden);
        assert_eq!(id.to_hex(), GOLDEN_ID);
        assert_eq!(
            Manifest::decode(&GOLDEN_ID.parse().unwrap(), &golden),
            Ok(manifest)
        );
    }

    fn manifest_from_lengths(lengths: &[u32]) -> Manifest {
        let mut offset = 0;
        let chunks = lengths
            .iter()
            .map(|&len| {
                let chunk = ChunkRef {
                    offset,
                    len,
                    id: ChunkId::of(&offset.to_le_bytes()),
                };
                offset += u64::from(len);
                chunk
            })
            .collect();
        Manifest {
            size: offset,
            blake3: [1; 32],
            sha256: [2; 32],
            chunks,
        }
    }

    proptest! {
        #[test]
        fn round_trip(lengths in prop::collection::vec(1u32..1_000_000, 0..200)) {
            let manifest = manifest_from_lengths(&lengths);
            let bytes = manifest.encode();
            let id = ManifestId::of(&bytes);
            prop_assert_eq!(Manifest::decode(&id, &bytes).unwrap(), manifest);
        }

        #[test]
        fn chunk_lookup_finds_the_covering_chunk(
            lengths in prop::collection::vec(1u32..5000, 1..100),
            probe in any::<u64>(),
        ) {
            let manifest = manifest_from_lengths(&lengths);
            let offset = probe % manifest.size;
            let index = manifest.chunk_index_at(offset).unwrap();
            let chunk = manifest.chunks[index];
            prop_assert!(chunk.offset <= offset && offset < chunk.end());
            prop_assert_eq!(manifest.chunk_index_at(manifest.size), None);
        }

        #[test]
        fn any_flipped_byte_is_detected(lengths in prop::collection::vec(1u32..1000, 1..20), at in any::<usize>()) {
            let bytes = manifest_from_lengths(&lengths).encode();
            let id = ManifestId::of(&bytes);
            let mut damaged = bytes.clone();
            let at = at % damaged.len();
            damaged[at] ^= 0x40;
            prop_assert_eq!(Manifest::decode(&id, &damaged), Err(ManifestError::IdMismatch));
        }
    }

    #[test]
    fn rejects_gaps_and_newer_versions() {
        let mut manifest = manifest_from_lengths(&[10, 20]);
        manifest.chunks[1].offset = 11;
        let bytes = manifest.encode();
        assert_eq!(
            Manifest::decode(&ManifestId::of(&bytes), &bytes),
            Err(ManifestError::BadChunkList)
        );

        let mut bytes = manifest_from_lengths(&[10]).encode();
        bytes[8] = 99;
        assert_eq!(
            Manifest::decode(&ManifestId::of(&bytes), &bytes),
            Err(ManifestError::NewerVersion(99))
        );
    }
}
