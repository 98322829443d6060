//! Running a mount in the background: fork, detach, and report readiness to the parent.
//!
//! Owns [`fork_daemon`] and the two ends of the pipe the child reports on: the parent returns once
//! the mount serves (or prints the child's one-line failure), the child serves.

use std::path::Path;

use crate::error::{Error, Result};

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
