//! The audit log: every change to a store, hash-chained, in `STORE/audit.log`.
//!
//! Owns appending entries ([`record`]), reading them back ([`entries`]), checking the chain
//! ([`check_chain`], [`verify`]: `audit verify`) and sealing its head with a signature ([`seal`]:
//! `audit seal`). The layouts are `format::audit`; docs/TRUST.md explains what the log proves.
//!
//! Each entry records the blake3 of the line before it, so editing, removing or reordering an
//! entry breaks the chain at the next one; cutting entries off the end does not, unless a seal
//! (a signed statement of the entry count and the last entry's hash) covers them. Appends are
//! made by the store's one writer (it holds the writer lock) with `O_APPEND`, one `write` per
//! entry, then `fdatasync`. The log is untrusted input when read: lines are read one at a time,
//! each refused past `format::audit::MAX_LINE_LEN` bytes, so a log of any size is read in
//! bounded memory.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::audit::{
    self as layout, AUDIT_FORMAT_TAG, AUDIT_FORMAT_VERSION, Entry, GENESIS, MAX_LINE_LEN, Seal,
    SealStatement, entry_hash,
};
use crate::id::Digest;
use crate::store::Store;
use crate::store::fsutil::{self, read_capped, write_atomic};
use crate::trust::keys::{self, PublicKeyText};
use crate::trust::policy::Keyring;
use crate::trust::{KeyId, Signer};

pub use crate::format::audit::Action;

/// How much of the log's end [`record`] reads to find the last entry.
const TAIL_WINDOW: u64 = 64 << 10;
/// Entries dated further back than this before the entry before them get a note from
/// [`check_chain`] (a clock set back, or a forged entry); the chain itself does not depend on time.
const CLOCK_SLACK_SECS: u64 = 86_400;
/// Most notes [`check_chain`] keeps; it counts the rest.
const MAX_NOTES: usize = 8;

/// One change, as a command reports it; [`record`] adds the time, the user and the chain.
#[derive(Debug, Clone)]
pub struct Change {
    /// What was done.
    pub action: Action,
    /// The model, if one.
    pub model: Option<String>,
    /// The version, if one.
    pub version: Option<String>,
    /// Digests involved (manifest ids, statement hashes, key ids), as text.
    pub digests: Vec<String>,
    /// Anything else worth keeping, one line.
    pub detail: String,
}

impl Change {
    /// A change with nothing but its action.
    pub fn new(action: Action) -> Change {
        Change {
            action,
            model: None,
            version: None,
            digests: Vec::new(),
            detail: String::new(),
        }
    }

    /// Names the model and, if known, the version.
    pub fn release(mut self, model: &str, version: Option<&str>) -> Change {
        self.model = Some(model.to_owned());
        self.version = version.map(str::to_owned);
        self
    }

    /// Adds a digest.
    pub fn digest(mut self, digest: impl Into<String>) -> Change {
        self.digests.push(digest.into());
        self
    }

    /// Sets the detail line.
    pub fn detail(mut self, detail: impl Into<String>) -> Change {
        self.detail = detail.into();
        self
    }
}

/// Appends `change` to the store's audit log (writers only), chained to the entry before it.
///
/// Strings are cleaned (control characters removed) and cut to the layout's limits. If the end of
/// the log is damaged, the entry is still appended (on a line of its own), chained to the last
/// line there is; `audit verify` reports the damage.
pub fn record(store: &Store, change: Change) -> Result<()> {
    append(store, change).map(drop)
}

