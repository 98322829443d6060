//! The whole-store fuzz target's fixture: a small real store built once with the library, and the
//! replay of one fuzz input — byte-level damage to a fresh copy of it, then everything a reader
//! does with a store it did not write (list, open, read, scrub, import), with the oracle that a
//! read which succeeds returns exactly the right bytes.
//!
//! # Input layout
//!
//! ```text
//! flags    u8   bit 0 delete the index (readers rebuild one from the packs in the cache)
//!               bit 1 re-hash damaged manifests: rename them to their new id and point the
//!                     registry at it (a forger's manifest, not a torn one)
//!               bit 2 re-seal damaged packs: recompute the trailer's table hash (a forger's table)
//!               bit 3 verify every read      bit 4 no decoded-chunk cache
//!               bit 5 import everything into a fresh store, then read that one too
//!               bit 6 list every pack's chunks (table, else record scan) directly
//!               bit 7 scrub before reading (else after)
//! ops      u8   low 4 bits: number of damage operations that follow
//! op       file u8 (index into the store's files, modulo their count), kind u8, arguments:
//!            0 overwrite  at u32, n u8, n bytes     4 set int  at u32, width u8, value u64
//!            1 truncate   at u32                    5 add int  at u32, width u8, delta i8
//!            2 insert     at u32, n u8, n bytes     6 replace  n u16, n bytes (the whole file)
//!            3 delete                               7 copy     from u32, to u32, n u16
//!          (`at` is taken modulo the file length; width 1, 2, 4 or 8 bytes, little-endian)
//! reads    the rest: up to 16 × (offset u32, len u16), read from every file after a full read
//! ```
//!
//! The store's files, in the order `file` indexes them: `registry.json`, `modelfs.json`, the
//! manifests by name, the packs by content (pack ids are random, their records are not). The
//! RocksDB index is copied as it is or deleted, never damaged byte by byte (it is derived data
//! and RocksDB's own format is not ours to parse).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use modelfs::format::pack::{TRAILER_LEN, Trailer};
use modelfs::format::registry::Registry;
use modelfs::id::{ChunkId, ManifestId};
use modelfs::progress::Silent;
use modelfs::read::{ReadOptions, Reader, VerifyPolicy};
use modelfs::store::registry::ModelSpec;
use modelfs::store::{Access, InitOptions, Store};

use crate::Input;

/// Flag bits of the first input byte.
pub mod flags {
    /// Delete the index.
    pub const DELETE_INDEX: u8 = 1;
    /// Re-hash damaged manifests and point the registry at them.
    pub const REHASH_MANIFESTS: u8 = 2;
    /// Recompute the table hash of damaged packs.
    pub const RESEAL_PACKS: u8 = 4;
    /// `VerifyPolicy::EveryRead`.
    pub const EVERY_READ: u8 = 8;
    /// No decoded-chunk cache.
    pub const NO_CACHE: u8 = 16;
    /// Import into a fresh store and read that too.
    pub const IMPORT: u8 = 32;
    /// List every pack's chunks directly.
    pub const SCAN_PACKS: u8 = 64;
    /// Scrub before reading.
    pub const SCRUB_FIRST: u8 = 128;
}

/// Damage operation kinds (the `kind` byte modulo 8).
pub mod ops {
    /// Overwrite bytes.
    pub const OVERWRITE: u8 = 0;
    /// Cut the file.
    pub const TRUNCATE: u8 = 1;
    /// Insert bytes.
    pub const INSERT: u8 = 2;
    /// Delete the file.
    pub const DELETE: u8 = 3;
    /// Set a little-endian integer.
    pub const SET_INT: u8 = 4;
    /// Add to a little-endian integer.
    pub const ADD_INT: u8 = 5;
    /// Replace the whole file.
    pub const REPLACE: u8 = 6;
    /// Copy a range within the file.
    pub const COPY: u8 = 7;
}

/// At most this many bytes of one file are read (the fixture's files are far smaller; a forged
/// manifest may claim terabytes).
const MAX_READ_PER_FILE: u64 = 1 << 20;
/// Size of the windows a file is read in.
const READ_WINDOW: usize = 48 << 10;

