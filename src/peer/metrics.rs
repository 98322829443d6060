//! A Prometheus endpoint for a process that is not `serve`: `modelfs mount --metrics ADDR`.
//!
//! Owns [`serve_metrics`]: a background thread answering `GET /metrics` with whatever the
//! caller's registry encodes at each scrape (anything else is 404). It lives as long as the
//! process; the caller binds the listener, so a taken port is the caller's error. And
//! [`exposition`]: OpenMetrics text for a scraper that asks for it (Prometheus does), else the
//! Prometheus text format 0.0.4 that `promtool check metrics`, `curl` users and older scrapers
//! read — the same samples, with a counter's `# HELP`/`# TYPE` named after its `_total` sample.

use std::net::TcpListener;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::error::{Error, Result};

/// Serves `registry` as Prometheus text at `/metrics` on `listener`, from a background thread.
pub fn serve_metrics(listener: TcpListener, registry: Registry) -> Result<()> {
    let address = listener.local_addr().ok();
    let failed = |e: std::io::Error| Error::Remote {
        url: format!(
            "http://{}/metrics",
            address.map(|a| a.to_string()).unwrap_or_default()
        ),
        reason: format!("cannot serve metrics: {e}"),
    };
    listener.set_nonblocking(true).map_err(failed)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(failed)?;
    let registry = Arc::new(registry);
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let app = Router::new().route(
                    "/metrics",
                    get(move |headers: HeaderMap| async move {
                        let accept = headers
                            .get(header::ACCEPT)
                            .and_then(|value| value.to_str().ok());
                        let (content_type, text) = exposition(&registry, accept);
                        ([(header::CONTENT_TYPE, content_type)], text).into_response()
                    }),
                );
                let _ = axum::serve(listener, app).await;
            })
        })
        .map_err(failed)?;
    Ok(())
}

/// `registry` encoded for a scraper whose `Accept` header is `accept`: (content type, text).
/// OpenMetrics when asked for by name; otherwise the Prometheus text format 0.0.4.
pub fn exposition(registry: &Registry, accept: Option<&str>) -> (&'static str, String) {
    let mut text = String::new();
    // Writing into a String fails only if a collector does; what was written is still served.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    match accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
        true => (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            text,
        ),
        false => (
            "text/plain; version=0.0.4; charset=utf-8",
            prometheus_text(&text),
        ),
    }
}

/// The Prometheus text format 0.0.4 of OpenMetrics `text` as `prometheus_client` writes it (HELP
/// before TYPE; no exemplars, `_created` samples or help text escapes): a counter family is named
/// after its `_total` samples, an info family after its `_info` samples and typed a gauge,
/// `unknown` is `untyped`, and `# UNIT` and `# EOF` are dropped.
fn prometheus_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut help = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').map_or("", |(_, help)| help));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.rsplit_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), kind),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_owned(), "untyped"),
                _ => (name.to_owned(), kind),
            };
            if let Some(help) = help.take() {
                out.push_str(&format!("# HELP {name} {help}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if !line.starts_with("# UNIT ") && line != "# EOF" {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;

    use super::*;

    #[test]
    fn prometheus_text_names_counters_after_their_samples() {
        let mut registry = Registry::default();
        let reads = Family::<Vec<(String, String)>, Counter>::default();
        reads
            .get_or_create(&vec![("model".into(), "m\"q".into())])
            .inc_by(3);
        registry.register("modelfs_reads", "Reads done", reads);
        let gauge = Gauge::<i64>::default();
        gauge.set(7);
        registry.register("modelfs_models", "Models", gauge);
        let latency = Histogram::new([0.5]);
        latency.observe(0.25);
        registry.register("modelfs_read_seconds", "Latency", latency);

        let (kind, open) = exposition(
            &registry,
            Some("application/openmetrics-text;version=1.0.0"),
        );
        assert!(kind.starts_with("application/openmetrics-text"));
        assert!(open.ends_with("# EOF\n"), "{open}");

        let (kind, text) = exposition(&registry, Some("*/*"));
        assert!(kind.starts_with("text/plain; version=0.0.4"));
        assert_eq!(
            text,
            "# HELP modelfs_reads_total Reads done.\n\
             # TYPE modelfs_reads_total counter\n\
             modelfs_reads_total{model=\"m\\\"q\"} 3\n\
             # HELP modelfs_models Models.\n\
             # TYPE modelfs_models gauge\n\
             modelfs_models 7\n\
             # HELP modelfs_read_seconds Latency.\n\
             # TYPE modelfs_read_seconds histogram\n\
             modelfs_read_seconds_sum 0.25\n\
             modelfs_read_seconds_count 1\n\
             modelfs_read_seconds_bucket{le=\"0.5\"} 1\n\
             modelfs_read_seconds_bucket{le=\"+Inf\"} 1\n"
        );
    }
}
