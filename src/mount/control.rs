//! Talking to a running mount process: its control signals, the pid file `modelfs refresh` uses,
//! and process-wide settings of the serving process.
//!
//! Owns [`ControlSignal`] (SIGINT/SIGTERM stop, SIGHUP reloads), blocking and waiting for them, the
//! pid file under the per-machine cache directory, and the allocator cap set before serving.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::mount::mountinfo::is_mounted;

/// Where the process serving `mountpoint` (canonical) records its pid, so `modelfs refresh` can
/// find it: `$XDG_CACHE_HOME/modelfs/mounts/<hash of the mountpoint>.pid`.
pub fn pid_file(mountpoint: &Path) -> PathBuf {
    let key = blake3::hash(mountpoint.as_os_str().as_encoded_bytes()).to_hex();
    crate::store::paths::machine_cache_root()
        .join("mounts")
        .join(format!("{}.pid", &key[..16]))
}

/// Records this process as the one serving the mount whose pid file is `pid_file`.
pub fn record_pid(pid_file: &Path) -> std::io::Result<()> {
    if let Some(dir) = pid_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(pid_file, std::process::id().to_string())
}

/// Asks the process serving `mountpoint` to re-read its store's registry now (SIGHUP).
pub fn request_refresh(mountpoint: &Path) -> Result<()> {
    let canonical = std::fs::canonicalize(mountpoint).map_err(|e| Error::io(mountpoint, e))?;
    let not_served = |reason: &str| Error::Mountpoint {
        path: mountpoint.to_owned(),
        reason: reason.to_owned(),
    };
    if !is_mounted(&canonical)? {
        return Err(not_served("nothing is mounted there"));
    }
    let pid = std::fs::read_to_string(pid_file(&canonical))
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
        .ok_or_else(|| not_served("no modelfs mount process is recorded for it"))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGHUP).map_err(|e| {
        not_served(&format!(
            "cannot signal its mount process {pid}: {}",
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
