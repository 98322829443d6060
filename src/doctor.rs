//! `modelfs doctor`: the checks of what mounts and stores trip over, each with what it found and
//! the fix.
//!
//! Owns [`Check`], [`Status`] and [`run`]: the FUSE device, `fusermount3`, who can read a mount,
//! the kernel (FUSE passthrough, request size), the store (readable, writable, its writer lock,
//! free space, index against packs) and, given a mountpoint, whether a modelfs mount there is live
//! or stale. Checks are data; the CLI prints them. Nothing is changed, except that the writer
//! lock is taken for an instant (and released) to learn whether someone else holds it.

use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;
use crate::store::index::Index;
use crate::store::paths::StorePaths;
use crate::store::{Access, Store, fsutil, recovery};

/// How long a mountpoint may take to answer before it counts as hung.
const MOUNT_ANSWER: Duration = Duration::from_secs(5);
/// Free space below which writes are at risk (also below 5% of the file system).
const LOW_SPACE_BYTES: u64 = 1 << 30;
/// Pages per FUSE request the mount is built for: 1 MiB reads (`mount::READAHEAD_KIB`).
const WANTED_MAX_PAGES: u64 = 256;
/// The first kernel with FUSE passthrough (`CONFIG_FUSE_PASSTHROUGH`).
const PASSTHROUGH_KERNEL: (u32, u32) = (6, 9);
/// The first kernel that lets FUSE requests exceed 128 KiB (`max_pages`).
const MAX_PAGES_KERNEL: (u32, u32) = (4, 20);
/// The source a modelfs mount shows in the mount table (its FUSE `fsname`).
const MODELFS_SOURCE: &str = "modelfs";

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// Works, but may bite later or in some setups; the fix says what to do about it.
    Warn,
    /// Broken: something users rely on fails until the fix is applied.
    Fail,
}

/// One check: what was looked at, how it came out, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// Stable name, for scripts (`fuse_device`, `writer_lock`, …).
    pub name: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was found, in one line.
    pub finding: String,
    /// What to do, in one line; empty when nothing is needed.
    pub fix: String,
}

impl Check {
    fn new(name: &'static str, status: Status, finding: impl Into<String>, fix: &str) -> Check {
        Check {
            name,
            status,
            finding: finding.into(),
            fix: fix.to_owned(),
        }
    }

    fn ok(name: &'static str, finding: impl Into<String>) -> Check {
        Check::new(name, Status::Ok, finding, "")
    }
}

/// Whether nothing failed (warnings allowed): what `modelfs doctor`'s exit status reports.
pub fn all_well(checks: &[Check]) -> bool {
    checks.iter().all(|check| check.status != Status::Fail)
}

/// Runs every check for the store at `store` and, if given, the mount at `mountpoint`. Always
/// returns the same checks in the same order (those that depend on an unreadable store say so).
pub fn run(store: &Path, mountpoint: Option<&Path>) -> Vec<Check> {
    let root = nix::unistd::geteuid().is_root();
    let mut checks = vec![
        fuse_device(),
        fusermount(root),
        mount_access(root),
        kernel(),
        fuse_max_pages(),
    ];
    let command = Commands::new(store);
    match open_store(store, &command) {
        Ok((opened, check)) => {
            checks.push(check);
            checks.extend([
                store_writable(store),
                writer_lock(store),
                free_space(store),
                index(&opened, &command),
                pins(&opened),
            ]);
        }
        Err(check) => {
            checks.push(check);
            for name in [
                "store_writable",
                "writer_lock",
                "free_space",
                "index",
                "pins",
            ] {
                checks.push(Check::new(
                    name,
                    Status::Warn,
                    "not checked: the store cannot be opened",
                    "fix the store first",
                ));
            }
        }
    }
    if let Some(mountpoint) = mountpoint {
        checks.push(mount(mountpoint));
    }
    checks
}

/// How to spell modelfs commands for this store in a fix: with `--store` unless it is the one
/// modelfs picks by itself.
struct Commands {
    prefix: String,
}