/// [`record`], returning the new entry's seq and hash.
fn append(store: &Store, change: Change) -> Result<(u64, Digest)> {
    store.require_writer()?;
    let path = store.paths().audit();
    let mut file = open_for_append(&path)?;
    let len = file.metadata().at(&path)?.len();
    let tail = read_tail(&path, &file, len)?;
    let (user, uid) = who();
    let entry = Entry {
        format: AUDIT_FORMAT_TAG.to_owned(),
        version: AUDIT_FORMAT_VERSION,
        seq: tail.seq,
        time: crate::store::now_unix(),
        action: change.action.name().to_owned(),
        user: layout::clean(&user, layout::MAX_USER_LEN),
        uid,
        model: change
            .model
            .map(|m| layout::clean(&m, layout::MAX_NAME_LEN)),
        model_version: change
            .version
            .map(|v| layout::clean(&v, layout::MAX_NAME_LEN)),
        digests: change
            .digests
            .iter()
            .take(layout::MAX_DIGESTS)
            .map(|d| layout::clean(d, layout::MAX_DIGEST_LEN))
            .collect(),
        detail: layout::clean(&change.detail, layout::MAX_DETAIL_LEN),
        prev: tail.prev,
    };
    let line = entry.encode();
    let mut bytes = Vec::with_capacity(line.len() + 2);
    if tail.needs_newline {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    // One write: O_APPEND puts it at the end whole, after anything before it.
    file.write_all(&bytes).at(&path)?;
    file.sync_data().at(&path)?;
    if len == 0 {
        fsutil::fsync_dir(store.root())?;
    }
    Ok((entry.seq, entry_hash(line.as_bytes())))
}

/// Opens (creating, mode 0644) the log for appending and reading its tail: never through a link,
/// never blocking on a FIFO, and only if it is a regular file.
fn open_for_append(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Error::corrupt(path, "is a symbolic link, not the audit log"),
            _ => Error::io(path, e),
        })?;
    if !file.metadata().at(path)?.is_file() {
        return Err(Error::corrupt(path, "is not a regular file"));
    }
    Ok(file)
}

/// Where the next entry goes: its seq, the hash it chains to, and whether the log's last line
/// lacks its newline (a torn write), which the entry must not be glued onto.
struct Tail {
    seq: u64,
    prev: Digest,
    needs_newline: bool,
}

/// Reads the last [`TAIL_WINDOW`] bytes of the log (`len` bytes long) to find the last entry.
fn read_tail(path: &Path, file: &File, len: u64) -> Result<Tail> {
    if len == 0 {
        return Ok(Tail {
            seq: 1,
            prev: GENESIS,
            needs_newline: false,
        });
    }
    let start = len.saturating_sub(TAIL_WINDOW);
    let mut window = vec![0u8; (len - start) as usize];
    file.read_exact_at(&mut window, start).at(path)?;
    let needs_newline = window.last() != Some(&b'\n');
    let body = match needs_newline {
        true => &window[..],
        false => &window[..window.len() - 1],
    };
    let mut lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    if start > 0 && lines.len() > 1 {
        // The window starts inside a line.
        lines.remove(0);
    }
    let prev = entry_hash(lines.last().copied().unwrap_or_default());
    // The last line that is an entry fixes the numbering of the lines after it.
    let seq = match lines
        .iter()
        .rev()
        .enumerate()
        .find_map(|(after, line)| Entry::decode(line).ok().map(|e| (after, e.seq)))
    {
        Some((after, seq)) => seq.saturating_add(after as u64 + 1),
        // Nothing recognisable at the end: number by lines, as an intact log would be.
        None => count_lines(path, file)?.saturating_add(1),
    };
    Ok(Tail {
        seq,
        prev,
        needs_newline,
    })
}

/// The number of lines of the log, counting a last one without its newline.
fn count_lines(path: &Path, file: &File) -> Result<u64> {
    let (mut lines, mut offset, mut last) = (0u64, 0u64, b'\n');
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read_at(&mut buf, offset).at(path)?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
        offset += n as u64;
    }
    Ok(lines + u64::from(last != b'\n'))
}

