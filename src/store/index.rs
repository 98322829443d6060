//! The RocksDB index: chunk id → location in a pack. The only module that imports `rocksdb`.
//!
//! Owns the column families, key and value encodings and batch writes. The index is derived data:
//! everything in it can be recomputed from the packs' tables (`Store::rebuild_index`), so losing or
//! corrupting it loses nothing. Column families:
//! - `chunks`: chunk id (32 B) → [`Location`] (33 B: pack id, record offset, raw len, stored len, codec)
//! - `packs`: pack id (16 B) → entry count u64 | pack bytes u64; a pack is listed once all its chunks are
//! - `meta`: `"version"` → index layout version u32

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rocksdb::{ColumnFamilyDescriptor, DB, Options, WriteBatch, WriteOptions};

use crate::error::{Error, Result};
use crate::format::pack::{Codec, MAX_RECORD_PAYLOAD, TableEntry};
use crate::id::{ChunkId, PackId};

const CF_CHUNKS: &str = "chunks";
const CF_PACKS: &str = "packs";
const CF_META: &str = "meta";
const VERSION_KEY: &[u8] = b"version";
/// Index layout version written by this build.
pub const INDEX_FORMAT_VERSION: u32 = 1;
const LOCATION_LEN: usize = 16 + 8 + 4 + 4 + 1;

/// Where a chunk's record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The pack holding the record.
    pub pack: PackId,
    /// Offset of the record header in the pack.
    pub offset: u64,
    /// Decoded length.
    pub raw_len: u32,
    /// Payload length in the pack.
    pub stored_len: u32,
    /// Payload encoding.
    pub codec: Codec,
}

impl Location {
    /// The location of a pack table row.
    pub fn of_entry(pack: PackId, entry: &TableEntry) -> Location {
        Location {
            pack,
            offset: entry.offset,
            raw_len: entry.header.raw_len,
            stored_len: entry.header.stored_len,
            codec: entry.header.codec,
        }
    }

    fn encode(&self) -> [u8; LOCATION_LEN] {
        let mut out = [0u8; LOCATION_LEN];
        out[..16].copy_from_slice(self.pack.as_bytes());
        out[16..24].copy_from_slice(&self.offset.to_le_bytes());
        out[24..28].copy_from_slice(&self.raw_len.to_le_bytes());
        out[28..32].copy_from_slice(&self.stored_len.to_le_bytes());
        out[32] = self.codec as u8;
        out
    }

    /// Decodes an index value, refusing lengths no record can have.
    fn decode(bytes: &[u8]) -> Option<Location> {
        if bytes.len() != LOCATION_LEN {
            return None;
        }
        let location = Location {
            pack: PackId::from_slice(&bytes[..16])?,
            offset: u64::from_le_bytes(bytes[16..24].try_into().ok()?),
            raw_len: u32::from_le_bytes(bytes[24..28].try_into().ok()?),
            stored_len: u32::from_le_bytes(bytes[28..32].try_into().ok()?),
            codec: Codec::from_u8(bytes[32])?,
        };
        let plausible = location.raw_len <= MAX_RECORD_PAYLOAD
            && location.stored_len <= MAX_RECORD_PAYLOAD
            && (location.codec != Codec::Raw || location.raw_len == location.stored_len);
        plausible.then_some(location)
    }
}

/// Summary row of an indexed pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackRow {
    /// Chunks in the pack.
    pub entries: u64,
    /// Size of the pack file.
    pub bytes: u64,
}

/// An open index.
pub struct Index {
    db: DB,
    path: PathBuf,
    writable: bool,
}

