//! `modelfs serve`: a read-only HTTP/1.1 server over a local store.
//!
//! Owns [`serve`] and [`ServeOptions`]. It answers with the store's own files — the layout a web
//! server publishing the store directory has (`modelfs.json`, `registry.json`, `catalog.json`,
//! `manifests/<id>`, `packs/<id>.pack` with single `Range` requests) — so clients read a peer and
//! a mirror the same way; plus `/health` and Prometheus `/metrics`. Names are parsed as ids before
//! any file is touched, so no request reaches a path outside the store, and nothing is ever
//! written.
//!
//! Policy, per request: addresses outside `--allow` get 403, a missing or wrong bearer token 401.
//! With `--models`, the registry lists only those models, other manifests are 404 and the payload
//! bytes of chunks no listed model uses are zeros in pack replies (tables still list chunk ids).
//! `--limit-rate` is one token bucket for all replies. The caller passes the listener and the
//! shutdown signal, so tests bind port 0.
//!
//! Robustness: headers must arrive within [`HEADER_TIMEOUT`]; a connection that makes no progress
//! (a client that stops reading, or keeps an idle connection) is closed after the idle timeout;
//! at most [`MAX_CONNECTIONS`] connections are served at once (more wait in the kernel's backlog).
//! Pack bytes are streamed in pieces, so memory does not grow with range sizes or slow clients.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::error::{Error, IoContext, Result};
use crate::format::catalog;
use crate::format::manifest::MAX_MANIFEST_LEN;
use crate::format::pack::RECORD_HEADER_LEN;
use crate::format::registry::{self, Registry};
use crate::id::{ChunkId, ManifestId, PackId};
use crate::peer::discover::Announcement;
use crate::peer::rate::{Rate, RateLimit};
use crate::store::Store;
use crate::store::catalog::catalog_of;
use crate::store::fsutil::{open_regular, read_capped};
use crate::store::pack::{pack_path, read_table};

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Bytes of a pack reply read and sent at a time.
const PIECE: usize = 256 << 10;
/// How often the registry is checked for changes (and the mDNS record refreshed).
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// What `serve` shows, to whom, how fast.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Only these models (every model when `None`).
    pub models: Option<Vec<String>>,
    /// The bearer token requests must carry.
    pub token: Option<String>,
    /// Client addresses allowed (everyone when empty).
    pub allow: Vec<IpNet>,
    /// Total reply bandwidth.
    pub limit: Option<Rate>,
    /// A connection without progress for this long is closed.
    pub idle_timeout: Duration,
    /// Announce the store on the LAN (mDNS).
    pub announce: bool,
}

/// Serves `store` on `listener` until `shutdown` completes. `on_ready` is told the address
/// once requests are accepted.
pub fn serve(
    store: Store,
    listener: std::net::TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let local = listener.local_addr().at(store.root())?;
    listener.set_nonblocking(true).at(store.root())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .at(store.root())?;
    let shared = Arc::new(Shared::new(store, options)?);
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).at(shared.store.root())?;
        let mut announcement = match shared.options.announce {
            true => match Announcement::new(local, &shared.store.config().store_id.to_string(), shared.view().generation) {
                Ok(a) => Some(a),
                Err(e) => {
                    warn!(error = %e, "cannot announce the store on the LAN; peers must be given its URL");
                    None
                }
            },
            false => None,
        };
        let app = router(shared.clone());
        on_ready(local);
        info!(address = %local, store = %shared.store.root().display(), "serving");
        let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut reload = tokio::time::interval(RELOAD_EVERY);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = reload.tick() => {
                    let generation = shared.view().generation;
                    if let Some(a) = announcement.as_mut() {
                        let _ = a.set_generation(generation);
                    }
                }
                permit = connections.clone().acquire_owned() => {
                    let permit = permit.expect("connection semaphore closed");
                    let (stream, peer) = tokio::select! {
                        () = &mut shutdown => break,
                        accepted = listener.accept() => match accepted {
                            Ok(accepted) => accepted,
                            Err(e) => {
                                // Out of fds, say: back off instead of spinning.
                                warn!(error = %e, "accept failed");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        },
                    };
                    let (app, idle) = (app.clone(), shared.options.idle_timeout);
                    tokio::spawn(async move {
                        serve_connection(stream, peer, app, idle).await;
                        drop(permit);
                    });
                }
            }
        }
        info!("stopped serving");
        Ok(())
    })
}

