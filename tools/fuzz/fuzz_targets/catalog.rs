//! What a client parses from a remote store and from its own command line, on arbitrary bytes:
//! `catalog.json` (`format::catalog::decode`), a sealed pack's table and trailer fetched in one
//! ranged read (`format::pack::decode_tail`), the `Range` header `serve` answers
//! (`peer::server::parse_range`), a source argument (`SourceAddr`) and a `--limit-rate` value
//! (`Rate`).
//!
//! Oracles beyond no panic: a catalog that decodes gives every pack consistent sizes within the
//! format's caps (the table and trailer fill the pack from `table_offset` to its end, at most
//! 4 GiB), lists no pack twice and survives encode → decode unchanged; a tail that decodes has
//! the trailer's row count, re-encodes to a table of the same length that decodes to the same rows, and every row's record lies between the
//! pack header and the table; a satisfiable range is non-empty and inside the file; a text with
//! `://` is never taken for a directory, and one without it always is; a rate is positive.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use modelfs::format::catalog;
use modelfs::format::pack::{
    HEADER_LEN, MAX_PACK_LEN, TABLE_ENTRY_LEN, TRAILER_LEN, Trailer, decode_table, decode_tail,
    encode_table,
};
use modelfs::id::ChunkId;
use modelfs::peer::rate::Rate;
use modelfs::peer::server::parse_range;
use modelfs::source::addr::SourceAddr;

fn catalog(data: &[u8]) {
    let path = Path::new("/peer/store/catalog.json");
    let Ok(decoded) = catalog::decode(path, data) else {
        return;
    };
    assert_eq!(decoded.format, catalog::CATALOG_FORMAT_TAG);
    assert!((1..=catalog::CATALOG_FORMAT_VERSION).contains(&decoded.version));
    let mut ids = std::collections::HashSet::new();
    for pack in &decoded.packs {
        assert!(ids.insert(pack.id), "pack {} listed twice", pack.id);
        assert!(
            pack.bytes <= MAX_PACK_LEN,
            "pack {} of {} bytes",
            pack.id,
            pack.bytes
        );
        let tail = pack
            .bytes
            .checked_sub(pack.table_offset)
            .expect("the table starts inside the pack");
        let table = pack
            .entries
            .checked_mul(TABLE_ENTRY_LEN as u64)
            .and_then(|t| t.checked_add(TRAILER_LEN as u64));
        assert_eq!(Some(tail), table, "pack {}: table and trailer", pack.id);
        assert_eq!(pack.tail_len(), tail);
    }
    let encoded = catalog::encode(&decoded);
    let again = catalog::decode(path, &encoded).expect("an encoded catalog decodes");
    assert_eq!(again, decoded);
}

/// `tail` as the last bytes of a sealed pack of `pack_len` bytes.
fn tail(tail: &[u8], pack_len: u64) {
    let Ok(entries) = decode_tail(tail, pack_len) else {
        return;
    };
    let table_len = tail.len() - TRAILER_LEN;
    let table_offset = pack_len - tail.len() as u64;
    let trailer = Trailer::decode(&tail[table_len..]).expect("a decoded tail has a trailer");
    assert_eq!(trailer.table_offset, table_offset);
    assert_eq!(trailer.entry_count, entries.len() as u64);
    assert!(trailer.fits(pack_len));
    // Reserved bytes of a row are not kept, so the round trip is checked on the decoded rows.
    let encoded = encode_table(&entries);
    assert_eq!(encoded.len(), table_len);
    assert_eq!(decode_table(&encoded).as_ref(), Some(&entries));
    for (row, entry) in entries.iter().enumerate() {
        let end = entry.offset.checked_add(entry.header.record_len());
        assert!(
            entry.offset >= HEADER_LEN as u64 && end.is_some_and(|end| end <= table_offset),
            "row {row}: record at {} + {} outside {HEADER_LEN}..{table_offset}",
            entry.offset,
            entry.header.record_len()
        );
    }
}

/// The input as a tail whose trailer carries the right table hash (a forger's tail), for a pack
/// of the length its trailer implies: what gets past the checksum to the row checks.
fn resealed_tail(data: &[u8]) {
    let Some(split) = data.len().checked_sub(TRAILER_LEN) else {
        return;
    };
    let Some(trailer) = Trailer::decode(&data[split..]) else {
        return;
    };
    let resealed = Trailer {
        table_hash: *ChunkId::of(&data[..split]).as_bytes(),
        ..trailer
    };
    let mut forged = data.to_vec();
    forged[split..].copy_from_slice(&resealed.encode());
    if let Some(pack_len) = trailer.table_offset.checked_add(data.len() as u64) {
        tail(&forged, pack_len);
    }
}

fn range(text: &str, len: u64) {
    match parse_range(Some(text), len) {
        Ok(Some((start, end))) => assert!(
            start < end && end <= len,
            "{text:?} against {len} bytes gives {start}..{end}"
        ),
        Ok(None) => panic!("{text:?} against {len} bytes reads as no Range header"),
        Err(_) => {}
    }
}

fn source_addr(text: &str) {
    match text.parse::<SourceAddr>() {
        Ok(SourceAddr::Dir(dir)) => {
            assert!(!text.contains("://"), "{text:?} taken for a directory");
            assert_eq!(dir, PathBuf::from(text));
        }
        Ok(SourceAddr::Http(url)) => {
            let scheme = text.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            assert!(
                matches!(scheme.as_deref(), Some("http" | "https")),
                "{text:?} taken for {url:?}"
            );
            assert!(text.starts_with(&url), "{text:?} taken for {url:?}");
        }
        Ok(SourceAddr::S3(bucket)) => {
            assert!(
                text.to_ascii_lowercase().starts_with("s3://"),
                "{text:?} taken for {bucket}"
            );
            // The bucket and prefix say what was typed, with no `.`/`..` parts or empty ones.
            assert!(!bucket.prefix.split('/').any(|p| p == ".." || p == "."));
            let again: SourceAddr = bucket.to_string().parse().expect("a shown bucket parses");
            assert_eq!(again, SourceAddr::S3(bucket));
        }
        Err(_) => assert!(text.contains("://"), "{text:?} refused as a directory"),
    }
}

fn rate(text: &str) {
    if let Ok(Rate(rate)) = text.parse::<Rate>() {
        assert!(rate > 0, "{text:?} gives rate 0");
        if text.bytes().all(|b| b.is_ascii_digit()) {
            assert_eq!(text.parse::<u64>(), Ok(rate), "{text:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    catalog(data);

    tail(data, data.len() as u64);
    let prefix = data
        .get(..8)
        .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")));
    if let Some(pack_len) = prefix {
        tail(&data[8..], pack_len);
        resealed_tail(&data[8..]);
    }
    resealed_tail(data);

    let text = String::from_utf8_lossy(data);
    let from_input = prefix.unwrap_or(data.len() as u64);
    for len in [0, 1, 10, u64::MAX / 2, from_input] {
        range(&text, len);
    }
    source_addr(&text);
    rate(&text);
});
