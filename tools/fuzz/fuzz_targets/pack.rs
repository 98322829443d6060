//! Pack layouts on arbitrary bytes: the header, a record header, a trailer (and whether it fits a
//! pack of a given length) and a footer table, each decoded from the input and, where that
//! succeeds, encoded and decoded again. The whole input is also read as a sealed pack the way
//! `store::pack::read_table` does, in memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelfs::format::pack::{
    Codec, HEADER_LEN, MAX_RECORD_PAYLOAD, PackHeader, RECORD_HEADER_LEN, RecordHeader,
    TABLE_ENTRY_LEN, TRAILER_LEN, Trailer, decode_table, encode_table,
};

fn record_header(bytes: &[u8]) {
    let Some(header) = RecordHeader::decode(bytes) else {
        return;
    };
    assert!(header.raw_len <= MAX_RECORD_PAYLOAD && header.stored_len <= MAX_RECORD_PAYLOAD);
    assert!(header.codec != Codec::Raw || header.raw_len == header.stored_len);
    assert_eq!(header.record_len(), 48 + u64::from(header.stored_len));
    let encoded = header.encode();
    assert_eq!(RecordHeader::decode(&encoded), Some(header));
    assert_eq!(encoded[..33], bytes[..33]);
    assert_eq!(encoded[36..44], bytes[36..44]);
}

fn trailer(bytes: &[u8], pack_len: u64) -> Option<Trailer> {
    let trailer = Trailer::decode(bytes)?;
    assert_eq!(Trailer::decode(&trailer.encode()), Some(trailer));
    assert_eq!(trailer.encode()[..], bytes[..TRAILER_LEN]);
    for len in [pack_len, u64::MAX, 0, trailer.table_offset] {
        if trailer.fits(len) {
            let table = trailer.entry_count * TABLE_ENTRY_LEN as u64;
            assert!(trailer.table_offset >= HEADER_LEN as u64);
            assert_eq!(trailer.table_offset + table + TRAILER_LEN as u64, len);
        }
    }
    Some(trailer)
}

fn table(bytes: &[u8]) {
    let Some(entries) = decode_table(bytes) else {
        return;
    };
    assert_eq!(entries.len() * TABLE_ENTRY_LEN, bytes.len());
    let encoded = encode_table(&entries);
    assert_eq!(encoded.len(), bytes.len());
    assert_eq!(decode_table(&encoded), Some(entries));
}

/// The input as a whole sealed pack: header, trailer at the end, the table it locates.
fn sealed_pack(pack: &[u8]) {
    let len = pack.len() as u64;
    if let Some(header) = PackHeader::decode(pack) {
        assert_eq!(PackHeader::decode(&header.encode()), Some(header));
    }
    if pack.len() < HEADER_LEN + TRAILER_LEN {
        return;
    }
    let Some(trailer) = trailer(&pack[pack.len() - TRAILER_LEN..], len) else {
        return;
    };
    if !trailer.fits(len) {
        return;
    }
    let table_bytes = &pack[trailer.table_offset as usize..pack.len() - TRAILER_LEN];
    let Some(entries) = decode_table(table_bytes) else {
        return;
    };
    assert_eq!(entries.len() as u64, trailer.entry_count);
    for entry in entries {
        // A table may point anywhere; reading its record must stay inside the file or fail.
        let Some(end) = entry.offset.checked_add(entry.header.record_len()) else {
            continue;
        };
        if end <= len {
            let at = entry.offset as usize;
            record_header(&pack[at..at + RECORD_HEADER_LEN]);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Some(header) = PackHeader::decode(data) {
        let encoded = header.encode();
        assert_eq!(PackHeader::decode(&encoded), Some(header));
        assert_eq!(encoded[..12], data[..12]);
        assert_eq!(encoded[16..32], data[16..32]);
    }
    if data.len() >= RECORD_HEADER_LEN {
        record_header(data);
    }
    if data.len() >= TRAILER_LEN {
        let len = data
            .get(TRAILER_LEN..TRAILER_LEN + 8)
            .map_or(data.len() as u64, |w| {
                u64::from_le_bytes(w.try_into().expect("8 bytes"))
            });
        trailer(data, len);
    }
    table(data);
    if let Some(rest) = data.get(1..) {
        table(&rest[..rest.len() / TABLE_ENTRY_LEN * TABLE_ENTRY_LEN]);
    }
    sealed_pack(data);
});
