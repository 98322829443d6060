//! Progress reporting hooks for long operations (`add`, `verify`), implemented by the CLI.
//!
//! Owns only the [`Progress`] trait and a silent implementation; the library never draws anything.

/// Receives progress of a long operation, in bytes.
pub trait Progress: Sync {
    /// The operation will process `total` bytes.
    fn begin(&self, total: u64);
    /// `bytes` more were processed.
    fn advance(&self, bytes: u64);
    /// The operation ended.
    fn finish(&self);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _total: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}
