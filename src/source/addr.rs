//! Where a source is, as the user typed it: a store directory, or a URL.
//!
//! Owns [`SourceAddr`] and [`open`]. An argument with a scheme (`http://`, `https://`, `s3://`, …)
//! is never taken for a path: it is a remote this build reads, or a clear error naming the
//! schemes it does.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::peer::bucket::{Bucket, BucketAddr};
use crate::peer::client::HttpOptions;
use crate::peer::remote::Remote;
use crate::source::Source;
use crate::store::{Access, Store};

/// A source argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceAddr {
    /// A store directory (this machine's disk, a stick, a mounted share).
    Dir(PathBuf),
    /// A store published over HTTP: `modelfs serve` on a peer, or a web server's copy.
    Http(String),
    /// A store in an S3-compatible bucket.
    S3(BucketAddr),
}

/// The schemes a source URL may have.
pub const SCHEMES: &str = "http://, https://, s3://";

impl FromStr for SourceAddr {
    type Err = Error;

    fn from_str(text: &str) -> Result<SourceAddr> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Ok(SourceAddr::Dir(PathBuf::from(text)));
        };
        let bad = |reason: String| Error::BadInput {
            path: PathBuf::from(text),
            reason,
        };
        match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" if !rest.is_empty() && !rest.starts_with('/') => {
                Ok(SourceAddr::Http(text.trim_end_matches('/').to_owned()))
            }
            "http" | "https" => Err(bad(
                "is not a URL: name a host, e.g. http://peer:7420".into()
            )),
            "s3" => text.parse().map(SourceAddr::S3).map_err(bad),
            other => Err(bad(format!(
                "{other}:// is not supported; use a store folder or one of {SCHEMES}"
            ))),
        }
    }
}

impl std::fmt::Display for SourceAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceAddr::Dir(path) => write!(f, "{}", path.display()),
            SourceAddr::Http(url) => f.write_str(url),
            SourceAddr::S3(addr) => addr.fmt(f),
        }
    }
}

/// Opens the source at `addr` for reading (`http` says how a remote is reached).
pub fn open(addr: &SourceAddr, http: &HttpOptions) -> Result<Box<dyn Source>> {
    Ok(match addr {
        SourceAddr::Dir(dir) => Box::new(Store::open(dir, Access::Read)?),
        SourceAddr::Http(url) => Box::new(Remote::open(url, http.clone())?),
        SourceAddr::S3(addr) => Box::new(Remote::over(Arc::new(Bucket::open(addr, http)?))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_never_paths() {
        assert_eq!(
            "http://peer:7420/".parse::<SourceAddr>().unwrap(),
            SourceAddr::Http("http://peer:7420".into())
        );
        assert_eq!(
            "/media/stick".parse::<SourceAddr>().unwrap(),
            SourceAddr::Dir("/media/stick".into())
        );
        assert!(matches!(
            "s3://models/site".parse::<SourceAddr>().unwrap(),
            SourceAddr::S3(_)
        ));
        for bad in ["s3://B", "ftp://x", "http://", "https:///path", "file:///x"] {
            assert!(bad.parse::<SourceAddr>().is_err(), "{bad} accepted");
        }
    }
}
