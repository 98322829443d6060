//! `diff`: what differs between two models, versions or files, tensor by tensor.
//!
//! Owns [`diff`] and its [`DiffReport`]. Tensors are found by parsing each file's header (read
//! through the store, verified) and compared by name across all files of each side, so sharded
//! safetensors compare like single files. Two tensors are equal when the same chunks cover them
//! (chunk cuts fall on tensor borders, so equal bytes give equal chunks). The transfer size is what
//! a store holding A lacks to hold B: the chunks of B that A does not have.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::error::{Error, Result};
use crate::format::manifest::Manifest;
use crate::format::registry::FileEntry;
use crate::id::ChunkId;
use crate::modelfile::detect_by_prefix;
use std::sync::Arc;

use crate::read::Reader;
use crate::store::registry::{ModelSpec, resolve};

/// How one tensor differs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TensorChange {
    /// In both, with different bytes.
    Changed,
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
    /// The same bytes under another name (`name` in B, `renamed_from` in A): GGUF and
    /// safetensors name tensors differently.
    Renamed,
}

/// One differing tensor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TensorDiff {
    /// Tensor name.
    pub name: String,
    /// How it differs.
    pub change: TensorChange,
    /// Its size in A (0 if absent).
    pub bytes_a: u64,
    /// Its size in B (0 if absent).
    pub bytes_b: u64,
    /// For [`TensorChange::Renamed`]: its name in A.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
}

/// Everything that differs between A and B.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DiffReport {
    /// Files only in A, only in B, or in both with different bytes (by path).
    pub files: Vec<(String, String)>,
    /// Differing tensors, by name (renamed ones count as differing only in name).
    pub tensors: Vec<TensorDiff>,
    /// Tensors with the same name and bytes on both sides.
    pub same_tensors: usize,
    /// Bytes of chunks B has and A lacks: what moving from A to B transfers.
    pub transfer_bytes: u64,
    /// The same, as stored (compressed) in packs.
    pub transfer_stored_bytes: u64,
    /// Total size of B's files.
    pub size_b: u64,
}

struct Side {
    files: Vec<(String, Manifest)>,
    tensors: BTreeMap<String, (u64, Vec<ChunkId>)>,
}

fn load_side(reader: &Arc<Reader>, spec: &ModelSpec) -> Result<Side> {
    let registry = reader.source().registry()?;
    let (_, version) = resolve(&registry, &spec.model, spec.version.as_deref())?;
    let entries: Vec<&FileEntry> = match &spec.file {
        Some(path) => vec![
            version
                .files
                .iter()
                .find(|f| &f.path == path)
                .ok_or_else(|| Error::UnknownFile {
                    model: spec.model.clone(),
                    version: version.version.clone(),
                    file: path.clone(),
                })?,
        ],
        None => version.files.iter().collect(),
    };
    let mut side = Side {
        files: Vec::new(),
        tensors: BTreeMap::new(),
    };
    for entry in entries {
        let open = reader.open_file(&ModelSpec {
            model: spec.model.clone(),
            version: Some(version.version.clone()),
            file: Some(entry.path.clone()),
        })?;
        let manifest = open.manifest().clone();
        let layout = detect_by_prefix(manifest.size, |prefix| open.read_at(0, prefix))?;
        for tensor in layout.map(|l| l.tensors).unwrap_or_default() {
            let chunks = manifest
                .chunks
                .iter()
                .filter(|c| c.offset < tensor.range.end && c.end() > tensor.range.start)
                .map(|c| c.id)
                .collect();
            side.tensors
                .insert(tensor.name, (tensor.range.end - tensor.range.start, chunks));
        }
        side.files.push((entry.path.clone(), manifest));
    }
    Ok(side)
}

/// Compares A with B, reading both through `reader`.
pub fn diff(reader: &Arc<Reader>, a: &ModelSpec, b: &ModelSpec) -> Result<DiffReport> {
    let (side_a, side_b) = (load_side(reader, a)?, load_side(reader, b)?);
    let mut report = DiffReport {
        size_b: side_b.files.iter().map(|(_, m)| m.size).sum(),
        ..DiffReport::default()
    };

    // Files pair by path, except two single files, which pair whatever their names.
    let single = side_a.files.len() == 1 && side_b.files.len() == 1;
    let files_a: HashMap<&str, &Manifest> =
        side_a.files.iter().map(|(p, m)| (p.as_str(), m)).collect();
    for (path, manifest) in &side_b.files {
        let other = if single {
            Some(&side_a.files[0].1)
        } else {
            files_a.get(path.as_str()).copied()
        };
        match other {
            None => report.files.push((path.clone(), "only in B".into())),
            Some(other) if other.blake3 != manifest.blake3 => {
                report.files.push((path.clone(), "differs".into()))
            }
            Some(_) => {}
        }
    }
    if !single {
        let paths_b: HashSet<&str> = side_b.files.iter().map(|(p, _)| p.as_str()).collect();
        for (path, _) in &side_a.files {
            if !paths_b.contains(path.as_str()) {
                report.files.push((path.clone(), "only in A".into()));
            }
        }
    }

    // Tensors only in A, by their chunks, so one found only in B with the same chunks is a rename.
    let mut only_a: HashMap<&[ChunkId], &str> = side_a
        .tensors
        .iter()
        .filter(|(name, _)| !side_b.tensors.contains_key(*name))
        .map(|(name, (_, chunks))| (chunks.as_slice(), name.as_str()))
        .collect();
    let entry = |name: &str, change, bytes_a, bytes_b, renamed_from| TensorDiff {
        name: name.to_owned(),
        change,
        bytes_a,
        bytes_b,
        renamed_from,
    };
    for (name, (bytes_b, chunks_b)) in &side_b.tensors {
        match side_a.tensors.get(name) {
            Some((_, chunks_a)) if chunks_a == chunks_b => report.same_tensors += 1,
            Some((bytes_a, _)) => {
                report
                    .tensors
                    .push(entry(name, TensorChange::Changed, *bytes_a, *bytes_b, None))
            }
            None => match only_a.remove(chunks_b.as_slice()) {
                Some(old) => report.tensors.push(entry(
                    name,
                    TensorChange::Renamed,
                    *bytes_b,
                    *bytes_b,
                    Some(old.to_owned()),
                )),
                None => report
                    .tensors
                    .push(entry(name, TensorChange::Added, 0, *bytes_b, None)),
            },
        }
    }
    let mut removed: Vec<&str> = only_a.into_values().collect();
    removed.sort_unstable();
    for name in removed {
        let bytes_a = side_a.tensors[name].0;
        report
            .tensors
            .push(entry(name, TensorChange::Removed, bytes_a, 0, None));
    }

    let in_a: HashSet<ChunkId> = side_a
        .files
        .iter()
        .flat_map(|(_, m)| m.chunks.iter().map(|c| c.id))
        .collect();
    let mut needed: HashMap<ChunkId, u32> = HashMap::new();
    for chunk in side_b.files.iter().flat_map(|(_, m)| &m.chunks) {
        if !in_a.contains(&chunk.id) {
            needed.insert(chunk.id, chunk.len);
        }
    }
    report.transfer_bytes = needed.values().map(|&len| u64::from(len)).sum();
    let ids: Vec<ChunkId> = needed.keys().copied().collect();
    for batch in ids.chunks(4096) {
        report.transfer_stored_bytes += reader
            .source()
            .locate(batch)?
            .iter()
            .flatten()
            .map(|p| u64::from(p.location.stored_len))
            .sum::<u64>();
    }
    Ok(report)
}
