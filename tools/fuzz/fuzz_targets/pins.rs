//! A pin table (`pins.json`) from arbitrary bytes: `format::pins::decode` (what decodes encodes and
//! decodes to itself), then the same bytes as the table of a pin area, walked the way a mount and
//! `rm`/`gc` walk it.
//!
//! Oracles beyond no panic, hang or runaway memory: every copy a mount would open lies in the
//! area's `files/` folder and is named by a manifest id, whatever the table says; dropping the
//! pins of a registry without models removes only files inside the area, and leaves a table with
//! no pins.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use modelfs::format::pins;
use modelfs::format::registry::Registry;
use modelfs::id::{ManifestId, StoreId};
use modelfs::pin::PinArea;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/store/pins/pins.json");
    if let Ok(decoded) = pins::decode(path, data) {
        let encoded = pins::encode(&decoded);
        assert_eq!(
            pins::decode(path, &encoded).expect("an encoded table decodes"),
            decoded
        );
    }

    let store = modelfs_fuzz::scratch_dir("pins");
    let _ = std::fs::remove_dir_all(&store);
    let area_dir = store.join("pins");
    std::fs::create_dir_all(area_dir.join("files")).expect("scratch pin area");
    std::fs::write(area_dir.join("pins.json"), data).expect("write table");
    // A file beside the area that nothing may touch.
    std::fs::write(store.join("keep"), b"not a pin").expect("write bystander");
    let area = PinArea::locate(&store, &StoreId([7; 16])).expect("the area is in the store");
    assert_eq!(area.dir(), area_dir);
    let Ok(copies) = area.copies() else {
        return;
    };
    for (manifest, copy) in &copies {
        assert_eq!(copy.path, area_dir.join("files").join(manifest.to_hex()));
        assert!(copy.path.file_name().unwrap().to_str().unwrap().parse::<ManifestId>().is_ok());
    }
    area.retain(&Registry::default()).expect("retain on a scratch area");
    assert!(area.table().expect("the table was rewritten").pins.is_empty());
    assert_eq!(std::fs::read(store.join("keep")).unwrap(), b"not a pin");
});
