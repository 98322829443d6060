//! The HTTP handlers of `modelfs serve` (`peer::server::app`, the axum router the accept loop
//! runs) over a small real store built once per process (a GGUF model `llama`, a folder model
//! `bert`; small packs), one request per input, with and without `--models bert` and a bearer
//! token.
//!
//! # Input layout
//!
//! ```text
//! flags  u8  bits 0-2 method: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, BREW
//!            bit 3 serve only `bert` (--models)      bit 4 require the token `fuzz-token`
//!            bit 5 send a Range header (line 2)      bit 6 send an Authorization header (line 3)
//!            bit 7 expand `@pD` / `@PD` in the path to the lower / upper hex id of pack D, and
//!                  `@mD` / `@MD` to manifest D (D a digit, modulo the count; sorted by id)
//! rest   the path (lossy UTF-8; inputs that are no URI are skipped) `\n` Range `\n` Authorization
//! ```
//!
//! Oracles beyond no panic: no 500 (the store is intact); without the right token everything but
//! `/health` is 401, with it nothing is; a path holding `..` or an encoded slash or backslash gets
//! a 4xx; a 2xx answers only GET or HEAD on a route, and then with the true bytes: a pack only for
//! a path that decodes to exactly `/packs/<32 hex>.pack` of an existing pack, its bytes from the
//! range `parse_range` gives (206 with a `Content-Range` matching the body, else 200; with
//! `--models`, bytes may only be zeroed, never changed), a manifest only when it exists and its
//! model is shown, the registry listing the shown models, the catalog listing every pack; and
//! what must be served is (the files at their own names, 416 with `bytes */LEN` for a range that
//! cannot be satisfied).
#![no_main]

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use libfuzzer_sys::fuzz_target;
use modelfs::format::{catalog, registry};
use modelfs::id::{ManifestId, PackId};
use modelfs::peer::server::{ServeOptions, app, parse_range};
use modelfs::progress::Silent;
use modelfs::store::{Access, Store};
use modelfs_fuzz::models;
use tower::ServiceExt;

/// The bearer token when one is required.
const TOKEN: &str = "fuzz-token";
/// The model `--models` shows.
const SHOWN: &str = "bert";
/// Every model in the store.
const MODELS: [&str; 2] = ["bert", "llama"];
/// Bodies are read up to this many bytes (the store's packs are far smaller).
const BODY_CAP: usize = 8 << 20;

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW",
];
const MODELS_FILTER: u8 = 8;
const REQUIRE_TOKEN: u8 = 16;
const RANGE: u8 = 32;
const AUTH: u8 = 64;
const EXPAND: u8 = 128;

/// The store and one router per option set (index: bit 0 `--models`, bit 1 token).
struct Fixture {
    apps: Vec<Router>,
    config: Vec<u8>,
    /// Pack bytes by id, and the ids sorted.
    packs: HashMap<PackId, Vec<u8>>,
    pack_ids: Vec<PackId>,
    /// Manifest bytes and whether `--models` shows them, by id; and the ids sorted.
    manifests: HashMap<ManifestId, (Vec<u8>, bool)>,
    manifest_ids: Vec<ManifestId>,
}

