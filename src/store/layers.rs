//! Layered reading: a store that also reads from other sources, in order (`mount --source`).
//!
//! Owns [`Source`], the small interface a place to read models from implements (a store on a
//! file system today; LAN peers and object stores can join later), and the public read API of
//! [`Store`] — `registry`, `manifest`, `locate`, `read_chunk_into`, `refresh_index` — over the
//! store itself followed by its sources. Registries are merged (the first layer that has a
//! version decides its files; versions only a later layer has are added). A chunk is read from the
//! first layer whose index has it; sources hand over the bytes as stored, and decoding and
//! verification happen here, so no source is trusted. If a read fails (damage, a source pulled
//! out), every other layer that has the chunk is tried before the reader sees an error. With
//! `--fill`, chunks and manifests read from a source are copied into the store itself.

use std::sync::Mutex;

use tracing::{info, warn};

use crate::codec;
use crate::error::{Error, Result};
use crate::format::manifest::Manifest;
use crate::format::pack::{Codec, RecordHeader};
use crate::format::registry::{ModelEntry, Registry};
use crate::id::{ChunkId, ManifestId};
use crate::store::index::Location;
use crate::store::sink::PackSink;
use crate::store::{Check, PAYLOAD, Store, bad_chunk, check_decoded_len};

/// A place models can be read from, read-only.
pub trait Source: Send + Sync {
    /// Where it is, for log lines.
    fn describe(&self) -> String;
    /// Its registry.
    fn registry(&self) -> Result<Registry>;
    /// One of its manifests, checked against its id.
    fn manifest(&self, id: &ManifestId) -> Result<Manifest>;
    /// Where it keeps chunks, in the order asked (`origin` is set by the caller).
    fn locate(&self, ids: &[ChunkId]) -> Result<Vec<Option<Location>>>;
    /// The payload of the record at `location` as stored (`stored_len` bytes, not yet decoded or
    /// verified), into `buf`.
    fn read_payload(&self, location: &Location, buf: &mut Vec<u8>) -> Result<()>;
    /// Picks up what changed since it was opened.
    fn refresh(&self) -> Result<()>;
}

impl Source for Store {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn registry(&self) -> Result<Registry> {
        self.own_registry()
    }

    fn manifest(&self, id: &ManifestId) -> Result<Manifest> {
        self.own_manifest(id)
    }

    fn locate(&self, ids: &[ChunkId]) -> Result<Vec<Option<Location>>> {
        self.locate_own(ids)
    }

    fn read_payload(&self, location: &Location, buf: &mut Vec<u8>) -> Result<()> {
        buf.resize(location.stored_len as usize, 0);
        self.packs.read_payload(location, buf)
    }

    fn refresh(&self) -> Result<()> {
        self.refresh_own_index()
    }
}

impl Store {
    /// Adds `sources`, read after this store in the order given. With `fill`, chunks read from
    /// them are copied into this store, which must be open for writing.
    pub fn attach_sources(&mut self, sources: Vec<Box<dyn Source>>, fill: bool) -> Result<()> {
        if sources.len() >= usize::from(u8::MAX) {
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

    /// The layers in reading order with their origin numbers: this store (0), then its sources.
    fn layers(&self) -> impl Iterator<Item = (u8, &dyn Source)> {
        std::iter::once(self as &dyn Source)
            .chain(self.sources.iter().map(|s| s.as_ref()))
            .enumerate()
            .map(|(i, source)| (i as u8, source))
    }

    /// The registry: this store's, merged with its sources'. Its generation changes when any
    /// layer's does, so a mount notices a change in any of them.
    pub fn registry(&self) -> Result<Registry> {
        let mut merged = self.own_registry()?;
        for source in &self.sources {
            let theirs = source.registry()?;
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
            match layer.manifest(id) {
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
            for (i, location) in missing.into_iter().zip(source.locate(&wanted)?) {
                found[i] = location.map(|l| Location { origin, ..l });
            }
        }
        Ok(found)
    }

    /// Refreshes every layer's view of what it holds.
    pub fn refresh_index(&self) -> Result<()> {
        for (_, layer) in self.layers() {
            layer.refresh()?;
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
        let Err(error) = self.read_from_layer(id, location, dst, check, false) else {
            return Ok(());
        };
        if self.sources.is_empty() {
            return Err(error);
        }
        for (origin, layer) in self
            .layers()
            .filter(|(origin, _)| *origin != location.origin)
        {
            let found = layer
                .locate(&[*id])
                .ok()
                .and_then(|found| found.into_iter().next().flatten());
            let Some(other) = found else { continue };
            let other = Location { origin, ..other };
            // A damaged chunk of this store itself is replaced by the good copy (with `--fill`).
            if self
                .read_from_layer(id, &other, dst, Check::Verify, location.origin == 0)
                .is_ok()
            {
                warn!(chunk = %id, failed = %self.describe_layer(location.origin), from = %layer.describe(), error = %error, "chunk read from another source");
                return Ok(());
            }
        }
        Err(error)
    }

    fn describe_layer(&self, origin: u8) -> String {
        self.layers()
            .find(|(o, _)| *o == origin)
            .map(|(_, l)| l.describe())
            .unwrap_or_default()
    }

    /// Reads from the layer `location.origin` names. A source's bytes are decoded and verified
    /// here, then copied into this store when filling (replacing its own copy when `repair`).
    fn read_from_layer(
        &self,
        id: &ChunkId,
        location: &Location,
        dst: &mut [u8],
        check: Check,
        repair: bool,
    ) -> Result<()> {
        if location.origin == 0 {
            return self.read_own_chunk_into(id, location, dst, check);
        }
        let source = &self.sources[usize::from(location.origin) - 1];
        let bad = |reason: String| bad_chunk(id, location, reason);
        check_decoded_len(id, location, dst.len())?;
        PAYLOAD.with_borrow_mut(|payload| {
            source.read_payload(location, payload)?;
            codec::decode_into(location.codec, payload, dst).map_err(|e| bad(e.to_string()))?;
            if check == Check::Verify {
                codec::verify(id, dst).map_err(|e| bad(e.to_string()))?;
            }
            if self.filler.is_some() {
                let header = RecordHeader {
                    chunk_id: *id,
                    codec: location.codec,
                    raw_len: location.raw_len,
                    stored_len: location.stored_len,
                };
                let stored: &[u8] = if location.codec == Codec::Raw {
                    dst
                } else {
                    payload
                };
                self.fill(header, stored, repair);
            }
            Ok(())
        })
    }

    /// Copies one record into this store, unless it already has the chunk (or, with `replace`,
    /// has it damaged: the new copy's pack becomes the chunk's location when sealed). Failures
    /// only cost the copy (a full disk, say): they are logged, never returned to the reader.
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
