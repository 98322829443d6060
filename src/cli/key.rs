//! `modelfs key new|trust|untrust|ls|policy`, and the signing-key options `sign` and `audit seal`
//! share.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use modelfs::Access;
use modelfs::audit::{self, Action, Change};
use modelfs::store::now_unix;
use modelfs::trust::keys::{self, FileSigner, Passphrase};
use modelfs::trust::{Signer, pkcs11, policy};

use super::{human_time, open_store};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Make a new Ed25519 key pair: NAME.pub (give it to sites) and NAME.key (keep it secret),
    /// or a key pair inside an HSM with --pkcs11-module.
    New(NewArgs),
    /// Trust releases signed by the key in PUBKEY_FILE (a minisign .pub file).
    Trust(TrustArgs),
    /// Stop trusting a key (by the id `key ls` shows).
    Untrust(UntrustArgs),
    /// List the keys this store trusts and its policy.
    Ls(LsArgs),
    /// Set how many distinct trusted keys must sign a release.
    Policy(PolicyArgs),
}

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// Name of the key (files NAME.pub and NAME.key; the label in an HSM).
    name: String,
    /// Folder to write the key files into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Leave the secret key without a passphrase (for keys kept on an offline machine or in a
    /// CI secret; anyone who copies the file can sign).
    #[arg(long)]
    no_password: bool,
    /// File whose first line is the passphrase [default: MODELFS_KEY_PASSPHRASE, else asked].
    #[arg(long, value_name = "FILE", conflicts_with = "no_password")]
    passphrase_file: Option<PathBuf>,
    /// Make the key pair inside this PKCS#11 module's token instead (the secret key never
    /// leaves it); NAME is its label, NAME.pub is written to --out.
    #[arg(long, value_name = "PATH")]
    pkcs11_module: Option<PathBuf>,
    /// File whose first line is the token's user PIN [default: MODELFS_PKCS11_PIN].
    #[arg(long, value_name = "FILE")]
    pin_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    /// A minisign public key file.
    #[arg(value_name = "PUBKEY_FILE")]
    key: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct UntrustArgs {
    /// The key's id, as `key ls` shows it.
    id: String,
}

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    /// Signatures by distinct trusted keys a release needs.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    threshold: u32,
}

/// The key a command signs with: a secret key file, or a key in an HSM.
#[derive(Debug, Clone, clap::Args)]
pub struct SignerArgs {
    /// Secret key file (from `modelfs key new`, or minisign's own).
    #[arg(long, value_name = "FILE", required_unless_present = "pkcs11_module")]
    key: Option<PathBuf>,
    /// File whose first line is the key's passphrase [default: MODELFS_KEY_PASSPHRASE, else
    /// asked on a terminal].
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// Sign with a key in an HSM through this PKCS#11 module (e.g.
    /// /usr/lib/softhsm/libsofthsm2.so) instead of a key file.
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "key",
        requires = "key_label"
    )]
    pkcs11_module: Option<PathBuf>,
    /// Label of the key in the token.
    #[arg(long, value_name = "LABEL")]
    key_label: Option<String>,
    /// File whose first line is the token's user PIN [default: MODELFS_PKCS11_PIN].
    #[arg(long, value_name = "FILE")]
    pin_file: Option<PathBuf>,
}

impl SignerArgs {
    /// Opens the signing key.
    pub fn open(&self) -> anyhow::Result<Box<dyn Signer>> {
        match (&self.pkcs11_module, &self.key) {
            (Some(module), _) => {
                let label = self.key_label.as_deref().unwrap_or_default();
                let pin = read_pin(self.pin_file.as_deref())?;
                Ok(Box::new(pkcs11::open(module, label, &pin)?))
            }
            (None, Some(key)) => {
                let passphrase = Passphrase::from_env_or_file(self.passphrase_file.as_deref())?;
                Ok(Box::new(FileSigner::open(key, &passphrase)?))
            }
            (None, None) => anyhow::bail!("name a key with --key FILE or --pkcs11-module"),
        }
    }
}

