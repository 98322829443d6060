//! The registry as the store uses it: name rules, `NAME[@VERSION][/FILE]` specs, lookups, and the
//! atomic read-modify-write that commits a change.
//!
//! Owns model and version naming and resolution. The JSON layout is `format::registry`; durability
//! comes from `fsutil::write_atomic` (the rename is the commit point of `add` and `rm`).

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::format::registry::MAX_REGISTRY_LEN;
use crate::format::registry::{
    Layout, ModelEntry, REGISTRY_FORMAT_VERSION, Registry, VersionEntry,
};
use crate::store::fsutil::{read_capped, write_atomic};

/// File name of the registry inside the store.
pub const REGISTRY_FILE_NAME: &str = "registry.json";

/// Checks a model or version name: `[A-Za-z0-9._-]+`, not starting with `.`, at most 128 bytes.
pub fn validate_name(what: &'static str, name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

/// Checks a file path inside a model: relative, `/`-separated, no empty, `.` or `..` parts, no
/// control characters, at most 4096 bytes.
pub fn valid_file_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 4096
        && !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// Latest `added_unix` a registry may claim (the year 10,000): later ones are damage or lies, and
/// would overflow time arithmetic.
const MAX_PLAUSIBLE_UNIX: u64 = 253_402_300_800;

/// Checks everything a registry read from a store claims, before anything uses it: every model and
/// version name follows the name rules, every model has a version and every version a file, a
/// single-file version has exactly one, file paths are valid and unique. A registry on a stick or
/// a share may lie in any field; the reason names the offending entry (quoted, so control
/// characters cannot reach a terminal).
pub fn check(registry: &Registry) -> std::result::Result<(), String> {
    for (model, entry) in &registry.models {
        validate_name("model name", model).map_err(|e| e.to_string())?;
        if entry.versions.is_empty() {
            return Err(format!("model {model:?} has no versions"));
        }
        let mut versions = HashSet::new();
        for version in &entry.versions {
            let name = &version.version;
            validate_name("version", name).map_err(|e| format!("model {model:?}: {e}"))?;
            if !versions.insert(name) {
                return Err(format!("model {model:?} lists version {name:?} twice"));
            }
            if version.added_unix > MAX_PLAUSIBLE_UNIX {
                return Err(format!(
                    "{model}@{name} was added at {}, not a plausible time",
                    version.added_unix
                ));
            }
            let files = &version.files;
            match (version.layout, files.len()) {
                (_, 0) => return Err(format!("{model}@{name} has no files")),
                (Layout::File, n) if n > 1 => {
                    return Err(format!(
                        "{model}@{name} is a single-file model with {n} files"
                    ));
                }
                _ => {}
            }
            let mut paths = HashSet::new();
            for file in files {
                if !valid_file_path(&file.path) {
                    return Err(format!(
                        "{model}@{name} has an invalid file path {:?}",
                        file.path
                    ));
                }
                if !paths.insert(&file.path) {
                    return Err(format!("{model}@{name} lists {:?} twice", file.path));
                }
            }
        }
    }
    Ok(())
}

/// A reference to a model, a version of it, and optionally one of its files: `NAME[@VERSION][/FILE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Model name.
    pub model: String,
    /// Version; `None` means the newest.
    pub version: Option<String>,
    /// A file inside the model (its path relative to the model root).
    pub file: Option<String>,
}

impl std::fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.model)?;
        if let Some(version) = &self.version {
            write!(f, "@{version}")?;
        }
        if let Some(file) = &self.file {
            write!(f, "/{file}")?;
        }
        Ok(())
    }
}

impl FromStr for ModelSpec {
    type Err = Error;

    fn from_str(spec: &str) -> Result<ModelSpec> {
        let (head, file) = match spec.split_once('/') {
            Some((head, file)) if !file.is_empty() => (head, Some(file.to_owned())),
            Some((head, _)) => (head, None),
            None => (spec, None),
        };
        let (model, version) = match head.split_once('@') {
            Some((model, version)) => (model, Some(version.to_owned())),
            None => (head, None),
        };
        validate_name("model name", model)?;
        if let Some(version) = &version {
            validate_name("version", version)?;
        }
        Ok(ModelSpec {
            model: model.to_owned(),
            version,
            file,
        })
    }
}

/// Finds a model and one of its versions (the newest if `version` is `None`).
pub fn resolve<'r>(
    registry: &'r Registry,
    model: &str,
    version: Option<&str>,
) -> Result<(&'r ModelEntry, &'r VersionEntry)> {
    let entry = registry
        .models
        .get(model)
        .ok_or_else(|| Error::UnknownModel(model.to_owned()))?;
    let found = match version {
        None => entry.versions.last(),
        Some(version) => entry.versions.iter().find(|v| v.version == version),
    };
    let version_entry = found.ok_or_else(|| Error::UnknownVersion {
        model: model.to_owned(),
        version: version.unwrap_or("(newest)").to_owned(),
    })?;
    Ok((entry, version_entry))
}

