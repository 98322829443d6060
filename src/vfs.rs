//! The registry as a read-only file tree, independent of FUSE.
//!
//! Owns [`Vfs`]: the inode table built from the registry, lookups, directory listings, open file
//! handles and `read`. Layout:
//! ```text
//! /NAME.EXT                      newest version of a single-file model
//! /NAME/…                        newest version of a folder model
//! /.versions/NAME/VERSION/…      every version (NAME.EXT, or the folder's tree)
//! ```
//! A file of the newest version is the same inode under both paths (two links), so the kernel
//! caches its pages once. Inode numbers come from a table keyed by (model, version, path), so they
//! stay stable for the life of the mount. Inode numbers and handles are typed ([`Ino`], [`Fh`]).
//! `Vfs` is `Send + Sync` and reads through a [`Reader`]; `fuse` only translates calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use tracing::{error, warn};

use crate::error::{Error, Result};
use crate::format::registry::{Layout, Registry, VersionEntry};
use crate::id::ManifestId;
use crate::read::{OpenFile, Reader};
use crate::store::registry::mounted_name;

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
    /// Open handles by number; an entry lives from `open` to `release`.
    handles: RwLock<HashMap<Fh, Arc<OpenFile>>>,
    next_handle: AtomicU64,
    /// Files open under any handle, by manifest, so concurrent opens of one file share its
    /// resolved chunk locations. Weak: the last `release` frees the table.
    open_files: Mutex<HashMap<ManifestId, Weak<OpenFile>>>,
    /// Reads served, bytes returned, and reads that failed (EIO), for metrics.
    reads: [AtomicU64; 3],
}

/// What the mount has served so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadTotals {
    /// Read requests answered with bytes.
    pub reads: u64,
    /// Bytes returned.
    pub bytes: u64,
    /// Read requests answered with an I/O error.
    pub failures: u64,
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
            reads: Default::default(),
            handles: RwLock::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            open_files: Mutex::new(HashMap::new()),
        };
        vfs.reload()?;
        Ok(vfs)
    }

    /// Re-reads the registry and rebuilds the tree; existing paths keep their inode numbers.
    /// The index is reopened too, so chunks of newly added models are found.
    pub fn reload(&self) -> Result<()> {
        self.rebuild(self.reader.source().registry()?)
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
        let tree = build_tree(
            &registry,
            &mut self.inos.lock().expect("inode table poisoned"),
        );
        *self.tree.write().expect("tree lock poisoned") = tree;
        *self
            .registry_generation
            .lock()
            .expect("generation lock poisoned") = Some(registry.generation);
        Ok(())
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

    /// Opens file `ino` and returns a handle for [`Vfs::read`].
    pub fn open(&self, ino: Ino) -> Result<Fh> {
        let (manifest_id, label, size) = self.with_node(ino, |_, node| match &node.data {
            NodeData::File { manifest, label } => Ok((*manifest, label.clone(), node.size)),
            NodeData::Dir { .. } => Err(Error::IsADirectory),
        })?;
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
        let handle = Fh(self.next_handle.fetch_add(1, Ordering::Relaxed));
        self.handles
            .write()
            .expect("handle table poisoned")
            .insert(handle, file);
        Ok(handle)
    }

    /// Reads into `dst` at `offset` through `handle`; returns the bytes read, fewer than
    /// `dst.len()` only at the end of the file.
    pub fn read(&self, handle: Fh, offset: u64, dst: &mut [u8]) -> Result<usize> {
        let file = self
            .handles
            .read()
            .expect("handle table poisoned")
            .get(&handle)
            .cloned();
        let file = file.ok_or(Error::StaleHandle(handle.0))?;
        let read = file.read_at(offset, dst).inspect_err(|e| {
            error!(file = %file.label(), offset, error = %e, "read failed; returning an I/O error instead of unverified bytes");
        });
        match &read {
            Ok(n) => {
                self.reads[0].fetch_add(1, Ordering::Relaxed);
                self.reads[1].fetch_add(*n as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.reads[2].fetch_add(1, Ordering::Relaxed);
            }
        }
        read
    }

    /// What the mount has served so far.
    pub fn read_totals(&self) -> ReadTotals {
        let [reads, bytes, failures] = &self.reads;
        ReadTotals {
            reads: reads.load(Ordering::Relaxed),
            bytes: bytes.load(Ordering::Relaxed),
            failures: failures.load(Ordering::Relaxed),
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
        NodeData::File { .. } => NodeKind::File,
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

/// Builds the inode tree of `registry`.
fn build_tree(registry: &Registry, inos: &mut InoTable) -> Tree {
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
        if let Some(newest) = entry.versions.last() {
            builder.add_version(ROOT_INO, model, newest, "");
        }
    }
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
        ino
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
        assert_eq!(names(&vfs, "/"), [".", "..", ".versions", "f", "m.bin"]);
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
        };
        let mut registry = Registry::default();
        // "x" shows as `x.gguf`; a folder model named "x.gguf" claims the same name after it.
        registry.models.insert(
            "x".into(),
            ModelEntry {
                versions: vec![version(Layout::File, vec![file("x.gguf")])],
            },
        );
        registry.models.insert(
            "x.gguf".into(),
            ModelEntry {
                versions: vec![version(Layout::Dir, vec![file("a.json")])],
            },
        );
        let mut inos = InoTable {
            by_key: HashMap::new(),
            next: ROOT_INO.0,
        };
        let tree = build_tree(&registry, &mut inos);
        let NodeData::Dir { children, .. } = &tree.nodes[&ROOT_INO].data else {
            panic!("root is a directory");
        };
        let claimed = &tree.nodes[&children["x.gguf"]];
        assert!(
            matches!(claimed.data, NodeData::File { .. }),
            "the model sorted first keeps the name"
        );
        // Both models stay reachable under .versions.
        assert_eq!(children.len(), 2);
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
        let (first, second) = (vfs.open(ino).unwrap(), vfs.open(ino).unwrap());
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
}
