//! `modelfs sign NAME[@V] --key FILE [--channel C] [--expires 90d]`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use modelfs::Access;
use modelfs::audit::{self, Action, Change};
use modelfs::format::release::Statement;
use modelfs::store::now_unix;
use modelfs::store::registry::{ModelSpec, resolve, validate_name};
use modelfs::trust::release::{self, DEFAULT_CHANNEL, StatementTerms};

use super::key::SignerArgs;
use super::open_store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model version to sign (the current one if no version is named).
    #[arg(value_name = "NAME[@VERSION]")]
    spec: ModelSpec,
    #[command(flatten)]
    signer: SignerArgs,
    /// Release channel; sequence numbers grow per model and channel [default: the channel of
    /// the version's statement if it has one, else stable].
    #[arg(long)]
    channel: Option<String>,
    /// How long the statement is valid: e.g. 90d, 12h, 4w, or never.
    #[arg(long, value_name = "DURATION", default_value = "never", value_parser = parse_expiry)]
    expires: Expiry,
}

/// How long a statement stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Never,
    After(u64),
}

fn parse_expiry(text: &str) -> Result<Expiry, String> {
    if text == "never" {
        return Ok(Expiry::Never);
    }
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "{text:?} is not a duration: use e.g. 90d, 12h, 4w or never"
            ));
        }
    };
    let count: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration: use e.g. 90d, 12h, 4w or never"))?;
    count
        .checked_mul(seconds)
        .filter(|&s| s > 0 && s < 100 * 365 * 86_400)
        .map(Expiry::After)
        .ok_or_else(|| format!("{text:?} is not between one second and a hundred years"))
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.spec.file.is_none(),
        "sign signs whole versions, not files: use NAME or NAME@VERSION"
    );
    if let Some(channel) = &args.channel {
        validate_name("channel", channel)?;
    }
    let signer = args.signer.open()?;
    let store = open_store(store_dir, Access::Write)?;
    let now = now_unix();
    let (version_name, statement) = store.update_registry(|registry| {
        let (_, version) = resolve(registry, &args.spec.model, args.spec.version.as_deref())?;
        let version = version.clone();
        let existing = version
            .release
            .as_ref()
            .and_then(|r| Statement::decode(&r.statement).ok());
        let channel = args
            .channel
            .clone()
            .or_else(|| existing.as_ref().map(|s| s.channel.clone()))
            .unwrap_or_else(|| DEFAULT_CHANNEL.to_owned());
        // Another key co-signs the statement there is, unless this signer asks for other terms.
        let statement = match existing {
            Some(s) if s.channel == channel && args.expires == Expiry::Never => s,
            _ => {
                let terms = StatementTerms {
                    sequence: release::next_sequence(registry, &args.spec.model, &channel),
                    channel,
                    created_unix: now,
                    expires_unix: match args.expires {
                        Expiry::Never => None,
                        Expiry::After(seconds) => Some(now + seconds),
                    },
                };
                release::make_statement(&args.spec.model, &version, terms, &mut |id| {
                    store.manifest(id)
                })?
            }
        };
        let signed = release::add_signature(version.release.clone(), &statement, signer.as_ref())?;
        release::raise_high_water(registry, &statement);
        let entry = registry
            .models
            .get_mut(&args.spec.model)
            .and_then(|m| m.versions.iter_mut().find(|v| v.version == version.version))
            .expect("resolved above");
        entry.release = Some(signed);
        Ok((version.version, statement))
    })?;
    let release = format!("{}@{version_name}", args.spec.model);
    audit::record(
        &store,
        Change::new(Action::Sign)
            .release(&args.spec.model, Some(&version_name))
            .digest(signer.key_id().to_string())
            .digest(
                blake3::hash(statement.encode().as_bytes())
                    .to_hex()
                    .to_string(),
            )
            .detail(format!(
                "channel {} sequence {}",
                statement.channel, statement.sequence
            )),
    )
    .with_context(|| format!("signed {release}, but could not log it"))?;
    out!(
        "signed {release} with key {}: channel {}, sequence {}, {}",
        signer.key_id(),
        statement.channel,
        statement.sequence,
        match statement.expires_unix {
            Some(at) => format!("expires {}", super::human_time(at)),
            None => "never expires".to_owned(),
        }
    );
    Ok(ExitCode::SUCCESS)
}
