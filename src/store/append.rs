//! A file appended to by a thread of its own.
//!
//! Owns [`Appender`]: appends are gathered into large buffers that a background thread writes in
//! order, so the kernel's copy of the bytes into the page cache, and the start of their writeback,
//! overlap with the caller's next work (hashing and compressing the next chunks, for a pack
//! writer). Every [`Appender::flush`] waits until the bytes appended before it are the kernel's;
//! [`Appender::finish`] hands the file back once all of them are.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::error::{Error, IoContext, Result};

/// Bytes gathered before they go to the writing thread.
const BUFFER: usize = 4 << 20;
/// Buffers in use at once: one filling, the others queued or being written.
const BUFFERS: usize = 3;
/// How much is written before writeback of it is started, so that the final fsync does not stall
/// on a whole file of dirty pages, and the pages do not linger in the page cache.
const WRITEBACK_STEP: u64 = 32 << 20;

/// What the writing thread is asked to do, in order.
enum Job {
    Write(Vec<u8>),
    /// Answered once everything before it is written.
    Flush(SyncSender<()>),
}

/// A file being appended to through a writing thread.
pub struct Appender {
    path: PathBuf,
    buf: Vec<u8>,
    jobs: Option<SyncSender<Job>>,
    /// Buffers the writing thread is done with.
    spare: Receiver<Vec<u8>>,
    /// Buffers made so far (up to [`BUFFERS`]).
    made: usize,
    thread: Option<JoinHandle<std::io::Result<File>>>,
}

impl Appender {
    /// Appends to `file` (at `path`, for errors) from its current end.
    pub fn new(file: File, path: &Path) -> Result<Appender> {
        let (jobs_tx, jobs_rx) = sync_channel::<Job>(BUFFERS - 1);
        let (spare_tx, spare_rx) = sync_channel::<Vec<u8>>(BUFFERS);
        let thread = std::thread::Builder::new()
            .name("appender".into())
            .spawn(move || write_jobs(file, jobs_rx, spare_tx))
            .at(path)?;
        Ok(Appender {
            path: path.to_owned(),
            buf: Vec::with_capacity(BUFFER),
            jobs: Some(jobs_tx),
            spare: spare_rx,
            made: 1,
            thread: Some(thread),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= BUFFER {
            self.send()?;
        }
        Ok(())
    }

    /// Returns once every byte appended so far has been handed to the kernel (no fsync).
    pub fn flush(&mut self) -> Result<()> {
        self.send()?;
        let (done_tx, done_rx) = sync_channel(1);
        let asked = self
            .jobs
            .as_ref()
            .map(|jobs| jobs.send(Job::Flush(done_tx)));
        if !matches!(asked, Some(Ok(()))) || done_rx.recv().is_err() {
            return Err(self.stopped());
        }
        Ok(())
    }

    /// Writes what is left and returns the file, every byte handed to the kernel.
    pub fn finish(mut self) -> Result<File> {
        self.send()?;
        self.jobs = None;
        let thread = self
            .thread
            .take()
            .expect("the thread is joined only here or on drop");
        match thread.join() {
            Ok(written) => written.at(&self.path),
            Err(_) => Err(Error::io(&self.path, panicked())),
        }
    }

    /// Hands the gathered bytes to the writing thread.
    fn send(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = match self.spare.try_recv() {
            Ok(returned) => returned,
            Err(_) if self.made < BUFFERS => {
                self.made += 1;
                Vec::with_capacity(BUFFER)
            }
            Err(_) => match self.spare.recv() {
                Ok(returned) => returned,
                Err(_) => return Err(self.stopped()),
            },
        };
        let full = std::mem::replace(&mut self.buf, next);
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(Job::Write(full)));
        if !matches!(sent, Some(Ok(()))) {
            return Err(self.stopped());
        }
        Ok(())
    }

    /// The writing thread has stopped: its error.
    fn stopped(&mut self) -> Error {
        self.jobs = None;
        let error = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => panicked(),
            _ => std::io::Error::other("the writing thread stopped"),
        };
        Error::io(&self.path, error)
    }
}

impl Drop for Appender {
    /// Lets the writing thread end (it writes what was queued) and waits for it, so the file is
    /// closed when the appender is gone.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writing thread: writes each buffer in order, starts writeback every [`WRITEBACK_STEP`]
/// bytes, and returns the buffers for reuse. Ends at the first error, or when the appender hangs
/// up, returning the file.
fn write_jobs(
    mut file: File,
    jobs: Receiver<Job>,
    spare: SyncSender<Vec<u8>>,
) -> std::io::Result<File> {
    let (mut written, mut written_back) = (0u64, 0u64);
    for job in jobs {
        match job {
            Job::Write(mut bytes) => {
                file.write_all(&bytes)?;
                written += bytes.len() as u64;
                if written - written_back >= WRITEBACK_STEP {
                    // POSIX_FADV_DONTNEED on dirty pages starts their writeback without waiting,
                    // and lets the kernel drop them once written.
                    let _ = nix::fcntl::posix_fadvise(
                        &file,
                        written_back as i64,
                        (written - written_back) as i64,
                        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
                    );
                    written_back = written;
                }
                bytes.clear();
                let _ = spare.try_send(bytes);
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
    Ok(file)
}

fn panicked() -> std::io::Error {
    std::io::Error::other("the writing thread panicked")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::random_bytes;

    #[test]
    fn appends_arrive_in_order_and_flush_hands_them_to_the_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut appender = Appender::new(File::create(&path).unwrap(), &path).unwrap();
        let bytes = random_bytes(1, 3 * BUFFER + 12_345);
        // Pieces of uneven sizes, some larger than a buffer.
        let mut expected = Vec::new();
        for (i, piece) in bytes.chunks(BUFFER / 3 + 7).enumerate() {
            appender.write(piece).unwrap();
            expected.extend_from_slice(piece);
            if i % 4 == 3 {
                appender.flush().unwrap();
                assert!(std::fs::read(&path).unwrap() == expected);
            }
        }
        appender.write(&bytes).unwrap();
        expected.extend_from_slice(&bytes);
        let file = appender.finish().unwrap();
        assert_eq!(file.metadata().unwrap().len(), expected.len() as u64);
        assert!(std::fs::read(&path).unwrap() == expected);
    }

    #[test]
    fn a_failed_write_is_reported_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read-only");
        std::fs::write(&path, b"").unwrap();
        // Writing to a file opened for reading fails (EBADF) in the writing thread.
        let mut appender = Appender::new(File::open(&path).unwrap(), &path).unwrap();
        let failed = (0..8)
            .find_map(|_| appender.write(&vec![7u8; BUFFER]).err())
            .or_else(|| appender.flush().err())
            .expect("the failure reaches the caller");
        assert!(failed.to_string().contains("read-only"), "{failed}");
        // Dropping it afterwards neither hangs nor panics.
        drop(appender);
    }
}
