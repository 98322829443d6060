//! Pack files on disk: appending records while ingesting, sealing, and positioned reads.
//!
//! Owns the file I/O of packs: [`PackWriter`] (append-only, `.pack.tmp` until sealed, then fsynced
//! and renamed to `.pack`), [`PackFiles`] (an fd cache serving `pread`s of records), and the two
//! ways to list a pack's chunks: [`read_table`] from a sealed pack's footer and [`scan_records`] for a
//! pack whose footer is missing or damaged. Byte layouts come from `format::pack`.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::error::{Error, IoContext, Result};
use crate::format::pack::{
    self, HEADER_LEN, MAX_PACK_LEN, PACK_FORMAT_VERSION, PackHeader, RECORD_HEADER_LEN,
    RecordHeader, TRAILER_LEN, TableEntry, Trailer,
};
use crate::id::{PackId, random_bytes};
use crate::store::append::Appender;
use crate::store::chunk::{self, Check};
use crate::store::fsutil::{create_new, fsync_dir, open_regular};
use crate::store::index::Location;

/// Granularity of [`PackFiles::drop_behind`]: the largest folio the page cache uses on x86-64.
pub const DROP_BEHIND_ALIGN: u64 = 2 << 20;

/// File name extension of a sealed pack.
pub const PACK_EXTENSION: &str = "pack";
/// File name suffix of a pack still being written.
pub const UNSEALED_SUFFIX: &str = ".pack.tmp";

/// Path of the sealed pack `id` inside `dir`.
pub fn pack_path(dir: &Path, id: &PackId) -> PathBuf {
    dir.join(format!("{id}.{PACK_EXTENSION}"))
}

/// A pack being filled by one writer.
pub struct PackWriter {
    id: PackId,
    dir: PathBuf,
    /// The unsealed file, written by a thread of its own.
    file: Appender,
    len: u64,
    entries: Vec<TableEntry>,
}

/// A pack that is durable under its final name.
#[derive(Debug)]
pub struct SealedPack {
    /// The pack.
    pub id: PackId,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its chunks.
    pub entries: Vec<TableEntry>,
}

impl PackWriter {
    /// Starts a new pack with a fresh random id in `dir`.
    pub fn create(dir: &Path) -> Result<PackWriter> {
        let id = PackId(random_bytes());
        let tmp_path = dir.join(format!("{id}{UNSEALED_SUFFIX}"));
        let mut file = Appender::new(create_new(&tmp_path, 0o644)?, &tmp_path)?;
        file.write(
            &PackHeader {
                version: PACK_FORMAT_VERSION,
                pack_id: id,
            }
            .encode(),
        )?;
        Ok(PackWriter {
            id,
            dir: dir.to_owned(),
            file,
            len: HEADER_LEN as u64,
            entries: Vec::new(),
        })
    }

    /// Hands the records appended so far to the kernel (no fsync): a process killed afterwards
    /// loses none of them, and the next writer salvages them.
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush()
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Records appended so far.
    pub fn records(&self) -> usize {
        self.entries.len()
    }

    /// Whether no chunk has been appended.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends one chunk's record (`payload` encoded as `header` says) and returns where it landed.
    pub fn append(&mut self, header: RecordHeader, payload: &[u8]) -> Result<Location> {
        debug_assert_eq!(payload.len(), header.stored_len as usize);
        let entry = TableEntry {
            header,
            offset: self.len,
        };
        self.file.write(&header.encode())?;
        self.file.write(payload)?;
        self.len += header.record_len();
        self.entries.push(entry);
        Ok(Location::of_entry(self.id, &entry))
    }

    /// Writes the table and trailer, fsyncs, and renames the pack to its final name. If any of
    /// it fails, the pack's file is deleted (nothing points into it yet), so a failed write, a
    /// full disk above all, leaves no bytes behind and the space for rolling back.
    pub fn seal(self) -> Result<SealedPack> {
        let tmp_path = self.file.path().to_owned();
        let final_path = pack_path(&self.dir, &self.id);
        let sealed = self.write_tail(&final_path);
        if sealed.is_err() {
            let _ = std::fs::remove_file(&tmp_path);
            let _ = std::fs::remove_file(&final_path);
        }
        sealed
    }

    fn write_tail(mut self, final_path: &Path) -> Result<SealedPack> {
        let table = pack::encode_table(&self.entries);
        let trailer = Trailer {
            table_hash: *blake3::hash(&table).as_bytes(),
            table_offset: self.len,
            entry_count: self.entries.len() as u64,
        };
        self.file.write(&table)?;
        self.file.write(&trailer.encode())?;
        let tmp_path = self.file.path().to_owned();
        let file = self.file.finish()?;
        file.sync_all().at(&tmp_path)?;
        std::fs::rename(&tmp_path, final_path).at(final_path)?;
        fsync_dir(&self.dir)?;
        let bytes = self.len + table.len() as u64 + TRAILER_LEN as u64;
        Ok(SealedPack {
            id: self.id,
            bytes,
            entries: self.entries,
        })
    }