fn build() -> Fixture {
    let scratch = modelfs_fuzz::scratch_dir("serve");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch directory");
    // SAFETY: called once from the fuzz target's init, before the library or libFuzzer start
    // threads of their own; nothing else reads the environment concurrently.
    unsafe {
        std::env::set_var("XDG_CACHE_HOME", scratch.join("cache"));
    }
    let root = scratch.join("store");
    Store::init(&root, modelfs_fuzz::store::options()).expect("init fixture store");
    let inputs = scratch.join("inputs");
    std::fs::create_dir_all(inputs.join("bert/tok")).expect("input dirs");
    {
        let store = Store::open(&root, Access::Write).expect("open fixture store");
        let add = |model: &str, version: &str, source: PathBuf| {
            let request = modelfs::ingest::AddRequest {
                model: model.into(),
                version: Some(version.into()),
                source,
            };
            modelfs::ingest::add(&store, &request, &Silent).expect("add fixture model");
        };
        let gguf = inputs.join("llama.gguf");
        std::fs::write(&gguf, models::small_gguf(1)).expect("write input");
        add("llama", "v1", gguf);
        let folder: [(&str, Vec<u8>); 3] = [
            ("model.safetensors", models::small_safetensors(2)),
            ("config.json", br#"{"hidden_size": 64}"#.to_vec()),
            ("tok/vocab.txt", b"[PAD]\n[UNK]\nhello\nworld\n".repeat(40)),
        ];
        for (path, bytes) in &folder {
            std::fs::write(inputs.join("bert").join(path), bytes).expect("write input");
        }
        add("bert", "main", inputs.join("bert"));
    }
    let _ = std::fs::remove_dir_all(&inputs);

    let mut packs = HashMap::new();
    for entry in std::fs::read_dir(root.join("packs")).expect("packs dir") {
        let entry = entry.expect("packs entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".pack").and_then(|h| h.parse().ok()) {
            packs.insert(id, std::fs::read(entry.path()).expect("read pack"));
        }
    }
    let store = Store::open(&root, Access::Read).expect("reopen fixture store");
    let mut manifests = HashMap::new();
    for (model, entry) in &store.registry().expect("fixture registry").models {
        for file in entry.versions.iter().flat_map(|v| &v.files) {
            let bytes = std::fs::read(root.join("manifests").join(file.manifest.to_hex()))
                .expect("read manifest");
            manifests.insert(file.manifest, (bytes, model == SHOWN));
        }
    }
    drop(store);
    assert!(packs.len() >= 2, "fixture packs: {}", packs.len());
    assert!(manifests.values().any(|m| m.1) && manifests.values().any(|m| !m.1));
    let mut pack_ids: Vec<PackId> = packs.keys().copied().collect();
    pack_ids.sort_by_key(|id| id.to_hex());
    let mut manifest_ids: Vec<ManifestId> = manifests.keys().copied().collect();
    manifest_ids.sort_by_key(|id| id.to_hex());

    let apps = (0..4)
        .map(|set: u8| {
            let options = ServeOptions {
                models: (set & 1 != 0).then(|| vec![SHOWN.to_owned()]),
                token: (set & 2 != 0).then(|| TOKEN.to_owned()),
                allow: Vec::new(),
                limit: None,
                idle_timeout: Duration::from_secs(60),
                announce: false,
            };
            let store = Store::open(&root, Access::Read).expect("open served store");
            app(store, options).expect("serve the fixture store")
        })
        .collect();
    Fixture {
        apps,
        config: std::fs::read(root.join("modelfs.json")).expect("read config"),
        packs,
        pack_ids,
        manifests,
        manifest_ids,
    }
}

/// Whether to print each request and its answer on stderr (`MODELFS_FUZZ_VERBOSE=1`, for triage).
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("MODELFS_FUZZ_VERBOSE").is_some_and(|v| v == "1"))
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();
static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(build)
}

