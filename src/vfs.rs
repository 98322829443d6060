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
//! stay stable for the life of the mount. `Vfs` is `Send + Sync`; `fuse` only translates calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use tracing::warn;

use crate::error::{Error, Result};
use crate::format::registry::{Layout, Registry, VersionEntry};
use crate::id::ManifestId;
use crate::store::Store;
use crate::store::file::{OpenFile, VerifyPolicy};
use crate::store::registry::mounted_name;

/// Inode number of the root directory.
pub const ROOT_INO: u64 = 1;
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
    pub ino: u64,
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
    pub ino: u64,
    /// File or directory.
    pub kind: NodeKind,
    /// The entry's name.
    pub name: String,
}

#[derive(Debug)]
enum NodeData {
    Dir {
        parent: u64,
        children: BTreeMap<String, u64>,
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
    nodes: HashMap<u64, Node>,
}

/// Hands out inode numbers by key, so a rebuilt tree gives the same path the same number.
#[derive(Debug)]
struct InoTable {
    by_key: HashMap<String, u64>,
    next: u64,
}

impl InoTable {
    fn ino(&mut self, key: String) -> u64 {
        let next = &mut self.next;
        *self.by_key.entry(key).or_insert_with(|| {
            *next += 1;
            *next
        })
    }
}

/// The mounted view of a store.
pub struct Vfs {
    store: Arc<Store>,
    tree: RwLock<Tree>,
    inos: Mutex<InoTable>,
    /// Generation of the registry the tree was built from. Compared with the file's content, not
    /// its attributes, which network file systems cache (sshfs for 20 s by default).
    registry_generation: Mutex<Option<u64>>,
    /// Open handles by number; an entry lives from `open` to `release`.
    handles: RwLock<HashMap<u64, Arc<OpenFile>>>,
    next_handle: AtomicU64,
    /// Files open under any handle, by manifest, so concurrent opens of one file share its
    /// resolved chunk locations. Weak: the last `release` frees the table.
    open_files: Mutex<HashMap<ManifestId, Weak<OpenFile>>>,
    verify: VerifyPolicy,
}

impl Vfs {
    /// Builds the tree of the store's current registry.
    pub fn new(store: Arc<Store>, verify: VerifyPolicy) -> Result<Vfs> {
        let vfs = Vfs {
            store,
            tree: RwLock::new(Tree::default()),
            inos: Mutex::new(InoTable {
                by_key: HashMap::new(),
                next: ROOT_INO,
            }),
            registry_generation: Mutex::new(None),
            handles: RwLock::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            open_files: Mutex::new(HashMap::new()),
            verify,
        };
        vfs.reload()?;
        Ok(vfs)
    }

    /// The store behind the view.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Re-reads the registry and rebuilds the tree; existing paths keep their inode numbers.
    /// The index is reopened too, so chunks of newly added models are found.
    pub fn reload(&self) -> Result<()> {
        self.rebuild(self.store.registry()?)
    }

    /// Reloads if the registry changed since the last load; returns whether it did.
    pub fn reload_if_changed(&self) -> Result<bool> {
        let registry = self.store.registry()?;
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
        self.store.refresh_index()?;
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

    fn with_node<T>(&self, ino: u64, f: impl FnOnce(&Tree, &Node) -> Result<T>) -> Result<T> {
        let tree = self.tree.read().expect("tree lock poisoned");
        let node = tree
            .nodes
            .get(&ino)
            .ok_or_else(|| Error::NoEntry(format!("inode {ino}")))?;
        f(&tree, node)
    }

    /// Attributes of `ino`.
    pub fn getattr(&self, ino: u64) -> Result<NodeAttr> {
        self.with_node(ino, |_, node| Ok(attr(ino, node)))
    }

    /// Looks `name` up in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &str) -> Result<NodeAttr> {
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
    pub fn readdir(&self, ino: u64) -> Result<Vec<DirEntry>> {
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
    pub fn open(&self, ino: u64) -> Result<u64> {
        let (manifest_id, label) = self.with_node(ino, |_, node| match &node.data {
            NodeData::File { manifest, label } => Ok((*manifest, label.clone())),
            NodeData::Dir { .. } => Err(Error::IsADirectory),
        })?;
        let file = {
            let mut open_files = self.open_files.lock().expect("open file table poisoned");
            match open_files.get(&manifest_id).and_then(Weak::upgrade) {
                Some(file) => file,
                None => {
                    let file = Arc::new(OpenFile::new(
                        label,
                        self.store.manifest(&manifest_id)?,
                        self.verify,
                    ));
                    open_files.retain(|_, weak| weak.strong_count() > 0);
                    open_files.insert(manifest_id, Arc::downgrade(&file));
                    file
                }
            }
        };
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.handles
            .write()
            .expect("handle table poisoned")
            .insert(handle, file);
        Ok(handle)
    }

    /// Reads into `dst` at `offset` through `handle`; returns the bytes read, fewer than
    /// `dst.len()` only at the end of the file.
    pub fn read(&self, handle: u64, offset: u64, dst: &mut [u8]) -> Result<usize> {
        let file = self
            .handles
            .read()
            .expect("handle table poisoned")
            .get(&handle)
            .cloned();
        let file = file.ok_or(Error::StaleHandle(handle))?;
        file.read_at(&self.store, offset, dst)
    }

    /// Closes `handle`.
    pub fn release(&self, handle: u64) {
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

fn attr(ino: u64, node: &Node) -> NodeAttr {
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
    fn add_dir(&mut self, ino: u64, parent: u64, mtime_unix: u64) {
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
    fn link(&mut self, parent: u64, name: &str, child: u64) -> bool {
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
    fn dir(&mut self, parent: u64, name: &str, path: String, mtime_unix: u64) -> u64 {
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
    fn add_version(&mut self, dir: u64, model: &str, version: &VersionEntry, dir_path: &str) {
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
