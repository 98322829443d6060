//! What a mount reports at `--metrics`: reads served, and what each network source was asked.
//!
//! Owns [`registry`]: a Prometheus registry whose one collector reads the live totals of the
//! mount's `Vfs` and of its network sources at each scrape (nothing is counted twice, nothing
//! is kept here). Names follow Prometheus conventions: `modelfs_mount_reads_total`,
//! `modelfs_mount_read_bytes_total`, `modelfs_mount_read_failures_total`,
//! `modelfs_source_requests_total{source}`, `modelfs_source_received_bytes_total{source}`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::registry::Registry;

use crate::source::Layered;
use crate::vfs::Vfs;

/// The mount's registry.
pub fn registry(vfs: Arc<Vfs>, layered: Option<Arc<Layered>>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(MountCollector { vfs, layered }));
    registry
}

struct MountCollector {
    vfs: Arc<Vfs>,
    layered: Option<Arc<Layered>>,
}

impl std::fmt::Debug for MountCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MountCollector")
    }
}

impl Collector for MountCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals = self.vfs.read_totals();
        for (name, help, value) in [
            (
                "modelfs_mount_reads",
                "Read requests answered with bytes",
                totals.reads,
            ),
            (
                "modelfs_mount_read_bytes",
                "Bytes returned to readers",
                totals.bytes,
            ),
            (
                "modelfs_mount_read_failures",
                "Read requests answered with an I/O error (no verified copy found)",
                totals.failures,
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let traffic = self
            .layered
            .as_ref()
            .map(|l| l.traffic())
            .unwrap_or_default();
        let families = [
            (
                "modelfs_source_requests",
                "Requests sent to each network source",
                traffic.iter().map(|(s, r, _)| (s, *r)).collect::<Vec<_>>(),
            ),
            (
                "modelfs_source_received_bytes",
                "Body bytes received from each network source",
                traffic.iter().map(|(s, _, b)| (s, *b)).collect(),
            ),
        ];
        for (name, help, values) in families {
            let kind = ConstCounter::new(0u64).metric_type();
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for (source, value) in values {
                let labels = [("source", source.as_str())];
                ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