/// Serves one connection until the client closes it, it fails, or it makes no progress for `idle`.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    idle: Duration,
) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            activity.touch();
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(activity.clone());
            let app = app.clone();
            async move {
                use tower::ServiceExt;
                app.oneshot(request.map(Body::new)).await
            }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut watch = tokio::time::interval(Duration::from_secs(1).min(idle));
    loop {
        tokio::select! {
            _ = &mut connection => return,
            _ = watch.tick() => if activity.idle_for() > idle {
                return;
            }
        }
    }
}

/// When a connection last made progress (a request arrived or a piece of a reply was sent).
#[derive(Clone)]
struct Activity(Arc<(Instant, AtomicU64)>);

impl Activity {
    fn new() -> Activity {
        Activity(Arc::new((Instant::now(), AtomicU64::new(0))))
    }

    fn touch(&self) {
        let (start, last) = &*self.0;
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let (start, last) = &*self.0;
        start
            .elapsed()
            .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)))
    }
}

/// What every request handler shares.
struct Shared {
    store: Store,
    options: ServeOptions,
    limit: Option<RateLimit>,
    metrics: Metrics,
    /// The view of the registry being served; rebuilt when the registry's generation changes.
    view: Mutex<(Instant, Arc<View>)>,
}

/// What is served for one registry generation.
struct View {
    generation: u64,
    /// When the packs folder last changed (a pack sealed or deleted), as the view saw it: packs
    /// sealed by a `--fill` mount or a pull change the catalog without changing the registry.
    packs_changed: Option<std::time::SystemTime>,
    registry_json: Bytes,
    catalog_json: Bytes,
    /// With `--models`: the manifests that may be served.
    manifests: Option<HashSet<ManifestId>>,
    /// With `--models`: per pack, the payload ranges (start, end) of chunks no listed model uses,
    /// sorted; zeroed in replies.
    hidden: Option<HashMap<PackId, Vec<(u64, u64)>>>,
}

impl Shared {
    fn new(store: Store, options: ServeOptions) -> Result<Shared> {
        let view = View::build(&store, &options)?;
        Ok(Shared {
            limit: options.limit.map(RateLimit::new),
            store,
            options,
            metrics: Metrics::new(),
            view: Mutex::new((Instant::now(), Arc::new(view))),
        })
    }

    /// The current view; the registry is looked at again at most every [`RELOAD_EVERY`].
    fn view(&self) -> Arc<View> {
        let mut view = self.view.lock().expect("view lock poisoned");
        if view.0.elapsed() >= RELOAD_EVERY {
            view.0 = Instant::now();
            let generation = self.store.registry().map(|r| r.generation);
            let changed = generation.is_ok_and(|g| g != view.1.generation)
                || packs_changed(&self.store) != view.1.packs_changed;
            if changed {
                match View::build(&self.store, &self.options) {
                    Ok(new) => view.1 = Arc::new(new),
                    Err(e) => {
                        warn!(error = %e, "cannot reload the registry; serving the previous one")
                    }
                }
            }
        }
        view.1.clone()
    }
}

/// The modification time of the store's packs folder.
fn packs_changed(store: &Store) -> Option<std::time::SystemTime> {
    std::fs::metadata(store.packs_dir())
        .and_then(|m| m.modified())
        .ok()
}