impl Index {
    /// Opens (creating if needed) a writable index.
    pub fn open_writable(path: &Path) -> Result<Index> {
        let mut opts = Self::options();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let cfs = [CF_CHUNKS, CF_PACKS, CF_META]
            .map(|name| ColumnFamilyDescriptor::new(name, Self::options()));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| index_error(path, e))?;
        let index = Index {
            db,
            path: path.to_owned(),
            writable: true,
        };
        match index.stored_version()? {
            None => index.put_meta(VERSION_KEY, &INDEX_FORMAT_VERSION.to_le_bytes())?,
            Some(found) => {
                crate::format::check_version("index", path, found, INDEX_FORMAT_VERSION)?
            }
        }
        Ok(index)
    }

    /// Opens an existing index without writing to it (the store may be on read-only media).
    pub fn open_read_only(path: &Path) -> Result<Index> {
        if !path.join("CURRENT").is_file() {
            return Err(Error::Index {
                path: path.to_owned(),
                reason: "no index here".into(),
            });
        }
        let db = DB::open_cf_for_read_only(
            &Self::options(),
            path,
            [CF_CHUNKS, CF_PACKS, CF_META],
            false,
        )
        .map_err(|e| index_error(path, e))?;
        let index = Index {
            db,
            path: path.to_owned(),
            writable: false,
        };
        match index.stored_version()? {
            Some(found) => {
                crate::format::check_version("index", path, found, INDEX_FORMAT_VERSION)?
            }
            None => {
                return Err(Error::Index {
                    path: path.to_owned(),
                    reason: "no version record".into(),
                });
            }
        }
        Ok(index)
    }

    fn options() -> Options {
        let mut opts = Options::default();
        // Keys are random hashes and values are tiny: block compression buys nothing here.
        opts.set_compression_type(rocksdb::DBCompressionType::None);
        opts.set_keep_log_file_num(2);
        opts.set_max_log_file_size(1 << 20);
        opts.set_paranoid_checks(true);
        opts
    }

    /// Whether this handle may write.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Where the index lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| Error::Index {
            path: self.path.clone(),
            reason: format!("column family {name} missing"),
        })
    }

    fn stored_version(&self) -> Result<Option<u32>> {
        let value = self
            .db
            .get_cf(self.cf(CF_META)?, VERSION_KEY)
            .map_err(|e| index_error(&self.path, e))?;
        Ok(value
            .and_then(|v| v.try_into().ok())
            .map(u32::from_le_bytes))
    }

    fn put_meta(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, key, value);
        self.write_synced(batch)
    }

    fn write_synced(&self, batch: WriteBatch) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db
            .write_opt(batch, &opts)
            .map_err(|e| index_error(&self.path, e))
    }

    /// Looks up one chunk.
    pub fn get(&self, id: &ChunkId) -> Result<Option<Location>> {
        let value = self
            .db
            .get_cf(self.cf(CF_CHUNKS)?, id.as_bytes())
            .map_err(|e| index_error(&self.path, e))?;
        value
            .map(|bytes| self.decode_location(id, &bytes))
            .transpose()
    }

    /// Looks up many chunks in one call; results are in the order of `ids`.
    pub fn get_many(&self, ids: &[ChunkId]) -> Result<Vec<Option<Location>>> {
        let cf = self.cf(CF_CHUNKS)?;
        let results = self
            .db
            .multi_get_cf(ids.iter().map(|id| (cf, id.as_bytes())));
        ids.iter()
            .zip(results)
            .map(|(id, result)| {
                let value = result.map_err(|e| index_error(&self.path, e))?;
                value
                    .map(|bytes| self.decode_location(id, &bytes))
                    .transpose()
            })
            .collect()
    }

    fn decode_location(&self, id: &ChunkId, bytes: &[u8]) -> Result<Location> {
        Location::decode(bytes).ok_or_else(|| Error::Index {
            path: self.path.clone(),
            reason: format!("damaged entry for chunk {id}; run `modelfs index rebuild`"),
        })
    }

    /// Records a sealed pack: all its chunks (which then point at it) and its summary row, in one
    /// synced batch, so the index never lists a pack whose chunks it lacks.
    pub fn add_pack(&self, pack: PackId, pack_bytes: u64, entries: &[TableEntry]) -> Result<()> {
        let chunks = self.cf(CF_CHUNKS)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(
                chunks,
                entry.header.chunk_id.as_bytes(),
                Location::of_entry(pack, entry).encode(),
            );
        }
        let mut row = [0u8; 16];
        row[..8].copy_from_slice(&(entries.len() as u64).to_le_bytes());
        row[8..].copy_from_slice(&pack_bytes.to_le_bytes());
        batch.put_cf(self.cf(CF_PACKS)?, pack.as_bytes(), row);
        self.write_synced(batch)
    }

    /// Forgets a pack: its summary row, and every chunk in `chunks` whose location is still in it.
    pub fn remove_pack(&self, pack: PackId, chunks: &[ChunkId]) -> Result<()> {
        let locations = self.get_many(chunks)?;
        let chunks_cf = self.cf(CF_CHUNKS)?;
        let mut batch = WriteBatch::default();
        for (id, location) in chunks.iter().zip(locations) {
            if location.is_some_and(|l| l.pack == pack) {
                batch.delete_cf(chunks_cf, id.as_bytes());
            }
        }
        batch.delete_cf(self.cf(CF_PACKS)?, pack.as_bytes());
        self.write_synced(batch)
    }

    /// Every chunk the index locates, grouped by the pack it points at: what a pack holds that
    /// anyone can find, whatever its own table says (one scan of the whole index).
    pub fn located_by_pack(&self) -> Result<HashMap<PackId, Vec<(ChunkId, Location)>>> {
        let mut out: HashMap<PackId, Vec<(ChunkId, Location)>> = HashMap::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_CHUNKS)?, rocksdb::IteratorMode::Start)
        {
            let (key, value) = item.map_err(|e| index_error(&self.path, e))?;
            let id = ChunkId(<[u8; 32]>::try_from(&key[..]).map_err(|_| Error::Index {
                path: self.path.clone(),
                reason: "damaged chunk key; run `modelfs index rebuild`".into(),
            })?);
            let location = self.decode_location(&id, &value)?;
            out.entry(location.pack).or_default().push((id, location));
        }
        Ok(out)
    }

    /// Writes everything in memory to table files, so a process opening the index read-only
    /// meanwhile sees it.
    pub fn flush(&self) -> Result<()> {
        for name in [CF_CHUNKS, CF_PACKS, CF_META] {
            self.db
                .flush_cf(self.cf(name)?)
                .map_err(|e| index_error(&self.path, e))?;
        }
        Ok(())
    }

    /// All packs the index knows, with their summary rows.
    pub fn packs(&self) -> Result<Vec<(PackId, PackRow)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_PACKS)?, rocksdb::IteratorMode::Start)
        {
            let (key, value) = item.map_err(|e| index_error(&self.path, e))?;
            let (Some(pack), Ok(row)) =
                (PackId::from_slice(&key), <[u8; 16]>::try_from(&value[..]))
            else {
                return Err(Error::Index {
                    path: self.path.clone(),
                    reason: "damaged pack row".into(),
                });
            };
            let entries = u64::from_le_bytes(row[..8].try_into().expect("8 bytes"));
            let bytes = u64::from_le_bytes(row[8..].try_into().expect("8 bytes"));
            out.push((pack, PackRow { entries, bytes }));
        }
        Ok(out)
    }
}

