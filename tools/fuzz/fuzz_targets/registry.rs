//! `registry.json` from arbitrary bytes: decoded, then checked the way a store checks a registry
//! before anything uses it. A registry that passes must be usable as it is: every model resolves,
//! every file is addressable as `model@version/path`, the mount names it, and it encodes to JSON
//! that decodes and passes again.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use modelfs::format::registry::{self, Layout};
use modelfs::store::registry::{
    ModelSpec, check, current_version, mounted_name, next_version_name, resolve,
};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/stick/store/registry.json");
    let Ok(decoded) = registry::decode(path, data) else {
        return;
    };
    if check(&decoded).is_err() {
        return;
    }
    for (model, entry) in &decoded.models {
        let (_, current) = resolve(&decoded, model, None).expect("a listed model resolves");
        assert_eq!(Some(current), current_version(entry));
        let name = next_version_name(Some(entry));
        assert!(entry.versions.iter().all(|v| v.version != name));
        for version in &entry.versions {
            let (_, found) = resolve(&decoded, model, Some(&version.version))
                .expect("a listed version resolves");
            assert_eq!(found.version, version.version);
            let shown = mounted_name(model, version);
            assert!(!shown.is_empty() && !shown.contains('/') && shown != "." && shown != "..");
            if version.layout == Layout::File {
                assert_eq!(version.files.len(), 1);
            }
            for file in &version.files {
                let text = format!("{model}@{}/{}", version.version, file.path);
                let spec: ModelSpec = text.parse().expect("a checked file has a valid spec");
                assert_eq!(spec.model, *model);
                assert_eq!(spec.version.as_deref(), Some(version.version.as_str()));
                assert_eq!(spec.file.as_deref(), Some(file.path.as_str()));
            }
        }
    }
    let encoded = registry::encode(&decoded);
    let again = registry::decode(path, &encoded).expect("an encoded registry decodes");
    assert_eq!(again, decoded);
    check(&again).expect("an encoded registry passes check");
});