fn runtime() -> &'static tokio::runtime::Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// `path` with `@pD`, `@PD`, `@mD`, `@MD` replaced by the ids of the fixture's packs and manifests.
fn expand(path: &str, fixture: &Fixture) -> String {
    let mut out = String::with_capacity(path.len() + 64);
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c == '@' {
            let mut ahead = chars.clone();
            if let (Some(kind @ ('p' | 'P' | 'm' | 'M')), Some(digit)) =
                (ahead.next(), ahead.next().and_then(|d| d.to_digit(10)))
            {
                let digit = digit as usize;
                let hex = match kind {
                    'p' | 'P' => fixture.pack_ids[digit % fixture.pack_ids.len()].to_hex(),
                    _ => fixture.manifest_ids[digit % fixture.manifest_ids.len()].to_hex(),
                };
                match kind {
                    'P' | 'M' => out.push_str(&hex.to_ascii_uppercase()),
                    _ => out.push_str(&hex),
                }
                chars = ahead;
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// `%XY` sequences decoded (others left as they are), as the router's path extractor does.
fn percent_decode(path: &str) -> Vec<u8> {
    let bytes = path.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some((Some(high), Some(low))) = bytes
                .get(i + 1..i + 3)
                .map(|pair| (hex(pair[0]), hex(pair[1])))
        {
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// One request as the input describes it, and what the oracle needs to know about it.
struct Case {
    method: Method,
    uri: Uri,
    range: Option<HeaderValue>,
    auth: Option<HeaderValue>,
    models_filter: bool,
    token: bool,
}

impl Case {
    fn parse(data: &[u8], fixture: &Fixture) -> Option<Case> {
        let (&flags, rest) = data.split_first()?;
        let mut lines = rest.splitn(3, |&b| b == b'\n');
        let mut path = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
        if flags & EXPAND != 0 {
            path = expand(&path, fixture);
        }
        let uri: Uri = path.parse().ok()?;
        let (range, auth) = (lines.next(), lines.next());
        let header = |on: u8, line: Option<&[u8]>| -> Option<Option<HeaderValue>> {
            match flags & on {
                0 => Some(None),
                _ => HeaderValue::from_bytes(line.unwrap_or_default())
                    .ok()
                    .map(Some),
            }
        };
        Some(Case {
            method: Method::from_bytes(METHODS[usize::from(flags & 7)].as_bytes())
                .expect("a method"),
            uri,
            range: header(RANGE, range)?,
            auth: header(AUTH, auth)?,
            models_filter: flags & MODELS_FILTER != 0,
            token: flags & REQUIRE_TOKEN != 0,
        })
    }

    fn request(&self) -> Request<Body> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone())
            .body(Body::empty())
            .expect("a request from a parsed URI");
        if let Some(range) = &self.range {
            request.headers_mut().insert(header::RANGE, range.clone());
        }
        if let Some(auth) = &self.auth {
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, auth.clone());
        }
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
        request
    }

    fn authorized(&self) -> bool {
        !self.token
            || self
                .auth
                .as_ref()
                .is_some_and(|v| v.as_bytes() == format!("Bearer {TOKEN}").as_bytes())
    }

    fn reads(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }
}

/// The value of header `name`, as text.
fn header_text<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks the answer to `case` against everything the fixture knows about the store.
fn check(fixture: &Fixture, case: &Case, status: StatusCode, headers: &HeaderMap, body: &Bytes) {
    let what = format!(
        "{} {} (range {:?}, auth {:?}, models filter {}, token {})",
        case.method, case.uri, case.range, case.auth, case.models_filter, case.token
    );
    let path = case.uri.path();
    let route = path.split('/').nth(1).unwrap_or("");
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{what}");
    assert_ne!(
        status,
        StatusCode::FORBIDDEN,
        "no address is refused: {what}"
    );
    if case.method == Method::HEAD {
        assert!(body.is_empty(), "HEAD with a body: {what}");
    }
    if !case.authorized() && route != "health" {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            header_text(headers, &header::WWW_AUTHENTICATE),
            Some("Bearer")
        );
        return;
    }
    assert_ne!(status, StatusCode::UNAUTHORIZED, "{what}");
    let lower = path.to_ascii_lowercase();
    if path.contains("..") || lower.contains("%2f") || lower.contains("%5c") {
        assert!(status.is_client_error(), "{status} for {what}");
    }
    if status.is_success() {
        assert!(case.reads(), "{status} for {what}");
    }
    let decoded = percent_decode(path);
    let named = |prefix: &str, suffix: &str| {
        decoded
            .strip_prefix(prefix.as_bytes())
            .and_then(|rest| rest.strip_suffix(suffix.as_bytes()))
            .and_then(|name| std::str::from_utf8(name).ok())
            .map(str::to_owned)
    };
    let pack = named("/packs/", ".pack")
        .and_then(|hex| hex.parse::<PackId>().ok())
        .filter(|id| {
            decoded.eq_ignore_ascii_case(format!("/packs/{}.pack", id.to_hex()).as_bytes())
        })
        .filter(|id| fixture.packs.contains_key(id));
    let manifest = named("/manifests/", "")
        .and_then(|hex| hex.parse::<ManifestId>().ok())
        .filter(|id| fixture.manifests.contains_key(id));
    let canonical =
        |hex: String, prefix: &str, suffix: &str| path == format!("{prefix}{hex}{suffix}");
    let get = case.method == Method::GET;

    if let Some(id) = pack {
        pack_reply(fixture, case, &what, id, status, headers, body);
        if canonical(id.to_hex(), "/packs/", ".pack") && case.reads() {
            assert!(
                status.is_success() || status == StatusCode::RANGE_NOT_SATISFIABLE,
                "{status} for {what}"
            );
        }
        return;
    }
    assert_ne!(status, StatusCode::PARTIAL_CONTENT, "{what}");
    assert_ne!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{what}");
    if let Some(id) = manifest {
        let (bytes, shown) = &fixture.manifests[&id];
        let allowed = *shown || !case.models_filter;
        if status.is_success() {
            assert!(allowed, "manifest of a hidden model served: {what}");
            if get {
                assert_eq!(body[..], bytes[..], "manifest bytes: {what}");
            }
        }
        if canonical(id.to_hex(), "/manifests/", "") && case.reads() {
            let expected = if allowed {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(status, expected, "{what}");
        }
        return;
    }
    let file = matches!(
        path,
        "/health" | "/metrics" | "/modelfs.json" | "/registry.json" | "/catalog.json"
    );
    if file && case.reads() {
        assert_eq!(status, StatusCode::OK, "{what}");
    }
    if !status.is_success() {
        return;
    }
    assert!(file, "{status} for {what}");
    if !get {
        return;
    }
    match path {
        "/health" => assert_eq!(&body[..], b"ok\n"),
        "/modelfs.json" => assert_eq!(body[..], fixture.config[..], "{what}"),
        "/registry.json" => {
            let registry = registry::decode(Path::new("registry.json"), body)
                .unwrap_or_else(|e| panic!("served registry does not decode: {e}"));
            let shown: Vec<&str> = registry.models.keys().map(String::as_str).collect();
            match case.models_filter {
                true => assert_eq!(shown, [SHOWN], "{what}"),
                false => assert_eq!(shown, MODELS, "{what}"),
            }
            for file in registry
                .models
                .values()
                .flat_map(|m| &m.versions)
                .flat_map(|v| &v.files)
            {
                assert!(fixture.manifests.contains_key(&file.manifest), "{what}");
            }
        }
        "/catalog.json" => {
            let catalog = catalog::decode(Path::new("catalog.json"), body)
                .unwrap_or_else(|e| panic!("served catalog does not decode: {e}"));
            let listed: BTreeSet<String> = catalog.packs.iter().map(|p| p.id.to_hex()).collect();
            let packs: BTreeSet<String> = fixture.pack_ids.iter().map(|id| id.to_hex()).collect();
            assert_eq!(listed, packs, "{what}");
            for pack in &catalog.packs {
                assert_eq!(pack.bytes, fixture.packs[&pack.id].len() as u64, "{what}");
            }
        }
        _ => {}
    }
}

/// A reply to a path naming existing pack `id`: the status `parse_range` implies, headers that
/// agree with the body, the true bytes (zeros allowed only with `--models`).
fn pack_reply(
    fixture: &Fixture,
    case: &Case,
    what: &str,
    id: PackId,
    status: StatusCode,
    headers: &HeaderMap,
    body: &Bytes,
) {
    let pack = &fixture.packs[&id];
    let len = pack.len() as u64;
    if !status.is_success() && status != StatusCode::RANGE_NOT_SATISFIABLE {
        return;
    }
    let range = case.range.as_ref().map(|v| v.to_str().unwrap_or(""));
    let (start, end) = match parse_range(range, len) {
        Ok(None) => {
            assert_eq!(status, StatusCode::OK, "{what}");
            (0, len)
        }
        Ok(Some((start, end))) => {
            assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{what}");
            (start, end)
        }
        Err(_) => {
            assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{what}");
            let unsatisfied = format!("bytes */{len}");
            assert_eq!(
                header_text(headers, &header::CONTENT_RANGE),
                Some(unsatisfied.as_str())
            );
            return;
        }
    };
    let content_length = header_text(headers, &header::CONTENT_LENGTH).map(str::parse::<u64>);
    assert_eq!(
        content_length,
        Some(Ok(end - start)),
        "Content-Length: {what}"
    );
    if status == StatusCode::PARTIAL_CONTENT {
        let content_range = header_text(headers, &header::CONTENT_RANGE)
            .unwrap_or_else(|| panic!("206 without Content-Range: {what}"));
        let (first, last, total) = content_range
            .strip_prefix("bytes ")
            .and_then(|r| r.split_once('-'))
            .and_then(|(first, rest)| {
                rest.split_once('/')
                    .map(|(last, total)| (first, last, total))
            })
            .and_then(|(f, l, t)| {
                Some((
                    f.parse::<u64>().ok()?,
                    l.parse::<u64>().ok()?,
                    t.parse::<u64>().ok()?,
                ))
            })
            .unwrap_or_else(|| panic!("Content-Range {content_range:?}: {what}"));
        assert_eq!(
            (first, last + 1, total),
            (start, end, len),
            "Content-Range: {what}"
        );
        if case.method == Method::GET {
            assert_eq!(
                last - first + 1,
                body.len() as u64,
                "Content-Range vs body: {what}"
            );
        }
    } else {
        assert!(
            header_text(headers, &header::CONTENT_RANGE).is_none(),
            "{what}"
        );
    }
    if case.method != Method::GET {
        return;
    }
    let truth = &pack[start as usize..end as usize];
    assert_eq!(body.len(), truth.len(), "body length: {what}");
    if case.models_filter {
        let changed = body.iter().zip(truth).position(|(&b, &t)| b != t && b != 0);
        assert_eq!(changed, None, "pack bytes changed (not zeroed): {what}");
    } else {
        assert!(body[..] == truth[..], "pack bytes differ: {what}");
    }
}

fuzz_target!(
    init: {
        fixture();
        runtime();
    },
    |data: &[u8]| {
        let fixture = fixture();
        let Some(case) = Case::parse(data, fixture) else {
            return;
        };
        let options = usize::from(case.models_filter) | usize::from(case.token) << 1;
        let app = fixture.apps[options].clone();
        let request = case.request();
        let (parts, body) = runtime().block_on(async move {
            let response = app.oneshot(request).await.expect("the router is infallible");
            let (parts, body) = response.into_parts();
            (parts, axum::body::to_bytes(body, BODY_CAP).await)
        });
        let what = format!("{} {}", case.method, case.uri);
        let body = body.unwrap_or_else(|e| panic!("{} body of {what} fails: {e}", parts.status));
        if verbose() {
            eprintln!("{what} (models filter {}, token {}, range {:?}, auth {:?}): {}, {} body bytes",
                case.models_filter, case.token, case.range, case.auth, parts.status, body.len());
        }
        check(fixture, &case, parts.status, &parts.headers, &body);
    }
);
