//! What a writer takes before it writes: the store's writer lock, and enough free space.
//!
//! Owns the `lock` file (`flock`ed by the one writer; opened without following links, and only if
//! it is a regular file) and the free-space check that keeps writers off a full disk.

use std::fs::File;

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};
use crate::store::fsutil::open_lock_file;
use crate::store::paths::StorePaths;

/// Space a writer needs before it starts: the index writes its log on open, and RocksDB aborts
/// (instead of returning an error) when that fails on a completely full disk.
const MIN_FREE_BYTES: u64 = 16 << 20;

/// Refuses to start writing on a (nearly) full disk, before anything is written.
pub(super) fn require_free_space(paths: &StorePaths) -> Result<()> {
    let stat =
        nix::sys::statvfs::statvfs(&paths.root).map_err(|e| Error::io(&paths.root, e.into()))?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    // Some FUSE file systems (fusefat) report no sizes at all: nothing to judge by.
    if stat.blocks() > 0 && free < MIN_FREE_BYTES {
        return Err(Error::DiskFull {
            path: paths.root.clone(),
        });
    }
    Ok(())
}

pub(super) fn take_writer_lock(paths: &StorePaths) -> Result<Flock<File>> {
    let path = paths.lock();
    let file = match open_lock_file(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(Error::corrupt(&path, e.to_string()));
        }
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => {
            return Err(Error::ReadOnlyStore(paths.root.clone()));
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => {
            return Err(Error::NotWritable(paths.root.clone()));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        nix::errno::Errno::EWOULDBLOCK => Error::Locked(paths.root.clone()),
        other => Error::io(&path, other.into()),
    })
}
