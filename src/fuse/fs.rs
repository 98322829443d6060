//! `impl fuser::Filesystem` for the mount: each callback calls one `Vfs` method and sends one reply.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::{Arc, Mutex};

use fuser::{
    BackingId, Errno, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, Request,
};
use tracing::{debug, info, warn};

use super::attr::{ENTRY_TTL, attr_ttl, errno, file_attr};
use super::{PinnedMode, PinnedServing};
use crate::error::Result;
use crate::vfs::{Fh, Ino, NodeAttr, NodeKind, Vfs};

/// Largest read the kernel is asked to send (it needs the mount's bdi readahead raised to use it).
const MAX_READAHEAD: u32 = 1 << 20;

thread_local! {
    /// Per-worker buffer the reply of a read is assembled in.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(super) struct ModelFs {
    vfs: Arc<Vfs>,
    uid: u32,
    gid: u32,
    /// How pinned copies are served, and how often.
    pinned: Arc<PinnedServing>,
    /// The open mode of every inode with open handles: the kernel serves an inode either through
    /// its page cache or by passthrough to one backing file, never both at once.
    inodes: Mutex<HashMap<Ino, InodeIo>>,
}

/// How the open handles of one inode are served.
struct InodeIo {
    /// The backing file the kernel reads, or `None`: replies from the daemon (and the page cache).
    backing: Option<BackingId>,
    opens: usize,
}

impl ModelFs {
    pub(super) fn new(vfs: Arc<Vfs>, pinned: Arc<PinnedServing>) -> ModelFs {
        ModelFs {
            vfs,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            pinned,
            inodes: Mutex::new(HashMap::new()),
        }
    }

    /// Replies to an open of `ino`: by passthrough to its pinned copy when the kernel allows it
    /// and the inode has no handle served otherwise; else with a handle the daemon reads.
    fn reply_opened(&self, ino: Ino, opened: crate::vfs::Opened, reply: ReplyOpen) {
        let mut inodes = self.inodes.lock().expect("inode table poisoned");
        let io = inodes.entry(ino).or_insert_with(|| {
            let backing = match &opened.pinned {
                Some(file) if self.pinned.mode() == PinnedMode::Passthrough => {
                    reply.open_backing(file.as_ref()).inspect_err(|e| {
                        self.pinned.set_mode(PinnedMode::Read);
                        warn!(error = %e, "the kernel refused a passthrough file (it needs CAP_SYS_ADMIN); pinned files are served by reads from their copies");
                    }).ok()
                }
                _ => None,
            };
            InodeIo { backing, opens: 0 }
        });
        io.opens += 1;
        let fh = FileHandle(opened.fh.0);
        match &io.backing {
            Some(backing) => {
                self.pinned.count(PinnedMode::Passthrough);
                reply.opened_passthrough(fh, FopenFlags::empty(), backing);
            }
            None => {
                if opened.pinned.is_some() {
                    self.pinned.count(PinnedMode::Read);
                }
                // An inode's content never changes, so pages cached by an earlier open stay valid.
                reply.opened(fh, FopenFlags::FOPEN_KEEP_CACHE);
            }
        }
    }

    fn reply_entry(&self, result: Result<NodeAttr>, reply: ReplyEntry) {
        match result {
            Ok(attr) => reply.entry_with_ttls(
                &ENTRY_TTL,
                &attr_ttl(attr.kind),
                &file_attr(&attr, self.uid, self.gid),
                Generation(0),
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

fn name_str(name: &OsStr) -> std::result::Result<&str, Errno> {
    // Every name in the tree is UTF-8, so a name that is not cannot exist.
    name.to_str().ok_or(Errno::ENOENT)
}

impl Filesystem for ModelFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(nearest) = config.set_max_readahead(MAX_READAHEAD) {
            let _ = config.set_max_readahead(nearest);
        }
        if self.pinned.mode() == PinnedMode::Passthrough {
            // Depth 1: pinned copies live on a plain file system, not on another stacked one.
            if config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
                && config.set_max_stack_depth(1).is_ok()
            {
                info!("pinned files are served with FUSE passthrough");
            } else {
                self.pinned.set_mode(PinnedMode::Read);
                warn!(
                    "the kernel offers no FUSE passthrough; pinned files are served by reads from their copies"
                );
            }
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match name_str(name) {
            Ok(name) => self.reply_entry(self.vfs.lookup(Ino(parent.0), name), reply),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.vfs.getattr(Ino(ino.0)) {
            Ok(attr) => reply.attr(&attr_ttl(attr.kind), &file_attr(&attr, self.uid, self.gid)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.vfs.open(Ino(ino.0)) {
            Ok(opened) => self.reply_opened(Ino(ino.0), opened, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        debug!(ino = ino.0, offset, size, "read");
        READ_BUFFER.with_borrow_mut(|buf| {
            // Grown once to the largest request and never shrunk, so reads neither allocate nor zero.
            if buf.len() < size as usize {
                buf.resize(size as usize, 0);
            }
            match self.vfs.read(Fh(fh.0), offset, &mut buf[..size as usize]) {
                Ok(n) => reply.data(&buf[..n]),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing is ever written, so there is nothing to flush on close.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.vfs.release(Fh(fh.0));
        let mut inodes = self.inodes.lock().expect("inode table poisoned");
        if let Some(io) = inodes.get_mut(&Ino(ino.0)) {
            io.opens -= 1;
            if io.opens == 0 {
                // Dropping the last handle's backing id closes it in the kernel.
                inodes.remove(&Ino(ino.0));
            }
        }
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.vfs.getattr(Ino(ino.0)) {
            Ok(attr) if attr.kind == NodeKind::Dir => {
                reply.opened(FileHandle(0), FopenFlags::empty())
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.vfs.readdir(Ino(ino.0)) {
            Ok(entries) => {
                for (i, entry) in entries.iter().enumerate().skip(offset as usize) {
                    let kind = match entry.kind {
                        NodeKind::Dir => FileType::Directory,
                        NodeKind::File => FileType::RegularFile,
                    };
                    if reply.add(INodeNo(entry.ino.0), (i + 1) as u64, kind, &entry.name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(0, 0, 0, 0, 0, 1 << 20, 255, 1 << 20);
    }
}