impl View {
    fn build(store: &Store, options: &ServeOptions) -> Result<View> {
        let packs_changed = packs_changed(store);
        let full = store.registry()?;
        let Some(models) = &options.models else {
            let catalog = catalog_of(store.packs_dir(), full.generation)?;
            return Ok(View {
                generation: full.generation,
                packs_changed,
                registry_json: registry::encode(&full).into(),
                catalog_json: catalog::encode(&catalog).into(),
                manifests: None,
                hidden: None,
            });
        };
        let mut shown = Registry {
            models: Default::default(),
            high_water: Default::default(),
            ..full.clone()
        };
        for name in models {
            if let Some(entry) = full.models.get(name) {
                shown.models.insert(name.clone(), entry.clone());
            }
            if let Some(marks) = full.high_water.get(name) {
                shown.high_water.insert(name.clone(), marks.clone());
            }
        }
        let manifests: HashSet<ManifestId> = shown
            .models
            .values()
            .flat_map(|m| m.versions.iter())
            .flat_map(|v| v.files.iter().map(|f| f.manifest))
            .collect();
        let mut chunks: HashSet<ChunkId> = HashSet::new();
        for id in &manifests {
            chunks.extend(store.manifest(id)?.chunks.iter().map(|c| c.id));
        }
        let catalog = catalog_of(store.packs_dir(), full.generation)?;
        let mut hidden = HashMap::new();
        for pack in &catalog.packs {
            let entries = read_table(&pack_path(store.packs_dir(), &pack.id), &pack.id)?;
            let ranges = entries
                .iter()
                .filter(|e| !chunks.contains(&e.header.chunk_id))
                .map(|e| {
                    let start = e.offset + RECORD_HEADER_LEN as u64;
                    (start, start + u64::from(e.header.stored_len))
                })
                .collect::<Vec<_>>();
            hidden.insert(pack.id, ranges);
        }
        for ranges in hidden.values_mut() {
            ranges.sort_unstable();
        }
        Ok(View {
            generation: full.generation,
            packs_changed,
            registry_json: registry::encode(&shown).into(),
            catalog_json: catalog::encode(&catalog).into(),
            manifests: Some(manifests),
            hidden: Some(hidden),
        })
    }
}

