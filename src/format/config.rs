//! The store config file, `modelfs.json` at the store's root.
//!
//! Owns [`StoreConfig`]: the store's format version, identity, and the parameters fixed at `init`
//! (chunking, pack size, compression). It is JSON so an operator can read it; it is written once by
//! `init` and never rewritten.

use serde::{Deserialize, Serialize};

use crate::id::StoreId;

/// Value of the `format` field, so a stray JSON file is not taken for a store.
pub const CONFIG_FORMAT_TAG: &str = "modelfs-store";

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
