//! Pinned models: plain, verified copies of a version's files that the mount serves natively.
//!
//! Owns the pin area ([`PinArea`]): where it lives, its lock, its table (`format::pins`), writing
//! a version's files as plain files (every chunk hashed on its way in, fs-verity enabled where the
//! file system has it), unpinning, keeping pins consistent with the registry after `rm` and
//! `gc`, and checking pinned copies against their manifests (`verify`). What the mount serves
//! from it is [`PinnedCopies`]; the automatic `--pin-budget` policy is `budget`; the fs-verity
//! ioctls are `verity`.
//!
//! ```text
//! PINS/pins.json          the table: pinned versions and their files
//! PINS/files/<manifest>   a pinned file, named by its manifest id (mode 0444)
//! PINS/tmp/               copies being written (removed at the next pin operation)
//! PINS/lock               flock'ed by whoever changes the area
//! ```
//! PINS is `STORE/pins` when the store is on a local file system this user may write (or already
//! holds a pin area), else `$XDG_CACHE_HOME/modelfs/<store id>/pins`: stores on sticks and shares
//! stay untouched.

pub mod budget;
pub mod verity;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, IoContext, Result};
use crate::format::manifest::Manifest;
use crate::format::pins::{self, MAX_PINS_LEN, Pin, PinTable, PinnedFile};
use crate::format::registry::{Registry, VersionEntry};
use crate::id::{ChunkId, ManifestId, StoreId};
use crate::progress::Progress;
use crate::read::Reader;
use crate::store::append::Appender;
use crate::store::fsutil::{self, create_new, open_lock_file, open_regular, read_capped};
use crate::store::now_unix;
use crate::store::paths::machine_cache_dir;

/// Folder of a store that holds its pin area.
pub const PINS_DIR: &str = "pins";
const TABLE_FILE: &str = "pins.json";
const FILES_DIR: &str = "files";
const TMP_DIR: &str = "tmp";
const LOCK_FILE: &str = "lock";
/// Bytes per read while copying a file into the pin area.
const COPY_BLOCK: usize = 8 << 20;
/// Free space a pin never takes (at least; also 5% of the file system).
const KEEP_FREE: u64 = 1 << 30;

/// File systems a store may keep its own pins on: local disks and RAM (not FAT/exFAT/NTFS sticks,
/// not network shares, not FUSE).
const LOCAL_FILE_SYSTEMS: [libc::__fsword_t; 8] = [
    0xEF53,      // ext2/3/4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0xF2F5_2010, // f2fs
    0x0102_1994, // tmpfs
    0x2FC1_2FC1, // zfs
    0xCA45_1A4E, // bcachefs
    0x8584_58F6, // ramfs
];

/// The pin area of one store.
#[derive(Debug, Clone)]
pub struct PinArea {
    dir: PathBuf,
    in_store: bool,
}

/// A pinned copy the mount may serve instead of the store's chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedCopy {
    /// The copy.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The fs-verity digest recorded when it was pinned, if the kernel verifies it.
    pub verity: Option<String>,
}

/// Every pinned copy, by manifest.
pub type PinnedCopies = HashMap<ManifestId, PinnedCopy>;

/// A pinned file whose bytes no longer match its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinDamage {
    /// `model@version/path`.
    pub label: String,
    /// What is wrong.
    pub reason: String,
}

impl PinArea {
    /// The pin area of the store at `root` with id `store_id`.
    pub fn locate(root: &Path, store_id: &StoreId) -> Result<PinArea> {
        let in_store = root.join(PINS_DIR);
        if std::fs::symlink_metadata(&in_store).is_ok_and(|m| m.is_dir()) || keeps_pins(root) {
            return Ok(PinArea {
                dir: in_store,
                in_store: true,
            });
        }
        Ok(PinArea {
            dir: machine_cache_dir(store_id)?.join(PINS_DIR),
            in_store: false,
        })
    }

    /// The pin area of an open store.
    pub fn of(store: &crate::Store) -> Result<PinArea> {
        PinArea::locate(store.root(), &store.config().store_id)
    }

    /// The area's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the area is inside the store (else in this machine's cache directory).
    pub fn in_store(&self) -> bool {
        self.in_store
    }

    fn table_path(&self) -> PathBuf {
        self.dir.join(TABLE_FILE)
    }

    /// Where the copy of the file with `manifest` lives.
    pub fn file_path(&self, manifest: &ManifestId) -> PathBuf {
        self.dir.join(FILES_DIR).join(manifest.to_hex())
    }