/// The next automatic version name: `v{N}` with N one more than the number of versions, skipping taken names.
pub fn next_version_name(entry: Option<&ModelEntry>) -> String {
    let versions = entry.map(|e| e.versions.as_slice()).unwrap_or_default();
    (versions.len() + 1..)
        .map(|n| format!("v{n}"))
        .find(|name| !versions.iter().any(|v| &v.version == name))
        .expect("an unbounded range always has a free name")
}

/// The name a model version shows at the top of the mount: `NAME.EXT` for a file, `NAME` for a folder.
pub fn mounted_name(model: &str, version: &VersionEntry) -> String {
    match (version.layout, version.files.first()) {
        (Layout::File, Some(file)) => {
            match Path::new(&file.path).extension().and_then(|e| e.to_str()) {
                Some(ext) => format!("{model}.{ext}"),
                None => model.to_owned(),
            }
        }
        _ => model.to_owned(),
    }
}

/// Reads the registry file; a store without one has no models.
pub fn load(path: &Path) -> Result<Registry> {
    match read_capped(path, MAX_REGISTRY_LEN) {
        Ok(bytes) => decode_checked(path, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Decodes a registry read from `path` (a file, or a URL for a remote store) and checks its names,
/// paths and times.
pub fn decode_checked(path: &Path, bytes: &[u8]) -> Result<Registry> {
    let registry = crate::format::registry::decode(path, bytes)?;
    check(&registry).map_err(|reason| Error::corrupt(path, reason))?;
    Ok(registry)
}

/// Writes the registry atomically, bumping its generation.
pub fn save(path: &Path, registry: &mut Registry) -> Result<()> {
    registry.generation += 1;
    registry.version = REGISTRY_FORMAT_VERSION;
    write_atomic(path, &crate::format::registry::encode(registry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["llama-7b", "Qwen2.5_0.5B", "v1", "a"] {
            validate_name("model name", good).unwrap();
        }
        for bad in ["", ".hidden", "a/b", "a b", "ü", "x@y", &"x".repeat(129)] {
            assert!(
                validate_name("model name", bad).is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn specs_parse() {
        let spec: ModelSpec = "minilm@v2/onnx/model.onnx".parse().unwrap();
        assert_eq!(spec.model, "minilm");
        assert_eq!(spec.version.as_deref(), Some("v2"));
        assert_eq!(spec.file.as_deref(), Some("onnx/model.onnx"));
        let spec: ModelSpec = "llama".parse().unwrap();
        assert_eq!((spec.version, spec.file), (None, None));
        assert!("bad name@v1".parse::<ModelSpec>().is_err());
        assert!("llama@".parse::<ModelSpec>().is_err());
    }

    #[test]
    fn registries_that_lie_are_refused() {
        let version = |name: &str, added_unix: u64, files: Vec<&str>| VersionEntry {
            version: name.into(),
            added_unix,
            layout: Layout::Dir,
            files: files
                .into_iter()
                .map(|path| crate::format::registry::FileEntry {
                    path: path.into(),
                    size: 1,
                    manifest: crate::id::ManifestId::of(path.as_bytes()),
                })
                .collect(),
        };
        let registry = |versions: Vec<VersionEntry>| {
            let mut registry = Registry::default();
            registry.models.insert("m".into(), ModelEntry { versions });
            registry
        };
        check(&registry(vec![version(
            "v1",
            1_795_000_000,
            vec!["a", "b/c"],
        )]))
        .unwrap();
        for bad in [
            vec![version("v1", u64::MAX, vec!["a"])],
            vec![version("v1", 0, vec![])],
            vec![version("v1", 0, vec!["../x"])],
            vec![version("v1", 0, vec!["a\nb"])],
            vec![version("v1", 0, vec!["a", "a"])],
            vec![version("v1", 0, vec!["a"]), version("v1", 0, vec!["b"])],
            vec![],
        ] {
            assert!(check(&registry(bad.clone())).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn automatic_versions_skip_taken_names() {
        assert_eq!(next_version_name(None), "v1");
        let taken = |names: &[&str]| ModelEntry {
            versions: names
                .iter()
                .map(|n| VersionEntry {
                    version: n.to_string(),
                    added_unix: 0,
                    layout: Layout::Dir,
                    files: vec![],
                })
                .collect(),
        };
        assert_eq!(next_version_name(Some(&taken(&["v1"]))), "v2");
        assert_eq!(next_version_name(Some(&taken(&["v2", "x"]))), "v3");
        assert_eq!(next_version_name(Some(&taken(&["v3", "x"]))), "v4");
    }
}
