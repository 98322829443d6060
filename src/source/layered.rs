//! A union of sources read in order: the local store, then `mount --source` stores (later peers,
//! mirrors and buckets).
//!
//! Owns [`Layered`], a [`Source`] wrapping other sources — the decorator shape: whatever reads a
//! single store reads a union the same way. Registries are merged (the first layer that has a
//! version decides its files; versions only a later layer has are added). A chunk is read from the
//! first layer that has it; if that read fails (damage, a source pulled out), every other layer that
//! has the chunk stands in before the reader sees an error. With `--fill`, chunks and manifests read
//! from a source are copied into the local store, and a damaged local chunk is replaced by the good
//! copy. Each layer's bytes are verified by `store::chunk::load` inside its own `read_chunk`.

use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::format::manifest::Manifest;
use crate::format::pack::RecordHeader;
use crate::format::registry::{ModelEntry, Registry};
use crate::id::{ChunkId, ManifestId};
use crate::source::{Place, Source};
use crate::store::Store;
use crate::store::chunk::{Check, record_header};
use crate::store::sink::PackSink;

/// The local store and the sources read after it.
pub struct Layered {
    /// Layer 0, the store the mount is built on; the target of `--fill`.
    local: Arc<Store>,
    /// Layers 1.., in reading order.
    sources: Vec<Box<dyn Source>>,
    /// With `--fill`: where chunks read from sources are appended. One writer at a time; reads
    /// that need no copy never take it.
    filler: Option<Mutex<PackSink>>,
}

impl Layered {
    /// Reads `local`, then `sources` in order. With `fill`, chunks read from the sources are
    /// copied into `local`, which must be open for writing.
    pub fn new(local: Arc<Store>, sources: Vec<Box<dyn Source>>, fill: bool) -> Result<Layered> {
        if sources.len() >= usize::from(u8::MAX) {
            return Err(Error::BadInput {
                path: local.root().to_owned(),
                reason: "too many sources".into(),
            });
        }
        let filler = match fill {
            true => {
                local.require_writer()?;
                Some(Mutex::new(PackSink::new(&local)?))
            }
            false => None,
        };
        Ok(Layered {
            local,
            sources,
            filler,
        })
    }

    /// The local store (layer 0).
    pub fn local(&self) -> &Arc<Store> {
        &self.local
    }

    /// What each source reached over the network was asked for so far: (source, requests,
    /// bytes).
    pub fn traffic(&self) -> Vec<(String, u64, u64)> {
        self.sources
            .iter()
            .filter_map(|s| {
                s.traffic()
                    .map(|(requests, bytes)| (s.describe(), requests, bytes))
            })
            .collect()
    }

    /// The layers in reading order.
    fn layers(&self) -> impl Iterator<Item = (u8, &dyn Source)> {
        std::iter::once(self.local.as_ref() as &dyn Source)
            .chain(self.sources.iter().map(|s| s.as_ref()))
            .enumerate()
            .map(|(i, source)| (i as u8, source))
    }

    fn layer(&self, layer: u8) -> &dyn Source {
        match layer {
            0 => self.local.as_ref(),
            k => self.sources[usize::from(k) - 1].as_ref(),
        }
    }

    /// Reads chunk `id` from one layer; a chunk from a source is copied into the local store when
    /// filling (replacing the local copy when `repair`).
    fn read_from(
        &self,
        id: &ChunkId,
        place: &Place,
        dst: &mut [u8],
        check: Check,
        repair: bool,
        stored: &mut dyn FnMut(&[u8]),
    ) -> Result<()> {
        let within = Place::single(place.location);
        let layer = self.layer(place.layer);
        if place.layer == 0 || self.filler.is_none() {
            return layer.read_chunk(id, &within, dst, check, stored).map(drop);
        }
        let header = record_header(id, &place.location);
        layer
            .read_chunk(id, &within, dst, Check::Verify, &mut |payload| {
                self.fill(header, payload, repair);
                stored(payload);
            })
            .map(drop)
    }