/// The user an entry names, and the effective uid: under sudo (effective root with `$SUDO_USER`
/// set) the user who ran sudo, else the effective user's name, else the uid as a number.
fn who() -> (String, u32) {
    let uid = nix::unistd::geteuid();
    if uid.is_root()
        && let Some(user) = std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty())
    {
        return (user, uid.as_raw());
    }
    let name = match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => uid.as_raw().to_string(),
    };
    (name, uid.as_raw())
}

/// One raw line of a log, read with a bound.
enum RawLine {
    /// A whole line, in the reader's buffer (without its newline).
    Whole,
    /// More than [`MAX_LINE_LEN`] bytes before a newline.
    TooLong,
    /// The log ends inside this line.
    Unterminated,
}

/// Reads a log line by line, never holding more than [`MAX_LINE_LEN`] + 1 bytes of one.
struct LineReader<R> {
    reader: BufReader<R>,
    buf: Vec<u8>,
    /// Number of the line last read, from 1.
    number: u64,
}

impl<R: Read> LineReader<R> {
    fn new(reader: R) -> Self {
        LineReader {
            reader: BufReader::with_capacity(64 << 10, reader),
            buf: Vec::new(),
            number: 0,
        }
    }

    fn next(&mut self) -> std::io::Result<Option<RawLine>> {
        self.buf.clear();
        let n = (&mut self.reader)
            .take(MAX_LINE_LEN as u64 + 1)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            Ok(Some(RawLine::Whole))
        } else if self.buf.len() > MAX_LINE_LEN {
            Ok(Some(RawLine::TooLong))
        } else {
            Ok(Some(RawLine::Unterminated))
        }
    }
}

/// What is wrong with a line that is not a whole entry, or `None` for a whole line.
fn raw_problem(raw: &RawLine) -> Option<String> {
    match raw {
        RawLine::Whole => None,
        RawLine::TooLong => Some(format!(
            "is longer than {MAX_LINE_LEN} bytes, so not an entry: the log was edited or damaged"
        )),
        RawLine::Unterminated => Some(
            "is incomplete (the log ends inside it): a write was interrupted, or the log was cut"
                .to_owned(),
        ),
    }
}

/// An entry read back from the log.
#[derive(Debug, Clone)]
pub struct Logged {
    /// Its line number, from 1.
    pub line: u64,
    /// The line's text (canonical JSON), without its newline.
    pub text: String,
    /// [`entry_hash`] of the line.
    pub hash: Digest,
    /// The decoded entry.
    pub entry: Entry,
}

/// The entries of a log in order; yields one error and stops at the first line that is not an
/// entry. Does not check the chain: that is [`check_chain`].
pub struct Entries<R> {
    path: PathBuf,
    lines: Option<LineReader<R>>,
}

impl<R: Read> Iterator for Entries<R> {
    type Item = Result<Logged>;

    fn next(&mut self) -> Option<Result<Logged>> {
        let lines = self.lines.as_mut()?;
        let result = match lines.next() {
            Ok(None) => None,
            Err(e) => Some(Err(Error::io(&self.path, e))),
            Ok(Some(raw)) => {
                let (line, bytes) = (lines.number, &lines.buf);
                let bad = |reason: String| Error::AuditBroken {
                    path: self.path.clone(),
                    entry: line,
                    line,
                    reason,
                };
                Some(match raw_problem(&raw) {
                    Some(reason) => Err(bad(reason)),
                    None => match Entry::decode(bytes) {
                        Ok(entry) => Ok(Logged {
                            line,
                            text: String::from_utf8_lossy(bytes).into_owned(),
                            hash: entry_hash(bytes),
                            entry,
                        }),
                        Err(e) => Err(bad(malformed(&e))),
                    },
                })
            }
        };
        if !matches!(result, Some(Ok(_))) {
            self.lines = None;
        }
        result
    }
}

/// The reason for a line that does not decode as an entry.
fn malformed(error: &layout::AuditFormatError) -> String {
    match error {
        layout::AuditFormatError::NewerVersion(_) => {
            format!("cannot be read: {error}")
        }
        _ => format!("is not a valid entry ({error}): it was edited or damaged"),
    }
}

