//! The library's error type.
//!
//! Owns [`Error`], the one typed error every library function returns, and the [`Result`] alias.
//! It does not own presentation: the CLI adds context and prints, the FUSE adapter maps an error to an
//! errno in `fuse::attr::errno`. Every variant names the model, file, chunk, pack or path involved so
//! that a single line is enough to act on.

use std::path::PathBuf;

use crate::id::{ChunkId, ManifestId, PackId};
use crate::trust::TrustError;

/// Shorthand for results of library functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside modelfs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a named path. The cause is part of the message, not a separate source,
    /// so an error chain prints it once.
    #[error("{path}: {cause}")]
    Io {
        /// The file or directory being accessed.
        path: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The disk holding the store filled up during a write.
    #[error(
        "no space left on the device holding {path}; free some space and retry (the store is unchanged)"
    )]
    DiskFull {
        /// The file being written when space ran out.
        path: PathBuf,
    },
    /// There is no store at the given path.
    #[error("no modelfs store at {0}; create one with `modelfs init` (or pass --store DIR)")]
    NotAStore(PathBuf),
    /// The store was written by a newer modelfs.
    #[error(
        "{what} at {path} has format version {found}, this modelfs reads up to version {supported}; upgrade modelfs"
    )]
    NewerFormat {
        /// Which structure (store, pack, manifest, registry).
        what: &'static str,
        /// Where it lives.
        path: PathBuf,
        /// The version found on disk.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },
    /// A file on disk is not in the expected format or fails its checksum.
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A chunk's bytes do not hash to its id.
    #[error("chunk {chunk} in pack {pack} at offset {offset} is corrupt: {reason}")]
    BadChunk {
        /// The chunk that failed.
        chunk: ChunkId,
        /// The pack holding it.
        pack: PackId,
        /// Byte offset of its record in the pack.
        offset: u64,
        /// What failed (hash mismatch, decode error, short read).
        reason: String,
    },
    /// A chunk referenced by a manifest is in no pack.
    #[error(
        "chunk {0} is missing from the store; run `modelfs index rebuild`, then `modelfs verify`"
    )]
    MissingChunk(ChunkId),
    /// A manifest referenced by the registry is missing.
    #[error("manifest {0} is missing from the store")]
    MissingManifest(ManifestId),
    /// The work was stopped before it finished, because another part of it failed first.
    #[error("stopped")]
    Cancelled,
    /// A remote source (a peer or a mirror) failed, or sent something unusable.
    #[error("{url}: {reason}")]
    Remote {
        /// What was requested, as a URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A pack referenced by the index is missing.
    #[error("pack {0} is missing from the store")]
    MissingPack(PackId),
    /// The RocksDB index failed.
    #[error("index at {path}: {reason}")]
    Index {
        /// The index directory.
        path: PathBuf,
        /// RocksDB's message.
        reason: String,
    },
    /// A model or version name is not allowed.
    #[error(
        "invalid {what} {name:?}: use only letters, digits, '.', '_' and '-' (not starting with '.')"
    )]
    InvalidName {
        /// "model name" or "version".
        what: &'static str,
        /// The rejected name.
        name: String,
    },
    /// The named model does not exist.
    #[error("no model named {0:?}; `modelfs ls` lists the models")]
    UnknownModel(String),
    /// The named version of a model does not exist.
    #[error("model {model:?} has no version {version:?}; `modelfs ls {model}` lists its versions")]
    UnknownVersion {
        /// The model.
        model: String,
        /// The missing version.
        version: String,
    },
    /// The named file is not part of the model version.
    #[error("model {model}@{version} has no file {file:?}")]
    UnknownFile {
        /// The model.
        model: String,
        /// Its version.
        version: String,
        /// The missing file.
        file: String,
    },
    /// A folder model was named where one file is needed.
    #[error(
        "model {model}@{version} is a folder; name one of its files, e.g. {model}@{version}/{example}"
    )]
    IsAFolderModel {
        /// The model.
        model: String,
        /// Its version.
        version: String,
        /// One of its files.
        example: String,
    },
    /// The version name is already taken.
    #[error("model {model:?} already has a version {version:?}; pick another with --version")]
    VersionExists {
        /// The model.
        model: String,
        /// The taken version.
        version: String,
    },
    /// The input to `add` is not usable.
    #[error("{path}: {reason}")]
    BadInput {
        /// The offending input path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Another process holds the store's writer lock.
    #[error("store {0} is being written by another modelfs process; wait for it to finish")]
    Locked(PathBuf),
    /// A path in the mounted tree does not exist.
    #[error("no such file or directory: {0}")]
    NoEntry(String),
    /// A directory operation on a file.
    #[error("not a directory")]
    NotADirectory,
    /// A file operation on a directory.
    #[error("is a directory")]
    IsADirectory,
    /// A file handle the mount never issued or already released.
    #[error("unknown file handle {0}")]
    StaleHandle(u64),
    /// The mountpoint cannot be used.
    #[error("mountpoint {path}: {reason}")]
    Mountpoint {
        /// The mountpoint.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The background mount process reported a failure.
    #[error("{0}")]
    Daemon(String),
    /// This user may not write to the store and the operation writes.
    #[error(
        "store {0} is not writable by this user (permission denied); run the command as its owner"
    )]
    NotWritable(PathBuf),
    /// A key, a signature or a release failed (see [`TrustError`]).
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The audit log fails a check: an entry was edited, removed, reordered or cut off.
    #[error("audit log {path}: entry {entry} (line {line}) {reason}")]
    AuditBroken {
        /// The log file.
        path: PathBuf,
        /// The first bad entry, by its place in the chain.
        entry: u64,
        /// The line where the problem shows.
        line: u64,
        /// What is wrong, and what it means.
        reason: String,
    },
    /// The store is on read-only media and the operation writes.
    #[error("store {0} is read-only; this command needs to write to it")]
    ReadOnlyStore(PathBuf),
}

impl Error {
    /// Wraps an I/O error with the path it concerns, recognising a full disk.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        let path = path.into();
        if source.raw_os_error() == Some(libc::ENOSPC)
            || source.raw_os_error() == Some(libc::EDQUOT)
        {
            Error::DiskFull { path }
        } else {
            Error::Io {
                path,
                cause: source,
            }
        }
    }

    /// Builds a [`Error::Corrupt`] for `path`.
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Adds a path to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    /// Attaches `path` to the error.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
