//! Pack file layout: a header, chunk records back to back, and a footer table once sealed.
//!
//! ```text
//! header   (32 B)  magic "MFSPACK\0" | version u32 | reserved u32 | pack id [16]
//! record   (48 B)  chunk id [32] | codec u8 (0 raw, 1 zstd, 2 grouped) | reserved [3] | raw_len u32 | stored_len u32 | reserved u32
//!          payload [stored_len]
//! ...more records...
//! table    entry_count × (record header (48 B) | record offset u64)   = 56 B each
//! trailer  (56 B)  table blake3 [32] | table offset u64 | entry count u64 | magic "MFSPEND\0"
//! ```
//! All integers little-endian. A pack without a valid trailer is unsealed (a writer died while
//! filling it); its records can still be recovered by scanning, each one checked against its id.
//! This module only encodes and decodes; `store::pack` does the file I/O.

use super::LeReader;
use crate::id::{ChunkId, PackId};

/// First bytes of every pack.
pub const PACK_MAGIC: [u8; 8] = *b"MFSPACK\0";
/// Last bytes of a sealed pack.
pub const PACK_END_MAGIC: [u8; 8] = *b"MFSPEND\0";
/// Pack layout version written by this build. Version 2 added [`Codec::Grouped`]; version 1
/// packs are read as they are.
pub const PACK_FORMAT_VERSION: u32 = 2;
/// Size of the pack header.
pub const HEADER_LEN: usize = 32;
/// Size of a record header.
pub const RECORD_HEADER_LEN: usize = 48;
/// Size of one footer table entry.
pub const TABLE_ENTRY_LEN: usize = RECORD_HEADER_LEN + 8;
/// Size of the trailer.
pub const TRAILER_LEN: usize = 56;
/// Upper bound on a chunk's stored or raw length, so a damaged header cannot ask for gigabytes.
pub const MAX_RECORD_PAYLOAD: u32 = 64 << 20;
/// Upper bound on a pack file's size: packs are sealed at the store's pack size (at most 3 GiB),
/// plus one last record and the table.
pub const MAX_PACK_LEN: u64 = 4 << 30;
/// Upper bound on the records of one pack (writers seal a pack before it holds more), so a
/// damaged trailer cannot make a reader allocate a table of gigabytes.
pub const MAX_TABLE_ENTRIES: u64 = 1 << 20;

/// How a chunk's payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    /// The payload is the chunk's bytes.
    Raw = 0,
    /// The payload is a zstd frame of the chunk's bytes.
    Zstd = 1,
    /// The chunk's fixed-size records split field by field into planes, each plane raw or zstd
    /// (pack version 2); layout in [`super::grouped`].
    Grouped = 2,
}

impl Codec {
    /// Decodes the codec byte.
    pub fn from_u8(value: u8) -> Option<Codec> {
        match value {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::Grouped),
            _ => None,
        }
    }
}

/// The fixed-size header at the start of a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackHeader {
    /// Layout version.
    pub version: u32,
    /// The pack's own id (matches its file name).
    pub pack_id: PackId,
}

impl PackHeader {
    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(&PACK_MAGIC);
        out[8..12].copy_from_slice(&self.version.to_le_bytes());
        out[16..32].copy_from_slice(self.pack_id.as_bytes());
        out
    }

    /// Decodes a header; `None` if the magic is wrong or the bytes are short.
    pub fn decode(bytes: &[u8]) -> Option<PackHeader> {
        let mut r = LeReader::new(bytes);
        if r.array::<8>()? != PACK_MAGIC {
            return None;
        }
        let version = r.u32()?;
        r.u32()?;
        let pack_id = PackId(r.array()?);
        Some(PackHeader { version, pack_id })
    }
}

/// The header in front of every chunk payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// blake3 of the decoded bytes.
    pub chunk_id: ChunkId,
    /// Payload encoding.
    pub codec: Codec,
    /// Decoded length.
    pub raw_len: u32,
    /// Payload length in the pack.
    pub stored_len: u32,
}

