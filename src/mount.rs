//! Mountpoint checks and unmounting, shared by `modelfs mount` and `modelfs umount`.
//!
//! Owns knowledge of the system's mount table (`/proc/self/mountinfo`) and how to unmount a FUSE
//! mount (`umount2` as root, `fusermount3 -u` otherwise). Serving a mount is `fuse`'s job.

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
    let canonical = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_owned());
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

/// Caps the C allocator at two arenas. A mount's worker and decode threads otherwise each grow an
/// arena that keeps freed chunk buffers, and the daemon's memory creeps well past its chunk cache.
pub fn limit_malloc_arenas() {
    // SAFETY: mallopt only tunes glibc's allocator; it is called before the serving threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Where the process serving `mountpoint` (canonical) records its pid, so `modelfs refresh` can
/// find it: `$XDG_CACHE_HOME/modelfs/mounts/<hash of the mountpoint>.pid`.
pub fn pid_file(mountpoint: &Path) -> PathBuf {
    let key = blake3::hash(mountpoint.as_os_str().as_encoded_bytes()).to_hex();
    crate::store::machine_cache_root()
        .join("mounts")
        .join(format!("{}.pid", &key[..16]))
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

/// The parent's side of a daemonised mount: waits for the child to report.
pub struct DaemonParent {
    pipe: std::fs::File,
}

/// The child's side of a daemonised mount: reports readiness or failure to the parent once.
pub struct DaemonChild {
    pipe: std::fs::File,
}

/// Which side of [`fork_daemon`] this process is.
pub enum Forked {
    /// The original process; it should wait for the child's report and exit.
    Parent(DaemonParent),
    /// The daemon; stdin/stdout go to /dev/null and stderr (the log) to `log`.
    Child(DaemonChild),
}

/// Forks a daemon detached from the terminal. Call before any thread is started.
pub fn fork_daemon(log: &Path) -> Result<Forked> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io(log, e))?;
    let (read_end, write_end) = nix::unistd::pipe().map_err(|e| Error::io("(pipe)", e.into()))?;
    // SAFETY: the caller guarantees no other thread exists, so the child starts with consistent
    // locks and allocator state.
    match unsafe { nix::unistd::fork() }.map_err(|e| Error::io("(fork)", e.into()))? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(write_end);
            Ok(Forked::Parent(DaemonParent {
                pipe: read_end.into(),
            }))
        }
        nix::unistd::ForkResult::Child => {
            drop(read_end);
            let _ = nix::unistd::setsid();
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null");
            let mut stderr = std::io::stderr();
            let _ = stderr.flush();
            // SAFETY: dup2 onto the standard descriptors, which this process owns; the sources stay open.
            unsafe {
                if let Ok(null) = &null {
                    libc::dup2(null.as_raw_fd(), 0);
                    libc::dup2(null.as_raw_fd(), 1);
                }
                libc::dup2(log_file.as_raw_fd(), 2);
            }
            Ok(Forked::Child(DaemonChild {
                pipe: write_end.into(),
            }))
        }
    }
}

impl DaemonParent {
    /// Waits for the child's report: `Ok` once the mount serves, the child's error otherwise.
    pub fn wait(mut self, mountpoint: &Path) -> Result<()> {
        use std::io::Read;
        let mut report = String::new();
        let _ = self.pipe.read_to_string(&mut report);
        match report.strip_prefix("ready") {
            Some(_) => Ok(()),
            None if report.is_empty() => Err(Error::Mountpoint {
                path: mountpoint.to_owned(),
                reason: "the mount daemon exited before it was ready".into(),
            }),
            None => Err(Error::Daemon(report.trim().to_owned())),
        }
    }
}

impl DaemonChild {
    /// Tells the parent the mount is ready.
    pub fn ready(mut self) {
        use std::io::Write;
        let _ = self.pipe.write_all(b"ready\n");
    }

    /// Tells the parent the mount failed, with the one-line reason.
    pub fn failed(mut self, reason: &str) {
        use std::io::Write;
        let _ = self.pipe.write_all(reason.as_bytes());
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
