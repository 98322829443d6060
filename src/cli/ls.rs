//! `modelfs ls [NAME] [--json]`.

use std::path::Path;
use std::process::ExitCode;

use std::collections::HashMap;

use modelfs::Access;
use modelfs::format::pins::Pin;
use modelfs::format::registry::VersionEntry;
use modelfs::pin::PinArea;
use modelfs::stats::{ModelUsage, Usage, model_usage};
use modelfs::store::now_unix;
use modelfs::store::registry::{current_version, hf_repo_of, mounted_name, resolve};
use modelfs::trust::release::{ReleaseStatus, status};
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
    /// Hugging Face repo id the mount's `.hf/hub` view shows the model under (`null`: none, its
    /// default `modelfs/NAME` is not a valid repo id).
    hf_repo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    versions: Vec<VersionJson<'a>>,
}

#[derive(Serialize)]
struct VersionJson<'a> {
    version: &'a str,
    added_unix: u64,
    size: u64,
    /// Whether a bare name means this version.
    current: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    release: Option<ReleaseJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    /// Whether the version is pinned (`modelfs pin`, or the mount's `--pin-budget`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pinned: Option<PinJson>,
    files: Vec<FileJson<'a>>,
}

#[derive(Serialize)]
struct PinJson {
    /// Pinned by a mount's `--pin-budget` (evicted when the budget needs room).
    auto: bool,
    /// Bytes of its pinned copies.
    size: u64,
    /// fs-verity is on for every copy: the kernel checks each page read.
    kernel_verified: bool,
    /// When a mount last opened it (unix seconds).
    used_unix: u64,
}

impl PinJson {
    fn new(pin: &Pin) -> PinJson {
        PinJson {
            auto: pin.auto,
            size: pin.files.iter().map(|f| f.size).sum(),
            kernel_verified: pin.files.iter().all(|f| f.verity.is_some()),
            used_unix: pin.used_unix,
        }
    }

    /// One word for the table: `pinned`, `auto`, with `+verity` when the kernel checks it.
    fn short(&self) -> String {
        format!(
            "{}{}",
            if self.auto { "auto" } else { "pinned" },
            if self.kernel_verified { "+verity" } else { "" }
        )
    }
}

#[derive(Serialize)]
struct ReleaseJson {
    channel: Option<String>,
    sequence: Option<u64>,
    expires_unix: Option<u64>,
    signers: Vec<SignerJson>,
    /// `ok`, or why the store's policy would refuse it.
    verdict: String,
}

#[derive(Serialize)]
struct SignerJson {
    key: String,
    /// Signed by a key this store trusts, and the signature verifies.
    trusted: bool,
}

impl ReleaseJson {
    fn new(status: ReleaseStatus) -> ReleaseJson {
        ReleaseJson {
            channel: status.statement.as_ref().map(|s| s.channel.clone()),
            sequence: status.statement.as_ref().map(|s| s.sequence),
            expires_unix: status.statement.as_ref().and_then(|s| s.expires_unix),
            signers: status
                .signers
                .iter()
                .map(|(key, trusted)| SignerJson {
                    key: key.to_string(),
                    trusted: *trusted,
                })
                .collect(),
            verdict: match &status.verdict {
                Ok(()) => "ok".into(),
                Err(reason) => reason.to_string(),
            },
        }
    }

