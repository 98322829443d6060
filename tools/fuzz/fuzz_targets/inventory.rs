//! An inventory a site sends for `export --have`, from arbitrary bytes: `format::inventory::decode`
//! on the input as a whole file, and on a well-formed file whose chunk list is the input (the first
//! 4 bytes, little-endian, as the claimed count; the rest as the Rice-coded bits, in base64), which
//! reaches the chunk-list decoder past the JSON.
//!
//! Oracles beyond no panic, hang or runaway memory (the count is checked against the bits before
//! anything is allocated): what decodes encodes and decodes to itself; a chunk list that decodes
//! holds exactly the count it claims, and encodes to exactly the bits it came from (only the
//! canonical encoding decodes).
#![no_main]

use std::path::Path;

use ct_codecs::{Base64, Encoder};
use libfuzzer_sys::fuzz_target;
use modelfs::format::inventory::{Inventory, decode, encode};

const TEMPLATE: &str = r#"{"format": "modelfs-inventory", "version": 1,
 "store_id": "000102030405060708090a0b0c0d0e0f", "created_unix": 1795000000,
 "versions": [{"model": "llama", "version": "v1",
   "files": "0505050505050505050505050505050505050505050505050505050505050505"}],
 "high_water": {"llama": {"stable": 2}},
 "chunks": {"count": COUNT, "rice": "RICE"}}"#;

fn round_trip(path: &Path, decoded: &Inventory) -> Vec<u8> {
    let encoded = encode(decoded);
    let again = decode(path, &encoded).expect("an encoded inventory decodes");
    assert_eq!(&again, decoded);
    encoded
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/publisher/have.json");
    if let Ok(decoded) = decode(path, data) {
        round_trip(path, &decoded);
    }

    let Some((count, bits)) = data.split_first_chunk::<4>() else {
        return;
    };
    let count = u32::from_le_bytes(*count);
    let rice = Base64::encode_to_string(bits).expect("base64 of a fuzz input");
    let text = TEMPLATE
        .replace("COUNT", &count.to_string())
        .replace("RICE", &rice);
    let Ok(decoded) = decode(path, text.as_bytes()) else {
        return;
    };
    assert_eq!(decoded.chunks.len(), count as usize);
    let encoded = String::from_utf8(round_trip(path, &decoded)).expect("JSON is UTF-8");
    assert!(
        encoded.contains(&format!("\"rice\": \"{rice}\"")),
        "{count} chunks from {} bytes re-encode to other bits",
        bits.len()
    );
});