impl Commands {
    fn new(store: &Path) -> Commands {
        let chosen = std::env::var_os("MODELFS_STORE")
            .map(PathBuf::from)
            .or_else(crate::store::paths::default_store_dir);
        let prefix = match chosen.as_deref() == Some(store) {
            true => "modelfs".to_owned(),
            false => format!("modelfs --store {}", quoted(store)),
        };
        Commands { prefix }
    }

    /// `modelfs [--store STORE] ARGS`, in backquotes.
    fn run(&self, args: &str) -> String {
        format!("`{} {args}`", self.prefix)
    }
}

/// `path` as a shell word.
fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    match text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+@:,".contains(c))
    {
        true => text,
        false => format!("'{}'", text.replace('\'', r"'\''")),
    }
}

/// Whether `error` is "transport endpoint is not connected": a FUSE mount whose daemon died.
fn is_dead_mount(error: &std::io::Error) -> bool {
    error.raw_os_error() == Some(libc::ENOTCONN)
}

/// Runs `work` on its own thread and waits up to [`MOUNT_ANSWER`] for it: a hung FUSE mount
/// blocks whoever touches it, and doctor must answer anyway. A thread still waiting is left
/// behind; it ends with the process.
fn answered<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    rx.recv_timeout(MOUNT_ANSWER).ok()
}

// ---------------------------------------------------------------------------------------------
// FUSE and the kernel.
// ---------------------------------------------------------------------------------------------

fn fuse_device() -> Check {
    const NAME: &str = "fuse_device";
    let device = Path::new("/dev/fuse");
    let missing_fix = "load the module (`modprobe fuse`); in a container, start it with \
                       `--device /dev/fuse`";
    match std::fs::metadata(device) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Check::new(NAME, Status::Fail, "/dev/fuse does not exist", missing_fix)
        }
        Err(e) => Check::new(NAME, Status::Fail, format!("/dev/fuse: {e}"), missing_fix),
        Ok(meta) if !meta.file_type().is_char_device() => Check::new(
            NAME,
            Status::Fail,
            "/dev/fuse is not a character device",
            "remove it and load the module (`rm /dev/fuse && modprobe fuse`)",
        ),
        Ok(meta) => match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(device)
        {
            Ok(_) => Check::ok(NAME, "/dev/fuse is a character device this user can open"),
            Err(e) => Check::new(
                NAME,
                Status::Fail,
                format!(
                    "this user cannot open /dev/fuse (mode {:o}): {e}",
                    meta.permissions().mode() & 0o7777
                ),
                "let users open it (`chmod 0666 /dev/fuse`, Debian's default), or mount as root",
            ),
        },
    }
}

/// The first `name` that is a file in one of the PATH directories (or the usual system ones).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn fusermount(root: bool) -> Check {
    const NAME: &str = "fusermount3";
    let install = "install it (`apt install fuse3`)";
    let Some(path) = find_program("fusermount3") else {
        return match root {
            true => Check::new(
                NAME,
                Status::Warn,
                "fusermount3 is not installed: root mounts without it, other users cannot mount",
                install,
            ),
            false => Check::new(
                NAME,
                Status::Fail,
                "fusermount3 is not installed: this user cannot mount",
                install,
            ),
        };
    };
    let setuid_root = std::fs::metadata(&path)
        .is_ok_and(|meta| meta.uid() == 0 && meta.permissions().mode() & 0o4000 != 0);
    match root || setuid_root {
        true => Check::ok(NAME, format!("{} is installed", path.display())),
        false => Check::new(
            NAME,
            Status::Fail,
            format!(
                "{} is not setuid root: this user cannot mount",
                path.display()
            ),
            "reinstall it (`apt install --reinstall fuse3`)",
        ),
    }
}

fn mount_access(root: bool) -> Check {
    const NAME: &str = "mount_access";
    match root {
        true => Check::ok(
            NAME,
            "mounts made as root let every user read them (allow_other)",
        ),
        false => Check::new(
            NAME,
            Status::Warn,
            format!(
                "mounts made by this user (uid {}) can be read by it alone: modelfs asks for \
                 allow_other only when mounting as root",
                nix::unistd::geteuid()
            ),
            "to serve an engine running as another user, mount as root, or run the engine as \
             this user",
        ),
    }
}

