//! The registry as a read-only file tree, independent of FUSE.
//!
//! Owns [`Vfs`]: the inode table built from the registry, lookups, directory listings, open file
//! handles and `read`. Layout:
//! ```text
//! /NAME.EXT                      current version of a single-file model (the newest,
//!                                unless `rollback` chose an earlier one)
//! /NAME/…                        current version of a folder model
//! /.versions/NAME/VERSION/…      every version (NAME.EXT, or the folder's tree)
//! /.hf/hub/…, /.ollama/models/…  views for the Hugging Face hub cache and Ollama (`views`)
//! ```
//! A file of the current version is the same inode under both paths (two links), and so are its
//! aliases in the views, so the kernel caches its pages once; `nlink` counts the first two kinds
//! of path only, so it does not change when a view fills in. Small files the views generate are
//! inline nodes whose bytes are part of the tree, their inode numbers keyed by path and content
//! (new bytes, a new inode). Other inode numbers come from a table keyed by (model, version,
//! path), so they stay stable for the life of the mount. Inode numbers and handles are typed
//! ([`Ino`], [`Fh`]).
//! `Vfs` is `Send + Sync` and reads through a [`Reader`]; `fuse` only translates calls.
//!
//! The Ollama view needs each GGUF file's sha256 and header metadata: they are read the first
//! time anything inside `/.ollama/models` is looked up or listed, not when the tree is built, so a
//! mount never waits on model bytes (a remote source, a dead one) to start.

#[path = "views.rs"]
pub mod views;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use tracing::{error, warn};

use crate::error::{Error, Result};
use crate::format::registry::{Layout, Registry, VersionEntry};
use crate::id::ManifestId;
use crate::pin::PinnedCopies;
use crate::read::{OpenFile, Reader};
use crate::store::fsutil::{open_regular, read_full_at};
use crate::store::registry::{current_version, mounted_name};
use views::{Content, GgufFile, OLLAMA_MODELS, Probed, ViewFile};

/// An inode number of the mounted tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ino(pub u64);

/// A handle of an open file, from `open` to `release`; never reused while the mount runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fh(pub u64);

/// Inode number of the root directory.
pub const ROOT_INO: Ino = Ino(1);
/// Name of the directory holding every version.
pub const VERSIONS_DIR: &str = ".versions";

/// Whether a node is a file or a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory (mode 0555).
    Dir,
    /// A regular file (mode 0444).
    File,
}

/// What `stat` shows of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAttr {
    /// Inode number.
    pub ino: Ino,
    /// File or directory.
    pub kind: NodeKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Modification time, Unix seconds: when the version was added.
    pub mtime_unix: u64,
    /// Number of links (paths) to the node.
    pub nlink: u32,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's inode.
    pub ino: Ino,
    /// File or directory.
    pub kind: NodeKind,
    /// The entry's name.
    pub name: String,
}

#[derive(Debug)]
enum NodeData {
    Dir {
        parent: Ino,
        children: BTreeMap<String, Ino>,
    },
    File {
        manifest: ManifestId,
        label: String,
    },
    /// A small file whose bytes are part of the tree (a view's generated file).
    Inline(Arc<[u8]>),
}

/// What an open handle reads.
enum Handle {
    File(Arc<OpenFile>),
    Inline(Arc<[u8]>),
    /// A pinned copy, read as it is (it was verified when written, and the kernel checks it
    /// where it has fs-verity).
    Pinned(Arc<std::fs::File>),
}

/// An opened file: its handle, and the pinned copy behind it, if any, for the FUSE layer to hand
/// the kernel (passthrough).
#[derive(Debug)]
pub struct Opened {
    /// The handle for [`Vfs::read`] and [`Vfs::release`].
    pub fh: Fh,
    /// The pinned copy the handle reads from.
    pub pinned: Option<Arc<std::fs::File>>,
}

#[derive(Debug)]
struct Node {
    data: NodeData,
    size: u64,
    mtime_unix: u64,
    nlink: u32,
}

/// The inode table for one registry generation.
#[derive(Debug, Default)]
struct Tree {
    nodes: HashMap<Ino, Node>,
    /// Directories of the Ollama view from `/.ollama/models` down: looking up or listing in one
    /// first reads the GGUF headers in `unprobed` (`ls -la /MOUNT` reads none).
    ollama_dirs: HashSet<Ino>,
    /// GGUF files the Ollama view does not show until their headers are read.
    unprobed: Vec<GgufFile>,
}

/// How long a GGUF header that could not be read stays out of the Ollama view before it is
/// read again.
const PROBE_RETRY: Duration = Duration::from_secs(30);

/// What the Ollama view knows of a GGUF file, by manifest.
#[derive(Debug, Clone)]
enum ProbeState {
    Done(Probed),
    Failed(Instant),
}

/// Hands out inode numbers by key, so a rebuilt tree gives the same path the same number.
#[derive(Debug)]
struct InoTable {
    by_key: HashMap<String, Ino>,
    next: u64,
}

impl InoTable {
    fn ino(&mut self, key: String) -> Ino {
        let next = &mut self.next;
        *self.by_key.entry(key).or_insert_with(|| {
            *next += 1;
            Ino(*next)
        })
    }
}

