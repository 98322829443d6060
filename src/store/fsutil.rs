//! Durable file-system steps shared by the store's writers: atomic replace and directory fsync.
//!
//! Owns nothing but these two helpers; every metadata file of the store (registry, manifests) goes
//! through [`write_atomic`] so a crash leaves either the old or the new file, never a torn one.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Writes `bytes` to `path` via a temporary file, fsync and rename, then fsyncs the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("store files live in a directory");
    let mut tmp_name = path.file_name().expect("file path").to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = File::create(&tmp).at(&tmp)?;
        file.write_all(bytes).at(&tmp)?;
        file.sync_all().at(&tmp)?;
        std::fs::rename(&tmp, path).at(path)?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// fsyncs a directory so renames and creations inside it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}