/// Reads the log at `path` (a missing log has no entries).
pub fn entries(path: &Path) -> Result<Entries<File>> {
    let lines = match fsutil::open_regular(path) {
        Ok(file) => Some(LineReader::new(file)),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(path, e)),
    };
    Ok(Entries {
        path: path.to_owned(),
        lines,
    })
}

/// A log whose chain holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Number of entries.
    pub entries: u64,
    /// [`entry_hash`] of the last entry ([`GENESIS`] for an empty log).
    pub head: Digest,
    /// The hash of the entry asked for with `head_at` (entry 0: [`GENESIS`]), if the log has it.
    pub head_at: Option<Digest>,
    /// Things worth a look that do not break the chain (entries dated back), at most a few.
    pub notes: Vec<String>,
}

/// Checks the log read from `log` (named `path` in errors): every line is an entry, entries are
/// numbered 1, 2, 3, … and each records the hash of the line before it. The first entry that
/// breaks this is the error, named by its number and line, with what the break means. Also
/// returns the hash of entry `head_at`, for checking a seal.
pub fn check_chain(path: &Path, log: impl Read, head_at: Option<u64>) -> Result<Chain> {
    let mut lines = LineReader::new(log);
    let mut chain = Chain {
        entries: 0,
        head: GENESIS,
        head_at: (head_at == Some(0)).then_some(GENESIS),
        notes: Vec::new(),
    };
    let (mut last_time, mut more_notes) = (0u64, 0u64);
    while let Some(raw) = lines.next().at(path)? {
        let line = lines.number;
        let expected = chain.entries + 1;
        let broken = |entry: u64, line: u64, reason: String| Error::AuditBroken {
            path: path.to_owned(),
            entry,
            line,
            reason,
        };
        if let Some(reason) = raw_problem(&raw) {
            return Err(broken(expected, line, reason));
        }
        let entry = Entry::decode(&lines.buf).map_err(|e| broken(expected, line, malformed(&e)))?;
        let before = chain.entries;
        if entry.seq > expected {
            let missing = match entry.seq - expected {
                1 => format!("entry {expected} was removed"),
                _ => format!("entries {expected} to {} were removed", entry.seq - 1),
            };
            let after = match before {
                0 => "is the first line".to_owned(),
                _ => format!("follows entry {before}"),
            };
            return Err(broken(
                entry.seq,
                line,
                format!("{after}: {missing}, or entries were reordered"),
            ));
        }
        if entry.seq < expected {
            return Err(broken(
                entry.seq,
                line,
                format!("follows entry {before}: entries were reordered or repeated"),
            ));
        }
        if entry.prev != chain.head {
            return Err(match before {
                0 => broken(
                    1,
                    line,
                    "does not start a chain (its prev is not zeros): it was edited, or entries \
                     before it were removed"
                        .to_owned(),
                ),
                _ => broken(
                    before,
                    line - 1,
                    format!(
                        "was edited or replaced: entry {expected} (line {line}) records a \
                         different hash for it"
                    ),
                ),
            });
        }
        if entry.time.saturating_add(CLOCK_SLACK_SECS) < last_time {
            if chain.notes.len() < MAX_NOTES {
                chain.notes.push(format!(
                    "entry {expected} (line {line}) is dated {} h before entry {before}: the \
                     clock was set back, or the entry was forged",
                    (last_time - entry.time) / 3600
                ));
            } else {
                more_notes += 1;
            }
        }
        last_time = last_time.max(entry.time);
        chain.entries = expected;
        chain.head = entry_hash(&lines.buf);
        if head_at == Some(expected) {
            chain.head_at = Some(chain.head);
        }
    }
    if more_notes > 0 {
        chain
            .notes
            .push(format!("and {more_notes} more entries dated back"));
    }
    Ok(chain)
}

