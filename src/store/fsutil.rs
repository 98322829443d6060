//! File-system steps on directories modelfs may not control: how store files are opened for
//! reading, and how files are written.
//!
//! A store on a stick, a share or from a peer may hold a link, a FIFO or a device where a file
//! should be, or a file of any size. So every store file is opened through [`open_regular`]
//! (`O_NOFOLLOW | O_NONBLOCK`, then checked to be a regular file: never followed, never waited on)
//! and small ones are read through [`read_capped`] (refused past the size their format allows).
//! Every file modelfs writes goes through [`write_atomic`] or [`write_atomic_with`]: a unique temp
//! name created with `O_EXCL | O_NOFOLLOW` (a planted link is never written through), fsync,
//! rename over the target (a link there is replaced, not followed), fsync of the directory — so a
//! crash leaves the old file or the new one, never a torn one.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Suffix of the temp files writers create; `recovery` removes ones a crash left behind.
pub const TEMP_SUFFIX: &str = ".tmp";

/// What a non-regular file is, for error messages.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading if it is a regular file: a link, FIFO, device or directory in its
/// place is an error (`InvalidData`), never followed or blocked on. `NotFound` passes through.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    open_checked(OpenOptions::new().read(true), path, "store files")
}

/// Opens `path` with `options` plus `O_NOFOLLOW | O_NONBLOCK`, and checks it is a regular file;
/// anything else is `InvalidData`, saying what it is and that `what` must be regular files.
fn open_checked(options: &mut OpenOptions, path: &Path, what: &str) -> std::io::Result<File> {
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => std::io::Error::new(
                ErrorKind::InvalidData,
                format!("is a symbolic link; {what} must be regular files"),
            ),
            _ => e,
        })?;
    let file_type = file.metadata()?.file_type();
    if !file_type.is_file() {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("is {}; {what} must be regular files", kind_of(file_type)),
        ));
    }
    Ok(file)
}

/// Opens (creating if missing) the lock file at `path` for `flock`: never through a link, never
/// blocking on a FIFO, and only if it is a regular file (`InvalidData` otherwise).
pub fn open_lock_file(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true).mode(0o644);
    open_checked(&mut options, path, "locks")
}

/// Reads into `buf` at `offset` until it is full or the file ends; returns the bytes read (short
/// only at the end of the file). Interrupted reads are retried.
pub fn read_full_at(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads the regular file at `path`, refusing one larger than `max_len` bytes (what its format
/// allows) before reading it. `NotFound` passes through.
pub fn read_capped(path: &Path, max_len: u64) -> std::io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    if len > max_len {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("is {len} bytes, more than the {max_len} its format allows"),
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // The file may grow meanwhile; never read past the cap.
    file.take(max_len + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_len {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("grew past the {max_len} bytes its format allows while being read"),
        ));
    }
    Ok(bytes)
}

/// Creates `path` for writing; fails if anything (a link included) is already there.
pub fn create_new(path: &Path, mode: u32) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .at(path)
}

/// A fresh temp name beside `path`: `.NAME.<random>.tmp`.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().expect("a file path").to_string_lossy();
    let random: [u8; 8] = crate::id::random_bytes();
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    path.with_file_name(format!(".{name}.{suffix}{TEMP_SUFFIX}"))
}

/// Replaces `path` atomically with what `write` writes into a new file of mode `mode`.
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path.parent().expect("files live in a directory");
    let tmp = temp_beside(path);
    let mut file = create_new(&tmp, mode)?;
    let result = (|| {
        write(&mut file).at(&tmp)?;
        file.sync_all().at(&tmp)?;
        std::fs::rename(&tmp, path).at(path)?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Replaces `path` atomically with `bytes` (mode 0644).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, 0o644, |file| file.write_all(bytes))
}

/// fsyncs a directory so renames and creations inside it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Checks that `dir` is a real directory holding only regular files: what a library that opens
/// files itself (RocksDB, for the index) may be handed from a store modelfs does not control, so
/// a link, FIFO or device inside can neither redirect nor block it.
pub fn check_plain_dir(dir: &Path) -> Result<()> {
    check_real_dir(dir)?;
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let file_type = entry.file_type().at(entry.path())?;
        if !file_type.is_file() {
            return Err(Error::corrupt(
                entry.path(),
                format!(
                    "is {} where only regular files belong",
                    if file_type.is_symlink() {
                        "a symbolic link"
                    } else {
                        kind_of(file_type)
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that `dir` is a real directory (not a link to one elsewhere), so writes into it stay
/// in the store.
pub fn check_real_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(dir).at(dir)?;
    if meta.is_dir() {
        return Ok(());
    }
    Err(Error::corrupt(
        dir,
        format!(
            "is {} where the store needs a directory; a store's folders must be real directories",
            if meta.file_type().is_symlink() {
                "a symbolic link"
            } else {
                kind_of(meta.file_type())
            }
        ),
    ))
}