/// Index of `registry.json` among [`Fixture::files`].
pub const FILE_REGISTRY: u8 = 0;
/// Index of `modelfs.json`.
pub const FILE_CONFIG: u8 = 1;

/// The store's parameters: small chunks and packs, so a few tens of KB make many of each.
pub fn options() -> InitOptions {
    InitOptions {
        chunking: modelfs::format::config::ChunkingParams {
            min_size: 1024,
            avg_size: 2048,
            max_size: 8192,
        },
        pack_target_bytes: 16 << 10,
        ..InitOptions::default()
    }
}

/// A store's files as bytes; `None` for a deleted file.
#[derive(Clone, PartialEq, Eq)]
struct Image {
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
}

/// A built store and everything needed to replay inputs against copies of it.
pub struct Fixture {
    scratch: PathBuf,
    cache: PathBuf,
    /// The damageable files, in the order inputs index them.
    image: Image,
    /// The index directory's files.
    index: Vec<(PathBuf, Vec<u8>)>,
    /// Every chunk's true bytes: what any successful read must return.
    chunks: HashMap<ChunkId, Vec<u8>>,
    /// The original models, `model@version/path` → bytes.
    originals: BTreeMap<String, Vec<u8>>,
}

fn relative_files(root: &Path, dir: &str) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
        .expect("fixture directory")
        .map(|e| Path::new(dir).join(e.expect("fixture entry").file_name()))
        .collect();
    names.sort();
    names
}

impl Fixture {
    /// Builds the store (once per process): a GGUF model with two versions sharing most chunks
    /// and a folder model (safetensors, JSON, a text file), in packs of 16 KiB.
    pub fn build() -> Fixture {
        let scratch = crate::scratch_dir("store");
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).expect("scratch directory");
        let cache = scratch.join("cache");
        // SAFETY: called from the fuzz target's init, before the library or libFuzzer start
        // threads of their own; nothing else reads the environment concurrently.
        unsafe {
            std::env::set_var("XDG_CACHE_HOME", &cache);
        }
        let pristine = scratch.join("pristine");
        Store::init(&pristine, options()).expect("init fixture store");
        let store = Store::open(&pristine, Access::Write).expect("open fixture store");

        let inputs = scratch.join("inputs");
        std::fs::create_dir_all(inputs.join("bert/tok")).expect("input dirs");
        let mut originals = BTreeMap::new();
        let add = |model: &str, version: &str, source: PathBuf| {
            let request = modelfs::ingest::AddRequest {
                model: model.into(),
                version: Some(version.into()),
                source,
            };
            modelfs::ingest::add(&store, &request, &Silent).expect("add fixture model");
        };
        let v1 = crate::models::small_gguf(1);
        let mut v2 = v1.clone();
        // The second version changes one tensor's bytes near the end and keeps the rest.
        let at = v2.len() - 3000;
        v2[at..at + 700].copy_from_slice(&crate::models::f16_weights(99, 350));
        for (version, bytes) in [("v1", &v1), ("v2", &v2)] {
            let path = inputs.join(format!("llama-{version}.gguf"));
            std::fs::write(&path, bytes).expect("write input");
            add("llama", version, path);
            originals.insert(
                format!("llama@{version}/llama-{version}.gguf"),
                bytes.clone(),
            );
        }
        let folder = [
            ("model.safetensors", crate::models::small_safetensors(2)),
            (
                "config.json",
                br#"{"architectures": ["BertModel"], "hidden_size": 64}"#.to_vec(),
            ),
            ("tok/vocab.txt", b"[PAD]\n[UNK]\nhello\nworld\n".repeat(40)),
        ];
        for (path, bytes) in &folder {
            std::fs::write(inputs.join("bert").join(path), bytes).expect("write input");
            originals.insert(format!("bert@main/{path}"), bytes.clone());
        }
        add("bert", "main", inputs.join("bert"));
        drop(store);

