//! Conversions between `vfs` values and FUSE replies: node attributes and the one error→errno map.

use std::time::{Duration, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo};

use crate::error::Error;
use crate::vfs::{NodeAttr, NodeKind};

/// Preferred I/O size reported by `stat`: large, so `cp` and friends issue big reads.
const BLOCK_SIZE: u32 = 1 << 20;

/// How long the kernel may cache a node's attributes. A file inode's content never changes, but
/// directories gain entries when models are added, so they are re-checked sooner.
pub fn attr_ttl(kind: NodeKind) -> Duration {
    match kind {
        NodeKind::File => Duration::from_secs(24 * 3600),
        NodeKind::Dir => Duration::from_secs(10),
    }
}

/// How long a name → inode answer may be cached: a bare model name moves to a new version's inode
/// when that version is added, so this bounds how long the old one is still shown.
pub const ENTRY_TTL: Duration = Duration::from_secs(10);

/// The FUSE attributes of a node.
pub fn file_attr(attr: &NodeAttr, uid: u32, gid: u32) -> FileAttr {
    let time = UNIX_EPOCH
        .checked_add(Duration::from_secs(attr.mtime_unix))
        .unwrap_or(UNIX_EPOCH);
    let (kind, perm) = match attr.kind {
        NodeKind::Dir => (FileType::Directory, 0o555),
        NodeKind::File => (FileType::RegularFile, 0o444),
    };
    FileAttr {
        ino: INodeNo(attr.ino.0),
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind,
        perm,
        nlink: attr.nlink,
        uid,
        gid,
        rdev: 0,
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

/// The errno a library error becomes. Anything about stored bytes is EIO: a reader gets an I/O
/// error, never wrong bytes.
pub fn errno(error: &Error) -> Errno {
    match error {
        Error::NoEntry(_)
        | Error::UnknownModel(_)
        | Error::UnknownVersion { .. }
        | Error::UnknownFile { .. } => Errno::ENOENT,
        Error::NotADirectory => Errno::ENOTDIR,
        Error::IsADirectory => Errno::EISDIR,
        Error::StaleHandle(_) => Errno::EBADF,
        Error::ReadOnlyStore(_) => Errno::EROFS,
        _ => Errno::EIO,
    }
}