/// More table files than this in one column family make a closing writer compact it. Each
/// short-lived writer (one `add`) flushes a small file, RocksDB moves such files down without
/// merging them when their keys do not overlap (random chunk ids rarely do), and readers open them all.
const MAX_TABLE_FILES: u64 = 32;

impl Drop for Index {
    /// A writer flushes its memtables, so readers need not replay a log, and compacts a column
    /// family that `add`s have left in many small files.
    fn drop(&mut self) {
        if !self.writable {
            return;
        }
        for name in [CF_CHUNKS, CF_PACKS, CF_META] {
            let Some(cf) = self.db.cf_handle(name) else {
                continue;
            };
            let _ = self.db.flush_cf(cf);
            let files: u64 = (0..7)
                .filter_map(|level| {
                    self.db
                        .property_int_value_cf(cf, &format!("rocksdb.num-files-at-level{level}"))
                        .ok()
                        .flatten()
                })
                .sum();
            if files > MAX_TABLE_FILES {
                tracing::debug!(family = name, files, "compacting the index");
                let mut options = rocksdb::CompactOptions::default();
                options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
                self.db
                    .compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &options);
            }
        }
    }
}

fn index_error(path: &Path, e: rocksdb::Error) -> Error {
    Error::Index {
        path: path.to_owned(),
        reason: e.into_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::RecordHeader;

    fn entry(n: u8) -> TableEntry {
        TableEntry {
            header: RecordHeader {
                chunk_id: ChunkId([n; 32]),
                codec: Codec::Zstd,
                raw_len: 100,
                stored_len: 50,
            },
            offset: u64::from(n) * 1000,
        }
    }

    #[test]
    fn packs_and_chunks_round_trip_and_reopen_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let pack = PackId([9; 16]);
        {
            let index = Index::open_writable(dir.path()).unwrap();
            index.add_pack(pack, 12345, &[entry(1), entry(2)]).unwrap();
            let found = index
                .get_many(&[ChunkId([1; 32]), ChunkId([3; 32])])
                .unwrap();
            assert_eq!(found[0], Some(Location::of_entry(pack, &entry(1))));
            assert_eq!(found[1], None);
        }
        let index = Index::open_read_only(dir.path()).unwrap();
        assert_eq!(
            index.packs().unwrap(),
            vec![(
                pack,
                PackRow {
                    entries: 2,
                    bytes: 12345
                }
            )]
        );
        assert_eq!(index.get(&ChunkId([2; 32])).unwrap().unwrap().offset, 2000);
    }

    #[test]
    fn removing_a_pack_keeps_chunks_that_moved_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open_writable(dir.path()).unwrap();
        let (old, new) = (PackId([1; 16]), PackId([2; 16]));
        index.add_pack(old, 1, &[entry(1), entry(2)]).unwrap();
        index.add_pack(new, 1, &[entry(2)]).unwrap();
        index
            .remove_pack(old, &[ChunkId([1; 32]), ChunkId([2; 32])])
            .unwrap();
        assert_eq!(index.get(&ChunkId([1; 32])).unwrap(), None);
        assert_eq!(index.get(&ChunkId([2; 32])).unwrap().unwrap().pack, new);
        assert_eq!(index.packs().unwrap().len(), 1);
    }

    #[test]
    fn read_only_open_of_a_missing_index_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Index::open_read_only(&dir.path().join("nope")),
            Err(Error::Index { .. })
        ));
    }
}
