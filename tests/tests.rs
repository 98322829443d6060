//! Integration tests: the real `modelfs` binary, a real RocksDB index and real FUSE mounts read
//! through the kernel. Run as root with /dev/fuse (as CI does); see README.md.

mod audit;
mod cli;
mod crash;
mod doctor;
mod garage;
mod hostile;
mod import_cache;
mod integrity;
mod layers;
mod metrics;
mod modelaware;
mod mount;
mod netutil;
mod network;
mod pin;
mod portable;
mod s3;
mod shared;
mod transfer;
mod trust;
mod update;
mod util;
mod views;
