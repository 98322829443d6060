//! What a mount reports at `--metrics`: what its reads did, what each network source was asked,
//! and the totals of the store it is built on.
//!
//! Owns [`registry`]: a Prometheus registry whose one collector reads, at each scrape, the live
//! counters of the mount's `Reader` (`read::ReadCounts`), how pinned files were opened
//! (`fuse::PinnedServing`), each network source's traffic and the
//! store's totals (`stats::StatsCache`, the same totals `modelfs stats --json` prints). Nothing is
//! counted twice, nothing is kept here. Names follow Prometheus conventions: counters end in
//! `_total`, sizes in `_bytes`, durations in `_seconds`; docs/ARCHITECTURE.md lists them.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tracing::warn;

use crate::fuse::PinnedServing;
use crate::read::{FailureCause, Reader};
use crate::source::Layered;
use crate::stats::{StatsCache, TotalValue};
use crate::store::Store;

/// The mount's registry: reads through `reader`, the sources of `layered` (if any) and the
/// totals of `store`, the store the mount is built on.
pub fn registry(
    reader: Arc<Reader>,
    store: Arc<Store>,
    layered: Option<Arc<Layered>>,
    pinned: Arc<PinnedServing>,
) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(MountCollector {
        reader,
        store,
        stats: StatsCache::default(),
        layered,
        pinned,
    }));
    registry
}

struct MountCollector {
    reader: Arc<Reader>,
    store: Arc<Store>,
    stats: StatsCache,
    layered: Option<Arc<Layered>>,
    pinned: Arc<PinnedServing>,
}

impl std::fmt::Debug for MountCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MountCollector")
    }
}

type EncodeResult = Result<(), std::fmt::Error>;

/// A counter family: one sample per label set.
fn counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> EncodeResult {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A counter without labels.
fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> EncodeResult {
    ConstCounter::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?)
}

/// One sample per failure cause, every cause listed (zeros too, so rates and alerts see them).
fn by_cause<'a>(
    counts: &'a [(FailureCause, u64)],
) -> impl Iterator<Item = ([(&'static str, &'static str); 1], u64)> + 'a {
    counts
        .iter()
        .map(|(cause, n)| ([("cause", cause.label())], *n))
}

impl Collector for MountCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> EncodeResult {
        let reads = self.reader.counts();
        let per_model = |value: fn(&crate::read::ModelReadCounts) -> u64| {
            reads.models.iter().map(move |m| {
                let labels = [("model", m.model.as_str()), ("version", m.version.as_str())];
                (labels, value(m))
            })
        };
        counters(
            &mut encoder,
            "modelfs_mount_reads",
            "Read requests answered with bytes, by model and version",
            per_model(|m| m.reads),
        )?;
        counters(
            &mut encoder,
            "modelfs_mount_read_bytes",
            "Bytes returned to readers, by model and version",
            per_model(|m| m.bytes),
        )?;
        counters(
            &mut encoder,
            "modelfs_mount_read_failures",
            "Read requests answered with an I/O error (no verified copy found), by the cause of \
             the first chunk that failed",
            by_cause(&reads.read_failures),
        )?;
        encoder
            .encode_descriptor(
                "modelfs_mount_read_seconds",
                "Time to answer a read request that reached the mount (page-cache hits never do)",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(
                reads.latency.sum_seconds,
                reads.latency.count,
                &reads.latency.buckets,
                None,
            )?;
        for (name, help, value) in [
            (
                "modelfs_mount_chunks_verified",
                "Chunks read from storage and hashed against their id",
                reads.chunks_verified,
            ),
            (
                "modelfs_mount_chunks_trusted",
                "Chunks read from storage without hashing (--verify first-read, verified there before)",
                reads.chunks_trusted,
            ),
            (
                "modelfs_mount_chunks_recovered",
                "Chunks whose source failed and that another source served, verified",
                reads.chunks_recovered,
            ),
            (
                "modelfs_mount_decoded_cache_hits",
                "Chunk pieces served from the decoded-chunk cache",
                reads.cache_hits,
            ),
            (
                "modelfs_mount_decoded_cache_misses",
                "Chunk pieces the decoded-chunk cache did not hold",
                reads.cache_misses,
            ),
        ] {
            counter(&mut encoder, name, help, value)?;
        }
        counters(
            &mut encoder,
            "modelfs_mount_verification_failures",
            "Chunks that could not be served verified (after every source was tried), by cause",
            by_cause(&reads.chunk_failures),
        )?;

        let (passthrough_opens, read_opens) = self.pinned.opens();
        counters(
            &mut encoder,
            "modelfs_mount_pinned_opens",
            "Opens of pinned files, by how they were served: passthrough (the kernel reads the \
             pinned copy) or read (the mount reads it)",
            [
                ([("mode", "passthrough")], passthrough_opens),
                ([("mode", "read")], read_opens),
            ],
        )?;

        let traffic = self
            .layered
            .as_ref()
            .map(|l| l.traffic())
            .unwrap_or_default();
        counters(
            &mut encoder,
            "modelfs_source_requests",
            "Requests sent to each network source",
            traffic
                .iter()
                .map(|(s, r, _)| ([("source", s.as_str())], *r)),
        )?;
        counters(
            &mut encoder,
            "modelfs_source_received_bytes",
            "Body bytes received from each network source",
            traffic
                .iter()
                .map(|(s, _, b)| ([("source", s.as_str())], *b)),
        )?;

        let stats = match self.stats.stats(&self.store) {
            Ok(stats) => stats,
            Err(e) => {
                warn!(error = %e, "cannot compute the store's totals for metrics");
                return Ok(());
            }
        };
        for total in stats.totals() {
            let name = format!("modelfs_store_{}", total.name);
            let gauge = encoder.encode_descriptor(&name, total.help, None, MetricType::Gauge)?;
            match total.value {
                TotalValue::Count(n) => ConstGauge::new(n).encode(gauge)?,
                TotalValue::Ratio(r) => ConstGauge::new(r).encode(gauge)?,
            }
        }
        Ok(())
    }
}
