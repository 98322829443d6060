//! A store directory as a source: this machine's store, a stick, a read-only share.
//!
//! Owns `impl Source for Store`, a thin mapping onto the store's own methods.

use crate::error::Result;
use crate::format::manifest::Manifest;
use crate::format::registry::Registry;
use crate::id::{ChunkId, ManifestId};
use crate::source::{Place, Source};
use crate::store::Store;
use crate::store::chunk::Check;

impl Source for Store {
    fn describe(&self) -> String {
        self.root().display().to_string()
    }

    fn registry(&self) -> Result<Registry> {
        Store::registry(self)
    }

    fn manifest(&self, id: &ManifestId) -> Result<Manifest> {
        Store::manifest(self, id)
    }

    fn locate(&self, ids: &[ChunkId]) -> Result<Vec<Option<Place>>> {
        Ok(Store::locate(self, ids)?
            .into_iter()
            .map(|found| found.map(Place::single))
            .collect())
    }

    fn read_stored(&self, _id: &ChunkId, place: &Place, dst: &mut [u8]) -> Result<()> {
        self.packs().read_payload(&place.location, dst)
    }

    fn read_run(
        &self,
        first: &Place,
        len: u64,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        const PIECE: u64 = 1 << 20;
        let mut piece = Vec::new();
        let (pack, start) = (first.location.pack, first.location.offset);
        let mut done = 0;
        while done < len {
            piece.resize((len - done).min(PIECE) as usize, 0);
            self.packs().read_at(&pack, start + done, &mut piece)?;
            each(&piece)?;
            done += piece.len() as u64;
        }
        Ok(())
    }

    fn read_chunk(
        &self,
        id: &ChunkId,
        place: &Place,
        dst: &mut [u8],
        check: Check,
        stored: &mut dyn FnMut(&[u8]),
    ) -> Result<Place> {
        Store::read_chunk(self, id, &place.location, dst, check, stored)?;
        Ok(*place)
    }

    fn refresh(&self) -> Result<()> {
        Store::refresh(self)
    }
}
