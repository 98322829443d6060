//! A file appended to by a thread of its own, bypassing the page cache where it can.
//!
//! Owns [`Appender`]: appends are gathered into 4 MiB buffers that cover the file in order, each
//! aligned in memory and in the file, which a background thread writes with `O_DIRECT`: the bytes
//! go from the buffer to the disk, without the kernel's copy into the page cache (the largest
//! single cost of writing a pack) and without dirty pages for the final fsync to wait on. The
//! copying that remains overlaps with the caller's next work (hashing and compressing the next
//! chunks, for a pack writer). Bytes written by a flush (a copier flushing often, so a kill loses
//! little) and the last, partial buffer go through the page cache, as does the rest of a buffer
//! flushed part-way (no byte is written twice), and everything on a file system without
//! `O_DIRECT` (tmpfs before Linux 6.6, some FUSE file systems), where writeback is started every
//! 32 MiB instead. Every [`Appender::flush`] waits until the bytes appended before it are the
//! kernel's; [`Appender::finish`] hands the file back once all of them are.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use crate::error::{Error, IoContext, Result};

/// Bytes gathered before they go to the writing thread: a multiple of [`ALIGN`].
const BUFFER: usize = 4 << 20;
/// What `O_DIRECT` writes are aligned to, in memory and in the file, and a multiple of their
/// length: the largest logical block size of common disks.
const ALIGN: usize = 4096;
/// Buffers in use at once: one filling, the others queued or being written.
const BUFFERS: usize = 3;
/// Through the page cache: how much is written before writeback of it is started, so that the
/// final fsync does not stall on a whole file of dirty pages, and the pages do not linger.
const WRITEBACK_STEP: u64 = 32 << 20;

/// A buffer of up to [`BUFFER`] bytes starting at an [`ALIGN`]-aligned address.
struct Block {
    storage: Vec<u8>,
    start: usize,
    len: usize,
    /// How many of its first bytes a flush already wrote (through the page cache); the rest of a
    /// block that was flushed is written the same way, never twice.
    flushed: usize,
}