/// The mounted view of a store.
pub struct Vfs {
    reader: Arc<Reader>,
    tree: RwLock<Tree>,
    inos: Mutex<InoTable>,
    /// Generation of the registry the tree was built from. Compared with the file's content, not
    /// its attributes, which network file systems cache (sshfs for 20 s by default).
    registry_generation: Mutex<Option<u64>>,
    /// Names moved by rebuilds, not yet taken by [`Vfs::take_moved_names`].
    moved: Mutex<Vec<(Ino, String)>>,
    /// The registry the tree was built from, to rebuild it when the Ollama view fills in.
    registry: Mutex<Arc<Registry>>,
    /// Held while a tree is built and installed, so an older registry never replaces a newer one.
    building: Mutex<()>,
    /// GGUF headers read for the Ollama view, kept across rebuilds.
    probes: Mutex<HashMap<ManifestId, ProbeState>>,
    /// Held while GGUF headers are read, so concurrent lookups read each once.
    probing: Mutex<()>,
    /// Open handles by number; an entry lives from `open` to `release`.
    handles: RwLock<HashMap<Fh, Handle>>,
    next_handle: AtomicU64,
    /// Files open under any handle, by manifest, so concurrent opens of one file share its
    /// resolved chunk locations. Weak: the last `release` frees the table.
    open_files: Mutex<HashMap<ManifestId, Weak<OpenFile>>>,
    /// Pinned copies served instead of chunks, by manifest ([`Vfs::set_pinned`]).
    pinned: RwLock<Arc<PinnedCopies>>,
    /// When a pinned copy was last opened (unix seconds), not yet taken by
    /// [`Vfs::take_pin_uses`].
    pin_uses: Mutex<HashMap<ManifestId, u64>>,
}

impl Vfs {
    /// Builds the tree of the current registry of `reader`'s source.
    pub fn new(reader: Arc<Reader>) -> Result<Vfs> {
        let vfs = Vfs {
            reader,
            tree: RwLock::new(Tree::default()),
            inos: Mutex::new(InoTable {
                by_key: HashMap::new(),
                next: ROOT_INO.0,
            }),
            registry_generation: Mutex::new(None),
            moved: Mutex::new(Vec::new()),
            registry: Mutex::new(Arc::new(Registry::default())),
            building: Mutex::new(()),
            probes: Mutex::new(HashMap::new()),
            probing: Mutex::new(()),
            handles: RwLock::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            open_files: Mutex::new(HashMap::new()),
            pinned: RwLock::new(Arc::new(PinnedCopies::new())),
            pin_uses: Mutex::new(HashMap::new()),
        };
        vfs.reload()?;
        Ok(vfs)
    }

    /// Re-reads the registry and rebuilds the tree; existing paths keep their inode numbers.
    /// The index is reopened too, so chunks of newly added models are found.
    pub fn reload(&self) -> Result<()> {
        self.rebuild(self.reader.source().registry()?)
    }

    /// Names that, since the last call, vanished or now lead to another inode (a bare model name
    /// after a new version or a rollback): the kernel may still cache the old answer, so the
    /// FUSE layer tells it to forget them.
    pub fn take_moved_names(&self) -> Vec<(Ino, String)> {
        std::mem::take(&mut *self.moved.lock().expect("moved-name list poisoned"))
    }

    /// Reloads if the registry changed since the last load; returns whether it did.
    pub fn reload_if_changed(&self) -> Result<bool> {
        let registry = self.reader.source().registry()?;
        if *self
            .registry_generation
            .lock()
            .expect("generation lock poisoned")
            == Some(registry.generation)
        {
            return Ok(false);
        }
        self.rebuild(registry)?;
        Ok(true)
    }

    fn rebuild(&self, registry: Registry) -> Result<()> {
        self.reader.source().refresh()?;
        let generation = registry.generation;
        let building = self.building.lock().expect("build lock poisoned");
        *self.registry.lock().expect("registry lock poisoned") = Arc::new(registry);
        self.install_tree();
        drop(building);
        *self
            .registry_generation
            .lock()
            .expect("generation lock poisoned") = Some(generation);
        Ok(())
    }

    /// Builds the tree of the last registry loaded and puts it in place. The caller holds
    /// `building`.
    fn install_tree(&self) {
        let registry = self
            .registry
            .lock()
            .expect("registry lock poisoned")
            .clone();
        let tree = {
            let probes = self.probes.lock().expect("probe table poisoned");
            let probed = |id: &ManifestId| match probes.get(id) {
                Some(ProbeState::Done(probed)) => probed.clone(),
                _ => Probed::Unknown,
            };
            build_tree(
                &registry,
                &mut self.inos.lock().expect("inode table poisoned"),
                &probed,
            )
        };
        let mut current = self.tree.write().expect("tree lock poisoned");
        let moved = moved_names(&current, &tree);
        *current = tree;
        drop(current);
        self.moved
            .lock()
            .expect("moved-name list poisoned")
            .extend(moved);
    }

    /// Before anything in `dir`, a directory of the Ollama view below `/.ollama/models`, is
    /// looked up or listed: reads the headers of GGUF files the view still lacks, and rebuilds
    /// the tree with them. A header that cannot be read keeps its model out of the view (logged)
    /// and is read again after [`PROBE_RETRY`].
    fn fill_ollama_view(&self, dir: Ino) {
        let unprobed = {
            let tree = self.tree.read().expect("tree lock poisoned");
            if tree.unprobed.is_empty() || !tree.ollama_dirs.contains(&dir) {
                return;
            }
            tree.unprobed.clone()
        };
        let _probing = self.probing.lock().expect("probe lock poisoned");
        let mut learned = false;
        for file in unprobed {
            let due = match self
                .probes
                .lock()
                .expect("probe table poisoned")
                .get(&file.manifest)
            {
                Some(ProbeState::Done(_)) => false,
                Some(ProbeState::Failed(at)) => at.elapsed() >= PROBE_RETRY,
                None => true,
            };
            if !due {
                continue;
            }
            let state = match views::probe_gguf(&self.reader, &file) {
                Ok(probed) => {
                    learned = true;
                    ProbeState::Done(probed)
                }
                Err(e) => {
                    error!(
                        file = %file.label,
                        error = %e,
                        "cannot read the GGUF header; the model stays out of the Ollama view for now"
                    );
                    ProbeState::Failed(Instant::now())
                }
            };
            self.probes
                .lock()
                .expect("probe table poisoned")
                .insert(file.manifest, state);
        }
        if learned {
            let _building = self.building.lock().expect("build lock poisoned");
            self.install_tree();
        }
    }