/// `major.minor` of a kernel release such as `6.8.0-45-generic`.
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// What a kernel config says of `option`: `Some(true)` built in or a module, `Some(false)` not
/// set, `None` not mentioned.
fn config_option(config: &str, option: &str) -> Option<bool> {
    config.lines().find_map(|line| {
        let line = line.trim();
        if line == format!("# {option} is not set") {
            return Some(false);
        }
        let value = line.strip_prefix(option)?.strip_prefix('=')?;
        Some(value == "y" || value == "m")
    })
}

/// The running kernel's config: `/boot/config-RELEASE`, else `/proc/config.gz` (through gzip).
fn kernel_config(release: &str) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(format!("/boot/config-{release}")) {
        return Some(text);
    }
    let out = std::process::Command::new("gzip")
        .args(["-dc", "/proc/config.gz"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn kernel() -> Check {
    const NAME: &str = "kernel";
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(version) = kernel_version(&release) else {
        return Check::new(
            NAME,
            Status::Warn,
            format!("cannot tell the kernel version from {release:?}"),
            "",
        );
    };
    if version < MAX_PAGES_KERNEL {
        return Check::new(
            NAME,
            Status::Warn,
            format!("Linux {release}: FUSE reads arrive in requests of at most 128 KiB"),
            "a kernel of 4.20 or later reads in 1 MiB requests, several times faster",
        );
    }
    let passthrough = match kernel_passthrough(&release, version) {
        Ok(()) => "yes".to_owned(),
        Err(why) => format!("no ({why})"),
    };
    Check::ok(
        NAME,
        format!(
            "Linux {release}; FUSE passthrough: {passthrough} (used for pinned models; unpinned \
             ones are chunked, compressed data served by the mount)"
        ),
    )
}

/// Whether the running kernel has FUSE passthrough, or why not.
fn kernel_passthrough(release: &str, version: (u32, u32)) -> Result<(), String> {
    if version < PASSTHROUGH_KERNEL {
        return Err("needs Linux 6.9".into());
    }
    match kernel_config(release).map(|config| config_option(&config, "CONFIG_FUSE_PASSTHROUGH")) {
        Some(Some(true)) => Ok(()),
        Some(_) => Err("CONFIG_FUSE_PASSTHROUGH is not set".into()),
        None => Err("unknown: no kernel config in /boot or /proc/config.gz".into()),
    }
}

/// Whether this process holds CAP_SYS_ADMIN, which the kernel asks of a daemon handing it
/// backing files.
fn has_sys_admin() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
            u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// The store's pins: how many, where, and how a mount started by this user would serve them.
fn pins(store: &Store) -> Check {
    const NAME: &str = "pins";
    let area = match crate::pin::PinArea::of(store) {
        Ok(area) => area,
        Err(e) => return Check::new(NAME, Status::Warn, format!("no pin area: {e}"), ""),
    };
    let table = match area.table() {
        Ok(table) => table,
        Err(e) => {
            return Check::new(
                NAME,
                Status::Fail,
                format!("the pin table cannot be read: {e}"),
                &format!("remove {} and pin again", quoted(area.dir())),
            );
        }
    };
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let serving = match kernel_version(&release).map(|v| kernel_passthrough(&release, v)) {
        Some(Ok(())) if has_sys_admin() => "by FUSE passthrough (native speed)".to_owned(),
        Some(Ok(())) => {
            "by reads in the mount: passthrough needs CAP_SYS_ADMIN (mount as root)".to_owned()
        }
        Some(Err(why)) => format!("by reads in the mount: no FUSE passthrough ({why})"),
        None => "by reads in the mount: unknown kernel".to_owned(),
    };
    let verity = table
        .pins
        .iter()
        .flat_map(|p| &p.files)
        .filter(|f| f.verity.is_some())
        .count();
    let files: usize = table.pins.iter().map(|p| p.files.len()).sum();
    Check::ok(
        NAME,
        format!(
            "{} pinned version{} in {}; a mount here serves them {serving}; {verity} of {files} \
             pinned files kernel-verified (fs-verity)",
            table.pins.len(),
            if table.pins.len() == 1 { "" } else { "s" },
            area.dir().display(),
        ),
    )
}

fn fuse_max_pages() -> Check {
    const NAME: &str = "fuse_max_pages";
    let knob = "/proc/sys/fs/fuse/max_pages_limit";
    let Ok(text) = std::fs::read_to_string(knob) else {
        return Check::ok(
            NAME,
            "no max_pages_limit knob: the kernel allows 256 pages (1 MiB) per request",
        );
    };
    match text.trim().parse::<u64>() {
        Ok(pages) if pages >= WANTED_MAX_PAGES => Check::ok(
            NAME,
            format!(
                "FUSE requests may carry up to {pages} pages; the mount uses {WANTED_MAX_PAGES} (1 MiB)"
            ),
        ),
        Ok(pages) => Check::new(
            NAME,
            Status::Warn,
            format!("{knob} is {pages}: reads arrive in requests smaller than 1 MiB, slower"),
            "raise it: `sysctl -w fs.fuse.max_pages_limit=256`",
        ),
        Err(_) => Check::new(
            NAME,
            Status::Warn,
            format!("{knob} holds {:?}", text.trim()),
            "",
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// The store.
// ---------------------------------------------------------------------------------------------

/// Opens the store for reading, with the `store` check; or the failed check.
fn open_store(store: &Path, command: &Commands) -> Result<(Store, Check), Check> {
    const NAME: &str = "store";
    let failed = |e: &Error| {
        let fix = match e {
            Error::NotAStore(_) => format!(
                "create it ({}), or name the store with --store DIR or MODELFS_STORE",
                command.run("init")
            ),
            Error::NewerFormat { .. } => "upgrade modelfs".to_owned(),
            Error::Io { cause, .. } if is_dead_mount(cause) => {
                "the file system holding it died: unmount it (`fusermount3 -uz MOUNT`) and \
                 mount it again"
                    .to_owned()
            }
            Error::Io { cause, .. } if cause.kind() == std::io::ErrorKind::PermissionDenied => {
                "run as a user that can read the store, or give this one access".to_owned()
            }
            Error::Corrupt { .. } => "restore the named file from a copy of the store; \
                                      `modelfs index rebuild` recreates only the index"
                .to_owned(),
            _ => String::new(),
        };
        Check::new(NAME, Status::Fail, e.to_string(), &fix)
    };
    let opened = Store::open(store, Access::Read).map_err(|e| failed(&e))?;
    let registry = opened.registry().map_err(|e| failed(&e))?;
    let versions: usize = registry.models.values().map(|m| m.versions.len()).sum();
    let check = Check::ok(
        NAME,
        format!(
            "store {} is readable: {} model(s), {versions} version(s)",
            store.display(),
            registry.models.len()
        ),
    );
    Ok((opened, check))
}

fn store_writable(store: &Path) -> Check {
    const NAME: &str = "store_writable";
    let paths = StorePaths::new(store);
    let denied = [paths.root.clone(), paths.packs(), paths.manifests()]
        .into_iter()
        .find_map(|dir| {
            nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK)
                .err()
                .map(|errno| (dir, errno))
        });
    match denied {
        None => Check::ok(NAME, "this user can write to the store"),
        Some((_, nix::errno::Errno::EROFS)) => Check::new(
            NAME,
            Status::Warn,
            "the store is on read-only media: it can be mounted and read, not changed",
            "to add or remove models, remount its file system read-write",
        ),
        Some((dir, errno)) => {
            let owner = std::fs::metadata(&dir).map(|m| m.uid()).unwrap_or(0);
            Check::new(
                NAME,
                Status::Warn,
                format!(
                    "this user (uid {}) cannot write {} ({}): mounting and reading work; add, \
                     rm, gc and mount --fill do not",
                    nix::unistd::geteuid(),
                    dir.display(),
                    errno.desc()
                ),
                &format!("run commands that change the store as its owner (uid {owner})"),
            )
        }
    }
}

/// A lock listed in `/proc/locks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HeldLock {
    pid: i32,
    major: u32,
    minor: u32,
    inode: u64,
}

/// The `flock` locks held (not waited for) in `/proc/locks` text, e.g.
/// `1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF`.
fn flocks_held(text: &str) -> Vec<HeldLock> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(1) != Some(&"FLOCK") {
                return None;
            }
            let mut device = fields.get(5)?.split(':');
            Some(HeldLock {
                pid: fields.get(4)?.parse().ok()?,
                major: u32::from_str_radix(device.next()?, 16).ok()?,
                minor: u32::from_str_radix(device.next()?, 16).ok()?,
                inode: device.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// The process holding a `flock` on the file with `meta`, if `/proc/locks` names one: the lock on
/// the same device and inode, else (file systems whose `stat` device differs from the lock
/// table's, e.g. btrfs) the one on the same inode.
fn lock_holder(meta: &std::fs::Metadata) -> Option<i32> {
    let held = flocks_held(&std::fs::read_to_string("/proc/locks").ok()?);
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let exact = held
        .iter()
        .find(|l| l.inode == meta.ino() && l.major == major && l.minor == minor);
    exact
        .or_else(|| held.iter().find(|l| l.inode == meta.ino()))
        .map(|l| l.pid)
        .filter(|&pid| pid > 0)
}

/// The command line of process `pid`, as words.
fn command_line(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|word| !word.is_empty())
        .map(|word| String::from_utf8_lossy(word).into_owned())
        .collect()
}

fn writer_lock(store: &Path) -> Check {
    const NAME: &str = "writer_lock";
    let path = StorePaths::new(store).lock();
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::ok(NAME, "no writer has run yet (no lock file)");
        }
        Err(e) => {
            return Check::new(
                NAME,
                Status::Warn,
                format!("cannot open {}: {e}", path.display()),
                "run doctor as a user that can read the store",
            );
        }
    };
    let meta = file.metadata().ok();
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        // Released at once: dropping the guard unlocks.
        Ok(_released) => Check::ok(NAME, "no other process is writing to the store"),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let Some(pid) = meta.as_ref().and_then(lock_holder) else {
                return Check::new(
                    NAME,
                    Status::Fail,
                    "the writer lock is held by a process this machine does not list (another \
                     machine sharing the store, or another container)",
                    "wait for that writer to finish; add, rm, gc and import fail until then",
                );
            };
            let words = command_line(pid);
            let command: String = words.join(" ").chars().take(120).collect();
            let is_fill_mount = words.first().is_some_and(|w| w.ends_with("modelfs"))
                && words.iter().any(|w| w == "mount")
                && words.iter().any(|w| w == "--fill");
            match is_fill_mount {
                true => Check::new(
                    NAME,
                    Status::Warn,
                    format!(
                        "the writer lock is held by a mount with --fill (pid {pid}: {command})"
                    ),
                    "add, rm, gc and import wait for it: unmount it first when you need them",
                ),
                false => Check::new(
                    NAME,
                    Status::Fail,
                    format!("the writer lock is held by another process (pid {pid}: {command})"),
                    &format!(
                        "wait for it to finish; if it hangs, stop it (`kill {pid}`): a killed \
                         writer leaves the store consistent"
                    ),
                ),
            }
        }
        Err((_, errno)) => Check::new(
            NAME,
            Status::Warn,
            format!("cannot test the writer lock: {}", errno.desc()),
            "",
        ),
    }
}

