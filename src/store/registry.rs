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
use crate::format::registry::{Layout, ModelEntry, Registry, VersionEntry};
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

/// Longest part (ORG or NAME) of a Hugging Face repo id, as on the Hub.
pub const MAX_HF_REPO_PART: usize = 96;

/// Checks a Hugging Face repo id as the mount's `.hf` view uses it: `ORG/NAME`, each part 1 to 96
/// of `[A-Za-z0-9._-]`, not starting or ending with `.` or `-`; no `..` or `--` anywhere (the
/// cache folder name `models--ORG--NAME` must split back one way), not ending in `.git`; the
/// rules of `huggingface_hub`'s `validate_repo_id`, with the organisation required. Returns why
/// not.
pub fn check_hf_repo(repo: &str) -> std::result::Result<(), String> {
    let Some((org, name)) = repo.split_once('/') else {
        return Err(format!("Hugging Face repo id {repo:?} is not ORG/NAME"));
    };
    for part in [org, name] {
        let valid = !part.is_empty()
            && part.len() <= MAX_HF_REPO_PART
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && !part.starts_with(['.', '-'])
            && !part.ends_with(['.', '-']);
        if !valid {
            return Err(format!(
                "Hugging Face repo id {repo:?} is not ORG/NAME with each part 1 to \
                 {MAX_HF_REPO_PART} letters, digits, '.', '_' or '-', not starting or ending \
                 with '.' or '-'"
            ));
        }
    }
    if repo.contains("..") || repo.contains("--") {
        return Err(format!(
            "Hugging Face repo id {repo:?} contains '..' or '--'"
        ));
    }
    if repo.ends_with(".git") {
        return Err(format!("Hugging Face repo id {repo:?} ends with '.git'"));
    }
    Ok(())
}

/// The repo id the `.hf` view shows `model` under: its `hf_repo`, else `modelfs/NAME`; `None`
/// when that default is not a valid repo id (a model name with `..` or `--`, say).
pub fn hf_repo_of(model: &str, entry: &ModelEntry) -> Option<String> {
    match &entry.hf_repo {
        Some(repo) => Some(repo.clone()),
        None => {
            let repo = format!("modelfs/{model}");
            check_hf_repo(&repo).is_ok().then_some(repo)
        }
    }
}

/// Latest `added_unix` a registry may claim (the year 10,000): later ones are damage or lies, and
/// would overflow time arithmetic.
const MAX_PLAUSIBLE_UNIX: u64 = 253_402_300_800;

/// Checks everything a registry read from a store claims, before anything uses it: every model and
/// version name follows the name rules, every model has a version and every version a file, a
/// single-file version has exactly one, file paths are valid and unique. A registry on a stick or
/// a share may lie in any field; the reason names the offending entry (quoted, so control
/// characters cannot reach a terminal). A model's Hugging Face repo id must be valid
/// ([`check_hf_repo`]).
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
            if let Some(release) = &version.release {
                release
                    .check_bounds()
                    .map_err(|e| format!("{model}@{name}: release {e}"))?;
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
        if let Some(current) = &entry.current
            && !versions.contains(current)
        {
            return Err(format!(
                "model {model:?} is rolled back to {current:?}, which it lacks"
            ));
        }
        if entry.keep == Some(0) {
            return Err(format!("model {model:?} keeps 0 versions"));
        }
        if let Some(repo) = &entry.hf_repo {
            check_hf_repo(repo).map_err(|e| format!("model {model:?}: {e}"))?;
        }
    }
    for (model, channels) in &registry.high_water {
        validate_name("model name", model).map_err(|e| e.to_string())?;
        for channel in channels.keys() {
            validate_name("channel", channel).map_err(|e| format!("model {model:?}: {e}"))?;
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
        None => current_version(entry),
        Some(version) => entry.versions.iter().find(|v| v.version == version),
    };
    let version_entry = found.ok_or_else(|| Error::UnknownVersion {
        model: model.to_owned(),
        version: version.unwrap_or("(newest)").to_owned(),
    })?;
    Ok((entry, version_entry))
}

/// The version a bare model name means: the one `rollback` chose, else the newest.
pub fn current_version(entry: &ModelEntry) -> Option<&VersionEntry> {
    match &entry.current {
        Some(current) => entry.versions.iter().find(|v| &v.version == current),
        None => entry.versions.last(),
    }
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
    registry.version = crate::format::registry::needed_version(registry);
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
            release: None,
        };
        let registry = |versions: Vec<VersionEntry>| {
            let mut registry = Registry::default();
            registry
                .models
                .insert("m".into(), ModelEntry::new(versions));
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
        let taken = |names: &[&str]| {
            ModelEntry::new(
                names
                    .iter()
                    .map(|n| VersionEntry {
                        version: n.to_string(),
                        added_unix: 0,
                        layout: Layout::Dir,
                        files: vec![],
                        release: None,
                    })
                    .collect(),
            )
        };
        assert_eq!(next_version_name(Some(&taken(&["v1"]))), "v2");
        assert_eq!(next_version_name(Some(&taken(&["v2", "x"]))), "v3");
        assert_eq!(next_version_name(Some(&taken(&["v3", "x"]))), "v4");
    }

    #[test]
    fn hf_repo_ids_are_checked() {
        for good in [
            "acme/tiny",
            "Org_1/Model-2.5b",
            "a/b",
            "sentence-transformers/all-MiniLM-L6-v2",
        ] {
            check_hf_repo(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
        let long = format!("acme/{}", "x".repeat(MAX_HF_REPO_PART + 1));
        for bad in [
            "tiny",
            "acme/",
            "/tiny",
            "acme//tiny",
            "acme/a/b",
            "acme/a..b",
            "acme/a--b",
            "acme/.tiny",
            "acme/tiny.",
            "-acme/tiny",
            "acme/tiny-",
            "acme/ti ny",
            "acme/tiny.git",
            "acme/tïny",
            "acme/ti:ny",
            "../tiny",
            &long,
        ] {
            assert!(check_hf_repo(bad).is_err(), "{bad:?} accepted");
        }
        check_hf_repo(&format!("acme/{}", "x".repeat(MAX_HF_REPO_PART))).unwrap();
    }

    #[test]
    fn the_repo_id_defaults_to_modelfs_slash_name_and_a_bad_one_is_refused() {
        let version = VersionEntry {
            version: "v1".into(),
            added_unix: 0,
            layout: Layout::File,
            files: vec![crate::format::registry::FileEntry {
                path: "m.gguf".into(),
                size: 1,
                manifest: crate::id::ManifestId::of(b"m"),
            }],
            release: None,
        };
        let mut entry = ModelEntry::new(vec![version]);
        assert_eq!(hf_repo_of("tiny", &entry).as_deref(), Some("modelfs/tiny"));
        assert_eq!(hf_repo_of("a--b", &entry), None, "no valid default");
        entry.hf_repo = Some("acme/tiny".into());
        assert_eq!(hf_repo_of("a--b", &entry).as_deref(), Some("acme/tiny"));
        let mut registry = Registry::default();
        registry.models.insert("m".into(), entry.clone());
        check(&registry).unwrap();
        entry.hf_repo = Some("acme/../etc".into());
        registry.models.insert("m".into(), entry);
        let reason = check(&registry).unwrap_err();
        assert!(reason.contains("acme/../etc"), "{reason}");
    }
}