impl RecordHeader {
    /// Encodes the record header.
    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut out = [0u8; RECORD_HEADER_LEN];
        out[..32].copy_from_slice(self.chunk_id.as_bytes());
        out[32] = self.codec as u8;
        out[36..40].copy_from_slice(&self.raw_len.to_le_bytes());
        out[40..44].copy_from_slice(&self.stored_len.to_le_bytes());
        out
    }

    /// Decodes a record header, rejecting unknown codecs and absurd lengths.
    pub fn decode(bytes: &[u8]) -> Option<RecordHeader> {
        let mut r = LeReader::new(bytes);
        let chunk_id = ChunkId(r.array()?);
        let codec = Codec::from_u8(r.u8()?)?;
        r.array::<3>()?;
        let raw_len = r.u32()?;
        let stored_len = r.u32()?;
        r.u32()?;
        if raw_len > MAX_RECORD_PAYLOAD || stored_len > MAX_RECORD_PAYLOAD {
            return None;
        }
        if codec == Codec::Raw && raw_len != stored_len {
            return None;
        }
        Some(RecordHeader {
            chunk_id,
            codec,
            raw_len,
            stored_len,
        })
    }

    /// Bytes the record occupies in the pack, header included.
    pub fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + u64::from(self.stored_len)
    }
}

/// One row of a sealed pack's table: a record header and where the record starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableEntry {
    /// The record's header, repeated.
    pub header: RecordHeader,
    /// Offset of the record header from the start of the pack.
    pub offset: u64,
}

/// Encodes a footer table.
pub fn encode_table(entries: &[TableEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * TABLE_ENTRY_LEN);
    for entry in entries {
        out.extend_from_slice(&entry.header.encode());
        out.extend_from_slice(&entry.offset.to_le_bytes());
    }
    out
}

/// Decodes a footer table; `None` if any entry is malformed.
pub fn decode_table(bytes: &[u8]) -> Option<Vec<TableEntry>> {
    if !bytes.len().is_multiple_of(TABLE_ENTRY_LEN) {
        return None;
    }
    bytes
        .chunks_exact(TABLE_ENTRY_LEN)
        .map(|row| {
            let header = RecordHeader::decode(&row[..RECORD_HEADER_LEN])?;
            let offset = u64::from_le_bytes(row[RECORD_HEADER_LEN..].try_into().ok()?);
            Some(TableEntry { header, offset })
        })
        .collect()
}

/// Decodes the tail of a sealed pack of `pack_len` bytes: its table followed by its trailer, the
/// last `tail.len()` bytes of the file. Checks the trailer (consistent with the pack's length and
/// with where the tail starts), the table's checksum, and that every row points at a record
/// between the header and the table. The error is the reason, for the caller to name the pack.
pub fn decode_tail(tail: &[u8], pack_len: u64) -> Result<Vec<TableEntry>, String> {
    let unsealed = || "pack is unsealed or its trailer is damaged".to_owned();
    let split = tail.len().checked_sub(TRAILER_LEN).ok_or_else(unsealed)?;
    let (table, trailer) = tail.split_at(split);
    let trailer = Trailer::decode(trailer)
        .filter(|t| t.fits(pack_len) && pack_len - t.table_offset == tail.len() as u64)
        .ok_or_else(unsealed)?;
    if blake3::hash(table).as_bytes() != &trailer.table_hash {
        return Err("pack table fails its checksum".into());
    }
    let entries = decode_table(table).ok_or("pack table has a malformed entry")?;
    // Every row must point at a record between the header and the table.
    for (row, entry) in entries.iter().enumerate() {
        let inside = entry.offset >= HEADER_LEN as u64
            && entry
                .offset
                .checked_add(entry.header.record_len())
                .is_some_and(|end| end <= trailer.table_offset);
        if !inside {
            return Err(format!(
                "pack table row {row} points outside the pack's records"
            ));
        }
    }
    Ok(entries)
}

/// The last bytes of a sealed pack, locating and checksumming the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// blake3 of the encoded table.
    pub table_hash: [u8; 32],
    /// Offset of the table from the start of the pack.
    pub table_offset: u64,
    /// Number of table entries.
    pub entry_count: u64,
}

impl Trailer {
    /// Encodes the trailer.
    pub fn encode(&self) -> [u8; TRAILER_LEN] {
        let mut out = [0u8; TRAILER_LEN];
        out[..32].copy_from_slice(&self.table_hash);
        out[32..40].copy_from_slice(&self.table_offset.to_le_bytes());
        out[40..48].copy_from_slice(&self.entry_count.to_le_bytes());
        out[48..].copy_from_slice(&PACK_END_MAGIC);
        out
    }

    /// Decodes a trailer; `None` if the end magic is missing.
    pub fn decode(bytes: &[u8]) -> Option<Trailer> {
        let mut r = LeReader::new(bytes);
        let table_hash = r.array()?;
        let table_offset = r.u64()?;
        let entry_count = r.u64()?;
        if r.array::<8>()? != PACK_END_MAGIC {
            return None;
        }
        Some(Trailer {
            table_hash,
            table_offset,
            entry_count,
        })
    }