/// How `available` free bytes of a `total`-byte file system rate.
fn space_status(available: u64, total: u64) -> Status {
    match available < LOW_SPACE_BYTES || available.saturating_mul(20) < total {
        true => Status::Warn,
        false => Status::Ok,
    }
}

fn free_space(store: &Path) -> Check {
    const NAME: &str = "free_space";
    let stat = match nix::sys::statvfs::statvfs(store) {
        Ok(stat) => stat,
        Err(errno) => {
            return Check::new(
                NAME,
                Status::Warn,
                format!("cannot read the free space: {}", errno.desc()),
                "",
            );
        }
    };
    let unit = stat.fragment_size() as u64;
    let (available, total) = (
        stat.blocks_available() as u64 * unit,
        stat.blocks() as u64 * unit,
    );
    let gib = |bytes: u64| bytes as f64 / f64::from(1u32 << 30);
    if total == 0 {
        return Check::ok(NAME, "the store's file system reports no sizes");
    }
    let finding = format!(
        "{:.1} GiB free of {:.1} GiB ({:.0}%) on the store's file system",
        gib(available),
        gib(total),
        available as f64 * 100.0 / total as f64
    );
    match space_status(available, total) {
        Status::Ok => Check::ok(NAME, finding),
        status => Check::new(
            NAME,
            status,
            finding,
            "free some space, or remove old versions (`modelfs rm NAME@VERSION`, then \
             `modelfs gc`); adds stop on a full disk",
        ),
    }
}