/// Checks the log of `store` at its path.
fn check_store_chain(store: &Store, head_at: Option<u64>) -> Result<Chain> {
    let path = store.paths().audit();
    match fsutil::open_regular(&path) {
        Ok(file) => check_chain(&path, file, head_at),
        Err(e) if e.kind() == ErrorKind::NotFound => check_chain(&path, std::io::empty(), head_at),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// A seal that holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Entries it covers: 1 to `entries`.
    pub entries: u64,
    /// The key that signed it.
    pub key: KeyId,
    /// When it was made (Unix seconds).
    pub time: u64,
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The chain.
    pub chain: Chain,
    /// The seal, if there is one.
    pub seal: Option<Sealed>,
}

/// Reads and decodes the seal at `path`; `None` if there is none and `required` is false.
fn load_seal(path: &Path, required: bool) -> Result<Option<(Seal, SealStatement)>> {
    let bytes = match read_capped(path, layout::MAX_SEAL_LEN) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let decoded =
        Seal::decode(&bytes).map_err(|e| Error::corrupt(path, format!("not a seal: {e}")))?;
    Ok(Some(decoded))
}

/// Checks that the seal at `path` is for this store.
fn check_store_id(store: &Store, path: &Path, statement: &SealStatement) -> Result<()> {
    let ours = store.config().store_id;
    if statement.store != ours {
        return Err(Error::corrupt(
            path,
            format!(
                "it seals the audit log of store {}, not this store ({ours})",
                statement.store
            ),
        ));
    }
    Ok(())
}

/// Checks that the log extends the seal: it has the entries the seal covers, and the last of them
/// hashes to the seal's head.
fn check_covered(
    store: &Store,
    path: &Path,
    statement: &SealStatement,
    chain: &Chain,
) -> Result<()> {
    if chain.entries < statement.entries {
        let first = chain.entries + 1;
        return Err(Error::AuditBroken {
            path: store.paths().audit(),
            entry: first,
            line: first,
            reason: format!(
                "is missing: the log was truncated: the seal covers {} entries, the log has {}",
                statement.entries, chain.entries
            ),
        });
    }
    if chain.head_at != Some(statement.head) {
        return Err(Error::AuditBroken {
            path: store.paths().audit(),
            entry: statement.entries,
            line: statement.entries,
            reason: format!(
                "is not the entry the seal covers (its hash differs from the sealed head): the \
                 log was rewritten after {} was made",
                path.display()
            ),
        });
    }
    Ok(())
}

/// Checks the seal's signature: against `key` if given, else against the store's trusted keys.
fn check_signature(
    store: &Store,
    path: &Path,
    seal: &Seal,
    key: Option<&PublicKeyText>,
) -> Result<KeyId> {
    let data = seal.statement.as_bytes();
    let id = keys::signature_key_id(&seal.signature)
        .ok_or_else(|| Error::corrupt(path, "its signature is not a minisign signature"))?;
    let bad = |reason: String| {
        Error::corrupt(
            path,
            format!("the signature by key {id} does not verify ({reason}): the seal was edited"),
        )
    };
    match key {
        Some(given) => {
            if given.id != id {
                return Err(Error::corrupt(
                    path,
                    format!(
                        "it is signed by key {id}, not by the key given ({})",
                        given.id
                    ),
                ));
            }
            let (_, public) = keys::public_key(&given.base64).map_err(|reason| {
                Error::corrupt(path, format!("the key given cannot be read: {reason}"))
            })?;
            keys::verify(&public, data, &seal.signature).map_err(bad)?;
        }
        None => {
            let policy = store.trust_policy()?;
            let keyring = Keyring::new(&store.paths().trust(), &policy)?;
            let trusted = policy
                .keys
                .iter()
                .any(|k| k.id.eq_ignore_ascii_case(&id.to_string()));
            if !trusted {
                return Err(Error::corrupt(
                    path,
                    format!(
                        "it is signed by key {id}, which this store does not trust: `modelfs key \
                         trust KEY.pub`, or check it with `audit verify --key KEY.pub`"
                    ),
                ));
            }
            let good = keyring
                .signers(data, std::slice::from_ref(&seal.signature))
                .iter()
                .any(|&(signer, good)| signer == id && good);
            if !good {
                return Err(bad("not by the trusted key's secret key".to_owned()));
            }
        }
    }
    Ok(id)
}

/// `audit verify`: checks the chain of the store's log and, if there is a seal (at `seal_path`,
/// else `STORE/audit.seal`), that it is for this store, signed (by `key`, else by a key the store
/// trusts), and that the log still holds the entries it covers, unchanged.
pub fn verify(
    store: &Store,
    seal_path: Option<&Path>,
    key: Option<&PublicKeyText>,
) -> Result<Verified> {
    let path = seal_path.map_or_else(|| store.paths().audit_seal(), Path::to_owned);
    let seal = load_seal(&path, seal_path.is_some())?;
    let chain = check_store_chain(store, seal.as_ref().map(|(_, s)| s.entries))?;
    let Some((seal, statement)) = seal else {
        return Ok(Verified { chain, seal: None });
    };
    // The seal is judged before what it claims.
    check_store_id(store, &path, &statement)?;
    let key = check_signature(store, &path, &seal, key)?;
    check_covered(store, &path, &statement, &chain)?;
    Ok(Verified {
        chain,
        seal: Some(Sealed {
            entries: statement.entries,
            key,
            time: statement.time,
        }),
    })
}

/// `audit seal`: records the seal as the next entry, then signs the log's head — that entry, so
/// the seal covers every entry including its own — with `signer` into `STORE/audit.seal`.
/// Refuses a log whose chain is broken, or that does not extend the seal there is (an honest
/// sealer must not bless a truncation). If signing or writing the seal fails, the log keeps an
/// entry for a seal that was not made, and the previous seal stays; the next seal covers both.
pub fn seal(store: &Store, signer: &dyn Signer) -> Result<Sealed> {
    store.require_writer()?;
    let path = store.paths().audit_seal();
    let previous = load_seal(&path, false)?;
    let chain = check_store_chain(store, previous.as_ref().map(|(_, s)| s.entries))?;
    if let Some((_, statement)) = &previous {
        check_store_id(store, &path, statement)?;
        check_covered(store, &path, statement, &chain)?;
    }
    let key = signer.key_id();
    let (entries, head) = append(
        store,
        Change::new(Action::Seal)
            .digest(key.to_string())
            .detail(format!("seals entries 1 to {}", chain.entries + 1)),
    )?;
    let statement = SealStatement {
        format: layout::SEAL_FORMAT_TAG.to_owned(),
        version: layout::SEAL_FORMAT_VERSION,
        store: store.config().store_id,
        entries,
        head,
        time: crate::store::now_unix(),
    };
    let text = statement.encode();
    let signature = signer.sign(
        text.as_bytes(),
        &format!(
            "modelfs audit seal store {} entries {entries}",
            statement.store
        ),
    )?;
    write_atomic(
        &path,
        &Seal {
            statement: text,
            signature,
        }
        .encode(),
    )?;
    Ok(Sealed {
        entries,
        key,
        time: statement.time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64, prev: Digest, detail: &str) -> String {
        Entry {
            format: AUDIT_FORMAT_TAG.into(),
            version: AUDIT_FORMAT_VERSION,
            seq,
            time: 1_795_000_000 + seq,
            action: "add".into(),
            user: "ops".into(),
            uid: 1000,
            model: Some("m".into()),
            model_version: Some(format!("v{seq}")),
            digests: Vec::new(),
            detail: detail.into(),
            prev,
        }
        .encode()
    }

    /// A chained log of `n` entries, as lines.
    fn log(n: u64) -> Vec<String> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let text = line(seq, prev, "x");
                prev = entry_hash(text.as_bytes());
                text
            })
            .collect()
    }

    fn check(lines: &[String], head_at: Option<u64>) -> Result<Chain> {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        check_chain(Path::new("audit.log"), text.as_bytes(), head_at)
    }

    fn problem(lines: &[String]) -> (u64, u64, String) {
        match check(lines, None) {
            Err(Error::AuditBroken {
                entry,
                line,
                reason,
                ..
            }) => (entry, line, reason),
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    #[test]
    fn an_intact_chain_checks_and_each_break_is_named() {
        let good = log(5);
        let chain = check(&good, Some(3)).unwrap();
        assert_eq!(chain.entries, 5);
        assert_eq!(chain.head, entry_hash(good[4].as_bytes()));
        assert_eq!(chain.head_at, Some(entry_hash(good[2].as_bytes())));
        assert!(chain.notes.is_empty());
        assert_eq!(check(&[], Some(0)).unwrap().head_at, Some(GENESIS));
        assert_eq!(check(&good[..2], Some(3)).unwrap().head_at, None);

        let mut edited = good.clone();
        edited[2] = edited[2].replace(r#""detail":"x""#, r#""detail":"y""#);
        let (entry, at, reason) = problem(&edited);
        assert_eq!((entry, at), (3, 3), "{reason}");
        assert!(reason.contains("edited"), "{reason}");

        let mut removed = good.clone();
        removed.remove(2);
        let (entry, at, reason) = problem(&removed);
        assert_eq!((entry, at), (4, 3));
        assert!(reason.contains("entry 3 was removed"), "{reason}");

        let mut swapped = good.clone();
        swapped.swap(1, 2);
        let (entry, at, reason) = problem(&swapped);
        assert_eq!((entry, at), (3, 2));
        assert!(reason.contains("reordered"), "{reason}");

        let (entry, at, _) = problem(&good[1..]);
        assert_eq!((entry, at), (2, 1));

        let mut repeated = good.clone();
        repeated.insert(3, good[1].clone());
        assert_eq!(problem(&repeated).0, 2);

        let mut blank = good.clone();
        blank.insert(1, String::new());
        let (entry, at, _) = problem(&blank);
        assert_eq!((entry, at), (2, 2));

        let forged_first = vec![line(1, Digest([9; 32]), "x")];
        assert_eq!(problem(&forged_first).0, 1);

        // Cutting entries off the end leaves a chain that holds.
        assert_eq!(check(&good[..3], None).unwrap().entries, 3);
    }

    #[test]
    fn damaged_lines_are_bounded_errors() {
        let good = log(2);
        let mut text = format!("{}\n{}", good[0], good[1]);
        let err = check_chain(Path::new("l"), text.as_bytes(), None).unwrap_err();
        assert!(
            err.to_string().contains("entry 2 (line 2) is incomplete"),
            "{err}"
        );
        text.push('\n');
        text.push_str(&"z".repeat(10 << 20));
        text.push('\n');
        let err = check_chain(Path::new("l"), text.as_bytes(), None).unwrap_err();
        assert!(
            err.to_string().contains("entry 3 (line 3) is longer than"),
            "{err}"
        );
        let newer = good[0].replace(r#""version":1"#, r#""version":5"#);
        let err = check(&[newer], None).unwrap_err();
        assert!(err.to_string().contains("upgrade modelfs"), "{err}");
    }

    #[test]
    fn a_clock_set_back_is_a_note_not_a_break() {
        let first = line(1, GENESIS, "x").replace("1795000001", "1795900000");
        let second = line(2, entry_hash(first.as_bytes()), "x");
        let chain = check(&[first, second], None).unwrap();
        assert_eq!(chain.notes.len(), 1, "{:?}", chain.notes);
        assert!(chain.notes[0].starts_with("entry 2 (line 2) is dated 249 h before entry 1"));
    }
}