    /// Copies one record into the local store, unless it already has the chunk (or, with
    /// `replace`, has it damaged: the new copy's pack becomes the chunk's location when sealed).
    /// Failures only cost the copy (a full disk, say): they are logged, never returned to the reader.
    fn fill(&self, header: RecordHeader, payload: &[u8], replace: bool) {
        let Some(filler) = &self.filler else { return };
        let mut sink = filler.lock().expect("fill lock poisoned");
        let id = header.chunk_id;
        let present = sink.is_pending(&id)
            || (!replace && self.local.locate(&[id]).is_ok_and(|l| l[0].is_some()));
        if present {
            return;
        }
        match sink.append(header, payload) {
            Ok(()) if replace => info!(chunk = %id, "damaged local chunk repaired from a source"),
            Ok(()) => {}
            Err(e) => warn!(chunk = %id, error = %e, "could not copy a chunk into the local store"),
        }
    }

    /// Seals the pack being filled, so what arrived is durable and found in the local index.
    pub fn flush_fill(&self) {
        let Some(filler) = &self.filler else { return };
        let mut sink = filler.lock().expect("fill lock poisoned");
        if sink.has_unsealed() {
            match sink.seal() {
                Ok(()) => info!("chunks copied from sources are now in the local store"),
                Err(e) => warn!(error = %e, "could not seal the pack of copied chunks"),
            }
        }
    }
}

impl Source for Layered {
    fn describe(&self) -> String {
        self.layers()
            .map(|(_, l)| l.describe())
            .collect::<Vec<_>>()
            .join(" + ")
    }

    /// The merged registry: the first layer that has a version decides its files. Its generation
    /// changes when any layer's does, so a mount notices a change in any of them.
    fn registry(&self) -> Result<Registry> {
        let mut merged = self.local.registry()?;
        let local_models: std::collections::HashSet<String> =
            merged.models.keys().cloned().collect();
        for source in &self.sources {
            let theirs = source.registry()?;
            merged.generation = merged
                .generation
                .wrapping_mul(31)
                .wrapping_add(theirs.generation);
            for (name, entry) in theirs.models {
                let target = merged
                    .models
                    .entry(name.clone())
                    .or_insert_with(|| ModelEntry::new(Vec::new()));
                if target.versions.is_empty() {
                    // A model only sources have: its own rollback choice holds.
                    target.current = entry.current.clone();
                }
                if target.hf_repo.is_none() {
                    target.hf_repo = entry.hf_repo.clone();
                }
                let new: Vec<_> = entry
                    .versions
                    .into_iter()
                    .filter(|v| !target.versions.iter().any(|t| t.version == v.version))
                    .collect();
                // Versions only a source has are added after the others — except for a model
                // the local store has: there they go first, so what its bare name shows stays
                // the local newest version, whatever a stick adds.
                let at = match local_models.contains(&name) {
                    true => 0,
                    false => target.versions.len(),
                };
                target.versions.splice(at..at, new);
            }
        }
        Ok(merged)
    }

