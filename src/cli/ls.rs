//! `modelfs ls [NAME] [--json]`.

use std::path::Path;
use std::process::ExitCode;

use modelfs::Access;
use modelfs::format::registry::VersionEntry;
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
}

#[derive(Serialize)]
struct ModelJson<'a> {
    name: &'a str,
    /// Path of the newest version in the mount.
    mounted_as: String,
    versions: Vec<VersionJson<'a>>,
}

#[derive(Serialize)]
struct VersionJson<'a> {
    version: &'a str,
    added_unix: u64,
    size: u64,
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

    let mut models = Vec::new();
    for (name, entry) in selected {
        let newest = entry
            .versions
            .last()
            .expect("a registered model has a version");
        let mut versions = Vec::new();
        for version in &entry.versions {
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
                files,
            });
        }
        models.push(ModelJson {
            name,
            mounted_as: mounted_name(name, newest),
            versions,
        });
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&models)?);
    } else if detailed {
        for model in &models {
            for version in &model.versions {
                println!(
                    "{}@{}  added {}  {} file{}  {}",
                    model.name,
                    version.version,
                    human_time(version.added_unix),
                    version.files.len(),
                    if version.files.len() == 1 { "" } else { "s" },
                    human_bytes(version.size),
                );
                for file in &version.files {
                    println!(
                        "  {:<40} {:>10}  sha256:{}",
                        file.path,
                        human_bytes(file.size),
                        file.sha256.as_deref().unwrap_or("")
                    );
                }
            }
        }
    } else if models.is_empty() {
        println!("no models yet; add one with `modelfs add NAME PATH`");
    } else {
        println!(
            "{:<28} {:>8} {:>7} {:>6} {:>10}  {:<16}  MOUNTED AS",
            "MODEL", "VERSIONS", "NEWEST", "FILES", "SIZE", "ADDED"
        );
        for model in &models {
            let newest = model
                .versions
                .last()
                .expect("a registered model has a version");
            println!(
                "{:<28} {:>8} {:>7} {:>6} {:>10}  {:<16}  {}",
                model.name,
                model.versions.len(),
                newest.version,
                newest.files.len(),
                human_bytes(newest.size),
                human_time(newest.added_unix),
                model.mounted_as,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