    fn with_node<T>(&self, ino: Ino, f: impl FnOnce(&Tree, &Node) -> Result<T>) -> Result<T> {
        let tree = self.tree.read().expect("tree lock poisoned");
        let node = tree
            .nodes
            .get(&ino)
            .ok_or_else(|| Error::NoEntry(format!("inode {}", ino.0)))?;
        f(&tree, node)
    }

    /// Attributes of `ino`.
    pub fn getattr(&self, ino: Ino) -> Result<NodeAttr> {
        self.with_node(ino, |_, node| Ok(attr(ino, node)))
    }

    /// Looks `name` up in directory `parent`.
    pub fn lookup(&self, parent: Ino, name: &str) -> Result<NodeAttr> {
        self.fill_ollama_view(parent);
        self.with_node(parent, |tree, node| {
            let NodeData::Dir { children, .. } = &node.data else {
                return Err(Error::NotADirectory);
            };
            let ino = *children
                .get(name)
                .ok_or_else(|| Error::NoEntry(name.to_owned()))?;
            Ok(attr(ino, &tree.nodes[&ino]))
        })
    }

    /// Entries of directory `ino`, starting with `.` and `..`.
    pub fn readdir(&self, ino: Ino) -> Result<Vec<DirEntry>> {
        self.fill_ollama_view(ino);
        self.with_node(ino, |tree, node| {
            let NodeData::Dir { parent, children } = &node.data else {
                return Err(Error::NotADirectory);
            };
            let mut entries = vec![
                DirEntry {
                    ino,
                    kind: NodeKind::Dir,
                    name: ".".into(),
                },
                DirEntry {
                    ino: *parent,
                    kind: NodeKind::Dir,
                    name: "..".into(),
                },
            ];
            entries.extend(children.iter().map(|(name, &child)| DirEntry {
                ino: child,
                kind: kind(&tree.nodes[&child]),
                name: name.clone(),
            }));
            Ok(entries)
        })
    }

    /// The registry the tree was last built from.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .lock()
            .expect("registry lock poisoned")
            .clone()
    }

    /// Serves these pinned copies from now on (files opened before keep what they read).
    pub fn set_pinned(&self, copies: PinnedCopies) {
        *self.pinned.write().expect("pin table poisoned") = Arc::new(copies);
    }

    /// When pinned copies were opened since the last call (unix seconds, by manifest).
    pub fn take_pin_uses(&self) -> HashMap<ManifestId, u64> {
        std::mem::take(&mut *self.pin_uses.lock().expect("pin use table poisoned"))
    }

    /// Opens the pinned copy of `manifest`, if there is one the kernel or its size vouches for;
    /// a copy that cannot be used is logged and the store's chunks are read instead.
    fn open_pinned(&self, manifest: &ManifestId, label: &str, size: u64) -> Option<std::fs::File> {
        let copy = self
            .pinned
            .read()
            .expect("pin table poisoned")
            .get(manifest)?
            .clone();
        let opened = open_regular(&copy.path).and_then(|file| {
            let len = file.metadata()?.len();
            let verified = crate::pin::verity::matches(&file, copy.verity.as_deref())?;
            Ok((file, len, verified))
        });
        match opened {
            Ok((file, len, true)) if len == size && copy.size == size => {
                self.pin_uses
                    .lock()
                    .expect("pin use table poisoned")
                    .insert(*manifest, crate::store::now_unix());
                Some(file)
            }
            Ok((_, len, verified)) => {
                error!(file = %label, copy = %copy.path.display(), len, size, verified, "the pinned copy does not match the file; reading the store's chunks instead");
                None
            }
            Err(e) => {
                warn!(file = %label, copy = %copy.path.display(), error = %e, "cannot open the pinned copy; reading the store's chunks instead");
                None
            }
        }
    }

    /// Opens file `ino` for [`Vfs::read`]: from its pinned copy if it has one, else from the
    /// store's chunks.
    pub fn open(&self, ino: Ino) -> Result<Opened> {
        let (manifest_id, label, size) = match self.with_node(ino, |_, node| match &node.data {
            NodeData::File { manifest, label } => Ok(Ok((*manifest, label.clone(), node.size))),
            NodeData::Inline(bytes) => Ok(Err(bytes.clone())),
            NodeData::Dir { .. } => Err(Error::IsADirectory),
        })? {
            Ok(file) => file,
            Err(bytes) => {
                return Ok(Opened {
                    fh: self.new_handle(Handle::Inline(bytes)),
                    pinned: None,
                });
            }
        };
        if let Some(file) = self.open_pinned(&manifest_id, &label, size) {
            let file = Arc::new(file);
            return Ok(Opened {
                fh: self.new_handle(Handle::Pinned(file.clone())),
                pinned: Some(file),
            });
        }
        let file = {
            let mut open_files = self.open_files.lock().expect("open file table poisoned");
            match open_files.get(&manifest_id).and_then(Weak::upgrade) {
                Some(file) => file,
                None => {
                    let file = Arc::new(self.reader.open_listed(label, &manifest_id, size)?);
                    open_files.retain(|_, weak| weak.strong_count() > 0);
                    open_files.insert(manifest_id, Arc::downgrade(&file));
                    file
                }
            }
        };
        Ok(Opened {
            fh: self.new_handle(Handle::File(file)),
            pinned: None,
        })
    }

    fn new_handle(&self, open: Handle) -> Fh {
        let handle = Fh(self.next_handle.fetch_add(1, Ordering::Relaxed));
        self.handles
            .write()
            .expect("handle table poisoned")
            .insert(handle, open);
        handle
    }

    /// Reads into `dst` at `offset` through `handle`; returns the bytes read, fewer than
    /// `dst.len()` only at the end of the file.
    pub fn read(&self, handle: Fh, offset: u64, dst: &mut [u8]) -> Result<usize> {
        let open = match self
            .handles
            .read()
            .expect("handle table poisoned")
            .get(&handle)
        {
            Some(Handle::File(file)) => Handle::File(file.clone()),
            Some(Handle::Inline(bytes)) => Handle::Inline(bytes.clone()),
            Some(Handle::Pinned(file)) => Handle::Pinned(file.clone()),
            None => return Err(Error::StaleHandle(handle.0)),
        };
        match open {
            Handle::File(file) => file.read_at(offset, dst).inspect_err(|e| {
                error!(file = %file.label(), offset, error = %e, "read failed; returning an I/O error instead of unverified bytes");
            }),
            Handle::Inline(bytes) => {
                let from = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
                let n = dst.len().min(bytes.len() - from);
                dst[..n].copy_from_slice(&bytes[from..from + n]);
                Ok(n)
            }
            Handle::Pinned(file) => read_full_at(&file, offset, dst).map_err(|e| {
                error!(offset, error = %e, "read of a pinned copy failed");
                Error::io("(pinned copy)", e)
            }),
        }
    }

    /// Closes `handle`.
    pub fn release(&self, handle: Fh) {
        self.handles
            .write()
            .expect("handle table poisoned")
            .remove(&handle);
    }
}