/// The token PIN: the first line of `file`, else MODELFS_PKCS11_PIN.
fn read_pin(file: Option<&Path>) -> anyhow::Result<String> {
    match file {
        Some(file) => Ok(super::net::read_token(file)?),
        None => std::env::var("MODELFS_PKCS11_PIN")
            .context("the token's PIN is needed: set MODELFS_PKCS11_PIN or pass --pin-file FILE"),
    }
}

pub fn run(store_dir: &Path, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::New(args) => new(args),
        Command::Trust(args) => {
            let key = keys::read_public_key(&args.key)?;
            let store = open_store(store_dir, Access::Write)?;
            let added = store.update_trust(|p| policy::trust(p, &key, now_unix()))?;
            if added {
                audit::record(
                    &store,
                    Change::new(Action::KeyTrust)
                        .digest(key.id.to_string())
                        .detail(key.comment.clone()),
                )?;
                out!("trusting key {} ({})", key.id, key.comment);
            } else {
                out!("key {} is already trusted", key.id);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Untrust(args) => {
            let store = open_store(store_dir, Access::Write)?;
            store.update_trust(|p| policy::untrust(p, &args.id))?;
            audit::record(
                &store,
                Change::new(Action::KeyUntrust).digest(args.id.clone()),
            )?;
            out!("no longer trusting key {}", args.id);
            Ok(ExitCode::SUCCESS)
        }
        Command::Ls(args) => {
            let store = open_store(store_dir, Access::Read)?;
            let policy = store.trust_policy()?;
            if args.json {
                out!("{}", serde_json::to_string_pretty(&policy)?);
            } else if policy.keys.is_empty() {
                out!("no trusted keys: releases are not required to be signed");
            } else {
                out!(
                    "a release needs {} of these {} key(s):",
                    policy.threshold,
                    policy.keys.len()
                );
                for key in &policy.keys {
                    out!(
                        "  {}  trusted {}  {}",
                        key.id,
                        human_time(key.added_unix),
                        key.comment
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(args) => {
            let store = open_store(store_dir, Access::Write)?;
            store.update_trust(|p| policy::set_threshold(p, args.threshold))?;
            audit::record(
                &store,
                Change::new(Action::KeyPolicy).detail(format!("threshold {}", args.threshold)),
            )?;
            out!(
                "a release now needs signatures by {} trusted key(s)",
                args.threshold
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    if let Some(module) = &args.pkcs11_module {
        let pin = read_pin(args.pin_file.as_deref())?;
        let signer = pkcs11::generate(module, &args.name, &pin)?;
        let path = args.out.join(format!("{}.pub", args.name));
        anyhow::ensure!(
            !path.exists(),
            "{} exists; pick another name or folder (keys are never overwritten)",
            path.display()
        );
        std::fs::write(&path, signer.public_key_text())
            .with_context(|| format!("cannot write {}", path.display()))?;
        out!(
            "made key {} in the token as {:?}; public key: {}",
            signer.key_id(),
            args.name,
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let passphrase = match args.no_password {
        true => Passphrase::None,
        false => match Passphrase::from_env_or_file(args.passphrase_file.as_deref())? {
            Passphrase::None => anyhow::bail!(
                "a passphrase is needed to protect the key: set MODELFS_KEY_PASSPHRASE, pass \
                 --passphrase-file FILE, run on a terminal, or pass --no-password"
            ),
            given => given,
        },
    };
    let (id, pub_path) = keys::generate(&args.out, &args.name, &passphrase)?;
    out!(
        "made key {id}: public key {} (give it to sites: `modelfs key trust {}`), secret key {}",
        pub_path.display(),
        pub_path.file_name().unwrap_or_default().to_string_lossy(),
        args.out.join(format!("{}.key", args.name)).display()
    );
    Ok(ExitCode::SUCCESS)
}
