//! Layered reading: a store that also reads from other stores, in order (`mount --source`).
//!
//! Owns the public read API of [`Store`] — `registry`, `manifest`, `locate`, `read_chunk_into`,
//! `refresh_index` — over the store itself followed by its attached sources. The registries are
//! merged (the first layer that has a model decides its versions' files; versions only a later
//! layer has are added). A chunk is read from the first layer whose index has it, and verified as
//! always; if that read fails (damage, a source pulled out), every other layer that has the chunk
//! is tried before the reader sees an error, and the repair is logged. With `--fill`, chunks read
//! from a source are also copied into the store itself (which the mount then holds for writing),
//! so they stay readable once the source is gone. Sources are any stores now; LAN peers and object
//! stores can join as further kinds of layer behind the same methods.

use std::sync::Mutex;

use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::format::manifest::Manifest;
use crate::format::pack::{Codec, RecordHeader};
use crate::format::registry::{ModelEntry, Registry};
use crate::id::{ChunkId, ManifestId};
use crate::store::index::Location;
use crate::store::sink::PackSink;
use crate::store::{Check, PAYLOAD, Store};

impl Store {
    /// Adds `sources`, read after this store in the order given. With `fill`, chunks read from
    /// them are copied into this store, which must be open for writing.
    pub fn attach_sources(&mut self, sources: Vec<Store>, fill: bool) -> Result<()> {
        if sources.len() > usize::from(u8::MAX) {
            return Err(Error::BadInput {
                path: self.root.clone(),
                reason: "too many sources".into(),
            });
        }
        if fill {
            self.require_writer()?;
            self.filler = Some(Mutex::new(PackSink::new(self)?));
        }
        self.sources = sources;
        Ok(())
    }

    /// The layers in reading order: this store, then its sources.
    fn layers(&self) -> impl Iterator<Item = (u8, &Store)> {
        std::iter::once(self)
            .chain(&self.sources)
            .enumerate()
            .map(|(i, store)| (i as u8, store))
    }

    fn layer(&self, origin: u8) -> &Store {
        match origin {
            0 => self,
            k => &self.sources[usize::from(k) - 1],
        }
    }

    /// The registry: this store's, merged with its sources'. Its generation changes when any
    /// layer's does, so a mount notices a change in any of them.
    pub fn registry(&self) -> Result<Registry> {
        let mut merged = self.own_registry()?;
        for source in &self.sources {
            let theirs = source.own_registry()?;
            merged.generation = merged
                .generation
                .wrapping_mul(31)
                .wrapping_add(theirs.generation);
            for (name, entry) in theirs.models {
                let target = merged.models.entry(name).or_insert_with(|| ModelEntry {
                    versions: Vec::new(),
                });
                for version in entry.versions {
                    if !target.versions.iter().any(|v| v.version == version.version) {
                        target.versions.push(version);
                    }
                }
            }
        }
        Ok(merged)
    }

    /// Loads and checks a manifest, from the first layer that has it. With `--fill`, one found
    /// in a source is copied into this store, so its files open once the source is gone.
    pub fn manifest(&self, id: &ManifestId) -> Result<Manifest> {
        let mut first_error = None;
        for (origin, layer) in self.layers() {
            match layer.own_manifest(id) {
                Ok(manifest) => {
                    if origin != 0
                        && self.filler.is_some()
                        && let Err(e) = self.put_manifest(&manifest)
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

    /// Looks up chunk locations, each in the first layer that has it, in the order given.
    pub fn locate(&self, ids: &[ChunkId]) -> Result<Vec<Option<Location>>> {
        let mut found = self.locate_own(ids)?;
        for (origin, source) in self.layers().skip(1) {
            let missing: Vec<usize> = (0..ids.len()).filter(|&i| found[i].is_none()).collect();
            if missing.is_empty() {
                break;
            }
            let wanted: Vec<ChunkId> = missing.iter().map(|&i| ids[i]).collect();
            for (i, location) in missing.into_iter().zip(source.locate_own(&wanted)?) {
                found[i] = location.map(|l| Location { origin, ..l });
            }
        }
        Ok(found)
    }

    /// Refreshes every layer's view of its index (see `refresh_own_index`).
    pub fn refresh_index(&self) -> Result<()> {
        for (_, layer) in self.layers() {
            layer.refresh_own_index()?;
        }
        Ok(())
    }

    /// Reads chunk `id` from `location` into `dst` (exactly its decoded length), decoded, and
    /// verified against `id` unless `check` is [`Check::Trust`]. If the layer holding it fails,
    /// every other layer that has the chunk is tried (always verifying) before giving up.
    pub fn read_chunk_into(
        &self,
        id: &ChunkId,
        location: &Location,
        dst: &mut [u8],
        check: Check,
    ) -> Result<()> {
        let first = self.read_from_layer(id, location, dst, check, false);
        let Err(error) = first else { return Ok(()) };
        if self.sources.is_empty() {
            return Err(error);
        }
        for (origin, layer) in self
            .layers()
            .filter(|(origin, _)| *origin != location.origin)
        {
            let found = layer
                .locate_own(&[*id])
                .ok()
                .and_then(|found| found.into_iter().next().flatten());
            let Some(other) = found else { continue };
            let other = Location { origin, ..other };
            // A damaged chunk of this store itself is replaced by the good copy (with `--fill`).
            let repair = location.origin == 0;
            if self
                .read_from_layer(id, &other, dst, Check::Verify, repair)
                .is_ok()
            {
                warn!(chunk = %id, failed = %self.layer(location.origin).root.display(), from = %layer.root.display(), error = %error, "chunk read from another source");
                return Ok(());
            }
        }
        Err(error)
    }

    /// Reads from the layer `location.origin` names, and fills this store with what a source gave
    /// (replacing this store's own copy when `repair`).
    fn read_from_layer(
        &self,
        id: &ChunkId,
        location: &Location,
        dst: &mut [u8],
        check: Check,
        repair: bool,
    ) -> Result<()> {
        let layer = self.layer(location.origin);
        let own = Location {
            origin: 0,
            ..*location
        };
        layer.read_own_chunk_into(id, &own, dst, check)?;
        if location.origin != 0 && self.filler.is_some() {
            // The stored payload is `dst` for raw chunks, else still in this thread's buffer.
            let header = RecordHeader {
                chunk_id: *id,
                codec: location.codec,
                raw_len: location.raw_len,
                stored_len: location.stored_len,
            };
            match location.codec {
                Codec::Raw => self.fill(header, dst, repair),
                _ => PAYLOAD.with_borrow(|payload| self.fill(header, payload, repair)),
            }
        }
        Ok(())
    }

    /// Copies one record into this store, unless it already has the chunk (or, with `replace`,
    /// has it damaged: the new copy's pack then becomes the chunk's location when sealed).
    /// Failures only cost the copy (a full disk, say): they are logged, never returned to the reader.
    fn fill(&self, header: RecordHeader, payload: &[u8], replace: bool) {
        let Some(filler) = &self.filler else { return };
        let mut sink = filler.lock().expect("fill lock poisoned");
        let id = header.chunk_id;
        let present = sink.is_pending(&id)
            || (!replace && self.locate_own(&[id]).is_ok_and(|l| l[0].is_some()));
        if present {
            return;
        }
        match sink.append(header, payload) {
            Ok(()) if replace => info!(chunk = %id, "damaged local chunk repaired from a source"),
            Ok(()) => {}
            Err(e) => warn!(chunk = %id, error = %e, "could not copy a chunk into the local store"),
        }
    }

    /// Seals the pack being filled, so what arrived is durable and found in this store's index.
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