fn kind(node: &Node) -> NodeKind {
    match node.data {
        NodeData::Dir { .. } => NodeKind::Dir,
        NodeData::File { .. } | NodeData::Inline(_) => NodeKind::File,
    }
}

fn attr(ino: Ino, node: &Node) -> NodeAttr {
    NodeAttr {
        ino,
        kind: kind(node),
        size: node.size,
        mtime_unix: node.mtime_unix,
        nlink: node.nlink,
    }
}

/// The (directory, name) pairs of `old` that `new` lacks or links to another inode.
fn moved_names(old: &Tree, new: &Tree) -> Vec<(Ino, String)> {
    let mut moved = Vec::new();
    for (ino, node) in &old.nodes {
        let NodeData::Dir { children, .. } = &node.data else {
            continue;
        };
        let now = match new.nodes.get(ino).map(|n| &n.data) {
            Some(NodeData::Dir { children, .. }) => Some(children),
            _ => None,
        };
        for (name, child) in children {
            if now.and_then(|c| c.get(name)) != Some(child) {
                moved.push((*ino, name.clone()));
            }
        }
    }
    moved
}

/// Builds the inode tree of `registry`; `probed` tells the Ollama view what is known of a GGUF
/// file's header.
fn build_tree(
    registry: &Registry,
    inos: &mut InoTable,
    probed: &dyn Fn(&ManifestId) -> Probed,
) -> Tree {
    let mut builder = TreeBuilder {
        tree: Tree::default(),
        inos,
    };
    let newest_of =
        |versions: &[VersionEntry]| versions.iter().map(|v| v.added_unix).max().unwrap_or(0);
    let newest = registry
        .models
        .values()
        .map(|m| newest_of(&m.versions))
        .max()
        .unwrap_or(0);
    builder.add_dir(ROOT_INO, ROOT_INO, newest);
    let versions_root = builder.dir(ROOT_INO, VERSIONS_DIR, "/.versions".into(), newest);
    for (model, entry) in &registry.models {
        let model_dir = builder.dir(
            versions_root,
            model,
            format!("/.versions/{model}"),
            newest_of(&entry.versions),
        );
        for version in &entry.versions {
            let version_dir = builder.dir(
                model_dir,
                &version.version,
                format!("/.versions/{model}/{}", version.version),
                version.added_unix,
            );
            builder.add_version(
                version_dir,
                model,
                version,
                &format!("/.versions/{model}/{}", version.version),
            );
        }
        if let Some(current) = current_version(entry) {
            builder.add_version(ROOT_INO, model, current, "");
        }
    }
    let views = views::build(registry, probed);
    for dir in &views.dirs {
        builder.dirs_along(dir, newest);
    }
    for file in &views.files {
        builder.add_view_file(file);
    }
    builder.tree.unprobed = views.unprobed;
    builder.tree
}

struct TreeBuilder<'a> {
    tree: Tree,
    inos: &'a mut InoTable,
}

