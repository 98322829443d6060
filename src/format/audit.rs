//! Audit log layout: one entry per line of `audit.log`, and the seal of its head (`audit.seal`).
//!
//! Owns [`Entry`] (one JSON line of the log), [`Action`] (the names of the changes it records),
//! [`SealStatement`] (what `audit seal` signs) and [`Seal`] (the seal file: a statement and its
//! minisign signature), with the bounds a writer keeps and a reader enforces.
//!
//! Both encodings are canonical: compact JSON, fields in declaration order. [`Entry::decode`] and
//! [`SealStatement::decode`] accept only bytes that re-encode to themselves, so one entry has one
//! text, and the hash of that text (what the next entry's `prev` records) is well defined. A log
//! is untrusted input: a line is refused past [`MAX_LINE_LEN`] bytes before it is parsed, and no
//! string in an entry may hold a control character (a log shown on a terminal cannot carry escape
//! sequences). Reading the log, checking the chain and signing are `audit`; nothing here does I/O.

use serde::{Deserialize, Serialize};

use crate::id::{Digest, StoreId};

/// Value of an entry's `format` field.
pub const AUDIT_FORMAT_TAG: &str = "modelfs-audit";
/// Entry layout version written by this build.
pub const AUDIT_FORMAT_VERSION: u32 = 1;
/// Value of a seal statement's `format` field.
pub const SEAL_FORMAT_TAG: &str = "modelfs-audit-seal";
/// Seal layout version written by this build.
pub const SEAL_FORMAT_VERSION: u32 = 1;

/// Longest line (without its newline) a reader accepts. Entries built from [`clean`] fields within
/// the `MAX_*` limits below stay under half of it.
pub const MAX_LINE_LEN: usize = 16 << 10;
/// Most bytes of a model name or version name kept in an entry.
pub const MAX_NAME_LEN: usize = 256;
/// Most bytes of a user name kept in an entry.
pub const MAX_USER_LEN: usize = 64;
/// Most bytes of an entry's detail.
pub const MAX_DETAIL_LEN: usize = 1024;
/// Most digests an entry holds.
pub const MAX_DIGESTS: usize = 16;
/// Most bytes of one digest.
pub const MAX_DIGEST_LEN: usize = 128;
/// Largest seal file read.
pub const MAX_SEAL_LEN: u64 = 8 << 10;
/// Largest seal statement accepted.
pub const MAX_SEAL_STATEMENT_LEN: usize = 1024;
/// Largest seal signature accepted (a minisign signature with a short trusted comment is ~300 B).
pub const MAX_SEAL_SIGNATURE_LEN: usize = 1024;
/// The `prev` of the first entry, and the head of an empty log: 32 zero bytes.
pub const GENESIS: Digest = Digest([0; 32]);

