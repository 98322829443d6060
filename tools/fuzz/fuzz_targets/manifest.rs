//! Manifest decoding on arbitrary bytes, under the bytes' own id (so the fuzzer gets past the
//! hash check, as a forged manifest on a stick would), then chunk lookups at arbitrary offsets.
//!
//! Input: a manifest, or one byte and a manifest; that byte says how many of the input's last
//! 8-byte words are also looked up as offsets (besides every chunk's borders and the file's end).
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelfs::format::manifest::Manifest;
use modelfs::format::pack::MAX_RECORD_PAYLOAD;
use modelfs::id::ManifestId;

fn check_lookup(manifest: &Manifest, offset: u64) {
    match manifest.chunk_index_at(offset) {
        Some(index) => {
            let chunk = manifest.chunks[index];
            assert!(
                chunk.offset <= offset && offset < chunk.end(),
                "{offset} not in {chunk:?}"
            );
        }
        None => assert!(
            offset >= manifest.size,
            "no chunk for {offset} < {}",
            manifest.size
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::decode(&ManifestId::of(data), data) else {
        if let Some((&count, rest)) = data.split_first()
            && let Ok(manifest) = Manifest::decode(&ManifestId::of(rest), rest)
        {
            lookups(&manifest, count, rest);
        }
        return;
    };
    lookups(&manifest, 0, data);
    // Decoding its own encoding gives it back.
    let encoded = manifest.encode();
    assert_eq!(
        Manifest::decode(&ManifestId::of(&encoded), &encoded).as_ref(),
        Ok(&manifest)
    );
    assert_eq!(encoded.len(), data.len());
});

fn lookups(manifest: &Manifest, seed: u8, data: &[u8]) {
    let size = manifest.size;
    // What FORMAT.md promises of a manifest that decodes: chunks tile the file from 0 to its
    // size, none empty, none longer than a pack record can hold.
    let mut end = 0;
    for chunk in &manifest.chunks {
        assert_eq!(chunk.offset, end);
        assert!(chunk.len > 0 && chunk.len <= MAX_RECORD_PAYLOAD);
        end = chunk.end();
    }
    assert_eq!(end, size);
    let mut probes = vec![
        0,
        size.saturating_sub(1),
        size,
        size.saturating_add(1),
        u64::MAX,
    ];
    for chunk in manifest.chunks.iter().take(64) {
        probes.extend([chunk.offset, chunk.end() - 1, chunk.end()]);
    }
    for word in data.rchunks_exact(8).take(usize::from(seed % 16)) {
        let value = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        probes.push(value);
        if size > 0 {
            probes.push(value % size);
        }
    }
    for offset in probes {
        check_lookup(manifest, offset);
    }
}
