//! The system's mount table and the mountpoint itself: checks before mounting, unmounting, and the
//! kernel readahead of a mount.
//!
//! Owns knowledge of `/proc/self/mountinfo` and how to unmount a FUSE mount (`umount2` as root,
//! `fusermount3 -u` otherwise).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Checks that `mountpoint` is an existing directory with nothing mounted on it, and returns its
/// canonical path.
pub fn check_mountpoint(mountpoint: &Path) -> Result<PathBuf> {
    let bad = |reason: &str| Error::Mountpoint {
        path: mountpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let meta = match std::fs::metadata(mountpoint) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad("does not exist; create it with mkdir first"));
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(bad(
                "is a dead mount (its daemon died); run `modelfs umount` on it first",
            ));
        }
        Err(e) => return Err(Error::io(mountpoint, e)),
    };
    if !meta.is_dir() {
        return Err(bad("is not a directory"));
    }
    let canonical = std::fs::canonicalize(mountpoint).map_err(|e| Error::io(mountpoint, e))?;
    if is_mounted(&canonical)? {
        return Err(bad(
            "already has a file system mounted on it; unmount it first",
        ));
    }
    Ok(canonical)
}

/// The canonical path of `mountpoint`; for a dead mount (whose directory can no longer be
/// resolved) its absolute path, as the mount table lists it.
pub fn resolve(mountpoint: &Path) -> PathBuf {
    std::fs::canonicalize(mountpoint)
        .or_else(|_| std::path::absolute(mountpoint))
        .unwrap_or_else(|_| mountpoint.to_owned())
}

/// Whether something is mounted exactly at `path` (canonical).
pub fn is_mounted(path: &Path) -> Result<bool> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("/proc/self/mountinfo", e))?;
    Ok(table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|field| Path::new(&unescape(field)) == path))
}

/// Undoes the octal escapes (`\040` for a space) of mountinfo fields.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(value)) => {
                out.push(value);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts the modelfs mount at `mountpoint`.
pub fn unmount(mountpoint: &Path) -> Result<()> {
    let canonical = resolve(mountpoint);
    if !is_mounted(&canonical)? {
        return Err(Error::Mountpoint {
            path: mountpoint.to_owned(),
            reason: "nothing is mounted there".into(),
        });
    }
    if nix::unistd::geteuid().is_root() {
        return nix::mount::umount2(&canonical, nix::mount::MntFlags::empty()).map_err(|errno| {
            Error::Mountpoint {
                path: mountpoint.to_owned(),
                reason: match errno {
                    nix::errno::Errno::EBUSY => {
                        "busy: a process still has files open there; close them and retry".into()
                    }
                    other => other.desc().to_owned(),
                },
            }
        });
    }
    let status = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg(&canonical)
        .status()
        .map_err(|e| Error::Mountpoint {
            path: mountpoint.to_owned(),
            reason: format!("cannot run fusermount3: {e}"),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Mountpoint {
            path: mountpoint.to_owned(),
            reason: format!("fusermount3 -u failed ({status})"),
        })
    }
}

/// Raises the kernel readahead of the mount at `mountpoint` to `kib`, so sequential readers get
/// large requests. Best effort: needs root (the knob is in sysfs); failure only costs throughput.
pub fn raise_readahead(mountpoint: &Path, kib: u32) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(mountpoint) else {
        return;
    };
    let dev = meta.dev();
    let knob = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        libc::major(dev),
        libc::minor(dev)
    );
    if let Err(e) = std::fs::write(&knob, kib.to_string()) {
        tracing::debug!(%knob, error = %e, "could not raise readahead");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/mnt/my\040models"), "/mnt/my models");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/odd\0"), r"/odd\0");
    }

    #[test]
    fn root_is_mounted_and_missing_dirs_are_refused() {
        assert!(is_mounted(Path::new("/")).unwrap());
        let err = check_mountpoint(Path::new("/definitely/not/here")).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