    /// A manifest from the first layer that has it. With `--fill`, one found in a source is copied
    /// into the local store, so its files open once the source is gone.
    fn manifest(&self, id: &ManifestId) -> Result<Manifest> {
        let mut first_error = None;
        for (layer, source) in self.layers() {
            match source.manifest(id) {
                Ok(manifest) => {
                    if layer != 0
                        && self.filler.is_some()
                        && let Err(e) = self.local.put_manifest(&manifest)
                    {
                        warn!(manifest = %id, error = %e, "could not copy a manifest into the local store");
                    }
                    return Ok(manifest);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(Error::MissingManifest(*id)))
    }

    /// Each chunk's place in the first layer that has it.
    fn locate(&self, ids: &[ChunkId]) -> Result<Vec<Option<Place>>> {
        let mut found = Source::locate(self.local.as_ref(), ids)?;
        for (layer, source) in self.layers().skip(1) {
            let missing: Vec<usize> = (0..ids.len()).filter(|&i| found[i].is_none()).collect();
            if missing.is_empty() {
                break;
            }
            let wanted: Vec<ChunkId> = missing.iter().map(|&i| ids[i]).collect();
            for (i, place) in missing.into_iter().zip(source.locate(&wanted)?) {
                found[i] = place.map(|p| Place { layer, ..p });
            }
        }
        Ok(found)
    }

    fn read_stored(&self, id: &ChunkId, place: &Place, dst: &mut [u8]) -> Result<()> {
        self.layer(place.layer)
            .read_stored(id, &Place::single(place.location), dst)
    }

    fn read_run(
        &self,
        first: &Place,
        len: u64,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        self.layer(first.layer)
            .read_run(&Place::single(first.location), len, each)
    }

    /// Reads from the layer `place` names; if that fails, from every other layer that has the
    /// chunk (always verifying) before giving up with the first error.
    fn read_chunk(
        &self,
        id: &ChunkId,
        place: &Place,
        dst: &mut [u8],
        check: Check,
        stored: &mut dyn FnMut(&[u8]),
    ) -> Result<Place> {
        let Err(error) = self.read_from(id, place, dst, check, false, stored) else {
            return Ok(*place);
        };
        if self.sources.is_empty() {
            return Err(error);
        }
        for (layer, source) in self.layers().filter(|(l, _)| *l != place.layer) {
            let found = source
                .locate(&[*id])
                .ok()
                .and_then(|found| found.into_iter().next().flatten());
            let Some(other) = found else { continue };
            let other = Place {
                layer,
                location: other.location,
            };
            // A damaged chunk of the local store is replaced by the good copy (with `--fill`).
            if self
                .read_from(id, &other, dst, Check::Verify, place.layer == 0, stored)
                .is_ok()
            {
                warn!(chunk = %id, failed = %self.layer(place.layer).describe(), from = %source.describe(), error = %error, "chunk read from another source");
                return Ok(other);
            }
        }
        Err(error)
    }

    fn refresh(&self) -> Result<()> {
        for (_, layer) in self.layers() {
            layer.refresh()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::read::{ReadOptions, Reader, VerifyPolicy};
    use crate::testutil::{add_model, random_bytes, small_store};

    /// A chunk that fails in the local store and is read from a source is trusted later (under
    /// `--verify first-read`) only where it was read, never at the damaged local place.
    #[test]
    fn first_read_trusts_only_the_place_a_chunk_was_verified_at() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = random_bytes(31, 100_000);
        let local = small_store(&dir.path().join("local"));
        let source = small_store(&dir.path().join("source"));
        add_model(&local, dir.path(), "m", &bytes);
        add_model(&source, dir.path(), "m", &bytes);
        // Damage the first chunk in the local store.
        let manifest = local
            .manifest(&local.registry().unwrap().models["m"].versions[0].files[0].manifest)
            .unwrap();
        let at = local.locate(&[manifest.chunks[0].id]).unwrap()[0].unwrap();
        let pack = crate::store::pack::pack_path(local.packs_dir(), &at.pack);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(pack)
            .unwrap();
        let offset = at.offset + crate::format::pack::RECORD_HEADER_LEN as u64 + 10;
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, offset).unwrap();
        file.write_all_at(&[byte[0] ^ 0xff], offset).unwrap();

        let layered = Layered::new(
            local,
            vec![Box::new(
                Store::open(source.root(), crate::Access::Read).unwrap(),
            )],
            false,
        )
        .unwrap();
        let options = ReadOptions {
            cache_bytes: 0,
            verify: VerifyPolicy::FirstRead,
        };
        let open = Reader::new(Arc::new(layered), options)
            .open_file(&"m".parse().unwrap())
            .unwrap();
        for _ in 0..2 {
            let mut out = vec![0u8; bytes.len()];
            assert_eq!(open.read_at(0, &mut out).unwrap(), bytes.len());
            assert!(out == bytes, "a read served the damaged local bytes");
        }
    }
}