/// What changed. The name an entry records is [`Action::name`]; a newer modelfs may record names
/// this one does not know, which read as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `add`.
    Add,
    /// `rm`.
    Rm,
    /// `import` (from a directory, a URL or an update pack).
    Import,
    /// `pull`.
    Pull,
    /// `sign`.
    Sign,
    /// `rollback`.
    Rollback,
    /// `keep`.
    Keep,
    /// `key trust`.
    KeyTrust,
    /// `key untrust`.
    KeyUntrust,
    /// `key policy`.
    KeyPolicy,
    /// `gc`.
    Gc,
    /// `audit seal`.
    Seal,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 12] = [
        Action::Add,
        Action::Rm,
        Action::Import,
        Action::Pull,
        Action::Sign,
        Action::Rollback,
        Action::Keep,
        Action::KeyTrust,
        Action::KeyUntrust,
        Action::KeyPolicy,
        Action::Gc,
        Action::Seal,
    ];

    /// The name an entry records (the serde name).
    pub fn name(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Rm => "rm",
            Action::Import => "import",
            Action::Pull => "pull",
            Action::Sign => "sign",
            Action::Rollback => "rollback",
            Action::Keep => "keep",
            Action::KeyTrust => "key-trust",
            Action::KeyUntrust => "key-untrust",
            Action::KeyPolicy => "key-policy",
            Action::Gc => "gc",
            Action::Seal => "seal",
        }
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Always [`AUDIT_FORMAT_TAG`].
    pub format: String,
    /// Layout version.
    pub version: u32,
    /// Position in the log, from 1; always the line number.
    pub seq: u64,
    /// Unix seconds when the change was recorded (the writer's clock).
    pub time: u64,
    /// What was done: an [`Action::name`] (lowercase letters, digits and '-').
    pub action: String,
    /// Who did it, as the writer saw it: `$SUDO_USER` under sudo, else the effective user's name.
    pub user: String,
    /// The effective uid of the writing process.
    pub uid: u32,
    /// The model, if one.
    pub model: Option<String>,
    /// The model's version, if one.
    pub model_version: Option<String>,
    /// Digests involved (manifest ids, statement hashes, key ids), as text.
    pub digests: Vec<String>,
    /// Anything else worth keeping.
    pub detail: String,
    /// blake3 of the previous line's bytes (without its newline); [`GENESIS`] for entry 1.
    pub prev: Digest,
}

/// Why an entry, a seal statement or a seal failed to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditFormatError {
    /// Larger than its format allows.
    #[error("{0}")]
    TooLarge(String),
    /// Not of this layout, or a field out of bounds.
    #[error("{0}")]
    Malformed(String),
    /// Written by a newer modelfs.
    #[error("format version {0} is newer than this modelfs reads; upgrade modelfs")]
    NewerVersion(u32),
    /// Valid, but not the text a writer produces.
    #[error("not in canonical form (not the text modelfs writes)")]
    NotCanonical,
}

/// blake3 of a log line's bytes (without its newline): what the next entry's `prev` records.
pub fn entry_hash(line: &[u8]) -> Digest {
    Digest(*blake3::hash(line).as_bytes())
}

/// `text` as an entry keeps it: control characters removed, cut to at most `max_bytes` bytes at a
/// character boundary.
pub fn clean(text: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_bytes));
    for c in text.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max_bytes {
            break;
        }
        out.push(c);
    }
    out
}

