//! Which chunks more than one file of the registry uses: a compact, approximate set.
//!
//! Owns [`SharedChunks`], a pair of Bloom filters ("seen once", "seen twice") over every chunk
//! reference of every model file. The read path asks it whether to keep a pack's pages in the page
//! cache after handing a chunk to the kernel: a chunk only one file uses will be cached as that
//! file's pages, so its pack pages are dropped; a shared chunk is kept, so loading a second model
//! that shares it (a fine-tune after its base) reads it from memory. False positives only keep a
//! few extra pages; there are no false negatives.

use std::collections::HashMap;

use crate::error::Result;
use crate::format::manifest::Manifest;
use crate::format::registry::Registry;
use crate::id::{ChunkId, ManifestId};

/// Bits per expected chunk reference: with three probes, about 1.5% false positives.
const BITS_PER_REF: usize = 10;
/// Largest filter (32 MiB each): past ~27 million chunk references, more false positives (a few
/// more pack pages kept cached) instead of more memory.
const MAX_BITS: usize = 1 << 28;

/// Chunks referenced by more than one model file (approximately: may include a few others).
pub struct SharedChunks {
    once: Vec<u64>,
    twice: Vec<u64>,
    mask: u64,
}

impl SharedChunks {
    /// An empty set sized for about `refs` chunk references.
    pub fn with_capacity(refs: usize) -> SharedChunks {
        let bits = refs
            .max(64)
            .saturating_mul(BITS_PER_REF)
            .min(MAX_BITS)
            .next_power_of_two();
        SharedChunks {
            once: vec![0; bits / 64],
            twice: vec![0; bits / 64],
            mask: bits as u64 - 1,
        }
    }

    /// Counts one more reference to `id`.
    pub fn add(&mut self, id: &ChunkId) {
        let probes = self.probes(id);
        if probes.iter().all(|&bit| get(&self.once, bit)) {
            probes.iter().for_each(|&bit| set(&mut self.twice, bit));
        } else {
            probes.iter().for_each(|&bit| set(&mut self.once, bit));
        }
    }

    /// Whether `id` was (probably) referenced more than once.
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.probes(id).iter().all(|&bit| get(&self.twice, bit))
    }

    /// Chunk ids are uniformly random, so their own bytes serve as independent hashes.
    fn probes(&self, id: &ChunkId) -> [u64; 3] {
        let word = |i: usize| {
            u64::from_le_bytes(id.as_bytes()[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
        };
        [
            word(0) & self.mask,
            word(1) & self.mask,
            word(2) & self.mask,
        ]
    }

    /// Builds the set from every file of every version in `registry`, loading each manifest once
    /// with `manifest`.
    pub fn of_registry(
        registry: &Registry,
        mut manifest: impl FnMut(&ManifestId) -> Result<Manifest>,
    ) -> Result<SharedChunks> {
        let mut uses: HashMap<ManifestId, usize> = HashMap::new();
        for file in registry
            .models
            .values()
            .flat_map(|m| &m.versions)
            .flat_map(|v| &v.files)
        {
            *uses.entry(file.manifest).or_default() += 1;
        }
        // Sized from the manifests themselves (a registry may list one manifest any number of
        // times), each loaded, counted and dropped in turn: two passes, one manifest in memory.
        let mut refs = 0usize;
        for (id, count) in &uses {
            refs = refs.saturating_add(manifest(id)?.chunks.len().saturating_mul((*count).min(2)));
        }
        let mut shared = SharedChunks::with_capacity(refs);
        for (id, count) in &uses {
            for chunk in &manifest(id)?.chunks {
                for _ in 0..(*count).min(2) {
                    shared.add(&chunk.id);
                }
            }
        }
        Ok(shared)
    }
}

fn get(bits: &[u64], bit: u64) -> bool {
    bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0
}

fn set(bits: &mut [u64], bit: u64) {
    bits[(bit / 64) as usize] |= 1 << (bit % 64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_seen_twice_are_shared_and_few_others_are() {
        let mut set = SharedChunks::with_capacity(20_000);
        let id = |n: u32| ChunkId::of(&n.to_le_bytes());
        for n in 0..10_000 {
            set.add(&id(n));
        }
        for n in 0..1_000 {
            set.add(&id(n));
        }
        assert!(
            (0..1_000).all(|n| set.contains(&id(n))),
            "no false negatives"
        );
        let false_positives = (1_000..10_000).filter(|&n| set.contains(&id(n))).count();
        assert!(
            false_positives < 300,
            "{false_positives} of 9000 unique chunks reported shared"
        );
    }
}
