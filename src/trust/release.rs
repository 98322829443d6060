//! Release statements: making them from a store (`sign`) and judging them (`import`, `pull`,
//! `mount --require-signed`, `verify`, `ls`).
//!
//! Owns the rules a release passes: its statement decodes (canonical, bounded), names this model
//! and version, lists exactly this version's files with the sizes, manifests and whole-file
//! digests the manifests hold; enough distinct trusted keys signed its text; it has not expired;
//! and its sequence number is above the highest this store has accepted for the model and
//! channel (the high-water mark, kept in the registry and never lowered). Checking touches only
//! the statement and the manifests, never the chunks: chunk hashes are checked as chunks are read
//! or copied, so a signature over the statement covers every byte without a second pass.

use crate::error::Result;
use crate::format::manifest::Manifest;
use crate::format::registry::{Registry, VersionEntry};
use crate::format::release::{
    RELEASE_FORMAT_TAG, RELEASE_FORMAT_VERSION, Release, Statement, StatementFile,
};
use crate::id::{Digest, ManifestId};
use crate::trust::policy::Keyring;
use crate::trust::{KeyId, Refusal, Signer, TrustError};

/// The channel a release is signed for when none is named.
pub const DEFAULT_CHANNEL: &str = "stable";

/// What a new statement says besides the files.
#[derive(Debug, Clone)]
pub struct StatementTerms {
    /// Release channel.
    pub channel: String,
    /// Sequence number.
    pub sequence: u64,
    /// Unix seconds now.
    pub created_unix: u64,
    /// Unix seconds it expires, if ever.
    pub expires_unix: Option<u64>,
}