        let mut names = vec![
            PathBuf::from(modelfs::store::registry::REGISTRY_FILE_NAME),
            PathBuf::from(modelfs::format::config::CONFIG_FILE_NAME),
        ];
        names.extend(relative_files(&pristine, "manifests"));
        let read = |name: &Path| std::fs::read(pristine.join(name)).expect("read fixture file");
        let mut packs: Vec<(PathBuf, Vec<u8>)> = relative_files(&pristine, "packs")
            .into_iter()
            .map(|name| (name.clone(), read(&name)))
            .collect();
        packs.sort_by(|a, b| a.1[32..].cmp(&b.1[32..]));
        let mut files: Vec<(PathBuf, Option<Vec<u8>>)> = names
            .into_iter()
            .map(|name| {
                let bytes = read(&name);
                (name, Some(bytes))
            })
            .collect();
        files.extend(packs.into_iter().map(|(name, bytes)| (name, Some(bytes))));
        let index = relative_files(&pristine, "index")
            .into_iter()
            .filter(|name| std::fs::metadata(pristine.join(name)).is_ok_and(|m| m.is_file()))
            .map(|name| {
                let bytes = read(&name);
                (name, bytes)
            })
            .collect();

        // Every chunk's true bytes, from the manifests and the original files.
        let store = Store::open(&pristine, Access::Read).expect("reopen fixture store");
        let registry = store.registry().expect("fixture registry");
        let mut chunks = HashMap::new();
        for (label, _, manifest_id) in registry_files(&registry) {
            let manifest = store.manifest(&manifest_id).expect("fixture manifest");
            let original = &originals[&label];
            assert_eq!(manifest.size, original.len() as u64, "{label}");
            for chunk in &manifest.chunks {
                let bytes = &original[chunk.offset as usize..chunk.end() as usize];
                assert_eq!(ChunkId::of(bytes), chunk.id, "{label}");
                chunks.insert(chunk.id, bytes.to_vec());
            }
        }
        assert_eq!(
            registry_files(&registry).len(),
            originals.len(),
            "fixture files"
        );
        let fixture = Fixture {
            scratch,
            cache,
            image: Image { files },
            index,
            chunks,
            originals,
        };
        drop(store);
        let _ = std::fs::remove_dir_all(&pristine);
        let _ = std::fs::remove_dir_all(&inputs);
        // The undamaged store must read back whole, or the oracle below means nothing.
        fixture.run(&[flags::SCAN_PACKS | flags::IMPORT, 0]);
        fixture.run(&[flags::DELETE_INDEX, 0]);
        fixture
    }

    /// Relative paths of the damageable files, in the order inputs index them.
    pub fn file_names(&self) -> Vec<PathBuf> {
        self.image
            .files
            .iter()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The undamaged bytes of file `index`.
    pub fn file_bytes(&self, index: usize) -> &[u8] {
        self.image.files[index].1.as_deref().unwrap_or_default()
    }

    /// Replays one input: damages a copy, reads it every way a reader can, checks the oracle.
    pub fn run(&self, data: &[u8]) {
        let mut input = Input::new(data);
        let flags = input.u8().unwrap_or(0);
        let op_count = input.u8().unwrap_or(0) & 0x0f;
        let mut image = self.image.clone();
        let mut damaged = vec![false; image.files.len()];
        for _ in 0..op_count {
            let Some(file) = input.u8() else { break };
            let index = usize::from(file) % image.files.len();
            if apply_op(&mut image.files[index].1, &mut input) {
                damaged[index] = true;
            }
        }
        if flags & flags::REHASH_MANIFESTS != 0 {
            rehash_manifests(&mut image, &damaged);
        }
        if flags & flags::RESEAL_PACKS != 0 {
            reseal_packs(&mut image, &damaged);
        }
        let mut reads = Vec::new();
        while reads.len() < 16 {
            let (Some(offset), Some(len)) = (input.u32(), input.u16()) else {
                break;
            };
            reads.push((u64::from(offset), usize::from(len)));
        }
        let intact = image == self.image;
        if verbose() {
            let changed: Vec<String> = (image.files.iter().zip(&self.image.files))
                .filter(|(a, b)| a != b)
                .map(|((name, bytes), _)| match bytes {
                    Some(bytes) => format!("{} ({} bytes)", name.display(), bytes.len()),
                    None => format!("{} (deleted)", name.display()),
                })
                .collect();
            eprintln!(
                "input: flags {flags:#04x}, changed {changed:?}, {} reads",
                reads.len()
            );
        }

        let dir = self.scratch.join("run");
        let dst = self.scratch.join("dst");
        for path in [&dir, &dst, &self.cache] {
            let _ = std::fs::remove_dir_all(path);
        }
        self.write(&image, &dir, flags & flags::DELETE_INDEX == 0);
        let read_options = ReadOptions {
            cache_bytes: match flags & flags::NO_CACHE {
                0 => 1 << 20,
                _ => 0,
            },
            verify: match flags & flags::EVERY_READ {
                0 => VerifyPolicy::FirstRead,
                _ => VerifyPolicy::EveryRead,
            },
        };
        let check = Check {
            fixture: self,
            reads: &reads,
            expect: if intact {
                Expect::Pristine
            } else {
                Expect::Nothing
            },
            read_options,
            scrub_first: flags & flags::SCRUB_FIRST != 0,
        };
        match Store::open(&dir, Access::Read) {
            Ok(store) => {
                let store = Arc::new(store);
                if flags & flags::SCAN_PACKS != 0 {
                    scan_packs(&dir, intact);
                }
                check.store(&store);
                if flags & flags::IMPORT != 0 {
                    check.import(&store, &dst);
                }
            }
            Err(e) => assert!(!intact, "an intact store does not open: {e}"),
        }
        for path in [&dir, &dst, &self.cache] {
            let _ = std::fs::remove_dir_all(path);
        }
    }

    fn write(&self, image: &Image, dir: &Path, with_index: bool) {
        for sub in ["manifests", "packs", "index"] {
            std::fs::create_dir_all(dir.join(sub)).expect("scratch store dirs");
        }
        for (name, bytes) in &image.files {
            if let Some(bytes) = bytes {
                std::fs::write(dir.join(name), bytes).expect("write scratch store");
            }
        }
        if with_index {
            for (name, bytes) in &self.index {
                std::fs::write(dir.join(name), bytes).expect("write scratch index");
            }
        } else {
            std::fs::remove_dir(dir.join("index")).expect("remove empty index dir");
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// Whether to describe each input's run on stderr (`MODELFS_FUZZ_VERBOSE=1`, for triage).
fn verbose() -> bool {
    static VERBOSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("MODELFS_FUZZ_VERBOSE").is_some_and(|v| v == "1"))
}

/// `(model@version/path, spec, manifest)` of every file the registry lists.
fn registry_files(registry: &Registry) -> Vec<(String, ModelSpec, ManifestId)> {
    let mut out = Vec::new();
    for (model, entry) in &registry.models {
        for version in &entry.versions {
            for file in &version.files {
                let spec = ModelSpec {
                    model: model.clone(),
                    version: Some(version.version.clone()),
                    file: Some(file.path.clone()),
                };
                let label = format!("{model}@{}/{}", version.version, file.path);
                out.push((label, spec, file.manifest));
            }
        }
    }
    out
}

/// Applies one damage operation read from `input` to `file`; whether it read a whole operation.
fn apply_op(file: &mut Option<Vec<u8>>, input: &mut Input) -> bool {
    let Some(kind) = input.u8() else { return false };
    let kind = kind % 8;
    if kind == ops::DELETE {
        *file = None;
        return true;
    }
    if kind == ops::REPLACE {
        let Some(n) = input.u16() else { return false };
        *file = Some(input.take_up_to(usize::from(n)).to_vec());
        return true;
    }
    let bytes = file.get_or_insert_with(Vec::new);
    let len = bytes.len();
    let at = |input: &mut Input, modulo: usize| {
        input
            .u32()
            .map(|at| if modulo == 0 { 0 } else { at as usize % modulo })
    };
    match kind {
        ops::OVERWRITE => {
            let Some(at) = at(input, len) else {
                return false;
            };
            let n = usize::from(input.u8().unwrap_or(1));
            let new = input.take_up_to(n);
            let end = (at + new.len()).min(len);
            bytes[at..end].copy_from_slice(&new[..end - at]);
        }
        ops::TRUNCATE => {
            let Some(at) = at(input, len + 1) else {
                return false;
            };
            bytes.truncate(at);
        }
        ops::INSERT => {
            let Some(at) = at(input, len + 1) else {
                return false;
            };
            let n = usize::from(input.u8().unwrap_or(1));
            let new = input.take_up_to(n);
            bytes.splice(at..at, new.iter().copied());
        }
        ops::SET_INT | ops::ADD_INT => {
            let Some(at) = at(input, len) else {
                return false;
            };
            let width = [1, 2, 4, 8][usize::from(input.u8().unwrap_or(0) % 4)];
            let value = if kind == ops::SET_INT {
                input.u64()
            } else {
                input.u8().map(|d| d as i8 as i64 as u64)
            };
            let Some(value) = value else { return false };
            if at + width > len {
                return true;
            }
            let mut old = [0u8; 8];
            old[..width].copy_from_slice(&bytes[at..at + width]);
            let new = match kind {
                ops::SET_INT => value,
                _ => u64::from_le_bytes(old).wrapping_add(value),
            };
            bytes[at..at + width].copy_from_slice(&new.to_le_bytes()[..width]);
        }
        _ => {
            let (Some(from), Some(to), Some(n)) = (at(input, len), at(input, len), input.u16())
            else {
                return false;
            };
            let n = usize::from(n).min(len - from).min(len - to);
            bytes.copy_within(from..from + n, to);
        }
    }
    true
}

/// Renames each damaged manifest to the blake3 of its new bytes and replaces its old id in the
/// registry text, as someone forging a store would.
fn rehash_manifests(image: &mut Image, damaged: &[bool]) {
    let mut renames = Vec::new();
    for (index, (name, bytes)) in image.files.iter_mut().enumerate() {
        let Some(bytes) = bytes else { continue };
        if !damaged[index] || !name.starts_with("manifests") {
            continue;
        }
        let old = name
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let new = ManifestId::of(bytes).to_hex();
        renames.push((old.to_owned(), new.clone()));
        *name = Path::new("manifests").join(new);
    }
    let Some(registry) = image.files[usize::from(FILE_REGISTRY)].1.as_mut() else {
        return;
    };
    for (old, new) in renames {
        let (old, new) = (old.as_bytes(), new.as_bytes());
        let mut at = 0;
        while let Some(found) = registry[at..].windows(old.len()).position(|w| w == old) {
            let start = at + found;
            registry[start..start + old.len()].copy_from_slice(new);
            at = start + old.len();
        }
    }
}

/// Recomputes the table hash in the trailer of each damaged pack whose trailer still locates a
/// table, as someone forging a store would.
fn reseal_packs(image: &mut Image, damaged: &[bool]) {
    for (index, (name, bytes)) in image.files.iter_mut().enumerate() {
        let Some(bytes) = bytes else { continue };
        if !damaged[index] || !name.starts_with("packs") || bytes.len() < TRAILER_LEN {
            continue;
        }
        let len = bytes.len();
        let Some(trailer) = Trailer::decode(&bytes[len - TRAILER_LEN..]) else {
            continue;
        };
        let table_end = trailer
            .entry_count
            .checked_mul(56)
            .and_then(|n| n.checked_add(trailer.table_offset));
        if table_end != Some((len - TRAILER_LEN) as u64) {
            continue;
        }
        let table = &bytes[trailer.table_offset as usize..len - TRAILER_LEN];
        let resealed = Trailer {
            table_hash: *modelfs::id::ChunkId::of(table).as_bytes(),
            ..trailer
        };
        bytes[len - TRAILER_LEN..].copy_from_slice(&resealed.encode());
    }
}

/// Lists every sealed pack's chunks the way index rebuilds do (table, else record scan).
fn scan_packs(dir: &Path, intact: bool) {
    let packs = dir.join("packs");
    let Ok(list) = modelfs::store::recovery::list_sealed_packs(&packs) else {
        return;
    };
    for (id, _) in list {
        let result = modelfs::store::recovery::pack_entries(&packs, &id);
        if intact {
            let entries = result.expect("an intact pack lists its chunks");
            assert!(!entries.is_empty(), "an intact pack lists no chunks");
        }
    }
}

/// What a store must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The fixture as built: it lists exactly the original files, and all of them read.
    Pristine,
    /// Written by an import that succeeded: every file it lists reads (an import refuses
    /// registry entries and manifests that disagree with the chunks).
    Imported,
    /// Damaged: reads may fail (but never return wrong bytes).
    Nothing,
}

/// The checks of one input.
#[derive(Clone, Copy)]
struct Check<'a> {
    fixture: &'a Fixture,
    reads: &'a [(u64, usize)],
    expect: Expect,
    read_options: ReadOptions,
    scrub_first: bool,
}

