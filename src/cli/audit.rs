//! `modelfs audit [--json]`, `audit verify [--key PUBFILE] [--seal FILE]` and `audit seal`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use modelfs::Access;
use modelfs::audit::{self, Logged};
use modelfs::trust::keys;

use super::key::SignerArgs;
use super::{human_time, open_store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the entries as a JSON array, each exactly as logged.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Check the log's hash chain and its seal: name the first entry that was edited, removed,
    /// reordered or cut off. Exits non-zero if one was.
    Verify(VerifyArgs),
    /// Sign the log's head (its entry count and last entry's hash) into STORE/audit.seal, so that
    /// cutting entries off the end shows too.
    Seal(SealArgs),
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Check the seal's signature against this minisign public key instead of the keys the
    /// store trusts.
    #[arg(long, value_name = "PUBKEY_FILE")]
    key: Option<PathBuf>,
    /// Check against this seal (a copy kept elsewhere) instead of STORE/audit.seal.
    #[arg(long, value_name = "FILE")]
    seal: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct SealArgs {
    #[command(flatten)]
    signer: SignerArgs,
}

pub fn run(store_dir: &Path, args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        None => show(store_dir, args.json),
        Some(Sub::Verify(verify)) => {
            anyhow::ensure!(!args.json, "--json is for listing the log, not for verify");
            run_verify(store_dir, verify)
        }
        Some(Sub::Seal(seal)) => {
            anyhow::ensure!(!args.json, "--json is for listing the log, not for seal");
            run_seal(store_dir, seal)
        }
    }
}

/// Lists the entries, streaming: a log of any length prints in bounded memory.
fn show(store_dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let store = open_store(store_dir, Access::Read)?;
    let mut entries = audit::entries(&store.paths().audit())?;
    if json {
        out!("[");
        let mut pending: Option<Logged> = None;
        for logged in entries {
            let logged = logged?;
            if let Some(before) = pending.replace(logged) {
                out!("{},", before.text);
            }
        }
        if let Some(last) = pending {
            out!("{}", last.text);
        }
        out!("]");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(first) = entries.next().transpose()? else {
        out!("the audit log is empty");
        return Ok(ExitCode::SUCCESS);
    };
    out!(
        "{:>5}  {:<16}  {:<11}  {:<12}  {:<24}  DETAIL",
        "SEQ",
        "TIME (UTC)",
        "ACTION",
        "USER",
        "MODEL@VERSION"
    );
    for logged in std::iter::once(Ok(first)).chain(entries) {
        let entry = logged?.entry;
        out!(
            "{:>5}  {:<16}  {:<11}  {:<12}  {:<24}  {}",
            entry.seq,
            human_time(entry.time),
            entry.action,
            entry.user,
            entry.release(),
            entry.detail
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_verify(store_dir: &Path, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(store_dir, Access::Read)?;
    let key = args.key.as_deref().map(keys::read_public_key).transpose()?;
    let verified = audit::verify(&store, args.seal.as_deref(), key.as_ref())?;
    let chain = &verified.chain;
    match &verified.seal {
        Some(seal) => out!(
            "audit log intact: {} entries, sealed at entry {} by key {} on {}{}",
            chain.entries,
            seal.entries,
            seal.key,
            human_time(seal.time),
            match chain.entries.saturating_sub(seal.entries) {
                0 => String::new(),
                1 => format!(" (entry {} is newer than the seal)", chain.entries),
                _ => format!(
                    " (entries {} to {} are newer than the seal)",
                    seal.entries + 1,
                    chain.entries
                ),
            }
        ),
        None => out!("audit log intact: {} entries, not sealed", chain.entries),
    }
    for note in &chain.notes {
        out!("note: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

fn run_seal(store_dir: &Path, args: SealArgs) -> anyhow::Result<ExitCode> {
    let signer = args.signer.open()?;
    let store = open_store(store_dir, Access::Write)?;
    let sealed = audit::seal(&store, signer.as_ref())?;
    out!(
        "sealed the audit log: entries 1 to {} (the last one records this seal), signed by key {} \
         into {}",
        sealed.entries,
        sealed.key,
        store.paths().audit_seal().display()
    );
    let id = sealed.key.to_string();
    if !store.trust_policy()?.keys.iter().any(|k| k.id == id) {
        out!(
            "note: this store does not trust key {id}; check the seal with `modelfs audit verify \
             --key KEY.pub`"
        );
    }
    Ok(ExitCode::SUCCESS)
}