/// Short names of up to three packs, for a finding.
fn some_packs(packs: &[crate::id::PackId]) -> String {
    let mut names: Vec<String> = packs.iter().take(3).map(|p| p.to_string()).collect();
    if packs.len() > 3 {
        names.push(format!("and {} more", packs.len() - 3));
    }
    names.join(", ")
}

fn index(store: &Store, command: &Commands) -> Check {
    const NAME: &str = "index";
    let paths = store.paths();
    let rebuild = command.run("index rebuild");
    let opened = fsutil::check_plain_dir(&paths.index())
        .and_then(|()| Index::open_read_only(&paths.index()));
    let index = match opened {
        Ok(index) => index,
        Err(e @ Error::NewerFormat { .. }) => {
            return Check::new(NAME, Status::Fail, e.to_string(), "upgrade modelfs");
        }
        Err(e) => {
            return Check::new(
                NAME,
                Status::Warn,
                format!("the index is unusable ({e}); readers build a private copy first"),
                &rebuild,
            );
        }
    };
    let listed = match (index.packs(), recovery::list_sealed_packs(&paths.packs())) {
        (Ok(listed), Ok(on_disk)) => (listed, on_disk),
        (Err(e), _) | (_, Err(e)) => {
            return Check::new(NAME, Status::Fail, e.to_string(), &rebuild);
        }
    };
    let (indexed, on_disk) = listed;
    let sizes: std::collections::HashMap<_, _> = on_disk.iter().copied().collect();
    let gone: Vec<_> = indexed
        .iter()
        .filter(|(id, _)| !sizes.contains_key(id))
        .map(|(id, _)| *id)
        .collect();
    let changed: Vec<_> = indexed
        .iter()
        .filter(|(id, row)| sizes.get(id).is_some_and(|&bytes| bytes != row.bytes))
        .map(|(id, _)| *id)
        .collect();
    let known: std::collections::HashSet<_> = indexed.iter().map(|(id, _)| *id).collect();
    let unindexed: Vec<_> = on_disk
        .iter()
        .filter(|(id, _)| !known.contains(id))
        .map(|(id, _)| *id)
        .collect();
    let verify = command.run("verify");
    if !gone.is_empty() {
        return Check::new(
            NAME,
            Status::Fail,
            format!(
                "the index lists {} packs that are gone ({}): reads of their chunks fail",
                gone.len(),
                some_packs(&gone)
            ),
            &format!("{rebuild}, then {verify} to name the models that lost chunks"),
        );
    }
    if !changed.is_empty() {
        return Check::new(
            NAME,
            Status::Fail,
            format!(
                "{} packs changed size since they were indexed ({}): they were altered or cut",
                changed.len(),
                some_packs(&changed)
            ),
            &format!("{verify} names the damaged models; then {rebuild}"),
        );
    }
    if !unindexed.is_empty() {
        return Check::new(
            NAME,
            Status::Warn,
            format!(
                "{} sealed packs are not in the index ({}): their chunks are not found until \
                 they are",
                unindexed.len(),
                some_packs(&unindexed)
            ),
            &format!("{rebuild} (the next add, import or gc also indexes them)"),
        );
    }
    Check::ok(
        NAME,
        format!("the index lists the {} packs on disk", on_disk.len()),
    )
}