/// A file read failed: `(model@version/path, error)`.
type Failure = (String, String);

impl Check<'_> {
    /// Reads and scrubs `store`. Besides each read's own checks: a store the scrub finds nothing
    /// wrong with reads whole.
    fn store(&self, store: &Arc<Store>) {
        let scrub = if self.scrub_first {
            Some(self.scrub(store))
        } else {
            None
        };
        let failures = self.read_all(store);
        let clean = scrub.unwrap_or_else(|| self.scrub(store));
        if verbose() {
            eprintln!(
                "  {:?} store: scrub clean {clean}, read failures {failures:?}",
                self.expect
            );
        }
        if clean && let Some((label, error)) = failures.first() {
            panic!("scrub finds nothing wrong, yet {label} fails to read: {error}");
        }
    }

    /// Lists the registry, opens every file and reads it whole (up to a cap), then the input's
    /// ranges; every successful read must return the true bytes. Returns the failures.
    fn read_all(&self, store: &Arc<Store>) -> Vec<Failure> {
        let registry = match store.registry() {
            Ok(registry) => registry,
            Err(e) => {
                assert!(
                    self.expect == Expect::Nothing,
                    "the registry does not load: {e}"
                );
                return vec![("registry".into(), e.to_string())];
            }
        };
        modelfs::store::registry::check(&registry).expect("a loaded registry passes check");
        let files = registry_files(&registry);
        if self.expect == Expect::Pristine {
            let labels: Vec<&String> = files.iter().map(|(label, _, _)| label).collect();
            let originals: Vec<&String> = self.fixture.originals.keys().collect();
            assert_eq!(labels, originals, "an intact registry lists other files");
        }
        let reader = Reader::new(store.clone(), self.read_options);
        let mut failures = Vec::new();
        for (label, spec, _) in &files {
            let must_read = match self.expect {
                Expect::Pristine | Expect::Imported => true,
                Expect::Nothing => false,
            };
            let file = match reader.open_file(spec) {
                Ok(file) => file,
                Err(e) => {
                    assert!(!must_read, "{label} does not open: {e}");
                    failures.push((label.clone(), e.to_string()));
                    continue;
                }
            };
            let manifest = file.manifest().clone();
            let size = manifest.size;
            let mut offset = 0;
            let mut buf = vec![0u8; READ_WINDOW];
            while offset < size.min(MAX_READ_PER_FILE) {
                if let Err(e) = self.read_and_compare(label, &file, &manifest, offset, &mut buf) {
                    assert!(!must_read, "{label}: read at {offset} fails: {e}");
                    failures.push((label.clone(), e));
                    break;
                }
                offset += READ_WINDOW as u64;
            }
            for &(at, len) in self.reads {
                let at = if size == 0 { 0 } else { at % (size + 1) };
                let mut buf = vec![0u8; len];
                if let Err(e) = self.read_and_compare(label, &file, &manifest, at, &mut buf) {
                    assert!(!must_read, "{label}: read at {at} fails: {e}");
                    failures.push((label.clone(), e));
                }
            }
        }
        failures
    }

    /// Reads `buf.len()` bytes at `offset`; panics if the read succeeds with wrong bytes.
    fn read_and_compare(
        &self,
        label: &str,
        file: &modelfs::read::OpenFile,
        manifest: &modelfs::format::manifest::Manifest,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), String> {
        let n = file.read_at(offset, buf).map_err(|e| e.to_string())?;
        let expected_len = manifest.size.saturating_sub(offset).min(buf.len() as u64);
        assert_eq!(n as u64, expected_len, "{label}: read at {offset} length");
        match self.expected(manifest, offset, n) {
            Some(expected) => assert!(
                buf[..n] == expected[..],
                "{label}: wrong bytes served at {offset}..{}",
                offset + n as u64
            ),
            None => panic!(
                "{label}: read at {offset}..{} succeeded over a chunk the store never held",
                offset + n as u64
            ),
        }
        if self.expect == Expect::Pristine {
            let original = &self.fixture.originals[label];
            assert!(buf[..n] == original[offset as usize..][..n], "{label}");
        }
        Ok(())
    }

    /// The true bytes `offset..offset + len` of the file `manifest` describes, from the chunks'
    /// true bytes; `None` if a chunk there never existed with that length.
    fn expected(
        &self,
        manifest: &modelfs::format::manifest::Manifest,
        offset: u64,
        len: usize,
    ) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        if len == 0 {
            return Some(out);
        }
        let end = offset + len as u64;
        let mut index = manifest.chunk_index_at(offset)?;
        while out.len() < len {
            let chunk = manifest.chunks.get(index)?;
            let bytes = self.fixture.chunks.get(&chunk.id)?;
            if bytes.len() != chunk.len as usize {
                return None;
            }
            let from = offset.max(chunk.offset) - chunk.offset;
            let to = end.min(chunk.end()) - chunk.offset;
            out.extend_from_slice(&bytes[from as usize..to as usize]);
            index += 1;
        }
        Some(out)
    }

    /// Scrubs the whole store; whether it found nothing wrong.
    fn scrub(&self, store: &Store) -> bool {
        match modelfs::store::scrub::scrub(store, &[], &Silent) {
            Ok(report) => {
                let problems: Vec<&String> =
                    report.problems.iter().map(|p| &p.description).collect();
                if verbose() {
                    eprintln!("  scrub: {problems:?}");
                }
                if self.expect == Expect::Pristine {
                    assert!(
                        problems.is_empty(),
                        "scrub of an intact store: {problems:?}"
                    );
                    assert_eq!(report.files, self.fixture.originals.len());
                }
                problems.is_empty()
            }
            Err(e) => {
                assert!(
                    self.expect != Expect::Pristine,
                    "scrub of an intact store fails: {e}"
                );
                false
            }
        }
    }

    /// Imports everything into a fresh store at `dst`, then checks that store the same way.
    fn import(&self, src: &Store, dst_dir: &Path) {
        Store::init(dst_dir, options()).expect("init import destination");
        let result = {
            let dst = Store::open(dst_dir, Access::Write).expect("open import destination");
            modelfs::transfer::plan_import(src, &dst, &[], modelfs::transfer::Admission::open())
                .and_then(|plan| modelfs::transfer::run_import(src, &dst, plan, 1, &Silent))
        };
        if verbose() {
            eprintln!("  import: {:?}", result.as_ref().map_err(|e| e.to_string()));
        }
        if let Err(e) = &result {
            assert!(
                self.expect != Expect::Pristine,
                "import of an intact store fails: {e}"
            );
        }
        // What an import committed was verified on the way: it must read back.
        let dst_check = Check {
            expect: match (self.expect, result.is_ok()) {
                (Expect::Pristine, true) => Expect::Pristine,
                (_, true) => Expect::Imported,
                (_, false) => Expect::Nothing,
            },
            ..*self
        };
        let dst = Arc::new(Store::open(dst_dir, Access::Read).expect("reopen import destination"));
        dst_check.store(&dst);
    }
}
