//! A Prometheus endpoint for a process that is not `serve`: `modelfs mount --metrics ADDR`.
//!
//! Owns [`serve_metrics`]: a background thread answering `GET /metrics` with whatever the
//! caller's registry encodes at each scrape (anything else is 404). It lives as long as the
//! process; the caller binds the listener, so a taken port is the caller's error.

use std::net::TcpListener;
use std::sync::Arc;

use axum::Router;
use axum::http::header;
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
                    get(move || async move {
                        let mut text = String::new();
                        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
                        (
                            [(
                                header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            text,
                        )
                            .into_response()
                    }),
                );
                let _ = axum::serve(listener, app).await;
            })
        })
        .map_err(failed)?;
    Ok(())
}
