//! Writing the pack catalog: what a reader without the index needs to find chunks.
//!
//! Owns [`catalog_of`] (the catalog of a packs folder as it is now, from each sealed pack's
//! trailer) and [`write`] (replace `catalog.json` atomically). Writers call [`write`] at every
//! commit, before the registry, so a published copy of the store always lists every pack the
//! registry's models need; `serve` builds the catalog it answers with from [`catalog_of`].

use std::os::unix::fs::FileExt;
use std::path::Path;

use tracing::warn;

use crate::error::{IoContext, Result};
use crate::format::catalog::{self, Catalog, PackEntry};
use crate::format::pack::{TRAILER_LEN, Trailer};
use crate::store::fsutil::{open_regular, write_atomic};
use crate::store::pack::pack_path;
use crate::store::paths::StorePaths;
use crate::store::recovery::list_sealed_packs;

/// The sealed packs in `packs_dir`, oldest first (by modification time, then id; a sealed pack
/// is never written again). A pack whose trailer is unreadable is left out and logged: readers
/// could not use its table anyway.
pub fn catalog_of(packs_dir: &Path, generation: u64) -> Result<Catalog> {
    let mut packs = Vec::new();
    for (id, len) in list_sealed_packs(packs_dir)? {
        let path = pack_path(packs_dir, &id);
        let entry = (|| {
            let file = open_regular(&path)?;
            let mtime = file.metadata()?.modified()?;
            let mut bytes = [0u8; TRAILER_LEN];
            file.read_exact_at(&mut bytes, len.saturating_sub(TRAILER_LEN as u64))?;
            let trailer = Trailer::decode(&bytes).filter(|t| t.fits(len));
            Ok::<_, std::io::Error>(trailer.map(|t| (mtime, t)))
        })()
        .at(&path)?;
        match entry {
            Some((mtime, trailer)) => packs.push((
                mtime,
                PackEntry {
                    id,
                    bytes: len,
                    table_offset: trailer.table_offset,
                    entries: trailer.entry_count,
                },
            )),
            None => {
                warn!(pack = %path.display(), "pack trailer unreadable; left out of the catalog")
            }
        }
    }
    packs.sort_by_key(|(mtime, pack)| (*mtime, pack.id));
    Ok(Catalog::new(
        generation,
        packs.into_iter().map(|(_, pack)| pack).collect(),
    ))
}

/// Replaces the store's `catalog.json` with the catalog of its packs now.
pub fn write(paths: &StorePaths, generation: u64) -> Result<()> {
    let catalog = catalog_of(&paths.packs(), generation)?;
    write_atomic(&paths.catalog(), &catalog::encode(&catalog))
}