// ---------------------------------------------------------------------------------------------
// The mount.
// ---------------------------------------------------------------------------------------------

/// `path` as the mount table spells it (`\040` for a space, and so on).
fn mountinfo_escape(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            ' ' => out.push_str(r"\040"),
            '\t' => out.push_str(r"\011"),
            '\n' => out.push_str(r"\012"),
            '\\' => out.push_str(r"\134"),
            c => out.push(c),
        }
    }
    out
}

/// What is mounted at `path` in mountinfo `table` (the topmost mount): its file system type
/// and whether it is modelfs — type `fuse` with source `modelfs` when root mounted it directly,
/// `fuse.modelfs` when `fusermount3` did.
fn mounted_type(table: &str, path: &Path) -> Option<(String, bool)> {
    let want = mountinfo_escape(path);
    let (fstype, source) = table
        .lines()
        .filter(|line| line.split(' ').nth(4) == Some(want.as_str()))
        .filter_map(|line| {
            let mut fields = line.split(" - ").nth(1)?.split(' ');
            Some((fields.next()?, fields.next()?))
        })
        .next_back()?;
    let modelfs = source == MODELFS_SOURCE
        && (fstype == "fuse" || fstype.strip_prefix("fuse.") == Some(MODELFS_SOURCE));
    Some((fstype.to_owned(), modelfs))
}