    /// One word or two for the table: `stable#3 by KEY` or `BAD`.
    fn short(&self) -> String {
        if self.verdict != "ok" {
            return "REFUSED".into();
        }
        let keys: Vec<String> = self
            .signers
            .iter()
            .map(|s| match s.trusted {
                true => s.key.clone(),
                false => format!("{}(untrusted)", s.key),
            })
            .collect();
        format!(
            "{}#{} by {}",
            self.channel.as_deref().unwrap_or("?"),
            self.sequence.unwrap_or(0),
            keys.join(",")
        )
    }
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
    let keyring = store.keyring()?;
    let pin_area = PinArea::of(&store).ok();
    let pins = match &pin_area {
        Some(area) => area.table()?.pins,
        None => Vec::new(),
    };
    let pin_of = |model: &str, version: &str| {
        pins.iter()
            .find(|p| p.model == model && p.version == version)
            .map(PinJson::new)
    };
    let now = now_unix();
    let mut models = Vec::new();
    for (name, entry) in selected {
        let model_usage = usage.get(name.as_str());
        let current = current_version(entry).expect("a registered model has a version");
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
            let release = status(name, version, &keyring, now, &mut |id| store.manifest(id));
            versions.push(VersionJson {
                version: &version.version,
                added_unix: version.added_unix,
                size: version_size(version),
                current: version.version == current.version,
                release: release.map(ReleaseJson::new),
                usage: model_usage.map(|u| u.versions[i].1),
                pinned: pin_of(name, &version.version),
                files,
            });
        }
        models.push(ModelJson {
            name,
            mounted_as: mounted_name(name, current),
            hf_repo: hf_repo_of(name, entry),
            usage: model_usage.map(|u| u.total),
            versions,
        });
    }

    if args.json {
        out!("{}", serde_json::to_string_pretty(&models)?);
    } else if detailed {
        for model in &models {
            out!(
                "{}: Hugging Face repo {}",
                model.name,
                model
                    .hf_repo
                    .as_deref()
                    .unwrap_or("none (set one with add --hf-repo)")
            );
            for version in &model.versions {
                out!(
                    "{}@{}{}  added {}  {} file{}  {}  {}",
                    model.name,
                    version.version,
                    if version.current { " (current)" } else { "" },
                    human_time(version.added_unix),
                    version.files.len(),
                    if version.files.len() == 1 { "" } else { "s" },
                    human_bytes(version.size),
                    version
                        .release
                        .as_ref()
                        .map_or("unsigned".to_owned(), ReleaseJson::short),
                );
                if let Some(pin) = &version.pinned {
                    out!(
                        "  pinned{}: {} of plain files, {}",
                        if pin.auto {
                            " by a mount's --pin-budget"
                        } else {
                            ""
                        },
                        human_bytes(pin.size),
                        match pin.kernel_verified {
                            true => "kernel-verified (fs-verity)",
                            false => "checked by `modelfs verify` (no fs-verity here)",
                        }
                    );
                }
                if let Some(release) = version.release.as_ref().filter(|r| r.verdict != "ok") {
                    out!("  release refused: {}", release.verdict);
                }
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
            "{:<28} {:>8} {:>7} {:>6} {:>10}  {:<16}  {:<24}  {:<13}  SIGNED",
            "MODEL",
            "VERSIONS",
            "CURRENT",
            "FILES",
            "SIZE",
            "ADDED",
            "MOUNTED AS",
            "PINNED"
        );
        for model in &models {
            let current = model
                .versions
                .iter()
                .find(|v| v.current)
                .expect("a registered model has a current version");
            let pinned: Vec<String> = model
                .versions
                .iter()
                .filter_map(|v| {
                    let pin = v.pinned.as_ref()?;
                    Some(match v.current {
                        true => pin.short(),
                        false => format!("@{}", v.version),
                    })
                })
                .collect();
            out!(
                "{:<28} {:>8} {:>7} {:>6} {:>10}  {:<16}  {:<24}  {:<13}  {}",
                model.name,
                model.versions.len(),
                current.version,
                current.files.len(),
                human_bytes(current.size),
                human_time(current.added_unix),
                model.mounted_as,
                match pinned.is_empty() {
                    true => "-".to_owned(),
                    false => pinned.join(","),
                },
                current
                    .release
                    .as_ref()
                    .map_or("-".to_owned(), ReleaseJson::short),
            );
            if let Some(usage) = model.usage {
                out!("  all versions: {}", usage_line(&usage));
            }
        }
        if let Some(area) = pin_area.as_ref().filter(|_| !pins.is_empty()) {
            let size: u64 = pins.iter().flat_map(|p| &p.files).map(|f| f.size).sum();
            out!(
                "pinned: {} version{}, {} in {}",
                pins.len(),
                if pins.len() == 1 { "" } else { "s" },
                human_bytes(size),
                area.dir().display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
