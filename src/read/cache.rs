//! A bounded cache of decoded, verified chunks.
//!
//! Owns [`ChunkCache`]: small reads that land inside a chunk (4 KiB page faults, unaligned reads)
//! reuse the decoded bytes instead of reading, decompressing and hashing the chunk again. Only bytes
//! that passed verification are inserted. Bounded by total bytes, least recently used evicted first.

use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::id::ChunkId;

/// Decoded chunks, shared by all reader threads.
pub struct ChunkCache {
    /// One mutex around the LRU list: every operation is a hash lookup plus a list splice, far
    /// shorter than the pread and decode a miss costs, so contention stays low.
    inner: Mutex<Inner>,
    capacity_bytes: usize,
}

struct Inner {
    lru: LruCache<ChunkId, Arc<[u8]>>,
    bytes: usize,
}

impl ChunkCache {
    /// A cache holding at most `capacity_bytes` of chunk data (0 disables it).
    pub fn new(capacity_bytes: usize) -> ChunkCache {
        ChunkCache {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            capacity_bytes,
        }
    }

    /// The cached bytes of `id`, if present.
    pub fn get(&self, id: &ChunkId) -> Option<Arc<[u8]>> {
        self.inner
            .lock()
            .expect("chunk cache lock poisoned")
            .lru
            .get(id)
            .cloned()
    }

    /// Caches verified bytes of `id`, evicting the least recently used chunks to stay in budget.
    pub fn insert(&self, id: ChunkId, bytes: Arc<[u8]>) {
        if bytes.len() > self.capacity_bytes {
            return;
        }
        let mut inner = self.inner.lock().expect("chunk cache lock poisoned");
        let len = bytes.len();
        if let Some(old) = inner.lru.put(id, bytes) {
            inner.bytes -= old.len();
        }
        inner.bytes += len;
        while inner.bytes > self.capacity_bytes {
            match inner.lru.pop_lru() {
                Some((_, evicted)) => inner.bytes -= evicted.len(),
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let cache = ChunkCache::new(250);
        let chunk = |n: u8| (ChunkId([n; 32]), Arc::<[u8]>::from(vec![n; 100]));
        for n in 1..=2 {
            let (id, bytes) = chunk(n);
            cache.insert(id, bytes);
        }
        assert!(
            cache.get(&ChunkId([1; 32])).is_some(),
            "touch 1 so 2 becomes the oldest"
        );
        let (id, bytes) = chunk(3);
        cache.insert(id, bytes);
        assert!(cache.get(&ChunkId([2; 32])).is_none());
        assert!(cache.get(&ChunkId([1; 32])).is_some());
        assert!(cache.get(&ChunkId([3; 32])).is_some());
        let (id, bytes) = (ChunkId([4; 32]), Arc::<[u8]>::from(vec![0; 1000]));
        cache.insert(id, bytes);
        assert!(cache.get(&id).is_none(), "larger than the whole cache");
    }
}