    /// Deletes the unsealed pack (after a failed ingest).
    pub fn abandon(self) {
        let path = self.file.path().to_owned();
        drop(self);
        let _ = std::fs::remove_file(path);
    }
}

/// Reads the table of the sealed pack at `path`, checking magic, version, id and checksum.
pub fn read_table(path: &Path, expected: &PackId) -> Result<Vec<TableEntry>> {
    let mut file = open_regular(path).at(path)?;
    let len = file.metadata().at(path)?.len();
    check_header(&mut file, path, expected)?;
    if len > MAX_PACK_LEN {
        return Err(Error::corrupt(
            path,
            format!("is {len} bytes, larger than any pack"),
        ));
    }
    if len < (HEADER_LEN + TRAILER_LEN) as u64 {
        return Err(Error::corrupt(path, "pack is unsealed (no trailer)"));
    }
    let mut trailer_bytes = [0u8; TRAILER_LEN];
    file.read_exact_at(&mut trailer_bytes, len - TRAILER_LEN as u64)
        .at(path)?;
    let trailer = Trailer::decode(&trailer_bytes)
        .filter(|t| t.fits(len))
        .ok_or_else(|| Error::corrupt(path, "pack is unsealed or its trailer is damaged"))?;
    let mut tail = vec![0u8; (len - trailer.table_offset) as usize];
    file.read_exact_at(&mut tail, trailer.table_offset)
        .at(path)?;
    pack::decode_tail(&tail, len).map_err(|reason| Error::corrupt(path, reason))
}

fn check_header(file: &mut File, path: &Path, expected: &PackId) -> Result<()> {
    let mut bytes = [0u8; HEADER_LEN];
    file.read_exact(&mut bytes)
        .map_err(|_| Error::corrupt(path, "shorter than a pack header"))?;
    let header =
        PackHeader::decode(&bytes).ok_or_else(|| Error::corrupt(path, "not a modelfs pack"))?;
    crate::format::check_version("pack", path, header.version, PACK_FORMAT_VERSION)?;
    if header.pack_id != *expected {
        return Err(Error::corrupt(
            path,
            format!("header names pack {}", header.pack_id),
        ));
    }
    Ok(())
}

/// Recovers the chunks of a pack by walking its records from the start, keeping each record whose
/// bytes decode and hash to its id. Damage does not end the walk: a damaged header (of the pack
/// or a record) or payload is stepped over, and the walk resumes at the next offset where a record
/// verifies, so intact chunks after a damaged one are still found.
pub fn scan_records(path: &Path, expected: &PackId) -> Result<Vec<TableEntry>> {
    let mut file = open_regular(path).at(path)?;
    // Nothing past the largest a pack can be holds records.
    let len = file.metadata().at(path)?.len().min(MAX_PACK_LEN);
    if let Err(e) = check_header(&mut file, path, expected) {
        tracing::warn!(error = %e, "pack header damaged; scanning its records anyway");
    }
    let mut window = Window::new(&file);
    let (mut offset, mut entries) = (HEADER_LEN as u64, Vec::new());
    let mut decoded = Vec::new();
    let mut resyncing = false;
    // Bytes read and hashed for records that then fail: bounded, so a pack crafted with many
    // plausible headers cannot keep the scan busy for days.
    let mut budget = len.saturating_mul(2).saturating_add(128 << 20);
    while offset + RECORD_HEADER_LEN as u64 <= len {
        let found = window
            .bytes_at(offset, RECORD_HEADER_LEN)
            // While searching through damage, a header must also have its reserved bytes zero
            // (as writers leave them): random bytes almost never pass, so the search costs few
            // payload reads. At an expected record boundary the payload hash alone decides.
            .filter(|b| !resyncing || (b[33..36] == [0; 3] && b[44..48] == [0; 4]))
            .and_then(RecordHeader::decode)
            .filter(|h| h.raw_len > 0 && offset + h.record_len() <= len)
            .filter(|header| {
                let cost = u64::from(header.raw_len) + u64::from(header.stored_len);
                budget = budget.saturating_sub(cost);
                let entry = TableEntry {
                    header: *header,
                    offset,
                };
                decoded.resize(header.raw_len as usize, 0);
                let at = offset + RECORD_HEADER_LEN as u64;
                let read = |buf: &mut [u8]| file.read_exact_at(buf, at).at(path);
                let location = Location::of_entry(*expected, &entry);
                budget > 0
                    && chunk::load(
                        &header.chunk_id,
                        &location,
                        &mut decoded,
                        Check::Verify,
                        read,
                        |_| {},
                    )
                    .is_ok()
            });
        match found {
            Some(header) => {
                if resyncing {
                    tracing::warn!(pack = %path.display(), offset, "found intact records again after damage");
                    resyncing = false;
                }
                entries.push(TableEntry { header, offset });
                offset += header.record_len();
            }
            None if budget == 0 => {
                tracing::warn!(pack = %path.display(), offset, "pack too damaged to scan further; the rest of its records are not recovered");
                break;
            }
            None => {
                if !resyncing {
                    tracing::warn!(pack = %path.display(), offset, "damaged record; searching for the next intact one");
                    resyncing = true;
                }
                offset += 1;
            }
        }
    }
    Ok(entries)
}

