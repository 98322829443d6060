//! Sources: the places models and chunks are read from, behind one trait.
//!
//! Owns [`Source`] and [`Place`]. A source hands over its registry, its manifests (checked against
//! their ids), where it keeps chunks, and chunk bytes — always through `store::chunk::load`, so a
//! source is never trusted: bytes are decoded and hashed against the chunk id before anyone sees
//! them. Kinds of source, one file each:
//! - `local`: a store directory on a file system (this machine's, a stick, a share) — [`Store`];
//! - `layered`: a union of sources read in order, with stand-in reads, fill and repair
//!   ([`Layered`]) — itself a `Source`, the decorator the mount reads through.
//!
//! - `peer::remote`: a store published over HTTP, by `modelfs serve` or any web server.
//!
//! [`addr`] turns what the user typed (a directory or a URL) into one of these. Adding a kind (an
//! object store) is one more type implementing [`Source`]: `read_stored` and `read_run` are
//! enough, verification comes with the provided `read_chunk`.
//!
//! [`Store`]: crate::store::Store

pub mod addr;
pub mod layered;
mod local;

pub use addr::SourceAddr;
pub use layered::Layered;

use crate::error::Result;
use crate::format::manifest::Manifest;
use crate::format::registry::Registry;
use crate::id::{ChunkId, ManifestId};
use crate::store::chunk::{self, Check};
use crate::store::index::Location;

/// Where a source keeps a chunk: the record's location, and which member of a union of sources
/// holds it (always 0 for a single source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The member of a [`Layered`] source that holds the record; 0 outside one.
    pub layer: u8,
    /// Where the record is in that member's packs.
    pub location: Location,
}

impl Place {
    /// A chunk at `location` in a single source.
    pub fn single(location: Location) -> Place {
        Place { layer: 0, location }
    }
}

/// A place models can be read from, read-only.
pub trait Source: Send + Sync {
    /// Where it is, for log lines and errors.
    fn describe(&self) -> String;

    /// Its registry.
    fn registry(&self) -> Result<Registry>;

    /// One of its manifests, checked against its id.
    fn manifest(&self, id: &ManifestId) -> Result<Manifest>;

    /// Where it keeps the chunks `ids`, in the order asked (`None`: it does not have one).
    fn locate(&self, ids: &[ChunkId]) -> Result<Vec<Option<Place>>>;

    /// Reads the payload of chunk `id`'s record at `place` as stored — not decoded, not verified —
    /// into `dst`, exactly `place.location.stored_len` bytes.
    fn read_stored(&self, id: &ChunkId, place: &Place, dst: &mut [u8]) -> Result<()>;

    /// Reads `len` bytes of the pack holding the record at `first`, from that record's header
    /// on — a run of neighbouring records as stored, in one read (one request, for a remote
    /// source) — and hands them to `each` in order, piece by piece as they arrive, so the caller
    /// can keep every record as soon as it is complete. Not decoded, not verified: the caller
    /// cuts the records apart and loads each through `store::chunk::load`.
    fn read_run(
        &self,
        first: &Place,
        len: u64,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()>;

    /// Requests sent and bytes received so far, for a source reached over the network.
    fn traffic(&self) -> Option<(u64, u64)> {
        None
    }

    /// Largest run of neighbouring records worth reading in one `read_run` (one request to a
    /// remote source: object stores bill per request, so theirs are larger).
    fn run_size(&self) -> u64 {
        4 << 20
    }

    /// Reads chunk `id` at `place` into `dst` (exactly its decoded length), decoded and verified
    /// unless `check` is [`Check::Trust`]; `stored` is then shown the payload as stored. Returns
    /// the place the bytes came from: `place`, or where a union of sources found a good copy when
    /// the read at `place` failed.
    fn read_chunk(
        &self,
        id: &ChunkId,
        place: &Place,
        dst: &mut [u8],
        check: Check,
        stored: &mut dyn FnMut(&[u8]),
    ) -> Result<Place> {
        chunk::load(
            id,
            &place.location,
            dst,
            check,
            |buf| self.read_stored(id, place, buf),
            stored,
        )?;
        Ok(*place)
    }

    /// Picks up what changed since it was opened (chunks added or moved).
    fn refresh(&self) -> Result<()>;
}