/// Parses JSON `bytes` of at most `max` bytes whose `format` must be `tag`, checking the version
/// against `supported` before the rest, so a newer layout reads as newer, not malformed.
fn decode_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    max: usize,
    tag: &str,
    supported: u32,
) -> Result<T, AuditFormatError> {
    if bytes.len() > max {
        return Err(AuditFormatError::TooLarge(format!(
            "{} bytes, more than the {max} its format allows",
            bytes.len()
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| AuditFormatError::Malformed(format!("not JSON: {e}")))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(tag) {
        return Err(AuditFormatError::Malformed(format!("not a {tag} object")));
    }
    let version = super::json_version(&value);
    if version > supported {
        return Err(AuditFormatError::NewerVersion(version));
    }
    if version == 0 {
        return Err(AuditFormatError::Malformed("version 0".into()));
    }
    serde_json::from_value(value).map_err(|e| AuditFormatError::Malformed(e.to_string()))
}

impl Entry {
    /// The canonical line: compact JSON, fields in declaration order, no newline.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("an Entry always serializes to JSON")
    }

    /// Decodes one line (without its newline), accepting only the canonical form of a valid entry.
    pub fn decode(line: &[u8]) -> Result<Entry, AuditFormatError> {
        let entry: Entry = decode_json(line, MAX_LINE_LEN, AUDIT_FORMAT_TAG, AUDIT_FORMAT_VERSION)?;
        if entry.seq == 0 {
            return Err(AuditFormatError::Malformed(
                "seq 0 (entries count from 1)".into(),
            ));
        }
        let action_ok = (1..=32).contains(&entry.action.len())
            && entry
                .action
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !action_ok {
            return Err(AuditFormatError::Malformed(format!(
                "action {:?} is not a name",
                entry.action
            )));
        }
        if entry.digests.len() > MAX_DIGESTS {
            return Err(AuditFormatError::Malformed(format!(
                "{} digests, more than {MAX_DIGESTS}",
                entry.digests.len()
            )));
        }
        let texts = [&entry.user, &entry.detail]
            .into_iter()
            .chain(entry.model.as_ref())
            .chain(entry.model_version.as_ref())
            .chain(&entry.digests);
        for text in texts {
            if text.chars().any(char::is_control) {
                return Err(AuditFormatError::Malformed(
                    "a field holds a control character".into(),
                ));
            }
        }
        if entry.encode().as_bytes() != line {
            return Err(AuditFormatError::NotCanonical);
        }
        Ok(entry)
    }

    /// `MODEL@VERSION`, `MODEL`, or `-` when the entry names no model.
    pub fn release(&self) -> String {
        match (&self.model, &self.model_version) {
            (Some(model), Some(version)) => format!("{model}@{version}"),
            (Some(model), None) => model.clone(),
            (None, _) => "-".to_owned(),
        }
    }
}

/// What `audit seal` signs: the number of entries the seal covers and the hash of the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealStatement {
    /// Always [`SEAL_FORMAT_TAG`].
    pub format: String,
    /// Layout version.
    pub version: u32,
    /// The store whose log this is; a seal of another store's log is refused.
    pub store: StoreId,
    /// Entries covered: 1 to `entries`.
    pub entries: u64,
    /// [`entry_hash`] of entry `entries` ([`GENESIS`] if 0).
    pub head: Digest,
    /// Unix seconds when the seal was made.
    pub time: u64,
}

impl SealStatement {
    /// The canonical text: compact JSON, fields in declaration order.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a SealStatement always serializes to JSON")
    }

    /// Decodes a statement's text, accepting only the canonical form.
    pub fn decode(text: &str) -> Result<SealStatement, AuditFormatError> {
        let statement: SealStatement = decode_json(
            text.as_bytes(),
            MAX_SEAL_STATEMENT_LEN,
            SEAL_FORMAT_TAG,
            SEAL_FORMAT_VERSION,
        )?;
        if statement.encode() != text {
            return Err(AuditFormatError::NotCanonical);
        }
        Ok(statement)
    }
}

/// The seal file: a statement's canonical text and the minisign signature made over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// The statement's canonical text ([`SealStatement::encode`]), exactly as signed.
    pub statement: String,
    /// The four-line minisign signature of `statement`.
    pub signature: String,
}