/// A read-ahead window over a file for scanning: small reads at nearby offsets cost no system call.
struct Window<'f> {
    file: &'f File,
    start: u64,
    bytes: Vec<u8>,
}

impl<'f> Window<'f> {
    const LEN: usize = 4 << 20;

    fn new(file: &'f File) -> Window<'f> {
        Window {
            file,
            start: 0,
            bytes: Vec::new(),
        }
    }

    /// `n` bytes at `offset`, or `None` past the end of the file or on a read error.
    fn bytes_at(&mut self, offset: u64, n: usize) -> Option<&[u8]> {
        let inside =
            offset >= self.start && offset + n as u64 <= self.start + self.bytes.len() as u64;
        if !inside {
            self.bytes.resize(Self::LEN.max(n), 0);
            let mut filled = 0;
            while filled < self.bytes.len() {
                match self
                    .file
                    .read_at(&mut self.bytes[filled..], offset + filled as u64)
                {
                    Ok(0) => break,
                    Ok(read) => filled += read,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            self.bytes.truncate(filled);
            self.start = offset;
        }
        let at = (offset - self.start) as usize;
        self.bytes.get(at..at + n)
    }
}

/// Open pack files of a store, shared by all readers.
pub struct PackFiles {
    dir: PathBuf,
    /// Packs opened so far. Read-mostly: a write lock is taken only to insert a newly opened pack.
    /// Packs are immutable and never renamed once sealed, so a cached fd stays valid even if `gc`
    /// deletes the file (the open fd keeps its bytes readable until it is dropped).
    open: RwLock<HashMap<PackId, Arc<File>>>,
}

impl PackFiles {
    /// Packs under `dir`.
    pub fn new(dir: PathBuf) -> PackFiles {
        PackFiles {
            dir,
            open: RwLock::new(HashMap::new()),
        }
    }

    /// The packs directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, id: &PackId) -> Result<Arc<File>> {
        if let Some(file) = self.open.read().expect("pack cache lock poisoned").get(id) {
            return Ok(file.clone());
        }
        let path = pack_path(&self.dir, id);
        let file = match open_regular(&path) {
            Ok(file) => Arc::new(file),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingPack(*id));
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let mut open = self.open.write().expect("pack cache lock poisoned");
        Ok(open.entry(*id).or_insert(file).clone())
    }

    /// Reads the payload of the record at `location` into `dst` (exactly `stored_len` bytes).
    pub fn read_payload(&self, location: &Location, dst: &mut [u8]) -> Result<()> {
        debug_assert_eq!(dst.len(), location.stored_len as usize);
        self.read_at(
            &location.pack,
            location.offset + RECORD_HEADER_LEN as u64,
            dst,
        )
    }

    /// Reads `dst.len()` bytes of pack `pack` at `offset`. A pack deleted under a cached fd on a
    /// network file system (`ESTALE`) counts as missing, so the caller looks the chunk up again.
    pub fn read_at(&self, pack: &PackId, offset: u64, dst: &mut [u8]) -> Result<()> {
        let file = self.file(pack)?;
        file.read_exact_at(dst, offset).map_err(|e| {
            let path = pack_path(&self.dir, pack);
            match e.kind() {
                std::io::ErrorKind::UnexpectedEof => {
                    Error::corrupt(path, format!("read at {offset} runs past the end"))
                }
                _ if e.raw_os_error() == Some(libc::ESTALE) => {
                    self.forget(pack);
                    Error::MissingPack(*pack)
                }
                _ => Error::io(path, e),
            }
        })
    }

    /// Drop-behind for a reader that hands chunk bytes on to another cache (the mounted file's
    /// pages): once a record that crosses a [`DROP_BEHIND_ALIGN`] boundary has been read, the
    /// pack's cached pages of the aligned region before that boundary are dropped. The kernel caches
    /// packs in large folios (up to 2 MiB) and only drops folios wholly inside the advised range,
    /// so per-record advice would drop nothing; sequential readers release everything behind them.
    pub fn drop_behind(&self, location: &Location) {
        let end = location.offset + RECORD_HEADER_LEN as u64 + u64::from(location.stored_len);
        let from = location.offset / DROP_BEHIND_ALIGN * DROP_BEHIND_ALIGN;
        let to = end / DROP_BEHIND_ALIGN * DROP_BEHIND_ALIGN;
        if to <= from {
            return;
        }
        if let Ok(file) = self.file(&location.pack) {
            let _ = nix::fcntl::posix_fadvise(
                &*file,
                from as i64,
                (to - from) as i64,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            );
        }
    }

    /// Drops cached fds (after packs were deleted, so their space is released).
    pub fn forget(&self, id: &PackId) {
        self.open
            .write()
            .expect("pack cache lock poisoned")
            .remove(id);
    }
}