/// The statement for `model`'s `version`, whose manifests `manifest` returns.
pub fn make_statement(
    model: &str,
    version: &VersionEntry,
    terms: StatementTerms,
    manifest: &mut dyn FnMut(&ManifestId) -> Result<Manifest>,
) -> Result<Statement> {
    let mut files = Vec::with_capacity(version.files.len());
    for file in &version.files {
        let m = manifest(&file.manifest)?;
        files.push(StatementFile {
            path: file.path.clone(),
            size: file.size,
            blake3: Digest(m.blake3),
            sha256: Digest(m.sha256),
            manifest: file.manifest,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Statement {
        format: RELEASE_FORMAT_TAG.into(),
        version: RELEASE_FORMAT_VERSION,
        model: model.into(),
        model_version: version.version.clone(),
        channel: terms.channel,
        sequence: terms.sequence,
        created_unix: terms.created_unix,
        expires_unix: terms.expires_unix,
        layout: version.layout,
        files,
    })
}

/// The trusted comment every release signature carries: readable with `minisign -V` alone.
pub fn trusted_comment(statement: &Statement) -> String {
    format!(
        "modelfs release {}@{} channel {} sequence {}",
        statement.model, statement.model_version, statement.channel, statement.sequence
    )
}

/// Signs `statement` with `signer` and adds the signature to `release` (a new release if `None`
/// or a release of another statement). Signing the same statement twice with one key is a no-op.
pub fn add_signature(
    release: Option<Release>,
    statement: &Statement,
    signer: &dyn Signer,
) -> Result<Release> {
    let text = statement.encode();
    let mut release = match release {
        Some(release) if release.statement == text => release,
        _ => Release {
            statement: text,
            signatures: Vec::new(),
        },
    };
    let id = signer.key_id();
    if release
        .signatures
        .iter()
        .any(|s| super::keys::signature_key_id(s) == Some(id))
    {
        return Ok(release);
    }
    if release.signatures.len() >= crate::format::release::MAX_SIGNATURES {
        return Err(TrustError::Policy(format!(
            "{}@{} already carries {} signatures, the most a release may",
            statement.model,
            statement.model_version,
            release.signatures.len()
        ))
        .into());
    }
    release
        .signatures
        .push(signer.sign(release.statement.as_bytes(), &trusted_comment(statement))?);
    Ok(release)
}

/// The next sequence number for `model` on `channel`: above the high-water mark and above every
/// statement the store holds for it.
pub fn next_sequence(registry: &Registry, model: &str, channel: &str) -> u64 {
    let held = registry
        .models
        .get(model)
        .into_iter()
        .flat_map(|m| &m.versions)
        .filter_map(|v| v.release.as_ref())
        .filter_map(|r| Statement::decode(&r.statement).ok())
        .filter(|s| s.channel == channel)
        .map(|s| s.sequence);
    held.chain([high_water(registry, model, channel)])
        .max()
        .unwrap_or(0)
        .saturating_add(1)
}

/// The highest sequence number accepted for `model` on `channel` (0: none).
pub fn high_water(registry: &Registry, model: &str, channel: &str) -> u64 {
    registry
        .high_water
        .get(model)
        .and_then(|c| c.get(channel))
        .copied()
        .unwrap_or(0)
}

/// Raises the high-water mark of the statement's model and channel to its sequence number (never
/// lowers it).
pub fn raise_high_water(registry: &mut Registry, statement: &Statement) {
    let mark = registry
        .high_water
        .entry(statement.model.clone())
        .or_default()
        .entry(statement.channel.clone())
        .or_insert(0);
    *mark = (*mark).max(statement.sequence);
}

/// A release that passed [`check`]: its statement and the trusted keys that signed it.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The decoded statement.
    pub statement: Statement,
    /// Distinct trusted keys whose signatures verify.
    pub signers: Vec<KeyId>,
}

/// Decodes a release's statement and checks that it describes `model`'s `version` exactly.
/// `manifest` returns the version's manifests (already checked against their ids).
pub fn check_statement(
    model: &str,
    version: &VersionEntry,
    manifest: &mut dyn FnMut(&ManifestId) -> Result<Manifest>,
) -> std::result::Result<Statement, Refusal> {
    let release = version.release.as_ref().ok_or(Refusal::Unsigned)?;
    release
        .check_bounds()
        .map_err(|e| Refusal::Malformed(e.to_string()))?;
    let statement =
        Statement::decode(&release.statement).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let mismatch = |what: String| Err(Refusal::Mismatch(what));
    if statement.model != model || statement.model_version != version.version {
        return mismatch(format!(
            "it is the statement of {}@{}",
            statement.model, statement.model_version
        ));
    }
    crate::store::registry::validate_name("channel", &statement.channel)
        .map_err(|e| Refusal::Malformed(e.to_string()))?;
    if statement.layout != version.layout {
        return mismatch("it states another layout (file or folder)".into());
    }
    if statement.files.len() != version.files.len() {
        return mismatch(format!(
            "it lists {} files, the version has {}",
            statement.files.len(),
            version.files.len()
        ));
    }
    let mut files: Vec<_> = version.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for (stated, file) in statement.files.iter().zip(files) {
        if stated.path != file.path || stated.size != file.size || stated.manifest != file.manifest
        {
            return mismatch(format!(
                "it lists {:?} ({} bytes, manifest {}), the version has {:?} ({} bytes, manifest {})",
                stated.path,
                stated.size,
                stated.manifest.short(),
                file.path,
                file.size,
                file.manifest.short()
            ));
        }
        let m = manifest(&file.manifest).map_err(|e| Refusal::Mismatch(e.to_string()))?;
        if m.blake3 != stated.blake3.0 || m.sha256 != stated.sha256.0 || m.size != stated.size {
            return mismatch(format!(
                "the digests it lists for {:?} are not the file's",
                stated.path
            ));
        }
    }
    Ok(statement)
}

/// Checks the release of `model`'s `version` against `keyring` as of `now` (Unix seconds): the
/// statement describes the version ([`check_statement`]), enough trusted keys signed it, and it
/// has not expired. The sequence number is checked separately ([`check_sequence`]): a mount shows
/// a signed older version, an import does not take one.
pub fn check(
    model: &str,
    version: &VersionEntry,
    keyring: &Keyring,
    now: u64,
    manifest: &mut dyn FnMut(&ManifestId) -> Result<Manifest>,
) -> std::result::Result<Accepted, Refusal> {
    let statement = check_statement(model, version, manifest)?;
    let release = version
        .release
        .as_ref()
        .expect("check_statement found a release");
    let signers = keyring.check(release.statement.as_bytes(), &release.signatures)?;
    if let Some(expires) = statement.expires_unix
        && expires <= now
    {
        return Err(Refusal::Expired(expires));
    }
    Ok(Accepted { statement, signers })
}

/// Refuses a statement whose sequence number is not above the registry's high-water mark for its
/// model and channel.
pub fn check_sequence(
    registry: &Registry,
    statement: &Statement,
) -> std::result::Result<(), Refusal> {
    let highest = high_water(registry, &statement.model, &statement.channel);
    if statement.sequence <= highest {
        return Err(Refusal::Downgrade {
            sequence: statement.sequence,
            channel: statement.channel.clone(),
            highest,
        });
    }
    Ok(())
}

/// Wraps a refusal with the release it concerns.
pub fn refused(model: &str, version: &str, reason: Refusal) -> TrustError {
    TrustError::Refused {
        release: format!("{model}@{version}"),
        reason,
    }
}

/// How a version's release looks to a store, for `ls` and `verify`, which show rather than
/// refuse.
#[derive(Debug, Clone)]
pub struct ReleaseStatus {
    /// The statement, if it decodes.
    pub statement: Option<Statement>,
    /// Each signature's key, and whether it verifies against a trusted key.
    pub signers: Vec<(KeyId, bool)>,
    /// What the policy makes of it: with no trusted keys, only whether the statement matches the
    /// files.
    pub verdict: std::result::Result<(), Refusal>,
}

/// The status of `model`'s `version`'s release, `None` if it has none.
pub fn status(
    model: &str,
    version: &VersionEntry,
    keyring: &Keyring,
    now: u64,
    manifest: &mut dyn FnMut(&ManifestId) -> Result<Manifest>,
) -> Option<ReleaseStatus> {
    let release = version.release.as_ref()?;
    let statement = Statement::decode(&release.statement).ok();
    let signers = keyring.signers(release.statement.as_bytes(), &release.signatures);
    let verdict = match keyring.is_active() {
        true => check(model, version, keyring, now, manifest).map(|_| ()),
        false => check_statement(model, version, manifest).map(|_| ()),
    };
    Some(ReleaseStatus {
        statement,
        signers,
        verdict,
    })
}