impl Seal {
    /// The file's bytes: pretty-printed JSON and a newline.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a Seal always serializes to JSON");
        bytes.push(b'\n');
        bytes
    }

    /// Decodes a seal file and its statement, checking their bounds.
    pub fn decode(bytes: &[u8]) -> Result<(Seal, SealStatement), AuditFormatError> {
        if bytes.len() as u64 > MAX_SEAL_LEN {
            return Err(AuditFormatError::TooLarge(format!(
                "{} bytes, more than the {MAX_SEAL_LEN} a seal may have",
                bytes.len()
            )));
        }
        let seal: Seal = serde_json::from_slice(bytes)
            .map_err(|e| AuditFormatError::Malformed(format!("not a seal: {e}")))?;
        if seal.signature.len() > MAX_SEAL_SIGNATURE_LEN {
            return Err(AuditFormatError::TooLarge(format!(
                "a signature of {} bytes, more than {MAX_SEAL_SIGNATURE_LEN}",
                seal.signature.len()
            )));
        }
        let statement = SealStatement::decode(&seal.statement)?;
        Ok((seal, statement))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &str = r#"{"format":"modelfs-audit","version":1,"seq":2,"time":1795000000,"action":"sign","user":"ops","uid":1000,"model":"llama","model_version":"v2","digests":["0123456789ABCDEF"],"detail":"channel stable sequence 3","prev":"0101010101010101010101010101010101010101010101010101010101010101"}"#;
    const GOLDEN_HASH: &str = "144048292ced6052d53eb4880d6bb0be2ea1a37275abfd8fa3665d79dee0c1b2";
    const GOLDEN_SEAL: &str = r#"{"format":"modelfs-audit-seal","version":1,"store":"000102030405060708090a0b0c0d0e0f","entries":7,"head":"0202020202020202020202020202020202020202020202020202020202020202","time":1795000100}"#;

    fn golden() -> Entry {
        Entry {
            format: AUDIT_FORMAT_TAG.into(),
            version: 1,
            seq: 2,
            time: 1_795_000_000,
            action: Action::Sign.name().into(),
            user: "ops".into(),
            uid: 1000,
            model: Some("llama".into()),
            model_version: Some("v2".into()),
            digests: vec!["0123456789ABCDEF".into()],
            detail: "channel stable sequence 3".into(),
            prev: Digest([1; 32]),
        }
    }

    fn golden_seal() -> SealStatement {
        SealStatement {
            format: SEAL_FORMAT_TAG.into(),
            version: 1,
            store: StoreId(std::array::from_fn(|i| i as u8)),
            entries: 7,
            head: Digest([2; 32]),
            time: 1_795_000_100,
        }
    }

    #[test]
    fn golden_entry_round_trips() {
        assert_eq!(golden().encode(), GOLDEN);
        assert_eq!(Entry::decode(GOLDEN.as_bytes()).unwrap(), golden());
        assert_eq!(entry_hash(GOLDEN.as_bytes()).to_hex(), GOLDEN_HASH);
        assert_eq!(golden().release(), "llama@v2");
        let none = Entry {
            model: None,
            model_version: None,
            ..golden()
        };
        assert!(
            none.encode()
                .contains(r#""model":null,"model_version":null"#)
        );
        assert_eq!(Entry::decode(none.encode().as_bytes()).unwrap(), none);
        assert_eq!(none.release(), "-");
    }

    #[test]
    fn action_names_are_the_serde_names() {
        for action in Action::ALL {
            assert_eq!(
                serde_json::to_string(&action).unwrap(),
                format!("\"{}\"", action.name())
            );
        }
    }

    #[test]
    fn only_canonical_valid_entries_decode() {
        let decode = |text: &str| Entry::decode(text.as_bytes());
        let spaced = GOLDEN.replace(r#""seq":2"#, r#""seq": 2"#);
        assert_eq!(decode(&spaced), Err(AuditFormatError::NotCanonical));
        let reordered = GOLDEN.replace(
            r#""time":1795000000,"action":"sign""#,
            r#""action":"sign","time":1795000000"#,
        );
        assert_eq!(decode(&reordered), Err(AuditFormatError::NotCanonical));
        let missing = GOLDEN.replace(r#""model_version":"v2","#, "");
        assert_eq!(decode(&missing), Err(AuditFormatError::NotCanonical));
        assert!(decode(&GOLDEN.replace("0101", "0A0A")).is_err());
        let extra = GOLDEN.replace(r#""detail""#, r#""host":"x","detail""#);
        assert!(matches!(
            decode(&extra),
            Err(AuditFormatError::Malformed(_))
        ));
        let newer = GOLDEN.replace(r#""version":1"#, r#""version":2"#);
        assert_eq!(decode(&newer), Err(AuditFormatError::NewerVersion(2)));
        for bad in [
            GOLDEN.replace(r#""version":1"#, r#""version":0"#),
            GOLDEN.replace(r#""seq":2"#, r#""seq":0"#),
            GOLDEN.replace(r#""action":"sign""#, r#""action":"Sign""#),
            GOLDEN.replace(r#""action":"sign""#, r#""action":"""#),
            GOLDEN.replace("channel stable", "channel\\u001b[31mstable"),
            GOLDEN.replace(r#""format":"modelfs-audit""#, r#""format":"other""#),
            GOLDEN.replace(r#""uid":1000"#, r#""uid":-1"#),
            GOLDEN.replace(r#"["0123456789ABCDEF"]"#, &format!("{:?}", vec!["d"; 17])),
            "[]".to_owned(),
            String::new(),
        ] {
            assert!(
                matches!(decode(&bad), Err(AuditFormatError::Malformed(_))),
                "{bad}: {:?}",
                decode(&bad)
            );
        }
        let long = format!("{}{}", GOLDEN, " ".repeat(MAX_LINE_LEN));
        assert!(matches!(decode(&long), Err(AuditFormatError::TooLarge(_))));
        assert!(Entry::decode(&[0xff, b'{']).is_err());
    }

    #[test]
    fn cleaned_fields_fit_a_line() {
        assert_eq!(clean("a\u{1b}[31mb\nc\u{7f}", 100), "a[31mbc");
        assert_eq!(clean("ééé", 5), "éé");
        assert_eq!(clean("abc", 0), "");
        // The worst case: every field at its limit, every byte a quote (escaped to two).
        let quotes = |n| clean(&"\"".repeat(n), n);
        let entry = Entry {
            seq: u64::MAX,
            time: u64::MAX,
            uid: u32::MAX,
            user: quotes(MAX_USER_LEN),
            model: Some(quotes(MAX_NAME_LEN)),
            model_version: Some(quotes(MAX_NAME_LEN)),
            digests: vec![quotes(MAX_DIGEST_LEN); MAX_DIGESTS],
            detail: quotes(MAX_DETAIL_LEN),
            action: "x".repeat(32),
            ..golden()
        };
        let line = entry.encode();
        assert!(line.len() <= MAX_LINE_LEN / 2, "{} bytes", line.len());
        assert_eq!(Entry::decode(line.as_bytes()).unwrap(), entry);
    }

    #[test]
    fn golden_seal_round_trips_and_is_bounded() {
        assert_eq!(golden_seal().encode(), GOLDEN_SEAL);
        assert_eq!(SealStatement::decode(GOLDEN_SEAL).unwrap(), golden_seal());
        let seal = Seal {
            statement: GOLDEN_SEAL.into(),
            signature: "untrusted comment: x\nRW\ntrusted comment: y\nZZ\n".into(),
        };
        let bytes = seal.encode();
        assert!(
            bytes.starts_with(b"{\n  \"statement\": \"{\\\"format\\\":\\\"modelfs-audit-seal\\\"")
        );
        assert_eq!(Seal::decode(&bytes).unwrap(), (seal.clone(), golden_seal()));

        let other = |statement: String| {
            Seal::decode(
                &Seal {
                    statement,
                    ..seal.clone()
                }
                .encode(),
            )
        };
        assert_eq!(
            other(GOLDEN_SEAL.replace(r#""entries":7"#, r#""entries": 7"#)),
            Err(AuditFormatError::NotCanonical)
        );
        assert_eq!(
            other(GOLDEN_SEAL.replace(r#""version":1"#, r#""version":3"#)),
            Err(AuditFormatError::NewerVersion(3))
        );
        assert!(other(GOLDEN.into()).is_err());
        assert!(matches!(
            Seal::decode(
                &Seal {
                    signature: "x".repeat(MAX_SEAL_SIGNATURE_LEN + 1),
                    ..seal.clone()
                }
                .encode()
            ),
            Err(AuditFormatError::TooLarge(_))
        ));
        assert!(matches!(
            Seal::decode(&vec![b' '; MAX_SEAL_LEN as usize + 1]),
            Err(AuditFormatError::TooLarge(_))
        ));
        assert!(Seal::decode(b"{\"statement\":\"\",\"signature\":\"\",\"x\":1}").is_err());
    }
}