impl TreeBuilder<'_> {
    fn add_dir(&mut self, ino: Ino, parent: Ino, mtime_unix: u64) {
        self.tree.nodes.entry(ino).or_insert(Node {
            data: NodeData::Dir {
                parent,
                children: BTreeMap::new(),
            },
            size: 0,
            mtime_unix,
            nlink: 2,
        });
    }

    /// Links `name` → `child` in directory `parent`; the first claimant of a name keeps it.
    fn link(&mut self, parent: Ino, name: &str, child: Ino) -> bool {
        let Some(Node {
            data: NodeData::Dir { children, .. },
            ..
        }) = self.tree.nodes.get_mut(&parent)
        else {
            return false;
        };
        if children.contains_key(name) {
            warn!(
                name,
                "two models claim the same name in the mount; the first one keeps it"
            );
            return false;
        }
        children.insert(name.to_owned(), child);
        true
    }

    /// The directory `name` under `parent`, created if needed; `path` keys its inode number.
    fn dir(&mut self, parent: Ino, name: &str, path: String, mtime_unix: u64) -> Ino {
        if let Some(NodeData::Dir { children, .. }) = self.tree.nodes.get(&parent).map(|n| &n.data)
            && let Some(&existing) = children.get(name)
        {
            return existing;
        }
        let ino = self.inos.ino(format!("d{path}"));
        self.add_dir(ino, parent, mtime_unix);
        self.link(parent, name, ino);
        if path.starts_with(OLLAMA_MODELS) {
            self.tree.ollama_dirs.insert(ino);
        }
        ino
    }

    /// The directories of `path` (from the root, `/`-separated), created if needed; the last.
    fn dirs_along(&mut self, path: &str, mtime_unix: u64) -> Ino {
        let mut dir = ROOT_INO;
        let mut at = String::new();
        for part in path.split('/') {
            at = format!("{at}/{part}");
            dir = self.dir(dir, part, at.clone(), mtime_unix);
        }
        dir
    }

    /// Places a view's file: a model file as another link to its inode (not counted in `nlink`),
    /// generated bytes as an inline node keyed by path and content.
    fn add_view_file(&mut self, file: &ViewFile) {
        let (dirs, name) = file
            .path
            .rsplit_once('/')
            .expect("view files are inside a view directory");
        let parent = self.dirs_along(dirs, file.mtime_unix);
        let (ino, node) = match &file.content {
            Content::Model {
                model,
                version,
                file: entry,
            } => (
                self.inos
                    .ino(format!("f{model}\0{}\0{}", version.version, entry.path)),
                Node {
                    data: NodeData::File {
                        manifest: entry.manifest,
                        label: format!("{model}@{}/{}", version.version, entry.path),
                    },
                    size: entry.size,
                    mtime_unix: version.added_unix,
                    nlink: 1,
                },
            ),
            Content::Generated(bytes) => (
                self.inos
                    .ino(format!("i/{}\0{}", file.path, blake3::hash(bytes).to_hex())),
                Node {
                    data: NodeData::Inline(Arc::from(bytes.as_slice())),
                    size: bytes.len() as u64,
                    mtime_unix: file.mtime_unix,
                    nlink: 1,
                },
            ),
        };
        if self.link(parent, name, ino) {
            self.tree.nodes.entry(ino).or_insert(node);
        }
    }

    /// Places a version's files under `dir`: the single file as `NAME.EXT`, or the folder as `NAME/`
    /// (at the root) or as the version directory's contents (under `.versions`).
    fn add_version(&mut self, dir: Ino, model: &str, version: &VersionEntry, dir_path: &str) {
        let (base, base_path) = match (version.layout, dir == ROOT_INO) {
            (Layout::Dir, true) => (
                self.dir(ROOT_INO, model, format!("/{model}"), version.added_unix),
                format!("/{model}"),
            ),
            _ => (dir, dir_path.to_owned()),
        };
        for file in &version.files {
            let ino = self
                .inos
                .ino(format!("f{model}\0{}\0{}", version.version, file.path));
            let relative = match version.layout {
                Layout::File => mounted_name(model, version),
                Layout::Dir => file.path.clone(),
            };
            let (parent, name) = match relative.rsplit_once('/') {
                Some((dirs, name)) => {
                    let mut parent = base;
                    let mut path = base_path.clone();
                    for part in dirs.split('/') {
                        path = format!("{path}/{part}");
                        parent = self.dir(parent, part, path.clone(), version.added_unix);
                    }
                    (parent, name.to_owned())
                }
                None => (base, relative),
            };
            if !self.link(parent, &name, ino) {
                continue;
            }
            let node = self.tree.nodes.entry(ino).or_insert(Node {
                data: NodeData::File {
                    manifest: file.manifest,
                    label: format!("{model}@{}/{}", version.version, file.path),
                },
                size: file.size,
                mtime_unix: version.added_unix,
                nlink: 0,
            });
            node.nlink += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::registry::{FileEntry, ModelEntry};
    use crate::read::ReadOptions;
    use crate::store::Store;
    use crate::testutil::{add_model, random_bytes, small_store};
    use sha2::Digest;

    fn vfs_of(store: &Arc<Store>) -> Vfs {
        Vfs::new(Reader::new(store.clone(), ReadOptions::default())).unwrap()
    }

    /// The node at `path` (`/`-separated, from the root).
    fn at(vfs: &Vfs, path: &str) -> NodeAttr {
        path.split('/').filter(|p| !p.is_empty()).fold(
            vfs.getattr(ROOT_INO).unwrap(),
            |dir, name| {
                vfs.lookup(dir.ino, name)
                    .unwrap_or_else(|e| panic!("{path}: {e}"))
            },
        )
    }

    fn names(vfs: &Vfs, path: &str) -> Vec<String> {
        vfs.readdir(at(vfs, path).ino)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect()
    }

    #[test]
    fn newest_versions_at_the_top_and_every_version_under_dot_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(&dir.path().join("store"));
        add_model(&store, dir.path(), "m", &random_bytes(1, 50_000));
        add_model(&store, dir.path(), "m", &random_bytes(2, 60_000));
        let folder = dir.path().join("folder");
        std::fs::create_dir_all(folder.join("sub")).unwrap();
        std::fs::write(folder.join("config.json"), b"{}").unwrap();
        std::fs::write(folder.join("sub/w.bin"), random_bytes(3, 10_000)).unwrap();
        let request = crate::ingest::AddRequest {
            model: "f".into(),
            version: None,
            source: folder,
        };
        crate::ingest::add(&store, &request, &crate::progress::Silent).unwrap();

        let vfs = vfs_of(&store);
        assert_eq!(
            names(&vfs, "/"),
            [".", "..", ".hf", ".ollama", ".versions", "f", "m.bin"]
        );
        assert_eq!(names(&vfs, "/.versions/m"), [".", "..", "v1", "v2"]);
        assert_eq!(names(&vfs, "/f"), [".", "..", "config.json", "sub"]);
        assert_eq!(names(&vfs, "/.versions/f/v1/sub"), [".", "..", "w.bin"]);
        let top = at(&vfs, "/m.bin");
        assert_eq!(
            top,
            at(&vfs, "/.versions/m/v2/m.bin"),
            "one inode, two paths"
        );
        assert_eq!((top.nlink, top.size, top.kind), (2, 60_000, NodeKind::File));
        assert_eq!(at(&vfs, "/.versions/m/v1/m.bin").nlink, 1);
        assert_eq!(at(&vfs, "/f/sub/w.bin").size, 10_000);
        assert!(matches!(
            vfs.lookup(top.ino, "x"),
            Err(Error::NotADirectory)
        ));
        assert!(matches!(
            vfs.lookup(ROOT_INO, "absent"),
            Err(Error::NoEntry(_))
        ));
    }

    #[test]
    fn the_first_model_claiming_a_name_keeps_it() {
        let file = |path: &str| FileEntry {
            path: path.into(),
            size: 1,
            manifest: ManifestId::of(path.as_bytes()),
        };
        let version = |layout, files| VersionEntry {
            version: "v1".into(),
            added_unix: 0,
            layout,
            files,
            release: None,
        };
        let mut registry = Registry::default();
        // "x" shows as `x.gguf`; a folder model named "x.gguf" claims the same name after it.
        registry.models.insert(
            "x".into(),
            ModelEntry::new(vec![version(Layout::File, vec![file("x.gguf")])]),
        );
        registry.models.insert(
            "x.gguf".into(),
            ModelEntry::new(vec![version(Layout::Dir, vec![file("a.json")])]),
        );
        let mut inos = InoTable {
            by_key: HashMap::new(),
            next: ROOT_INO.0,
        };
        let tree = build_tree(&registry, &mut inos, &|_| Probed::Unknown);
        let NodeData::Dir { children, .. } = &tree.nodes[&ROOT_INO].data else {
            panic!("root is a directory");
        };
        let claimed = &tree.nodes[&children["x.gguf"]];
        assert!(
            matches!(claimed.data, NodeData::File { .. }),
            "the model sorted first keeps the name"
        );
        // Both models stay reachable under .versions; the views sit beside it.
        assert_eq!(
            children.keys().collect::<Vec<_>>(),
            [".hf", ".ollama", ".versions", "x.gguf"]
        );
    }

    #[test]
    fn inode_numbers_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(&dir.path().join("store"));
        add_model(&store, dir.path(), "a", &random_bytes(4, 20_000));
        let vfs = vfs_of(&store);
        let before = (at(&vfs, "/a.bin"), at(&vfs, "/.versions/a"));
        add_model(&store, dir.path(), "b", &random_bytes(5, 20_000));
        add_model(&store, dir.path(), "a", &random_bytes(6, 20_000));
        assert!(vfs.reload_if_changed().unwrap());
        assert!(!vfs.reload_if_changed().unwrap(), "nothing changed since");
        assert_eq!(at(&vfs, "/.versions/a/v1/a.bin").ino, before.0.ino);
        assert_eq!(at(&vfs, "/.versions/a").ino, before.1.ino);
        assert_ne!(at(&vfs, "/a.bin").ino, before.0.ino, "a.bin is v2 now");
        assert_eq!(at(&vfs, "/b.bin").size, 20_000);
    }

    #[test]
    fn handles_read_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(&dir.path().join("store"));
        let bytes = random_bytes(7, 100_000);
        add_model(&store, dir.path(), "m", &bytes);
        let vfs = vfs_of(&store);
        let ino = at(&vfs, "/m.bin").ino;
        assert!(matches!(vfs.open(ROOT_INO), Err(Error::IsADirectory)));
        let (first, second) = (vfs.open(ino).unwrap().fh, vfs.open(ino).unwrap().fh);
        assert_ne!(first, second, "handles are never reused");
        let mut buf = vec![0u8; 70_000];
        assert_eq!(vfs.read(first, 50_000, &mut buf).unwrap(), 50_000);
        assert_eq!(&buf[..50_000], &bytes[50_000..]);
        vfs.release(first);
        assert!(matches!(
            vfs.read(first, 0, &mut buf),
            Err(Error::StaleHandle(_))
        ));
        assert_eq!(vfs.read(second, 0, &mut buf[..10]).unwrap(), 10);
        assert_eq!(&buf[..10], &bytes[..10]);
    }

    #[test]
    fn pinned_copies_are_served_when_they_match() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(&dir.path().join("store"));
        let bytes = random_bytes(8, 100_000);
        add_model(&store, dir.path(), "m", &bytes);
        let vfs = vfs_of(&store);
        let manifest = store.registry().unwrap().models["m"].versions[0].files[0].manifest;
        let copy = dir.path().join("copy");
        // A copy whose bytes differ at one place, to tell which one is read.
        let mut marked = bytes.clone();
        marked[10] ^= 0xff;
        std::fs::write(&copy, &marked).unwrap();
        let pinned = |size| {
            let copy = crate::pin::PinnedCopy {
                path: copy.clone(),
                size,
                verity: None,
            };
            PinnedCopies::from([(manifest, copy)])
        };
        vfs.set_pinned(pinned(bytes.len() as u64));
        let ino = at(&vfs, "/m.bin").ino;
        assert!(vfs.open(ino).unwrap().pinned.is_some());
        assert_eq!(read_all(&vfs, "/m.bin"), marked);
        assert_eq!(vfs.take_pin_uses().len(), 1);
        // A copy of another size, or gone, is not used: the store's chunks are.
        vfs.set_pinned(pinned(5));
        assert!(vfs.open(ino).unwrap().pinned.is_none());
        assert_eq!(read_all(&vfs, "/m.bin"), bytes);
        vfs.set_pinned(pinned(bytes.len() as u64));
        std::fs::remove_file(&copy).unwrap();
        assert_eq!(read_all(&vfs, "/m.bin"), bytes);
    }

    /// A GGUF v3 file with no tensors: `general.architecture`, a string array to skip, and
    /// `general.file_type` (a u32).
    pub(crate) fn tiny_gguf(architecture: &str, file_type: u32) -> Vec<u8> {
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&3u64.to_le_bytes());
        string(&mut out, "general.architecture");
        out.extend_from_slice(&8u32.to_le_bytes());
        string(&mut out, architecture);
        string(&mut out, "tokenizer.ggml.tokens");
        out.extend_from_slice(&9u32.to_le_bytes());
        out.extend_from_slice(&8u32.to_le_bytes());
        out.extend_from_slice(&2u64.to_le_bytes());
        string(&mut out, "<s>");
        string(&mut out, "</s>");
        string(&mut out, "general.file_type");
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&file_type.to_le_bytes());
        out.extend_from_slice(&random_bytes(11, 5000));
        out
    }

    fn read_all(vfs: &Vfs, path: &str) -> Vec<u8> {
        let attr = at(vfs, path);
        let handle = vfs.open(attr.ino).unwrap().fh;
        let mut buf = vec![0u8; attr.size as usize + 10];
        let n = vfs.read(handle, 0, &mut buf).unwrap();
        vfs.release(handle);
        buf.truncate(n);
        buf
    }

    fn add_as(store: &Store, model: &str, source: &std::path::Path, hf_repo: Option<&str>) {
        let request = crate::ingest::AddRequest {
            model: model.into(),
            version: None,
            source: source.to_owned(),
        };
        let options = crate::ingest::AddOptions {
            hf_repo: hf_repo.map(str::to_owned),
        };
        crate::ingest::add_with(store, &request, &options, &crate::progress::Silent).unwrap();
    }

    #[test]
    fn the_hub_cache_view_has_refs_and_a_snapshot_per_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(&dir.path().join("store"));
        let folder = dir.path().join("tiny");
        std::fs::create_dir_all(folder.join("sub")).unwrap();
        std::fs::write(folder.join("config.json"), b"{\"v\": 1}").unwrap();
        std::fs::write(folder.join("sub/w.bin"), random_bytes(12, 30_000)).unwrap();
        add_as(&store, "tiny", &folder, Some("acme/tiny"));
        add_model(&store, dir.path(), "plain", b"plain bytes");
        let vfs = vfs_of(&store);
        let repo = "/.hf/hub/models--acme--tiny";
        assert_eq!(
            names(&vfs, "/.hf/hub"),
            [".", "..", "models--acme--tiny", "models--modelfs--plain"]
        );
        let registry = store.registry().unwrap();
        let v1 = views::hf_revision(&registry.models["tiny"].versions[0]);
        assert_eq!(v1.len(), 40);
        assert!(
            v1.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(read_all(&vfs, &format!("{repo}/refs/main")), v1.as_bytes());
        assert_eq!(read_all(&vfs, &format!("{repo}/refs/v1")), v1.as_bytes());
        let config = at(&vfs, &format!("{repo}/snapshots/{v1}/config.json"));
        assert_eq!(config, at(&vfs, "/tiny/config.json"), "the same inode");
        assert_eq!(config.nlink, 2, "view aliases are not counted");
        assert_eq!(
            read_all(&vfs, &format!("{repo}/snapshots/{v1}/sub/w.bin")),
            random_bytes(12, 30_000)
        );
        assert!(
            read_all(&vfs, "/.hf/hub/models--modelfs--plain/refs/main").len() == 40,
            "the default repo id is modelfs/NAME"
        );

        // A second version: refs/main moves (a new inode, and the kernel is told), v1 stays.
        let main_before = at(&vfs, &format!("{repo}/refs/main"));
        vfs.take_moved_names();
        std::fs::write(folder.join("config.json"), b"{\"v\": 2}").unwrap();
        add_as(&store, "tiny", &folder, None);
        assert!(vfs.reload_if_changed().unwrap());
        let registry = store.registry().unwrap();
        assert_eq!(
            registry.models["tiny"].hf_repo.as_deref(),
            Some("acme/tiny")
        );
        let v2 = views::hf_revision(&registry.models["tiny"].versions[1]);
        assert_ne!(v1, v2);
        assert_eq!(read_all(&vfs, &format!("{repo}/refs/main")), v2.as_bytes());
        assert_ne!(at(&vfs, &format!("{repo}/refs/main")).ino, main_before.ino);
        let refs = at(&vfs, &format!("{repo}/refs")).ino;
        assert!(vfs.take_moved_names().contains(&(refs, "main".to_owned())));
        let mut revisions = vec![".".to_owned(), "..".to_owned(), v1.clone(), v2.clone()];
        revisions[2..].sort();
        assert_eq!(names(&vfs, &format!("{repo}/snapshots")), revisions);
        assert_eq!(
            read_all(&vfs, &format!("{repo}/snapshots/{v1}/config.json")),
            b"{\"v\": 1}"
        );
        assert_eq!(read_all(&vfs, &format!("{repo}/refs/v1")), v1.as_bytes());

        // Rolling back moves refs/main back to v1's revision.
        store
            .update_registry(|r| {
                r.models.get_mut("tiny").unwrap().current = Some("v1".into());
                Ok(())
            })
            .unwrap();
        assert!(vfs.reload_if_changed().unwrap());
        assert_eq!(read_all(&vfs, &format!("{repo}/refs/main")), v1.as_bytes());
        assert_eq!(read_all(&vfs, &format!("{repo}/refs/v2")), v2.as_bytes());
    }

    #[test]
    fn the_first_model_claiming_a_repo_id_keeps_it() {
        let version = |byte: u8| VersionEntry {
            version: "v1".into(),
            added_unix: 0,
            layout: Layout::Dir,
            files: vec![FileEntry {
                path: "a.json".into(),
                size: 1,
                manifest: ManifestId([byte; 32]),
            }],
            release: None,
        };
        let mut registry = Registry::default();
        let mut a = ModelEntry::new(vec![version(1)]);
        a.hf_repo = Some("modelfs/b".into());
        registry.models.insert("a".into(), a);
        registry
            .models
            .insert("b".into(), ModelEntry::new(vec![version(2)]));
        // A name whose default is not a repo id gets no view.
        registry
            .models
            .insert("c--d".into(), ModelEntry::new(vec![version(3)]));
        let mut inos = InoTable {
            by_key: HashMap::new(),
            next: ROOT_INO.0,
        };
        let tree = build_tree(&registry, &mut inos, &|_| Probed::Unknown);
        let child = |dir: Ino, name: &str| match &tree.nodes[&dir].data {
            NodeData::Dir { children, .. } => children.get(name).copied(),
            _ => None,
        };
        let hub = child(child(ROOT_INO, ".hf").unwrap(), "hub").unwrap();
        let NodeData::Dir { children, .. } = &tree.nodes[&hub].data else {
            panic!("hub is a directory");
        };
        assert_eq!(children.keys().collect::<Vec<_>>(), ["models--modelfs--b"]);
        let snapshots = child(child(hub, "models--modelfs--b").unwrap(), "snapshots").unwrap();
        let rev = views::hf_revision(&registry.models["a"].versions[0]);
        assert!(child(snapshots, &rev).is_some(), "model a keeps modelfs/b");
    }

    #[test]
    fn the_ollama_view_reads_gguf_headers_when_first_entered() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(&dir.path().join("store"));
        let gguf = tiny_gguf("qwen3", 15);
        let path = dir.path().join("model.Q4_K_M.gguf");
        std::fs::write(&path, &gguf).unwrap();
        add_as(&store, "qwen", &path, None);
        std::fs::write(dir.path().join("fake.gguf"), b"not a gguf file").unwrap();
        add_as(&store, "fake", &dir.path().join("fake.gguf"), None);
        let vfs = vfs_of(&store);
        assert_eq!(
            vfs.tree.read().unwrap().unprobed.len(),
            2,
            "nothing read while building"
        );
        assert_eq!(names(&vfs, "/.ollama"), [".", "..", "models"]);
        assert_eq!(
            vfs.tree.read().unwrap().unprobed.len(),
            2,
            "nor while listing /.ollama"
        );
        let library = "/.ollama/models/manifests/registry.ollama.ai/library";
        assert_eq!(names(&vfs, library), [".", "..", "qwen"]);
        assert!(vfs.tree.read().unwrap().unprobed.is_empty());
        assert_eq!(
            names(&vfs, &format!("{library}/qwen")),
            [".", "..", "latest", "v1"]
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&read_all(&vfs, &format!("{library}/qwen/latest"))).unwrap();
        let sha = hex_of(&sha2::Sha256::digest(&gguf));
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        assert_eq!(
            manifest["layers"][0]["mediaType"],
            "application/vnd.ollama.image.model"
        );
        assert_eq!(manifest["layers"][0]["digest"], format!("sha256:{sha}"));
        assert_eq!(manifest["layers"][0]["size"], gguf.len());
        let blob = at(&vfs, &format!("/.ollama/models/blobs/sha256-{sha}"));
        assert_eq!(
            blob,
            at(&vfs, "/qwen.gguf"),
            "the GGUF blob is the model's inode"
        );
        let config_digest = manifest["config"]["digest"].as_str().unwrap();
        let config = read_all(
            &vfs,
            &format!("/.ollama/models/blobs/{}", config_digest.replace(':', "-")),
        );
        assert_eq!(
            format!("sha256:{}", hex_of(&sha2::Sha256::digest(&config))),
            config_digest
        );
        assert_eq!(manifest["config"]["size"], config.len());
        assert_eq!(
            String::from_utf8(config).unwrap(),
            "{\"model_format\":\"gguf\",\"model_family\":\"qwen3\",\"model_families\":[\"qwen3\"],\
             \"model_type\":\"\",\"file_type\":\"Q4_K_M\",\"architecture\":\"amd64\",\"os\":\"linux\"}\n"
        );
        assert_eq!(
            names(&vfs, "/.ollama/models/blobs").len(),
            4,
            "the GGUF and its config"
        );
        // The headers are remembered across rebuilds.
        add_model(&store, dir.path(), "other", b"x");
        assert!(vfs.reload_if_changed().unwrap());
        assert!(vfs.tree.read().unwrap().unprobed.is_empty());
        assert_eq!(
            at(&vfs, &format!("{library}/qwen/v1")).size,
            manifest_len(&vfs, library)
        );
    }

    fn manifest_len(vfs: &Vfs, library: &str) -> u64 {
        at(vfs, &format!("{library}/qwen/latest")).size
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
