//! fs-verity on pinned copies: turning it on, and reading the digest the kernel checks pages by.
//!
//! With fs-verity enabled (ext4 with the `verity` feature, btrfs, f2fs; a kernel built with
//! `CONFIG_FS_VERITY`), the file is read-only for good and the kernel hashes every page it reads
//! from disk against a Merkle tree whose root is the file's digest: a flipped byte on the medium
//! is an I/O error, even for pages served by FUSE passthrough. Where either side lacks it, both
//! calls answer `None` and pinned copies are checked by `modelfs verify` instead.

use std::fs::File;
use std::os::fd::AsRawFd;

/// `FS_VERITY_HASH_ALG_SHA256`.
const HASH_SHA256: u32 = 1;
/// Merkle tree block size: the page size.
const BLOCK_SIZE: u32 = 4096;
const MAX_DIGEST: usize = 64;

/// `struct fsverity_enable_arg` (linux/fsverity.h).
#[repr(C)]
struct EnableArg {
    version: u32,
    hash_algorithm: u32,
    block_size: u32,
    salt_size: u32,
    salt_ptr: u64,
    sig_size: u32,
    reserved1: u32,
    sig_ptr: u64,
    reserved2: [u64; 11],
}

/// `struct fsverity_digest` with room for the largest digest after its 4-byte header.
#[repr(C)]
struct Digest {
    digest_algorithm: u16,
    digest_size: u16,
    digest: [u8; MAX_DIGEST],
}

/// The raw ioctls, private to this module.
mod ioctl {
    use super::{Digest, EnableArg};

    // FS_IOC_ENABLE_VERITY = _IOW('f', 133, struct fsverity_enable_arg);
    // FS_IOC_MEASURE_VERITY = _IOWR('f', 134, struct fsverity_digest), whose size is its 4-byte header.
    nix::ioctl_write_ptr!(
        /// `FS_IOC_ENABLE_VERITY`.
        ioc_enable_verity,
        b'f',
        133,
        EnableArg
    );
    nix::ioctl_readwrite_bad!(
        /// `FS_IOC_MEASURE_VERITY`.
        ioc_measure_verity,
        nix::request_code_readwrite!(b'f', 134, 4),
        Digest
    );
}
use ioctl::{ioc_enable_verity, ioc_measure_verity};

/// Whether an errno means "this file system or kernel has no fs-verity".
fn unsupported(errno: nix::errno::Errno) -> bool {
    use nix::errno::Errno;
    matches!(errno, Errno::ENOTTY | Errno::EOPNOTSUPP | Errno::ENOSYS)
}

/// Enables fs-verity on `file` (open read-only, with no writer left) and returns its digest
/// (sha256 Merkle root, hex); `None` where the file system or kernel has no fs-verity.
pub fn enable(file: &File) -> std::io::Result<Option<String>> {
    let arg = EnableArg {
        version: 1,
        hash_algorithm: HASH_SHA256,
        block_size: BLOCK_SIZE,
        salt_size: 0,
        salt_ptr: 0,
        sig_size: 0,
        reserved1: 0,
        sig_ptr: 0,
        reserved2: [0; 11],
    };
    // SAFETY: the fd is open for the call, and `arg` is a fully initialised
    // `fsverity_enable_arg` with no salt or signature pointers for the kernel to follow.
    match unsafe { ioc_enable_verity(file.as_raw_fd(), &arg) } {
        Ok(_) | Err(nix::errno::Errno::EEXIST) => measure(file),
        Err(e) if unsupported(e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The fs-verity digest of `file` (hex), or `None` if verity is not enabled on it.
pub fn measure(file: &File) -> std::io::Result<Option<String>> {
    let mut digest = Digest {
        digest_algorithm: 0,
        digest_size: MAX_DIGEST as u16,
        digest: [0; MAX_DIGEST],
    };
    // SAFETY: the fd is open for the call; `digest_size` tells the kernel the room after the
    // header, which `digest` has, so it writes only inside the struct.
    match unsafe { ioc_measure_verity(file.as_raw_fd(), &mut digest) } {
        Ok(_) => {
            let len = usize::from(digest.digest_size).min(MAX_DIGEST);
            Ok(Some(
                digest.digest[..len]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            ))
        }
        Err(nix::errno::Errno::ENODATA) => Ok(None),
        Err(e) if unsupported(e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether the kernel checks `file`'s pages against `expected` (the digest recorded at pin
/// time). `None` recorded: nothing to compare, the copy is served as written.
pub fn matches(file: &File, expected: Option<&str>) -> std::io::Result<bool> {
    match expected {
        None => Ok(true),
        Some(expected) => Ok(measure(file)?.as_deref() == Some(expected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_verity_has_no_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"pinned bytes").unwrap();
        let file = File::open(&path).unwrap();
        // Either the file system has fs-verity (a digest now) or it answers None: never an error.
        let enabled = enable(&file).unwrap();
        assert_eq!(measure(&file).unwrap(), enabled);
        assert!(matches(&file, enabled.as_deref()).unwrap());
        assert!(!matches(&file, Some(&"0".repeat(64))).unwrap());
    }
}
