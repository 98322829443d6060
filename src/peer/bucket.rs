//! A store in an S3-compatible object store (Garage, Ceph RGW, MinIO, AWS S3), through the
//! `object_store` crate.
//!
//! Owns [`BucketAddr`] (`s3://BUCKET/PREFIX`) and [`Bucket`]: the store's files under the
//! prefix, read as [`Files`] (so a bucket is one more [`Remote`]) and written by `publish`.
//! Credentials and endpoint come the usual way: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL` (path-style addressing, as self-hosted
//! servers want, unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`), or the shared credentials file
//! (`~/.aws/credentials`, profile `AWS_PROFILE` or `default`). Requests are retried with backoff
//! within the timeout (503, SlowDown, dropped connections); a bucket is untrusted like any
//! remote: sizes are capped before bodies are read and ranges must be exactly what was asked.
//!
//! [`Remote`]: crate::peer::remote::Remote

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig, WriteMultipart,
};

use crate::error::{Error, Result};
use crate::peer::client::HttpOptions;
use crate::peer::files::Files;

/// `s3://BUCKET[/PREFIX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketAddr {
    /// The bucket.
    pub bucket: String,
    /// The folder inside it holding the store (no leading or trailing `/`; may be empty).
    pub prefix: String,
}

impl FromStr for BucketAddr {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<BucketAddr, String> {
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| "is not an s3:// URL".to_owned())?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(format!(
                "{bucket:?} is not a bucket name (3-63 lower-case letters, digits, '-', '.')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|part| part == "." || part == ".." || (part.is_empty() && !prefix.is_empty()))
        {
            return Err("the prefix must be a plain folder path".to_owned());
        }
        Ok(BucketAddr {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

impl std::fmt::Display for BucketAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix.is_empty() {
            true => write!(f, "s3://{}", self.bucket),
            false => write!(f, "s3://{}/{}", self.bucket, self.prefix),
        }
    }
}

/// Part size of multipart uploads, and the most parts in flight.
const PART: usize = 16 << 20;
const PARTS_IN_FLIGHT: usize = 4;
/// Files larger than this are uploaded in parts.
const MULTIPART_FROM: u64 = 32 << 20;

/// A store's files in a bucket.
pub struct Bucket {
    url: String,
    /// Where requests go, for messages ("AWS S3" without an endpoint).
    endpoint: String,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// Async object-store calls run here; callers block on them (the source trait is
    /// synchronous, and every caller is a plain thread).
    runtime: tokio::runtime::Runtime,
    options: HttpOptions,
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl Bucket {
    /// Connects to `addr` with the credentials from the environment (or the shared
    /// credentials file); `options.timeout` bounds every request and its retries.
    pub fn open(addr: &BucketAddr, options: &HttpOptions) -> Result<Bucket> {
        let url = addr.to_string();
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .unwrap_or_else(|_| "AWS S3".into());
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&addr.bucket);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            for (key, value) in shared_credentials() {
                builder = match key.as_str() {
                    "aws_access_key_id" => builder.with_access_key_id(value),
                    "aws_secret_access_key" => builder.with_secret_access_key(value),
                    "aws_session_token" => builder.with_token(value),
                    "region" if std::env::var_os("AWS_REGION").is_none() => {
                        builder.with_region(value)
                    }
                    _ => builder,
                };
            }
        }
        let client = ClientOptions::new()
            .with_allow_http(endpoint.starts_with("http://"))
            .with_connect_timeout(options.timeout)
            .with_timeout(options.timeout * 5);
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 5,
            retry_timeout: options.timeout,
        };
        let store = builder
            .with_client_options(client)
            .with_retry(retry)
            .build()
            .map_err(|e| Error::Remote {
                url: url.clone(),
                reason: format!("cannot set up the object store client: {e}"),
            })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::Remote {
                url: url.clone(),
                reason: format!("cannot start the object store client: {e}"),
            })?;
        Ok(Bucket {
            url,
            endpoint,
            store: Arc::new(store),
            prefix: addr.prefix.clone(),
            runtime,
            options: options.clone(),
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        })
    }

    fn path(&self, rel: &str) -> ObjectPath {
        match self.prefix.is_empty() {
            true => ObjectPath::from(rel),
            false => ObjectPath::from(format!("{}/{rel}", self.prefix)),
        }
    }

