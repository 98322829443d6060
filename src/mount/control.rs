//! Talking to a running mount process: its control signals, the pid file `modelfs refresh` uses,
//! and process-wide settings of the serving process.
//!
//! Owns [`ControlSignal`] (SIGINT/SIGTERM stop, SIGHUP reloads), blocking and waiting for them, the
//! pid file under the per-machine cache directory, and the allocator cap set before serving.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::mount::mountinfo::is_mounted;

/// Where the process serving `mountpoint` (canonical) records itself, so `modelfs refresh` and
/// `modelfs umount` can find it: `$XDG_CACHE_HOME/modelfs/mounts/<hash of the mountpoint>.pid`.
pub fn pid_file(mountpoint: &Path) -> Result<PathBuf> {
    let key = blake3::hash(mountpoint.as_os_str().as_encoded_bytes()).to_hex();
    Ok(crate::store::paths::machine_cache_root()?
        .join("mounts")
        .join(format!("{}.pid", &key[..16])))
}

/// A process that served a mount: its pid, start time (clock ticks after boot) and a hash of its
/// command line, so a pid the kernel has since given to another process is never mistaken for it
/// (two processes may start within the same 10 ms tick; not with the same command line too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountProcess {
    pid: i32,
    started: u64,
    command: u64,
}

impl MountProcess {
    /// This process.
    fn this() -> Option<MountProcess> {
        Self::of(std::process::id() as i32)
    }

    /// What `/proc` says of process `pid` now.
    fn of(pid: i32) -> Option<MountProcess> {
        let command = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let hash = blake3::hash(&command);
        Some(MountProcess {
            pid,
            started: start_time(pid)?,
            command: u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes")),
        })
    }

    /// The process recorded as serving `mountpoint` (canonical), if any record exists.
    pub fn recorded(mountpoint: &Path) -> Option<MountProcess> {
        let text = std::fs::read_to_string(pid_file(mountpoint).ok()?).ok()?;
        let mut fields = text.split_whitespace().map(str::parse::<u64>);
        let (pid, started, command) = (
            fields.next()?.ok()?,
            fields.next()?.ok()?,
            fields.next()?.ok()?,
        );
        Some(MountProcess {
            pid: i32::try_from(pid).ok()?,
            started,
            command,
        })
    }

    /// Whether the recorded process still runs (and is the same process).
    pub fn is_alive(&self) -> bool {
        Self::of(self.pid) == Some(*self)
    }

    /// Waits up to `timeout` for the process to exit; returns whether it did.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.is_alive() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`), if it exists.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Records this process as the one serving the mount at `mountpoint` (canonical); returns the
/// record's path, to remove when the mount ends.
pub fn record_this_process(mountpoint: &Path) -> Result<PathBuf> {
    let path = pid_file(mountpoint)?;
    let dir = path.parent().expect("the pid file has a directory");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let this = MountProcess::this()
        .ok_or_else(|| Error::io("/proc/self/stat", std::io::ErrorKind::NotFound.into()))?;
    let record = format!("{} {} {}\n", this.pid, this.started, this.command);
    crate::store::fsutil::write_atomic(&path, record.as_bytes())?;
    Ok(path)
}

/// Asks the process serving `mountpoint` to re-read its store's registry now (SIGHUP). Only the
/// recorded process, and only while it still runs, is ever signalled.
pub fn request_refresh(mountpoint: &Path) -> Result<()> {
    let not_served = |reason: &str| Error::Mountpoint {
        path: mountpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let canonical = match std::fs::canonicalize(mountpoint) {
        Ok(path) => path,
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(not_served(
                "is a dead mount (its daemon died); run `modelfs umount` on it",
            ));
        }
        Err(e) => return Err(Error::io(mountpoint, e)),
    };
    if !is_mounted(&canonical)? {
        return Err(not_served("nothing is mounted there"));
    }
    let process = MountProcess::recorded(&canonical)
        .ok_or_else(|| not_served("no modelfs mount process is recorded for it"))?;
    if !process.is_alive() {
        return Err(not_served(
            "its mount process is gone (a dead mount); run `modelfs umount` on it",
        ));
    }
    let pid = nix::unistd::Pid::from_raw(process.pid);
    nix::sys::signal::kill(pid, nix::sys::signal::SIGHUP).map_err(|e| {
        not_served(&format!(
            "cannot signal its mount process {}: {}",
            process.pid,
            e.desc()
        ))
    })
}

/// Signals a mount process reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlSignal {
    /// SIGINT or SIGTERM: unmount and exit.
    Stop,
    /// SIGHUP: re-read the registry.
    Reload,
}

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and every thread it starts afterwards,
/// so they queue for [`wait_for_signal`] instead of killing the process mid-request.
pub fn block_control_signals() -> Result<()> {
    control_set().thread_block().map_err(|e| Error::Mountpoint {
        path: "(signals)".into(),
        reason: e.desc().to_owned(),
    })
}

fn control_set() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(signal);
    }
    set
}

/// Waits up to `timeout` for a blocked control signal.
pub fn wait_for_signal(timeout: std::time::Duration) -> Option<ControlSignal> {
    let set = control_set();
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY: sigtimedwait reads the signal set and timeout we own and writes nothing we pass
    // (the siginfo pointer may be null). nix offers no timed wait.
    let signal = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &timeout) };
    match signal {
        libc::SIGHUP => Some(ControlSignal::Reload),
        libc::SIGINT | libc::SIGTERM => Some(ControlSignal::Stop),
        _ => None,
    }
}

/// Caps the C allocator at two arenas. A mount's worker and decode threads otherwise each grow an
/// arena that keeps freed chunk buffers, and the daemon's memory creeps well past its chunk cache.
pub fn limit_malloc_arenas() {
    // SAFETY: mallopt only tunes glibc's allocator; it is called before the serving threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
