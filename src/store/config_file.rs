//! The store's config file as the store uses it: reading and checking it, and raising an older
//! store's version before a writer writes anything newer.
//!
//! Owns [`read_config`] and the one rewrite of a config (`upgrade`). The JSON layout and its
//! version check are `format::config`.

use std::path::Path;

use tracing::info;

use crate::error::{Error, Result};
use crate::format::STORE_FORMAT_VERSION;
use crate::format::config::{self, StoreConfig};
use crate::store::fsutil::{self, write_atomic};
use crate::store::paths::StorePaths;

/// Reads and checks the config of the store at `root` without opening anything else.
pub fn read_config(root: &Path) -> Result<StoreConfig> {
    let path = StorePaths::new(root).config();
    let bytes = match fsutil::read_capped(&path, config::MAX_CONFIG_LEN) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotAStore(root.to_owned()));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    decode_config(&path, &bytes)
}

/// Decodes and checks a store config read from `path` (a file, or a URL for a remote store).
pub fn decode_config(path: &Path, bytes: &[u8]) -> Result<StoreConfig> {
    let config = config::decode(path, bytes)?;
    crate::chunker::Chunker::validate(&config.chunking)
        .map_err(|reason| Error::corrupt(path, format!("store config: {reason}")))?;
    if config.pack_target_bytes == 0 {
        return Err(Error::corrupt(path, "store config: pack size 0"));
    }
    Ok(config)
}

/// Raises an older store's config to the current version before anything newer is written into it
/// (the one time a config is rewritten).
pub(super) fn upgrade(paths: &StorePaths, config: &StoreConfig) -> Result<()> {
    if config.version >= STORE_FORMAT_VERSION {
        return Ok(());
    }
    info!(
        from = config.version,
        to = STORE_FORMAT_VERSION,
        "upgrading the store format"
    );
    let upgraded = StoreConfig {
        version: STORE_FORMAT_VERSION,
        ..config.clone()
    };
    write_atomic(&paths.config(), &config::encode(&upgraded))
}