/// Request counts, bytes, errors and latencies, for `/metrics`.
struct Metrics {
    registry: prometheus_client::registry::Registry,
    requests: Family<RouteLabels, Counter>,
    bytes: Counter,
    latency: Histogram,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RouteLabels {
    route: String,
    status: u16,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = prometheus_client::registry::Registry::default();
        let requests = Family::<RouteLabels, Counter>::default();
        let bytes = Counter::default();
        let latency = Histogram::new(exponential_buckets(0.0005, 4.0, 10));
        registry.register(
            "modelfs_serve_requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        registry.register("modelfs_serve_sent_bytes", "Body bytes sent", bytes.clone());
        registry.register(
            "modelfs_serve_request_duration_seconds",
            "Time to the response head",
            latency.clone(),
        );
        Metrics {
            registry,
            requests,
            bytes,
            latency,
        }
    }

    fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The request handlers over `store`, as one service. Requests must carry the client's address
/// as a `ConnectInfo<SocketAddr>` extension (the accept loop adds it).
pub fn app(store: Store, options: ServeOptions) -> Result<Router> {
    Ok(router(Arc::new(Shared::new(store, options)?)))
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/modelfs.json", get(config))
        .route("/registry.json", get(registry_file))
        .route("/catalog.json", get(catalog_file))
        .route("/manifests/{id}", get(manifest))
        .route("/packs/{name}", get(pack))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

/// Access rules and accounting around every request.
async fn guard(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = match request.uri().path().split('/').nth(1).unwrap_or("") {
        r @ ("health" | "metrics" | "modelfs.json" | "registry.json" | "catalog.json"
        | "manifests" | "packs") => r.to_owned(),
        _ => "other".to_owned(),
    };
    let response = if !shared.options.allow.is_empty()
        && !shared
            .options
            .allow
            .iter()
            .any(|net| net.contains(&peer.ip()))
    {
        (StatusCode::FORBIDDEN, "address not allowed\n").into_response()
    } else if !authorized(&shared, request.headers()) && route != "health" {
        let mut response = (StatusCode::UNAUTHORIZED, "bearer token required\n").into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        response
    } else {
        next.run(request).await
    };
    shared
        .metrics
        .requests
        .get_or_create(&RouteLabels {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    shared
        .metrics
        .latency
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Whether the request carries the token (in constant time), or none is needed.
fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(token) = &shared.options.token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let (given, token) = (given.as_bytes(), token.as_bytes());
    given.len() == token.len()
        && given
            .iter()
            .zip(token)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
        .into_response()
}

fn json(shared: &Shared, bytes: Bytes) -> Response {
    shared.metrics.bytes.inc_by(bytes.len() as u64);
    ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

fn failed(error: &Error) -> Response {
    warn!(error = %error, "request failed");
    (StatusCode::INTERNAL_SERVER_ERROR, "store read failed\n").into_response()
}

async fn config(State(shared): State<Arc<Shared>>) -> Response {
    let path = shared.store.root().join("modelfs.json");
    match read_capped(&path, crate::format::config::MAX_CONFIG_LEN) {
        Ok(bytes) => json(&shared, bytes.into()),
        Err(e) => failed(&Error::io(path, e)),
    }
}

async fn registry_file(State(shared): State<Arc<Shared>>) -> Response {
    json(&shared, shared.view().registry_json.clone())
}

async fn catalog_file(State(shared): State<Arc<Shared>>) -> Response {
    json(&shared, shared.view().catalog_json.clone())
}

async fn manifest(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>) -> Response {
    let Ok(id) = id.parse::<ManifestId>() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if shared
        .view()
        .manifests
        .as_ref()
        .is_some_and(|m| !m.contains(&id))
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = shared.store.manifests().dir().join(id.to_hex());
    let read = tokio::task::spawn_blocking(move || {
        read_capped(&path, MAX_MANIFEST_LEN).map_err(|e| Error::io(path, e))
    });
    match read.await.expect("manifest read task panicked") {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(Error::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => {
            StatusCode::NOT_FOUND.into_response()
        }
        Err(e) => failed(&e),
    }
}

/// A `Range` header this server does not satisfy (answered with 416): malformed, several ranges,
/// or outside the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// A byte range asked for with `Range: bytes=…`, resolved against a file of `len` bytes as
/// `(start, end)`, end exclusive: `Ok(None)` for the whole file.
pub fn parse_range(
    value: Option<&str>,
    len: u64,
) -> std::result::Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(value) = value else { return Ok(None) };
    let spec = value.trim().strip_prefix("bytes=").ok_or(Unsatisfiable)?;
    if spec.contains(',') {
        // One range per request: clients coalesce on their side.
        return Err(Unsatisfiable);
    }
    let (first, last) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let number = |s: &str| -> std::result::Result<u64, Unsatisfiable> {
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Unsatisfiable);
        }
        s.parse().map_err(|_| Unsatisfiable)
    };
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n = number(suffix)?;
            if n == 0 || len == 0 {
                return Err(Unsatisfiable);
            }
            (len.saturating_sub(n), len)
        }
        (start, "") => (number(start)?, len),
        (start, end) => (number(start)?, number(end)?.saturating_add(1).min(len)),
    };
    if start >= end || start >= len {
        return Err(Unsatisfiable);
    }
    Ok(Some((start, end)))
}

async fn pack(
    State(shared): State<Arc<Shared>>,
    activity: Option<axum::Extension<Activity>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let Some(id) = name
        .strip_suffix(".pack")
        .and_then(|hex| hex.parse::<PackId>().ok())
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let path: PathBuf = pack_path(shared.store.packs_dir(), &id);
    let opened = tokio::task::spawn_blocking(move || {
        let file = open_regular(&path).map_err(|e| Error::io(&path, e))?;
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        Ok::<_, Error>((file, len))
    });
    let (file, len) = match opened.await.expect("pack open task panicked") {
        Ok(opened) => opened,
        Err(Error::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => {
            return StatusCode::NOT_FOUND.into_response();
        }
        Err(e) => return failed(&e),
    };
    let range = headers.get(header::RANGE).map(|v| v.to_str().unwrap_or(""));
    let (status, start, end) = match parse_range(range, len) {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end),
        Err(Unsatisfiable) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response();
        }
    };
    let hidden = shared
        .view()
        .hidden
        .as_ref()
        .map(|h| h.get(&id).cloned().unwrap_or_default());
    let body = PackBody {
        file: Arc::new(file),
        at: start,
        end,
        hidden,
        shared: shared.clone(),
        activity: activity.map(|a| a.0),
    };
    let mut response = Response::new(Body::from_stream(body.into_stream()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {start}-{}/{len}", end - 1);
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&value).expect("a range is a valid header"),
        );
    }
    response
}

