//! `modelfs ls [NAME] [--json]`.

use std::path::Path;
use std::process::ExitCode;

use std::collections::HashMap;

use modelfs::Access;
use modelfs::format::registry::VersionEntry;
use modelfs::stats::{ModelUsage, Usage, model_usage};
use modelfs::store::registry::{mounted_name, resolve};
use serde::Serialize;

use super::{human_bytes, human_time, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show every version and file of this model.
    name: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also show, per model and version, the bytes shared with others and unique to it (what
    /// `rm` would free).
    #[arg(short, long)]
    long: bool,
}

#[derive(Serialize)]
struct ModelJson<'a> {
    name: &'a str,
    /// Path of the newest version in the mount.
    mounted_as: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    versions: Vec<VersionJson<'a>>,
}

#[derive(Serialize)]
struct VersionJson<'a> {
    version: &'a str,
    added_unix: u64,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    files: Vec<FileJson<'a>>,
}

#[derive(Serialize)]
struct FileJson<'a> {
    path: &'a str,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blake3: Option<String>,
}

fn version_size(version: &VersionEntry) -> u64 {
    version.files.iter().map(|f| f.size).sum()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn usage_line(usage: &Usage) -> String {
    format!(
        "{} logical; {} shared with other models or versions, {} unique (rm frees {})",
        human_bytes(usage.logical_bytes),
        human_bytes(usage.shared_bytes),
        human_bytes(usage.unique_bytes),
        human_bytes(usage.unique_stored_bytes)
    )
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    let store = open_store(store_dir, Access::Read)?;
    let registry = store.registry()?;
    let detailed = args.name.is_some();
    let selected: Vec<_> = match &args.name {
        Some(name) => {
            resolve(&registry, name, None)?;
            registry.models.iter().filter(|(n, _)| *n == name).collect()
        }
        None => registry.models.iter().collect(),
    };

    let usage: HashMap<String, ModelUsage> = match args.long {
        true => model_usage(&store)?
            .into_iter()
            .map(|u| (u.model.clone(), u))
            .collect(),
        false => HashMap::new(),
    };
    let mut models = Vec::new();
    for (name, entry) in selected {
        let model_usage = usage.get(name.as_str());
        let newest = entry
            .versions
            .last()
            .expect("a registered model has a version");
        let mut versions = Vec::new();
        for (i, version) in entry.versions.iter().enumerate() {
            let mut files = Vec::new();
            for file in &version.files {
                let digests = if detailed {
                    Some(store.manifest(&file.manifest)?)
                } else {
                    None
                };
                files.push(FileJson {
                    path: &file.path,
                    size: file.size,
                    sha256: digests.as_ref().map(|m| hex(&m.sha256)),
                    blake3: digests.as_ref().map(|m| hex(&m.blake3)),
                });
            }
            versions.push(VersionJson {
                version: &version.version,
                added_unix: version.added_unix,
                size: version_size(version),
                usage: model_usage.map(|u| u.versions[i].1),
                files,
            });
        }
        models.push(ModelJson {
            name,
            mounted_as: mounted_name(name, newest),
            usage: model_usage.map(|u| u.total),
            versions,
        });
    }

    if args.json {
        out!("{}", serde_json::to_string_pretty(&models)?);
    } else if detailed {
        for model in &models {
            for version in &model.versions {
                out!(
                    "{}@{}  added {}  {} file{}  {}",
                    model.name,
                    version.version,
                    human_time(version.added_unix),
                    version.files.len(),
                    if version.files.len() == 1 { "" } else { "s" },
                    human_bytes(version.size),
                );
                if let Some(usage) = version.usage {
                    out!("  {}", usage_line(&usage));
                }
                for file in &version.files {
                    out!(
                        "  {:<40} {:>10}  sha256:{}",
                        file.path,
                        human_bytes(file.size),
                        file.sha256.as_deref().unwrap_or("")
                    );
                }
            }
        }
    } else if models.is_empty() {
        out!("no models yet; add one with `modelfs add NAME PATH`");
    } else {
        out!(
            "{:<28} {:>8} {:>7} {:>6} {:>10}  {:<16}  MOUNTED AS",
            "MODEL",
            "VERSIONS",
            "NEWEST",
            "FILES",
            "SIZE",
            "ADDED"
        );
        for model in &models {
            let newest = model
                .versions
                .last()
                .expect("a registered model has a version");
            out!(
                "{:<28} {:>8} {:>7} {:>6} {:>10}  {:<16}  {}",
                model.name,
                model.versions.len(),
                newest.version,
                newest.files.len(),
                human_bytes(newest.size),
                human_time(newest.added_unix),
                model.mounted_as,
            );
            if let Some(usage) = model.usage {
                out!("  all versions: {}", usage_line(&usage));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