    /// The pin table; empty if nothing was ever pinned.
    pub fn table(&self) -> Result<PinTable> {
        let path = self.table_path();
        match read_capped(&path, MAX_PINS_LEN) {
            Ok(bytes) => pins::decode(&path, &bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PinTable::default()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// A stamp of the table file that changes whenever it is replaced (to poll it cheaply).
    pub fn stamp(&self) -> Option<(u64, i64, i64)> {
        let meta = std::fs::metadata(self.table_path()).ok()?;
        Some((meta.ino(), meta.mtime(), meta.mtime_nsec()))
    }

    /// Every pinned copy, by manifest.
    pub fn copies(&self) -> Result<PinnedCopies> {
        Ok(self
            .table()?
            .pins
            .iter()
            .flat_map(|pin| &pin.files)
            .map(|file| {
                let copy = PinnedCopy {
                    path: self.file_path(&file.manifest),
                    size: file.size,
                    verity: file.verity.clone(),
                };
                (file.manifest, copy)
            })
            .collect())
    }

    /// Takes the area's lock (waiting for another pin operation to end), creating the area, and
    /// clears copies a killed operation left half-written.
    fn lock(&self) -> Result<Flock<File>> {
        for dir in [
            &self.dir,
            &self.dir.join(FILES_DIR),
            &self.dir.join(TMP_DIR),
        ] {
            std::fs::create_dir_all(dir).map_err(|e| match e.raw_os_error() {
                Some(libc::EROFS) => Error::ReadOnlyStore(self.dir.clone()),
                Some(libc::EACCES) | Some(libc::EPERM) => Error::NotWritable(self.dir.clone()),
                _ => Error::io(dir, e),
            })?;
            fsutil::check_real_dir(dir)?;
        }
        let path = self.dir.join(LOCK_FILE);
        let file = open_lock_file(&path).at(&path)?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| Error::io(&path, errno.into()))?;
        let tmp = self.dir.join(TMP_DIR);
        for entry in std::fs::read_dir(&tmp).at(&tmp)? {
            let path = entry.at(&tmp)?.path();
            std::fs::remove_file(&path).at(&path)?;
        }
        Ok(lock)
    }

    fn save(&self, table: &PinTable) -> Result<()> {
        fsutil::write_atomic(&self.table_path(), &pins::encode(table))
    }

    /// Pins `model@version`: copies every file the version lacks in the area, reading through
    /// `reader` (every chunk verified), and records the pin. A version pinned before is pinned
    /// again (its files already there are kept). `auto` marks a pin of the mount's budget.
    pub fn pin(
        &self,
        reader: &Arc<Reader>,
        model: &str,
        version: &VersionEntry,
        auto: bool,
        progress: &dyn Progress,
    ) -> Result<Pin> {
        let _lock = self.lock()?;
        let mut table = self.table()?;
        progress.begin(version.files.iter().map(|f| f.size).sum());
        let mut files = Vec::with_capacity(version.files.len());
        for file in &version.files {
            let label = format!("{model}@{}/{}", version.version, file.path);
            let verity = self.copy_in(reader, label, file.manifest, file.size, progress)?;
            files.push(PinnedFile {
                path: file.path.clone(),
                manifest: file.manifest,
                size: file.size,
                verity,
            });
        }
        progress.finish();
        let now = now_unix();
        let pin = Pin {
            model: model.to_owned(),
            version: version.version.clone(),
            // Pinning by hand what the budget pinned makes it a pin of its own.
            auto,
            pinned_unix: now,
            used_unix: now,
            files,
        };
        table
            .pins
            .retain(|p| !(p.model == pin.model && p.version == pin.version));
        table.pins.push(pin.clone());
        self.save(&table)?;
        Ok(pin)
    }

    /// Writes the copy of one file unless it is there; returns its fs-verity digest.
    fn copy_in(
        &self,
        reader: &Arc<Reader>,
        label: String,
        manifest: ManifestId,
        size: u64,
        progress: &dyn Progress,
    ) -> Result<Option<String>> {
        let dest = self.file_path(&manifest);
        if let Ok(existing) = open_regular(&dest)
            && existing.metadata().at(&dest)?.len() == size
        {
            progress.advance(size);
            return verity::measure(&existing).at(&dest);
        }
        self.require_space(size)?;
        let open = reader.open_listed(label, &manifest, size)?;
        let tmp = self.dir.join(TMP_DIR).join(manifest.to_hex());
        let written = (|| {
            let out = copy_verified(&open, create_new(&tmp, 0o644)?, &tmp, progress)?;
            out.set_permissions(std::fs::Permissions::from_mode(0o444))
                .at(&tmp)?;
            out.sync_all().at(&tmp)?;
            drop(out);
            // fs-verity is enabled on a file nobody has open for writing.
            let verity = verity::enable(&File::open(&tmp).at(&tmp)?).at(&tmp)?;
            std::fs::rename(&tmp, &dest).at(&dest)?;
            fsutil::fsync_dir(&self.dir.join(FILES_DIR))?;
            Ok(verity)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// Refuses to start a copy of `size` bytes that would leave less than [`KEEP_FREE`] (or 5%)
    /// of the area's file system free.
    fn require_space(&self, size: u64) -> Result<()> {
        let stat =
            nix::sys::statvfs::statvfs(&self.dir).map_err(|e| Error::io(&self.dir, e.into()))?;
        let fragment = stat.fragment_size() as u64;
        let (free, total) = (
            stat.blocks_available() as u64 * fragment,
            stat.blocks() as u64 * fragment,
        );
        let keep = KEEP_FREE.max(total / 20);
        if total > 0 && free < size.saturating_add(keep) {
            return Err(Error::BadInput {
                path: self.dir.clone(),
                reason: format!(
                    "not enough free space to pin: the copy needs {size} bytes and {free} are \
                     free (keeping {keep} free); unpin something or free space first"
                ),
            });
        }
        Ok(())
    }

    /// Unpins `model@version`, or every version of `model` pinned; removes copies no other pin
    /// uses. Returns the pins removed; none is an error naming the model.
    pub fn unpin(&self, model: &str, version: Option<&str>) -> Result<Vec<Pin>> {
        let _lock = self.lock()?;
        let mut table = self.table()?;
        let (removed, kept): (Vec<Pin>, Vec<Pin>) = table
            .pins
            .into_iter()
            .partition(|p| p.model == model && version.is_none_or(|v| v == p.version));
        if removed.is_empty() {
            return Err(Error::BadInput {
                path: self.dir.clone(),
                reason: format!(
                    "{model}{} is not pinned; `modelfs ls` shows what is",
                    version.map(|v| format!("@{v}")).unwrap_or_default()
                ),
            });
        }
        table.pins = kept;
        self.save(&table)?;
        self.sweep(&table)?;
        Ok(removed)
    }

    /// Drops the pins of versions the registry no longer has (after `rm`, `gc`) and the copies
    /// nothing pins; returns the `model@version` of each pin dropped.
    pub fn retain(&self, registry: &Registry) -> Result<Vec<String>> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        let mut table = self.table()?;
        let listed = |pin: &Pin| {
            registry
                .models
                .get(&pin.model)
                .and_then(|m| m.versions.iter().find(|v| v.version == pin.version))
                .is_some_and(|v| {
                    v.files.len() == pin.files.len()
                        && v.files.iter().zip(&pin.files).all(|(f, p)| {
                            f.manifest == p.manifest && f.path == p.path && f.size == p.size
                        })
                })
        };
        let (kept, dropped): (Vec<Pin>, Vec<Pin>) = table.pins.into_iter().partition(|p| listed(p));
        table.pins = kept;
        if !dropped.is_empty() {
            self.save(&table)?;
        }
        self.sweep(&table)?;
        Ok(dropped
            .iter()
            .map(|p| format!("{}@{}", p.model, p.version))
            .collect())
    }

    /// Records when the mount last opened files of pinned versions (unix seconds by manifest).
    pub fn record_use(&self, used: &HashMap<ManifestId, u64>) -> Result<()> {
        if used.is_empty() {
            return Ok(());
        }
        let _lock = self.lock()?;
        let mut table = self.table()?;
        for pin in &mut table.pins {
            if let Some(&at) = pin.files.iter().filter_map(|f| used.get(&f.manifest)).max() {
                pin.used_unix = pin.used_unix.max(at);
            }
        }
        self.save(&table)
    }

    /// Removes copies no pin lists. The caller holds the lock.
    fn sweep(&self, table: &PinTable) -> Result<()> {
        let live: HashSet<String> = table
            .pins
            .iter()
            .flat_map(|p| &p.files)
            .map(|f| f.manifest.to_hex())
            .collect();
        let files = self.dir.join(FILES_DIR);
        for entry in std::fs::read_dir(&files).at(&files)? {
            let entry = entry.at(&files)?;
            if !live.contains(entry.file_name().to_string_lossy().as_ref()) {
                std::fs::remove_file(entry.path()).at(entry.path())?;
            }
        }
        Ok(())
    }

    /// Hashes every chunk of every pinned copy against its manifest. A damaged copy is removed
    /// and its pins dropped, so the mount reads the store's chunks again; the damage is returned.
    pub fn check(
        &self,
        manifest: &dyn Fn(&ManifestId) -> Result<Manifest>,
        progress: &dyn Progress,
    ) -> Result<Vec<PinDamage>> {
        if !self.table_path().exists() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        let mut table = self.table()?;
        progress.begin(
            table
                .pins
                .iter()
                .flat_map(|p| &p.files)
                .map(|f| f.size)
                .sum(),
        );
        let mut damaged: HashMap<ManifestId, String> = HashMap::new();
        let mut checked = HashSet::new();
        for file in table.pins.iter().flat_map(|p| &p.files) {
            if !checked.insert(file.manifest) {
                progress.advance(file.size);
                continue;
            }
            let path = self.file_path(&file.manifest);
            if let Err(reason) = check_copy(&path, &manifest(&file.manifest)?, progress) {
                damaged.insert(file.manifest, reason);
            }
        }
        progress.finish();
        let mut report = Vec::new();
        for pin in &table.pins {
            for file in &pin.files {
                if let Some(reason) = damaged.get(&file.manifest) {
                    report.push(PinDamage {
                        label: format!("{}@{}/{}", pin.model, pin.version, file.path),
                        reason: reason.clone(),
                    });
                }
            }
        }
        if !damaged.is_empty() {
            table
                .pins
                .retain(|p| !p.files.iter().any(|f| damaged.contains_key(&f.manifest)));
            self.save(&table)?;
            self.sweep(&table)?;
        }
        Ok(report)
    }
}

/// Whether a store at `root` keeps its own pins: a local file system this user may write, on a
/// disk that is not removable.
fn keeps_pins(root: &Path) -> bool {
    let local = nix::sys::statfs::statfs(root)
        .is_ok_and(|s| LOCAL_FILE_SYSTEMS.contains(&s.filesystem_type().0));
    local
        && nix::unistd::access(root, nix::unistd::AccessFlags::W_OK).is_ok()
        && !on_removable_disk(root)
}

/// Whether `path` lives on a block device the kernel marks removable (a USB stick, an SD card).
fn on_removable_disk(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let device = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    let Ok(device) = device.canonicalize() else {
        return false;
    };
    // A partition's flag is on its disk, one level up.
    [device.join("removable"), device.join("../removable")]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .is_some_and(|flag| flag.trim() == "1")
}

/// Copies `open` into the empty `out` (at `path`) and returns it, every byte handed to the
/// kernel: this thread reads and verifies blocks (decoding on all cores), the [`Appender`]'s
/// thread writes them meanwhile (bypassing the page cache where it can).
fn copy_verified(
    open: &crate::read::OpenFile,
    out: File,
    path: &Path,
    progress: &dyn Progress,
) -> Result<File> {
    let mut out = Appender::new(out, path)?;
    let size = open.size();
    let mut buf = vec![0u8; COPY_BLOCK];
    let mut offset = 0u64;
    while offset < size {
        let want = COPY_BLOCK.min((size - offset) as usize);
        let n = open.read_at(offset, &mut buf[..want])?;
        if n == 0 {
            return Err(Error::corrupt(open.label(), "ended before its size"));
        }
        out.write(&buf[..n])?;
        offset += n as u64;
        progress.advance(n as u64);
    }
    out.finish()
}

/// Checks one copy against its manifest: size, then every chunk's blake3.
fn check_copy(
    path: &Path,
    manifest: &Manifest,
    progress: &dyn Progress,
) -> std::result::Result<(), String> {
    let file = open_regular(path).map_err(|e| format!("cannot open the copy: {e}"))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len != manifest.size {
        return Err(format!(
            "the copy holds {len} bytes, the file {}",
            manifest.size
        ));
    }
    let mut buf = Vec::new();
    for chunk in &manifest.chunks {
        buf.resize(chunk.len as usize, 0);
        file.read_exact_at(&mut buf, chunk.offset)
            .map_err(|e| format!("cannot read at offset {}: {e}", chunk.offset))?;
        if ChunkId::of(&buf) != chunk.id {
            return Err(format!(
                "bytes {}..{} differ from chunk {}",
                chunk.offset,
                chunk.end(),
                chunk.id.short()
            ));
        }
        progress.advance(u64::from(chunk.len));
    }
    Ok(())
}
