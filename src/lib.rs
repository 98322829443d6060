//! modelfs: a content-addressed, deduplicating model store with a read-only FUSE view.
//!
//! # Layout
//! - [`format`]: on-disk layouts (store config, packs, manifests, registry), versioned. No I/O.
//! - [`id`]: chunk, manifest, pack and store ids.
//! - [`chunker`]: content-defined chunk boundaries (FastCDC).
//! - [`codec`]: one chunk's compression choice, decoding, and verification against its id.
//! - [`store`]: the local store directory: packs, RocksDB index, manifests, registry, the one
//!   stored-to-verified chunk function, `gc` and `scrub`.
//! - [`source`]: the `Source` trait every place models are read from implements (a store; a union
//!   of sources with stand-in reads and fill).
//! - [`read`]: the read path over any source: files by offset, one chunk call, the decoded-chunk
//!   cache.
//! - [`modelfile`]: GGUF and safetensors headers → byte ranges of header and tensors.
//! - [`ingest`]: `add` — files to chunks to packs to a committed registry entry.
//! - [`import_cache`]: `import-hf` and `import-ollama` — Hugging Face and Ollama caches read
//!   (never written) and added as versions.
//! - [`pin`]: pinned models: plain, verified copies of a version's files that the mount serves
//!   natively (FUSE passthrough), and the mount's automatic `--pin-budget`.
//! - [`vfs`]: the registry as an inode tree with `read_at`, independent of FUSE.
//! - [`fuse`]: the kernel adapter over [`vfs`]; the only user of `fuser`.
//! - [`mount`]: the mount's life cycle: validated config, serve loop, daemon, mount table.
//! - [`stats`]: where the bytes of a store go, per model and version.
//! - [`transfer`]: `import` from another store and `pack` a store for carrying.
//! - [`update`]: update packs for sites without a network: `inventory` and `export`.
//! - [`diff`]: tensors that differ between two models, versions or files.
//! - [`doctor`]: checks of what mounts and stores trip over, each with its fix.
//! - [`trust`]: keys, signed release statements and the store's trust policy.
//! - [`audit`]: the hash-chained log of every change to a store, its check and its seal.
//!
//! The `modelfs` binary (`src/main.rs`, `src/cli/`) parses arguments and calls into these modules.
//! docs/ARCHITECTURE.md shows how data flows through `add` and a FUSE `read`.

#![deny(missing_docs)]

pub mod audit;
pub mod chunker;
pub mod codec;
pub mod diff;
pub mod doctor;
pub mod error;
pub mod format;
pub mod fuse;
pub mod id;
pub mod import_cache;
pub mod ingest;
pub mod modelfile;
pub mod mount;
pub mod peer;
pub mod pin;
pub mod progress;
pub mod publish;
pub mod read;
pub mod source;
pub mod stats;
pub mod store;
pub mod transfer;
pub mod trust;
pub mod update;
pub mod vfs;

#[cfg(test)]
mod testutil;

pub use error::{Error, Result};
pub use store::{Access, Store};
