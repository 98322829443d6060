//! Reading a published store's files: the one interface between [`Remote`] and a transport.
//!
//! Owns [`Files`]. A store published on a web server ([`Http`]) or in an object store is read
//! the same way — whole small files, and byte ranges of packs — so [`Remote`] is written once
//! over this trait, rustic-style: the repository logic above, the backend below.
//!
//! [`Remote`]: crate::peer::remote::Remote
//! [`Http`]: crate::peer::client::Http

use crate::error::Result;

/// The files of a published store, read-only.
pub trait Files: Send + Sync {
    /// Where the store is (its base URL), for messages.
    fn base(&self) -> &str;

    /// The URL of `path` (relative to the store), for messages.
    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base())
    }

    /// The whole file `path`, at most `cap` bytes (more is an error, refused before it is
    /// read); `None` if there is no such file.
    fn get(&self, path: &str, cap: u64) -> Result<Option<Vec<u8>>>;

    /// Bytes `offset..offset + len` of `path`, handed to `each` in order as they arrive; exactly
    /// that range or an error. A missing file is an error whose reason is "not found".
    fn get_range_each(
        &self,
        path: &str,
        offset: u64,
        len: u64,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()>;

    /// Bytes `offset..offset + dst.len()` of `path` into `dst`.
    fn get_range(&self, path: &str, offset: u64, dst: &mut [u8]) -> Result<()> {
        let mut filled = 0;
        self.get_range_each(path, offset, dst.len() as u64, &mut |piece| {
            dst[filled..filled + piece.len()].copy_from_slice(piece);
            filled += piece.len();
            Ok(())
        })
    }

    /// Requests sent and body bytes received so far.
    fn counters(&self) -> (u64, u64);

    /// Size of the aligned pack blocks a lazy reader fetches (larger where requests cost more).
    fn block_size(&self) -> u64 {
        2 << 20
    }

    /// Largest run of neighbouring records fetched in one request by `pull` and `import`.
    fn run_size(&self) -> u64 {
        4 << 20
    }
}
