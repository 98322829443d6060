//! Models over the network: reading a store published over HTTP, serving one, and finding peers.
//!
//! The only home of HTTP and mDNS code. A remote store is read with the same files a store
//! directory has (`catalog.json` tells which packs exist), so `modelfs serve`, nginx serving a
//! store directory, or any static web server are all the same kind of source:
//! - [`files`]: the [`files::Files`] trait, how a published store's files are read;
//! - [`client`]: [`client::Http`], bounded, deadline-checked GETs from a web server;
//! - [`bucket`]: [`bucket::Bucket`], a store in an S3-compatible object store (read and publish);
//! - [`remote`]: [`remote::Remote`], a store over HTTP as a `Source`;
//! - [`server`]: `modelfs serve`, a read-only HTTP server over a local store;
//! - [`discover`]: announcing a served store and finding peers on the LAN (mDNS, `_modelfs._tcp`);
//! - [`rate`]: `--limit-rate` token buckets;
//! - [`metrics`]: a `/metrics` endpoint for `mount --metrics`.

pub mod bucket;
pub mod client;
pub mod discover;
pub mod files;
pub mod metrics;
pub mod rate;
pub mod remote;
pub mod server;