fn mount(mountpoint: &Path) -> Check {
    const NAME: &str = "mountpoint";
    let shown = quoted(mountpoint);
    let unmount_fix =
        format!("`modelfs umount {shown}` (or `fusermount3 -uz {shown}`), then mount it again");
    let stale = |what: &str| {
        Check::new(
            NAME,
            Status::Fail,
            format!("{shown}: transport endpoint is not connected: {what}"),
            &unmount_fix,
        )
    };
    let hung = || {
        Check::new(
            NAME,
            Status::Fail,
            format!(
                "{shown} does not answer within {} s: its daemon is stopped or stuck",
                MOUNT_ANSWER.as_secs()
            ),
            &format!("`fusermount3 -uz {shown}`, then stop the daemon, and mount again"),
        )
    };
    let path = crate::mount::mountinfo::resolve(mountpoint);
    let probe = path.clone();
    match answered(move || std::fs::metadata(probe)) {
        None => return hung(),
        Some(Err(e)) if is_dead_mount(&e) => {
            return stale("the modelfs daemon serving it died (a stale mount)");
        }
        Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::new(
                NAME,
                Status::Fail,
                format!("{shown} does not exist"),
                &format!("create it: `mkdir -p {shown}`"),
            );
        }
        Some(Err(e)) => return Check::new(NAME, Status::Fail, format!("{shown}: {e}"), ""),
        Some(Ok(meta)) if !meta.is_dir() => {
            return Check::new(
                NAME,
                Status::Fail,
                format!("{shown} is not a directory"),
                "mount on an empty directory",
            );
        }
        Some(Ok(_)) => {}
    }
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    match mounted_type(&table, &path) {
        None => Check::new(
            NAME,
            Status::Warn,
            format!("nothing is mounted at {shown}"),
            &format!("`modelfs mount {shown} --daemon`"),
        ),
        Some((_, true)) => {
            let probe = path.clone();
            match answered(move || std::fs::read_dir(probe).map(|entries| entries.count())) {
                None => hung(),
                Some(Err(e)) if is_dead_mount(&e) => {
                    stale("the modelfs daemon serving it died (a stale mount)")
                }
                Some(Err(e)) => Check::new(
                    NAME,
                    Status::Fail,
                    format!("{shown} is a modelfs mount that cannot be listed: {e}"),
                    &unmount_fix,
                ),
                Some(Ok(entries)) => {
                    let served = crate::mount::control::MountProcess::recorded(&path)
                        .filter(|process| process.is_alive())
                        .map_or(
                            "by a process another user started",
                            |_| "by its recorded process",
                        );
                    Check::ok(
                        NAME,
                        format!(
                            "{shown} is a live modelfs mount ({entries} entries), served {served}"
                        ),
                    )
                }
            }
        }
        Some((other, false)) => Check::new(
            NAME,
            Status::Fail,
            format!("{shown} has a {other} file system mounted, not modelfs"),
            "unmount it, or mount modelfs on another directory",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{add_model, random_bytes, small_store};

    #[test]
    fn kernel_versions_and_config_options_are_read() {
        assert_eq!(kernel_version("6.8.0-45-generic"), Some((6, 8)));
        assert_eq!(kernel_version("6.18.44-fc-v445"), Some((6, 18)));
        assert_eq!(kernel_version("4.19"), Some((4, 19)));
        assert_eq!(kernel_version("weird"), None);
        let config = "CONFIG_FUSE_FS=m\n# CONFIG_CUSE is not set\nCONFIG_FUSE_PASSTHROUGH=y\n";
        assert_eq!(config_option(config, "CONFIG_FUSE_PASSTHROUGH"), Some(true));
        assert_eq!(config_option(config, "CONFIG_FUSE_FS"), Some(true));
        assert_eq!(config_option(config, "CONFIG_CUSE"), Some(false));
        assert_eq!(config_option(config, "CONFIG_FUSE_DAX"), None);
    }

    #[test]
    fn flock_holders_are_read_from_proc_locks() {
        let text = "1: POSIX  ADVISORY  WRITE 77 00:1f:12 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 4343 fd:01:1234567 0 EOF\n";
        assert_eq!(
            flocks_held(text),
            vec![HeldLock {
                pid: 4242,
                major: 0xfd,
                minor: 1,
                inode: 1234567
            }]
        );
    }

    #[test]
    fn mount_table_paths_are_matched_escaped() {
        let table = "36 25 0:32 / /mnt/my\\040models rw,nosuid - fuse.modelfs modelfs rw\n\
                     37 25 0:33 / /mnt/other rw - ext4 /dev/sda1 rw\n\
                     38 25 0:34 / /mnt/root ro - fuse modelfs ro,allow_other\n\
                     39 25 0:35 / /mnt/sshfs ro - fuse.sshfs host:/x rw\n";
        let found = |path: &str| mounted_type(table, Path::new(path));
        assert_eq!(found("/mnt/my models"), Some(("fuse.modelfs".into(), true)));
        assert_eq!(found("/mnt/root"), Some(("fuse".into(), true)));
        assert_eq!(found("/mnt/other"), Some(("ext4".into(), false)));
        assert_eq!(found("/mnt/sshfs"), Some(("fuse.sshfs".into(), false)));
        assert_eq!(found("/mnt"), None);
    }

    #[test]
    fn low_space_warns() {
        let gib = 1u64 << 30;
        assert_eq!(space_status(10 * gib, 100 * gib), Status::Ok);
        assert_eq!(space_status(gib / 2, 2 * gib), Status::Warn);
        assert_eq!(space_status(4 * gib, 100 * gib), Status::Warn);
        assert_eq!(quoted(Path::new("/a b")), "'/a b'");
        assert_eq!(quoted(Path::new("/srv/models")), "/srv/models");
    }

    fn check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
    }

    /// A store another handle writes to fails the lock check and names this process; a sealed
    /// pack the index lacks makes the index check warn and name it.
    #[test]
    fn a_held_lock_and_an_unindexed_pack_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = small_store(&root);
        add_model(&store, dir.path(), "m", &random_bytes(5, 50_000));
        let checks = run(&root, None);
        let lock = check(&checks, "writer_lock");
        assert_eq!(lock.status, Status::Fail, "{lock:?}");
        assert!(
            lock.finding
                .contains(&format!("pid {}", std::process::id())),
            "{lock:?}"
        );
        assert!(!all_well(&checks));
        drop(store);

        let other = dir.path().join("other");
        let other_store = small_store(&other);
        add_model(&other_store, dir.path(), "o", &random_bytes(6, 50_000));
        drop(other_store);
        let (pack, _) = recovery::list_sealed_packs(&other.join("packs")).unwrap()[0];
        let pack_in = |store: &Path| crate::store::pack::pack_path(&store.join("packs"), &pack);
        std::fs::copy(pack_in(&other), pack_in(&root)).unwrap();
        let checks = run(&root, None);
        assert_eq!(check(&checks, "writer_lock").status, Status::Ok);
        assert_eq!(check(&checks, "store").status, Status::Ok);
        let index = check(&checks, "index");
        assert_eq!(index.status, Status::Warn, "{index:?}");
        assert!(index.finding.contains(&pack.to_string()), "{index:?}");
        assert!(index.fix.contains("index rebuild"), "{index:?}");
    }

    #[test]
    fn a_missing_store_fails_and_its_checks_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let checks = run(&dir.path().join("none"), Some(&dir.path().join("nowhere")));
        let store = check(&checks, "store");
        assert_eq!(store.status, Status::Fail);
        assert!(store.fix.contains("init"), "{store:?}");
        assert_eq!(check(&checks, "index").status, Status::Warn);
        assert_eq!(check(&checks, "mountpoint").status, Status::Fail);
        assert!(!all_well(&checks));
    }
}