    /// Whether the trailer is consistent with a pack of `pack_len` bytes. Every sum is checked:
    /// the offset and count come from the file and may be anything.
    /// The count is also bounded: at most [`MAX_TABLE_ENTRIES`], and no more records than fit
    /// between the header and the table.
    pub fn fits(&self, pack_len: u64) -> bool {
        let end = self
            .entry_count
            .checked_mul(TABLE_ENTRY_LEN as u64)
            .and_then(|table_len| table_len.checked_add(self.table_offset))
            .and_then(|table_end| table_end.checked_add(TRAILER_LEN as u64));
        let records_fit = self
            .table_offset
            .checked_sub(HEADER_LEN as u64)
            .is_some_and(|room| self.entry_count <= room / RECORD_HEADER_LEN as u64);
        self.entry_count <= MAX_TABLE_ENTRIES && records_fit && end == Some(pack_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{hex, unhex};
    use proptest::prelude::*;

    #[test]
    fn trailers_claiming_huge_tables_do_not_fit() {
        let trailer = |table_offset: u64, entry_count: u64| Trailer {
            table_hash: [0; 32],
            table_offset,
            entry_count,
        };
        let len = |t: &Trailer| {
            t.table_offset + t.entry_count * TABLE_ENTRY_LEN as u64 + TRAILER_LEN as u64
        };
        let honest = trailer(HEADER_LEN as u64 + 10 * 100, 10);
        assert!(honest.fits(len(&honest)));
        // More rows than records could fit before the table (a sparse file of any size).
        let crafted = trailer(64, 153_391_687);
        assert!(!crafted.fits(len(&crafted)));
        let too_many = trailer(
            HEADER_LEN as u64 + 48 * (MAX_TABLE_ENTRIES + 1),
            MAX_TABLE_ENTRIES + 1,
        );
        assert!(!too_many.fits(len(&too_many)));
        assert!(!trailer(u64::MAX - 10, 2).fits(u64::MAX));
    }

    const GOLDEN_HEADER: &str = "
        4d46535041434b00                    # magic MFSPACK\0
        02000000                            # version 2
        00000000                            # reserved
        101112131415161718191a1b1c1d1e1f    # pack id
    ";

    const GOLDEN_RECORD: &str = "
        202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f    # chunk id
        02 000000                           # codec 2 (grouped), reserved
        56341200                            # raw_len 0x123456
        45230100                            # stored_len 0x12345
        00000000                            # reserved
    ";

    const GOLDEN_TABLE: &str = "
        aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa    # 1: chunk id
        00 000000 64000000 64000000 00000000                                # raw, 100, 100
        2000000000000000                                                    # at offset 32
        202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f    # 2: chunk id
        02 000000 56341200 45230100 00000000                                # grouped
        b400000000000000                                                    # at offset 180
    ";

    const GOLDEN_TRAILER: &str = "
        TABLE_HASH                          # blake3 of the table
        2924010000000000                    # table offset 74793
        0200000000000000                    # 2 entries
        4d465350454e4400                    # magic MFSPEND\0
    ";

    fn golden_record() -> RecordHeader {
        RecordHeader {
            chunk_id: ChunkId(std::array::from_fn(|i| 0x20 + i as u8)),
            codec: Codec::Grouped,
            raw_len: 0x12_3456,
            stored_len: 0x1_2345,
        }
    }

    #[test]
    fn golden_header_and_record() {
        let header = PackHeader {
            version: 2,
            pack_id: PackId(std::array::from_fn(|i| 0x10 + i as u8)),
        };
        assert_eq!(header.encode().to_vec(), unhex(GOLDEN_HEADER));
        assert_eq!(PackHeader::decode(&unhex(GOLDEN_HEADER)), Some(header));
        assert_eq!(golden_record().encode().to_vec(), unhex(GOLDEN_RECORD));
        assert_eq!(
            RecordHeader::decode(&unhex(GOLDEN_RECORD)),
            Some(golden_record())
        );
        assert_eq!(golden_record().record_len(), 48 + 0x1_2345);
    }

    #[test]
    fn golden_table_and_trailer() {
        let first = RecordHeader {
            chunk_id: ChunkId([0xaa; 32]),
            codec: Codec::Raw,
            raw_len: 100,
            stored_len: 100,
        };
        let entries = [
            TableEntry {
                header: first,
                offset: HEADER_LEN as u64,
            },
            TableEntry {
                header: golden_record(),
                offset: HEADER_LEN as u64 + first.record_len(),
            },
        ];
        let table = encode_table(&entries);
        assert_eq!(table, unhex(GOLDEN_TABLE));
        assert_eq!(decode_table(&table).unwrap(), entries);

        let table_hash = *blake3::hash(&table).as_bytes();
        assert_eq!(hex(&table_hash), GOLDEN_TABLE_HASH);
        let trailer = Trailer {
            table_hash,
            table_offset: entries[1].offset + golden_record().record_len(),
            entry_count: 2,
        };
        let golden = unhex(&GOLDEN_TRAILER.replace("TABLE_HASH", GOLDEN_TABLE_HASH));
        assert_eq!(trailer.encode().to_vec(), golden);
        assert_eq!(Trailer::decode(&golden), Some(trailer));
        let pack_len = trailer.table_offset + table.len() as u64 + TRAILER_LEN as u64;
        assert!(trailer.fits(pack_len));
        assert!(!trailer.fits(pack_len + 1));
    }

    const GOLDEN_TABLE_HASH: &str =
        "a077702280909ed25bb50b3b26d9392d552faaf6f62e10f453966d1919002d58";

    fn arb_header() -> impl Strategy<Value = RecordHeader> {
        (
            any::<[u8; 32]>(),
            any::<bool>(),
            0..MAX_RECORD_PAYLOAD,
            0..MAX_RECORD_PAYLOAD,
        )
            .prop_map(|(id, zstd, raw_len, stored)| RecordHeader {
                chunk_id: ChunkId(id),
                codec: if zstd { Codec::Zstd } else { Codec::Raw },
                raw_len,
                stored_len: if zstd { stored } else { raw_len },
            })
    }

    proptest! {
        #[test]
        fn table_round_trip(rows in prop::collection::vec((arb_header(), any::<u64>()), 0..50)) {
            let entries: Vec<TableEntry> =
                rows.into_iter().map(|(header, offset)| TableEntry { header, offset }).collect();
            let bytes = encode_table(&entries);
            prop_assert_eq!(bytes.len(), entries.len() * TABLE_ENTRY_LEN);
            prop_assert_eq!(decode_table(&bytes).unwrap(), entries);
        }

        #[test]
        fn trailer_round_trip(hash in any::<[u8; 32]>(), offset in any::<u64>(), count in any::<u64>()) {
            let trailer = Trailer { table_hash: hash, table_offset: offset, entry_count: count };
            prop_assert_eq!(Trailer::decode(&trailer.encode()), Some(trailer));
        }
    }

    #[test]
    fn header_round_trip_and_magic() {
        let header = PackHeader {
            version: PACK_FORMAT_VERSION,
            pack_id: PackId([7; 16]),
        };
        let bytes = header.encode();
        assert_eq!(&bytes[..8], b"MFSPACK\0");
        assert_eq!(PackHeader::decode(&bytes), Some(header));
        let mut bad = bytes;
        bad[0] = b'X';
        assert_eq!(PackHeader::decode(&bad), None);
    }

    /// Found by `tools/fuzz` (target `pack`): a trailer whose table ends just short of
    /// `u64::MAX` overflowed when the trailer's length was added.
    #[test]
    fn trailer_fits_checks_every_sum() {
        for (table_offset, entry_count) in [
            (u64::MAX - 10, 0),
            (u64::MAX - TRAILER_LEN as u64 + 1, 0),
            (u64::MAX - 100, 1),
            (HEADER_LEN as u64, u64::MAX / TABLE_ENTRY_LEN as u64),
            (u64::MAX, u64::MAX),
        ] {
            let trailer = Trailer {
                table_hash: [0; 32],
                table_offset,
                entry_count,
            };
            for pack_len in [0, 88, u64::MAX - 1, u64::MAX] {
                assert!(!trailer.fits(pack_len), "{trailer:?} fits {pack_len}");
            }
        }
        let largest = Trailer {
            table_hash: [0; 32],
            table_offset: u64::MAX - TRAILER_LEN as u64,
            entry_count: 0,
        };
        assert!(largest.fits(u64::MAX));
    }

    #[test]
    fn record_header_rejects_damage() {
        let header = RecordHeader {
            chunk_id: ChunkId([1; 32]),
            codec: Codec::Raw,
            raw_len: 100,
            stored_len: 100,
        };
        let mut bytes = header.encode();
        assert_eq!(RecordHeader::decode(&bytes), Some(header));
        bytes[32] = 9;
        assert_eq!(RecordHeader::decode(&bytes), None, "unknown codec");
        let mut bytes = header.encode();
        bytes[40] = 99;
        assert_eq!(
            RecordHeader::decode(&bytes),
            None,
            "raw payload with mismatched lengths"
        );
    }
}