    /// The error for `rel`, in words an operator can act on.
    fn error(&self, rel: &str, error: &object_store::Error) -> Error {
        let reason = match error {
            object_store::Error::NotFound { .. } => "not found".to_owned(),
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => format!(
                "access denied by {} for bucket {}: check AWS_ACCESS_KEY_ID, \
                 AWS_SECRET_ACCESS_KEY and AWS_REGION ({})",
                self.endpoint,
                self.url,
                innermost(error)
            ),
            _ => format!("{} ({})", innermost(error), self.endpoint),
        };
        Error::Remote {
            url: self.url(rel),
            reason,
        }
    }

    /// Runs one request (`rel` names it in errors), within the timeout and its retries.
    fn call<T>(
        &self,
        rel: &str,
        request: impl Future<Output = object_store::Result<T>>,
    ) -> Result<T> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let limit = self.options.timeout * 6;
        match self
            .runtime
            .block_on(async { tokio::time::timeout(limit, request).await })
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.error(rel, &e)),
            Err(_) => Err(Error::Remote {
                url: self.url(rel),
                reason: format!("no answer from {} within {limit:?}", self.endpoint),
            }),
        }
    }

    /// Writes `bytes` to `rel`, replacing what is there.
    pub fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.path(rel);
        self.call(rel, self.store.put(&path, PutPayload::from(bytes)))
            .map(drop)
    }

    /// Writes `bytes` to `rel` only if nothing is there (a conditional create); `false` if
    /// something was.
    pub fn put_new(&self, rel: &str, bytes: Vec<u8>) -> Result<bool> {
        let path = self.path(rel);
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let put =
            self.runtime
                .block_on(self.store.put_opts(&path, PutPayload::from(bytes), options));
        match put {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.error(rel, &e)),
        }
    }

    /// Deletes `rel` (nothing there is fine).
    pub fn delete(&self, rel: &str) -> Result<()> {
        let path = self.path(rel);
        match self.call(rel, self.store.delete(&path)) {
            Err(Error::Remote { reason, .. }) if reason == "not found" => Ok(()),
            other => other,
        }
    }

    /// Whether `rel` exists.
    pub fn exists(&self, rel: &str) -> Result<bool> {
        let path = self.path(rel);
        match self.call(rel, self.store.head(&path)) {
            Ok(_) => Ok(true),
            Err(Error::Remote { reason, .. }) if reason == "not found" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads the local file `from` as `rel`: in one request, or in parts (several in flight,
    /// each retried) when it is large. The object appears whole or not at all.
    pub fn upload(&self, rel: &str, from: &std::path::Path) -> Result<()> {
        let io = |e: std::io::Error| Error::io(from, e);
        let len = std::fs::metadata(from).map_err(io)?.len();
        if len < MULTIPART_FROM {
            return self.put(rel, std::fs::read(from).map_err(io)?);
        }
        let path = self.path(rel);
        let upload = self.call(rel, self.store.put_multipart(&path))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        // `write` starts each part's upload as a task on the runtime.
        let _runtime = self.runtime.enter();
        let sent = (|| {
            let mut file = std::fs::File::open(from).map_err(io)?;
            let mut buf = vec![0u8; PART];
            loop {
                let n = read_full(&mut file, &mut buf).map_err(io)?;
                if n == 0 {
                    return Ok(());
                }
                self.call(rel, writer.wait_for_capacity(PARTS_IN_FLIGHT))?;
                writer.write(&buf[..n]);
                self.requests.fetch_add(1, Ordering::Relaxed);
            }
        })();
        match sent {
            Ok(()) => self.call(rel, writer.finish()).map(drop),
            Err(e) => {
                // Parts already stored would cost space until the bucket's lifecycle rules ran.
                let _ = self.runtime.block_on(writer.abort());
                Err(e)
            }
        }
    }
}

/// Fills `buf` from `file` unless the file ends first; returns how much was read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

impl Files for Bucket {
    fn base(&self) -> &str {
        &self.url
    }

    fn get(&self, rel: &str, cap: u64) -> Result<Option<Vec<u8>>> {
        let path = self.path(rel);
        let result = match self.call(rel, self.store.get_opts(&path, GetOptions::default())) {
            Ok(result) => result,
            Err(Error::Remote { reason, .. }) if reason == "not found" => return Ok(None),
            Err(e) => return Err(e),
        };
        if result.meta.size > cap {
            return Err(Error::Remote {
                url: self.url(rel),
                reason: format!(
                    "is {} bytes, more than the {cap} such a file may have",
                    result.meta.size
                ),
            });
        }
        let mut body = Vec::new();
        self.read_stream(rel, result.into_stream(), cap, &mut |piece| {
            body.extend_from_slice(piece);
            Ok(())
        })?;
        Ok(Some(body))
    }

    fn get_range_each(
        &self,
        rel: &str,
        offset: u64,
        len: u64,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let path = self.path(rel);
        let options = GetOptions {
            range: Some(GetRange::Bounded(offset..offset + len)),
            ..Default::default()
        };
        let result = self.call(rel, self.store.get_opts(&path, options))?;
        if result.range != (offset..offset + len) {
            return Err(Error::Remote {
                url: self.url(rel),
                reason: format!(
                    "sent bytes {:?} when asked for {:?}",
                    result.range,
                    offset..offset + len
                ),
            });
        }
        let received = self.read_stream(rel, result.into_stream(), len, each)?;
        if received != len {
            return Err(Error::Remote {
                url: self.url(rel),
                reason: format!("body ended after {received} of {len} bytes"),
            });
        }
        Ok(())
    }

    fn counters(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    fn block_size(&self) -> u64 {
        8 << 20
    }

    /// 16 MiB (requests are billed); 1 MiB under a rate limit, as for [`Http`]: a slowly read
    /// reply would otherwise sit whole in socket buffers, lost to a kill and outliving the server.
    ///
    /// [`Http`]: crate::peer::client::Http
    fn run_size(&self) -> u64 {
        match self.options.limit {
            Some(_) => 1 << 20,
            None => 16 << 20,
        }
    }
}

impl Bucket {
    /// Hands a body to `each` piece by piece, at most `cap` bytes, each piece within the
    /// timeout and paid to the rate limit; returns the bytes read.
    fn read_stream(
        &self,
        rel: &str,
        mut stream: futures_util::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>,
        cap: u64,
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        let mut received = 0u64;
        loop {
            let next = self.runtime.block_on(async {
                tokio::time::timeout(self.options.timeout, stream.next()).await
            });
            let piece = match next {
                Err(_) => {
                    return Err(Error::Remote {
                        url: self.url(rel),
                        reason: format!("stalled: nothing arrived for {:?}", self.options.timeout),
                    });
                }
                Ok(None) => return Ok(received),
                Ok(Some(Err(e))) => return Err(self.error(rel, &e)),
                Ok(Some(Ok(piece))) => piece,
            };
            received += piece.len() as u64;
            self.bytes.fetch_add(piece.len() as u64, Ordering::Relaxed);
            if received > cap {
                return Err(Error::Remote {
                    url: self.url(rel),
                    reason: format!("sent more than the {cap} bytes asked for"),
                });
            }
            if let Some(limit) = &self.options.limit {
                limit.take(piece.len() as u64);
            }
            each(&piece)?;
        }
    }
}

/// The most specific message in an error's chain; of an S3 error document, its `Message`.
fn innermost(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text = e.to_string();
        cause = e.source();
    }
    let message = text
        .split_once("<Message>")
        .and_then(|(_, rest)| rest.split_once("</Message>"))
        .map(|(message, _)| message.to_owned());
    message.unwrap_or(text)
}

/// Keys of the shared credentials file's profile (`AWS_PROFILE`, else `default`) and of the
/// config file's, lower-cased: what an operator who set up the AWS CLI already has.
fn shared_credentials() -> Vec<(String, String)> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let mut keys = Vec::new();
    let sections = [
        (
            file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            profile.clone(),
        ),
        (
            file("AWS_CONFIG_FILE", "config"),
            match profile.as_str() {
                "default" => profile.clone(),
                other => format!("profile {other}"),
            },
        ),
    ];
    for (path, section) in sections {
        let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
            continue;
        };
        let mut inside = false;
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                inside = name.trim() == section;
            } else if inside && let Some((key, value)) = line.split_once('=') {
                keys.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        let addr: BucketAddr = "s3://models/site-a/store/".parse().unwrap();
        assert_eq!(addr.bucket, "models");
        assert_eq!(addr.prefix, "site-a/store");
        assert_eq!(addr.to_string(), "s3://models/site-a/store");
        let bare: BucketAddr = "s3://models".parse().unwrap();
        assert_eq!(bare.prefix, "");
        for bad in [
            "s3://",
            "s3://A",
            "s3://x",
            "s3://ok-name/../up",
            "s3://ok-name/a//b",
            "http://x",
        ] {
            assert!(bad.parse::<BucketAddr>().is_err(), "{bad} accepted");
        }
    }
}