impl Block {
    fn new() -> Block {
        let storage = vec![0u8; BUFFER + ALIGN];
        let start = storage.as_ptr().align_offset(ALIGN);
        Block {
            storage,
            start,
            len: 0,
            flushed: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// Copies in as much of `bytes` as fits; returns how much.
    fn fill(&mut self, bytes: &[u8]) -> usize {
        let take = (BUFFER - self.len).min(bytes.len());
        let at = self.start + self.len;
        self.storage[at..at + take].copy_from_slice(&bytes[..take]);
        self.len += take;
        take
    }

    fn is_full(&self) -> bool {
        self.len == BUFFER
    }
}

/// What the writing thread is asked to do, in order.
enum Job {
    /// A full block, at its offset in the file.
    Block(Block, u64),
    /// Bytes of a partial block, at its offset, written through the page cache; answered (if
    /// asked) once they and everything before them are written.
    Tail(Vec<u8>, u64, Option<SyncSender<()>>),
}

/// A file being appended to through a writing thread.
pub struct Appender {
    path: PathBuf,
    /// The block being filled, and where it goes in the file.
    block: Block,
    offset: u64,
    jobs: Option<SyncSender<Job>>,
    /// Blocks the writing thread is done with.
    spare: Receiver<Block>,
    /// Blocks made so far (up to [`BUFFERS`]).
    made: usize,
    thread: Option<JoinHandle<std::io::Result<File>>>,
}

impl Appender {
    /// Appends to the empty `file` (at `path`, for errors), with `O_DIRECT` where it can.
    pub fn new(file: File, path: &Path) -> Result<Appender> {
        Appender::with_mode(file, path, true)
    }

    /// Appends to `file`, with `O_DIRECT` where it can if `try_direct`, else through the page
    /// cache only.
    fn with_mode(file: File, path: &Path, try_direct: bool) -> Result<Appender> {
        let (jobs_tx, jobs_rx) = sync_channel::<Job>(BUFFERS - 1);
        let (spare_tx, spare_rx) = sync_channel::<Block>(BUFFERS);
        let thread = std::thread::Builder::new()
            .name("appender".into())
            .spawn(move || write_jobs(file, jobs_rx, spare_tx, try_direct))
            .at(path)?;
        Ok(Appender {
            path: path.to_owned(),
            block: Block::new(),
            offset: 0,
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
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            bytes = &bytes[self.block.fill(bytes)..];
            if self.block.is_full() {
                self.send_block()?;
            }
        }
        Ok(())
    }

    /// Returns once every byte appended so far has been handed to the kernel (no fsync). The
    /// partial block stays here to be filled on; its bytes written now are not written again.
    pub fn flush(&mut self) -> Result<()> {
        let (done_tx, done_rx) = sync_channel(1);
        let (tail, at) = self.unflushed();
        self.send(Job::Tail(tail, at, Some(done_tx)))?;
        self.block.flushed = self.block.len;
        if done_rx.recv().is_err() {
            return Err(self.stopped());
        }
        Ok(())
    }

    /// Writes what is left and returns the file, every byte handed to the kernel.
    pub fn finish(mut self) -> Result<File> {
        let (tail, at) = self.unflushed();
        self.send(Job::Tail(tail, at, None))?;
        self.jobs = None;
        let thread = self.thread.take().expect("joined only here or on drop");
        match thread.join() {
            Ok(written) => written.at(&self.path),
            Err(_) => Err(Error::io(&self.path, panicked())),
        }
    }

    /// The bytes of the block no flush wrote yet, and where they go.
    fn unflushed(&self) -> (Vec<u8>, u64) {
        let from = self.block.flushed;
        (
            self.block.bytes()[from..].to_vec(),
            self.offset + from as u64,
        )
    }

    /// Hands the full block to the writing thread and takes an empty one.
    fn send_block(&mut self) -> Result<()> {
        let next = match self.spare.try_recv() {
            Ok(returned) => returned,
            Err(_) if self.made < BUFFERS => {
                self.made += 1;
                Block::new()
            }
            Err(_) => match self.spare.recv() {
                Ok(returned) => returned,
                Err(_) => return Err(self.stopped()),
            },
        };
        let full = std::mem::replace(&mut self.block, next);
        let offset = self.offset;
        self.offset += BUFFER as u64;
        (self.block.len, self.block.flushed) = (0, 0);
        self.send(Job::Block(full, offset))
    }

    fn send(&mut self, job: Job) -> Result<()> {
        let sent = self.jobs.as_ref().map(|jobs| jobs.send(job));
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

/// The writing thread: writes each job in order, returns blocks for reuse. Ends at the first
/// error, or when the appender hangs up, returning the file.
fn write_jobs(
    file: File,
    jobs: Receiver<Job>,
    spare: SyncSender<Block>,
    try_direct: bool,
) -> std::io::Result<File> {
    let direct = try_direct && set_direct(&file, true).is_ok();
    let mut writer = Writer {
        file,
        direct,
        written_back: 0,
    };
    for job in jobs {
        match job {
            Job::Block(block, offset) => {
                let from = block.flushed;
                let (bytes, at) = (&block.bytes()[from..], offset + from as u64);
                if from == 0 {
                    writer.write(bytes, at)?;
                } else {
                    writer.write_cached(bytes, at)?;
                }
                let _ = spare.try_send(block);
            }
            Job::Tail(bytes, at, done) => {
                writer.write_cached(&bytes, at)?;
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
        }
    }
    Ok(writer.file)
}

/// The writing thread's file and how it writes.
struct Writer {
    file: File,
    /// Whether `O_DIRECT` is on.
    direct: bool,
    /// Bytes before this offset written through the page cache have had writeback started.
    written_back: u64,
}

impl Writer {
    /// Writes an aligned block, with `O_DIRECT` if it is on.
    fn write(&mut self, bytes: &[u8], at: u64) -> std::io::Result<()> {
        if !self.direct {
            return self.write_cached(bytes, at);
        }
        match self.file.write_all_at(bytes, at) {
            // This file system takes no O_DIRECT writes after all (or a short write left the
            // rest unaligned): write through the page cache from here on.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                set_direct(&self.file, false)?;
                self.direct = false;
                self.write_cached(bytes, at)
            }
            written => written,
        }
    }

    /// Writes through the page cache, and starts writeback every [`WRITEBACK_STEP`] bytes.
    fn write_cached(&mut self, bytes: &[u8], at: u64) -> std::io::Result<()> {
        if self.direct {
            set_direct(&self.file, false)?;
        }
        self.file.write_all_at(bytes, at)?;
        if self.direct {
            set_direct(&self.file, true)?;
        }
        let end = at + bytes.len() as u64;
        if end.saturating_sub(self.written_back) >= WRITEBACK_STEP {
            // POSIX_FADV_DONTNEED on dirty pages starts their writeback without waiting, and
            // lets the kernel drop them once written.
            let _ = nix::fcntl::posix_fadvise(
                &self.file,
                self.written_back as i64,
                (end - self.written_back) as i64,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            );
            self.written_back = end;
        }
        Ok(())
    }
}

/// Turns `O_DIRECT` on or off for `file`.
fn set_direct(file: &File, on: bool) -> std::io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(file, FcntlArg::F_GETFL)?);
    let flags = if on {
        flags | OFlag::O_DIRECT
    } else {
        flags - OFlag::O_DIRECT
    };
    fcntl(file, FcntlArg::F_SETFL(flags))?;
    Ok(())
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
        for direct in [true, false] {
            appends_arrive_in_order(direct);
        }
    }

    fn appends_arrive_in_order(direct: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        let mut appender = Appender::with_mode(file, &path, direct).unwrap();
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