/// The bytes `at..end` of a pack, read piece by piece as the client takes them.
struct PackBody {
    file: Arc<std::fs::File>,
    at: u64,
    end: u64,
    /// Payload ranges to send as zeros (`--models`).
    hidden: Option<Vec<(u64, u64)>>,
    shared: Arc<Shared>,
    /// The connection's progress clock (absent when the handlers run outside the accept loop).
    activity: Option<Activity>,
}

impl PackBody {
    fn into_stream(self) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
        futures_util::stream::unfold(self, |mut body| async move {
            if body.at >= body.end {
                return None;
            }
            let n = (body.end - body.at).min(PIECE as u64) as usize;
            if let Some(limit) = &body.shared.limit {
                let wait = limit.reserve(n as u64);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            let (file, at) = (body.file.clone(), body.at);
            let read = tokio::task::spawn_blocking(move || {
                let mut piece = vec![0u8; n];
                file.read_exact_at(&mut piece, at).map(|()| piece)
            })
            .await
            .expect("pack read task panicked");
            let mut piece = match read {
                Ok(piece) => piece,
                Err(e) => {
                    return Some((
                        Err(e),
                        PackBody {
                            at: body.end,
                            ..body
                        },
                    ));
                }
            };
            if let Some(hidden) = &body.hidden {
                zero_hidden(&mut piece, at, hidden);
            }
            body.at += n as u64;
            body.shared.metrics.bytes.inc_by(n as u64);
            if let Some(activity) = &body.activity {
                activity.touch();
            }
            Some((Ok(Bytes::from(piece)), body))
        })
    }
}

/// Zeroes the parts of `piece` (pack bytes from `at`) that fall in `hidden` (sorted ranges).
fn zero_hidden(piece: &mut [u8], at: u64, hidden: &[(u64, u64)]) {
    let end = at + piece.len() as u64;
    let first = hidden.partition_point(|&(_, e)| e <= at);
    for &(start, stop) in hidden[first..].iter().take_while(|&&(s, _)| s < end) {
        let (from, to) = (start.max(at) - at, stop.min(end) - at);
        piece[from as usize..to as usize].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-3"), 10), Ok(Some((0, 4))));
        assert_eq!(parse_range(Some("bytes=4-"), 10), Ok(Some((4, 10))));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ok(Some((7, 10))));
        assert_eq!(parse_range(Some("bytes=5-100"), 10), Ok(Some((5, 10))));
        for bad in [
            "bytes=5-1",
            "bytes=-0",
            "bytes=10-",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
            "",
        ] {
            assert_eq!(parse_range(Some(bad), 10), Err(Unsatisfiable), "{bad}");
        }
    }

    #[test]
    fn hidden_payloads_are_zeroed() {
        let mut piece = vec![1u8; 10];
        zero_hidden(&mut piece, 100, &[(90, 102), (105, 106), (109, 200)]);
        assert_eq!(piece, [0, 0, 1, 1, 1, 0, 1, 1, 1, 0]);
    }
}
