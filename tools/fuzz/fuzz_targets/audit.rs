//! The audit log from arbitrary bytes: the input as one line (`format::audit::Entry::decode`), as
//! a seal file (`Seal::decode`) and a seal statement (`SealStatement::decode`), and as a whole
//! log through `audit::check_chain`. What decodes re-encodes to the same bytes; a log whose chain
//! holds is, checked independently line by line, exactly that: every line a whole entry numbered
//! from 1, each recording the blake3 of the line before it, with the head and the hash at the
//! asked-for entry right. Any other log is one `AuditBroken` error naming a line that exists.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use modelfs::Error;
use modelfs::audit::check_chain;
use modelfs::format::audit::{Entry, GENESIS, MAX_LINE_LEN, Seal, SealStatement, entry_hash};

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = Entry::decode(data) {
        assert!(data.len() <= MAX_LINE_LEN && entry.seq >= 1);
        assert_eq!(entry.encode().as_bytes(), data);
    }
    if let Ok((seal, statement)) = Seal::decode(data) {
        assert_eq!(statement.encode(), seal.statement);
        let again = Seal::decode(&seal.encode()).expect("an encoded seal decodes");
        assert_eq!(again, (seal, statement));
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(statement) = SealStatement::decode(text)
    {
        assert_eq!(statement.encode(), text);
    }

    let path = Path::new("/stick/store/audit.log");
    let at = u64::from(data.first().copied().unwrap_or(0) % 6);
    let line_count = data.split(|&b| b == b'\n').count() as u64;
    match check_chain(path, data, Some(at)) {
        Ok(chain) => {
            let body = match data {
                [] => &[][..],
                [rest @ .., b'\n'] => rest,
                _ => panic!("a log without its last newline passed"),
            };
            let lines: Vec<&[u8]> = match data.is_empty() {
                true => Vec::new(),
                false => body.split(|&b| b == b'\n').collect(),
            };
            assert_eq!(chain.entries, lines.len() as u64);
            let mut prev = GENESIS;
            let mut head_at = (at == 0).then_some(GENESIS);
            for (i, line) in lines.iter().enumerate() {
                let entry = Entry::decode(line).expect("every line of a chain that holds decodes");
                assert_eq!(entry.seq, i as u64 + 1);
                assert_eq!(entry.prev, prev);
                prev = entry_hash(line);
                if entry.seq == at {
                    head_at = Some(prev);
                }
            }
            assert_eq!(chain.head, prev);
            assert_eq!(chain.head_at, head_at);
        }
        Err(Error::AuditBroken { entry, line, .. }) => {
            assert!(
                entry >= 1 && line >= 1 && line <= line_count,
                "{entry} {line}"
            );
        }
        Err(other) => panic!("a log in memory failed otherwise: {other}"),
    }
});
