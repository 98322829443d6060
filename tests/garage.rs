//! Object-store helpers: `Garage`, a single-node Garage (an S3-compatible object store) on
//! loopback in a temporary directory with one bucket and one key allowed on it, which can be
//! stopped and started again on the same data; and `FaultProxy`, a small HTTP proxy in front of
//! it that injects one chosen fault and counts the pack bytes it relays.
//!
//! Every process and thread started here is stopped when its owner is dropped, and every wait is
//! bounded in time.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netutil::{Run, connect, free_port, raw_http, run_within};

/// The region Garage is configured with (its `s3_region`).
pub const REGION: &str = "garage";

/// How long one Garage CLI command may take.
const CLI_DEADLINE: Duration = Duration::from_secs(30);
/// How long Garage may take to answer after it was started.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Variables of the AWS SDK conventions that would change how modelfs reaches the bucket; the
/// tests set the ones they mean and clear these.
pub const AWS_CLEARED: [&str; 9] = [
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_ALLOW_HTTP",
    "AWS_CONDITIONAL_PUT",
];

/// The Garage binary: `$MODELFS_GARAGE`, else what `tools/garage.sh` prints (that script builds
/// Garage when there is none), found once per test process.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("MODELFS_GARAGE").map(PathBuf::from) {
            use std::os::unix::fs::PermissionsExt;
            if std::fs::metadata(&path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            {
                return Ok(path);
            }
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/garage.sh");
        eprintln!(
            "MODELFS_GARAGE is not set to a garage binary: running {} (it builds Garage if needed)",
            script.display()
        );
        // Building Garage from source takes a long time on a small machine.
        let run = run_within(Command::new(&script), Duration::from_secs(3 * 3600 + 600));
        if !run.success() {
            return Err(format!(
                "{} failed ({:?}):\n{}",
                script.display(),
                run.status,
                run.stderr
            ));
        }
        let path = PathBuf::from(run.stdout_text().trim());
        match path.is_file() {
            true => Ok(path),
            false => Err(format!(
                "{} printed {path:?}, which is not a file",
                script.display()
            )),
        }
    });
    match found {
        Ok(path) => path,
        Err(why) => panic!("no Garage binary: {why}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Garage.
// ---------------------------------------------------------------------------------------------

/// A single-node Garage on 127.0.0.1 with one bucket and one key that may read, write and own
/// it. Killed on drop.
pub struct Garage {
    dir: tempfile::TempDir,
    config: PathBuf,
    child: Option<Child>,
    /// The S3 API port.
    pub s3_port: u16,
    /// The bucket created at start.
    pub bucket: String,
    /// The key allowed on the bucket.
    pub key_id: String,
    pub secret: String,
}

impl Garage {
    /// Starts Garage in a new temporary directory, lays out its single node, creates `bucket` and
    /// a key with read, write and owner rights on it.
    pub fn new(bucket: &str) -> Garage {
        let mut failures = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let ports = distinct_free_ports();
            let config = dir.path().join("garage.toml");
            let secret: String = crate::util::random_bytes(
                u64::from(std::process::id()) ^ (u64::from(ports[0]) << 32) ^ now_nanos(),
                32,
            )
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
            let d = dir.path().display();
            let text = format!(
                "metadata_dir = \"{d}/meta\"\n\
                 data_dir = \"{d}/data\"\n\
                 db_engine = \"lmdb\"\n\
                 replication_factor = 1\n\
                 compression_level = \"none\"\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{secret}\"\n\
                 \n\
                 [s3_api]\n\
                 s3_region = \"{REGION}\"\n\
                 api_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n\
                 \n\
                 [admin]\n\
                 api_bind_addr = \"127.0.0.1:{admin}\"\n",
                s3 = ports[0],
                rpc = ports[1],
                admin = ports[2],
            );
            std::fs::write(&config, text).unwrap();
            let mut garage = Garage {
                dir,
                config,
                child: None,
                s3_port: ports[0],
                bucket: bucket.to_owned(),
                key_id: String::new(),
                secret: String::new(),
            };
            match garage.launch() {
                Ok(()) => {
                    garage.set_up();
                    return garage;
                }
                // Most likely a port was taken in the meantime: try others.
                Err(why) => failures.push_str(&why),
            }
        }
        panic!("Garage did not start:\n{failures}");
    }

    /// `http://127.0.0.1:PORT` of the S3 API.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// `127.0.0.1:PORT` of the S3 API.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.s3_port)
    }

    /// `s3://BUCKET/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The environment that points modelfs at this Garage.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        self.env_at(&self.endpoint())
    }

    /// The same credentials with requests sent to `endpoint` (a proxy in front of Garage).
    pub fn env_at(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ]
    }

    /// What Garage logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    /// Kills the server (SIGKILL): the bucket goes away, its data stays on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same directories and ports, after `stop`.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "Garage is already running");
        // The old process's ports may take a moment to be free again.
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.launch() {
                Ok(()) => break,
                Err(why) if Instant::now() > deadline => panic!("Garage did not restart:\n{why}"),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
        // The S3 API answers once the node has loaded its layout.
        self.wait_for_bucket();
    }

    /// `garage -c CONFIG ARGS…`, with a deadline.
    pub fn cli(&self, args: &[&str]) -> Run {
        let mut command = Command::new(binary());
        command
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .env("RUST_LOG", "warn");
        run_within(command, CLI_DEADLINE)
    }

    /// Like `cli`, retried for up to 30 s while it fails (the cluster may still be settling);
    /// returns its stdout.
    fn cli_ok(&self, args: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let run = self.cli(args);
            if run.success() {
                return run.stdout_text();
            }
            if Instant::now() > deadline {
                panic!(
                    "garage {args:?} failed ({:?}):\n{}\n{}\nGarage's log:\n{}",
                    run.status,
                    run.stderr,
                    run.stdout_text(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Spawns `garage server` and waits until it answers `garage status` and accepts S3
    /// connections. `Err` (with its log) if it exits or does not answer in time.
    fn launch(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("garage.log"))
            .unwrap();
        let child = Command::new(binary())
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", "garage=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary().display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(format!("garage server exited ({status}):\n{}", self.log()));
            }
            if connect(&self.addr()).is_ok() && self.cli(&["status"]).success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "garage server did not answer within {START_DEADLINE:?}:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Lays out the single node, creates the bucket and the key, and allows the key on it.
    fn set_up(&mut self) {
        let node = self.cli_ok(&["node", "id", "-q"]);
        let node = node.trim().split('@').next().unwrap_or("").to_owned();
        assert!(
            node.len() >= 16 && node.bytes().all(|b| b.is_ascii_hexdigit()),
            "unexpected node id {node:?}"
        );
        self.cli_ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        self.cli_ok(&["layout", "apply", "--version", "1"]);
        self.cli_ok(&["bucket", "create", &self.bucket]);
        let key = self.cli_ok(&["key", "create", "modelfs-tests"]);
        // A table of `Name:   value` lines.
        let field = |name: &str| {
            key.lines()
                .find(|l| l.trim_start().starts_with(name))
                .and_then(|l| l.split_whitespace().last())
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("no {name:?} in the output of `key create`:\n{key}"))
        };
        self.key_id = field("Key ID:");
        self.secret = field("Secret key:");
        assert!(
            self.key_id.starts_with("GK") && self.secret.len() >= 32,
            "unexpected key in the output of `key create`:\n{key}"
        );
        self.cli_ok(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            &self.bucket,
            "--key",
            &self.key_id,
        ]);
        self.wait_for_bucket();
    }

    /// Waits until the S3 API answers requests about the bucket (any HTTP answer that is not a
    /// server error: an unsigned request is refused, which shows the API runs).
    fn wait_for_bucket(&self) {
        let deadline = Instant::now() + START_DEADLINE;
        let request = format!(
            "GET /{}/modelfs-probe HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.bucket,
            self.addr()
        );
        loop {
            let response = raw_http(&self.addr(), request.as_bytes(), Duration::from_secs(5));
            if response.is_some_and(|r| r.status < 500) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Garage's S3 API did not answer within {START_DEADLINE:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three different ports that were free a moment ago.
fn distinct_free_ports() -> [u16; 3] {
    loop {
        let ports = [free_port(), free_port(), free_port()];
        if ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2] {
            return ports;
        }
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// FaultProxy: an HTTP proxy in front of Garage that injects one fault.
// ---------------------------------------------------------------------------------------------

/// What a `FaultProxy` does to the traffic it relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyFault {
    /// Nothing: every request and response is relayed as it is.
    Nothing,
    /// The first N requests are answered `503 SlowDown` without reaching Garage.
    SlowDown(u64),
    /// The first N successful pack reads (GET of a `/packs/` object) declare their full length
    /// but send half of it and close the connection.
    TruncatePacks(u64),
    /// Successful pack reads of ranges that end before the object's end (chunk records; the
    /// table and trailer at a pack's end are left intact, so only chunk verification catches
    /// it) get one byte in every 8 KiB flipped.
    FlipPacks,
}

struct ProxyState {
    upstream: SocketAddr,
    fault: ProxyFault,
    stop: AtomicBool,
    requests: AtomicU64,
    injected: AtomicU64,
    pack_bytes: AtomicU64,
    /// `METHOD TARGET -> STATUS` of every request answered so far, in order.
    log: Mutex<Vec<String>>,
}

/// An HTTP/1.1 proxy (std::net and threads only) forwarding to one upstream address, one
/// request per connection (it answers `Connection: close`), with one `ProxyFault`. Requests keep
/// their `Host` header, so signed S3 requests stay valid. Every thread stops when it is dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    acceptor: Option<JoinHandle<()>>,
}

/// Longest the proxy waits for the next byte from either side.
const PROXY_IDLE: Duration = Duration::from_secs(90);

impl FaultProxy {
    /// Starts a proxy on a free 127.0.0.1 port forwarding to `upstream` (`host:port`).
    pub fn start(upstream: &str, fault: ProxyFault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ProxyState {
            upstream: upstream.parse().expect("numeric host:port"),
            fault,
            stop: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            pack_bytes: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        });
        let shared = state.clone();
        let acceptor = std::thread::spawn(move || proxy_accept_loop(listener, shared));
        FaultProxy {
            addr,
            state,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// How many times the fault was injected so far.
    pub fn injected(&self) -> u64 {
        self.state.injected.load(Ordering::Relaxed)
    }

    /// Body bytes of pack reads sent to clients so far.
    pub fn pack_bytes(&self) -> u64 {
        self.state.pack_bytes.load(Ordering::Relaxed)
    }

    /// `METHOD TARGET -> STATUS` of every request answered so far, in order.
    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn proxy_accept_loop(listener: TcpListener, state: Arc<ProxyState>) {
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    while !state.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let shared = state.clone();
                handlers.retain(|h| !h.is_finished());
                handlers.push(std::thread::spawn(move || {
                    let _ = proxy_handle(stream, &shared);
                }));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    for handler in handlers {
        let _ = handler.join();
    }
}

/// A socket and the bytes read from it but not used yet.
struct Conn {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> std::io::Result<Conn> {
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        stream.set_write_timeout(Some(PROXY_IDLE))?;
        Ok(Conn {
            stream,
            pending: Vec::new(),
        })
    }

    /// Reads more bytes into `pending`; `Ok(0)` when the peer closed.
    fn fill(&mut self, state: &ProxyState) -> std::io::Result<usize> {
        let deadline = Instant::now() + PROXY_IDLE;
        let mut buf = [0u8; 64 << 10];
        loop {
            if state.stop.load(Ordering::Relaxed) {
                return Err(ErrorKind::Interrupted.into());
            }
            match self.stream.read(&mut buf) {
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) && Instant::now() < deadline => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes bytes up to and including the first `needle`, reading as needed (at most `cap`).
    fn take_through(
        &mut self,
        needle: &[u8],
        cap: usize,
        state: &ProxyState,
    ) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(at) = self.pending.windows(needle.len()).position(|w| w == needle) {
                let rest = self.pending.split_off(at + needle.len());
                return Ok(std::mem::replace(&mut self.pending, rest));
            }
            if self.pending.len() > cap {
                return Err(ErrorKind::InvalidData.into());
            }
            if self.fill(state)? == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Up to `max` bytes (at least one unless the peer closed).
    fn take_some(&mut self, max: usize, state: &ProxyState) -> std::io::Result<Vec<u8>> {
        if self.pending.is_empty() && self.fill(state)? == 0 {
            return Ok(Vec::new());
        }
        let n = max.min(self.pending.len());
        let rest = self.pending.split_off(n);
        Ok(std::mem::replace(&mut self.pending, rest))
    }
}

/// A request or response head.
struct Head {
    first: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn parse(raw: &[u8]) -> Option<Head> {
        let text = std::str::from_utf8(raw).ok()?;
        let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
        let first = lines.next()?.to_owned();
        let headers = lines
            .map(|l| {
                let (name, value) = l.split_once(':')?;
                Some((name.trim().to_owned(), value.trim().to_owned()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Head { first, headers })
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> Option<u64> {
        self.get("content-length").and_then(|v| v.parse().ok())
    }

    fn chunked(&self) -> bool {
        self.get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    /// The head with `Connection: close` instead of any connection management headers.
    fn encode_closing(&self) -> Vec<u8> {
        let mut text = format!("{}\r\n", self.first);
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            if !matches!(
                lower.as_str(),
                "connection" | "keep-alive" | "proxy-connection"
            ) {
                text.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        text.push_str("Connection: close\r\n\r\n");
        text.into_bytes()
    }
}

/// Copies exactly `len` bytes from `from` to `to`, letting `edit` change each piece (given its
/// offset in the body) on the way; returns the count copied (less if `from` closed early).
fn relay_exact(
    from: &mut Conn,
    to: &mut dyn Write,
    len: u64,
    state: &ProxyState,
    edit: &mut dyn FnMut(u64, &mut [u8]),
) -> std::io::Result<u64> {
    let mut done = 0u64;
    while done < len {
        let mut piece = from.take_some((len - done).min(1 << 20) as usize, state)?;
        if piece.is_empty() {
            break;
        }
        edit(done, &mut piece);
        to.write_all(&piece)?;
        done += piece.len() as u64;
    }
    Ok(done)
}

/// Copies everything `from` sends until it closes; returns the count.
fn relay_to_end(from: &mut Conn, to: &mut dyn Write, state: &ProxyState) -> std::io::Result<u64> {
    relay_exact(from, to, u64::MAX, state, &mut |_, _| {})
}

/// Copies a chunked body (chunks, the last chunk and trailers) from `from` to `to`.
fn relay_chunked(from: &mut Conn, to: &mut dyn Write, state: &ProxyState) -> std::io::Result<()> {
    loop {
        let line = from.take_through(b"\r\n", 4096, state)?;
        to.write_all(&line)?;
        let text = String::from_utf8_lossy(&line);
        let size = u64::from_str_radix(text.trim().split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::from(ErrorKind::InvalidData))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let line = from.take_through(b"\r\n", 65536, state)?;
                to.write_all(&line)?;
                if line == b"\r\n" {
                    return Ok(());
                }
            }
        }
        if relay_exact(from, to, size + 2, state, &mut |_, _| {})? != size + 2 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Relays a request's body (by `Content-Length` or chunked) from `from` to `to`.
fn relay_request_body(
    head: &Head,
    from: &mut Conn,
    to: &mut dyn Write,
    state: &ProxyState,
) -> std::io::Result<()> {
    if head.chunked() {
        relay_chunked(from, to, state)
    } else if let Some(len) = head.content_length() {
        match relay_exact(from, to, len, state, &mut |_, _| {})? == len {
            true => Ok(()),
            false => Err(ErrorKind::UnexpectedEof.into()),
        }
    } else {
        Ok(())
    }
}

/// Counts one more injection if fewer than `limit` were made; whether this one is injected.
fn inject_within(state: &ProxyState, limit: u64) -> bool {
    state
        .injected
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
}

fn proxy_handle(stream: TcpStream, state: &ProxyState) -> std::io::Result<()> {
    let mut client = Conn::new(stream)?;
    let raw = client.take_through(b"\r\n\r\n", 64 << 10, state)?;
    let request = Head::parse(&raw).ok_or(ErrorKind::InvalidData)?;
    let index = state.requests.fetch_add(1, Ordering::Relaxed);
    let mut words = request.first.split_whitespace();
    let method = words.next().unwrap_or("").to_owned();
    let target = words.next().unwrap_or("/").to_owned();
    let path = target.split('?').next().unwrap_or("").to_owned();
    let record = |status: &str| {
        state
            .log
            .lock()
            .unwrap()
            .push(format!("{method} {target} -> {status}"));
    };

    if let ProxyFault::SlowDown(limit) = state.fault
        && index < limit
        && inject_within(state, limit)
    {
        relay_request_body(&request, &mut client, &mut std::io::sink(), state)?;
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                    <Message>Please reduce your request rate.</Message></Error>";
        client.stream.write_all(
            format!(
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\nRetry-After: 0\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )?;
        record("503 (injected)");
        let _ = client.stream.shutdown(Shutdown::Write);
        return Ok(());
    }

    let upstream = TcpStream::connect_timeout(&state.upstream, Duration::from_secs(5))?;
    let mut upstream = Conn::new(upstream)?;
    upstream.stream.write_all(&request.encode_closing())?;
    relay_request_body(&request, &mut client, &mut upstream.stream, state)?;
    let raw = upstream.take_through(b"\r\n\r\n", 256 << 10, state)?;
    let response = Head::parse(&raw).ok_or(ErrorKind::InvalidData)?;
    let status: u16 = response
        .first
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(ErrorKind::InvalidData)?;
    client.stream.write_all(&response.encode_closing())?;

    let has_body = method != "HEAD" && !matches!(status, 100..=199 | 204 | 304);
    let pack_read = method == "GET" && path.contains("/packs/") && (200..300).contains(&status);
    let mut note = String::new();
    if has_body {
        let sent = match response.content_length() {
            Some(len) => {
                // Whether the range reaches the object's end (a pack's table and trailer).
                let to_end = response
                    .get("content-range")
                    .and_then(|v| {
                        let (span, total) = v.trim_start_matches("bytes ").split_once('/')?;
                        let last: u64 = span.split_once('-')?.1.trim().parse().ok()?;
                        Some(last + 1 == total.trim().parse::<u64>().ok()?)
                    })
                    .unwrap_or(true);
                let truncate = pack_read
                    && len > 1
                    && matches!(state.fault, ProxyFault::TruncatePacks(limit)
                        if inject_within(state, limit));
                let flip = pack_read && !to_end && state.fault == ProxyFault::FlipPacks;
                if flip {
                    state.injected.fetch_add(1, Ordering::Relaxed);
                    note.push_str(" (flipped)");
                }
                if truncate {
                    note.push_str(" (truncated)");
                }
                let send = if truncate { len / 2 } else { len };
                relay_exact(
                    &mut upstream,
                    &mut client.stream,
                    send,
                    state,
                    &mut |offset, piece| {
                        if flip {
                            flip_every_8k(offset, piece);
                        }
                    },
                )?
            }
            None => relay_to_end(&mut upstream, &mut client.stream, state)?,
        };
        if pack_read {
            state.pack_bytes.fetch_add(sent, Ordering::Relaxed);
        }
    }
    record(&format!("{status}{note}"));
    client.stream.flush()?;
    let _ = client.stream.shutdown(Shutdown::Write);
    Ok(())
}

/// Flips the byte at every body offset 4096 + k·8192 that falls inside `piece` (which starts at
/// body offset `offset`).
fn flip_every_8k(offset: u64, piece: &mut [u8]) {
    let end = offset + piece.len() as u64;
    let mut at = offset - offset % 8192 + 4096;
    if at < offset {
        at += 8192;
    }
    while at < end {
        piece[(at - offset) as usize] ^= 0x5A;
        at += 8192;
    }
}
