//! Network helpers: commands with deadlines, a raw HTTP/1.1 client, `modelfs serve` and nginx as
//! remotes, a pair of network namespaces joined by a veth link, and `Liar`, a hostile HTTP server
//! that serves a real store with one chosen fault.
//!
//! Every helper that starts a process, a thread or a namespace stops or removes it when dropped,
//! and every wait is bounded in time.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::{MODELFS, TestStore, random_bytes};

// ---------------------------------------------------------------------------------------------
// Commands with a deadline.
// ---------------------------------------------------------------------------------------------

/// What a finished (or killed at its deadline) command did.
#[derive(Debug)]
pub struct Run {
    pub what: String,
    /// `None`: still running at the deadline, killed.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Panics with everything the command printed unless it succeeded; returns its stdout.
    pub fn ok(self) -> String {
        assert!(
            self.status.is_some(),
            "{self:?}: still running at its deadline, killed"
        );
        assert!(
            self.success(),
            "{} failed ({:?}):\n{}\n{}",
            self.what,
            self.status,
            self.stderr,
            self.stdout_text()
        );
        self.stdout_text()
    }

    /// Panics unless the command failed (by itself, not by a signal) with exactly one
    /// `modelfs: ` line on stderr; returns that line.
    pub fn error_line(&self) -> String {
        let status = self
            .status
            .unwrap_or_else(|| panic!("{}: still running at its deadline, killed", self.what));
        assert!(!status.success(), "{} should have failed", self.what);
        assert!(
            status.code().is_some(),
            "{} died by a signal ({status:?}):\n{}",
            self.what,
            self.stderr
        );
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("modelfs: "))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{}: expected one error line, got:\n{}",
            self.what,
            self.stderr
        );
        lines[0].to_owned()
    }
}

/// Reads `pipe` to its end in a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

/// Runs `command` (stdin closed), killing it with SIGKILL if it outlives `deadline`.
pub fn run_within(mut command: Command, deadline: Duration) -> Run {
    let what = format!("{command:?}");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
    let (stdout, stderr) = (
        drain(child.stdout.take().unwrap()),
        drain(child.stderr.take().unwrap()),
    );
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    // A daemon the command started may hold the pipes open; do not wait for it.
    let collect =
        |rx: mpsc::Receiver<Vec<u8>>| rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    Run {
        what,
        status,
        stdout: collect(stdout),
        stderr: String::from_utf8_lossy(&collect(stderr)).into_owned(),
        elapsed,
    }
}

/// `modelfs --store STORE ARGS…` with the store's own cache directory, as `TestStore::run` does.
pub fn modelfs(store: &TestStore, args: &[&str]) -> Command {
    let mut command = Command::new(MODELFS);
    command
        .arg("--store")
        .arg(&store.store)
        .args(args)
        .env_remove("MODELFS_STORE")
        .env("XDG_CACHE_HOME", store.path("cache"));
    command
}

/// Running `modelfs` commands on a test store with a deadline.
pub trait Timed {
    /// Runs `modelfs --store STORE ARGS…`, killed if it outlives `deadline`.
    fn within(&self, args: &[&str], deadline: Duration) -> Run;

    /// Like `TestStore::ok` with a deadline.
    fn ok_within(&self, args: &[&str], deadline: Duration) -> String {
        self.within(args, deadline).ok()
    }
}

impl Timed for TestStore {
    fn within(&self, args: &[&str], deadline: Duration) -> Run {
        run_within(modelfs(self, args), deadline)
    }
}

/// The parsed registry of a store: `ls --json`.
pub fn models_of(store: &TestStore) -> serde_json::Value {
    serde_json::from_str(&store.ok(&["ls", "--json"])).expect("ls --json prints JSON")
}

/// The byte count of the `need …` line a pull prints first, e.g. `need 1.23 MB in 80 chunks`,
/// `need 0 B`, `need 1234567 bytes`. Panics if there is no such line.
pub fn need_bytes(stdout: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("need "))
        .unwrap_or_else(|| panic!("no `need` line in:\n{stdout}"));
    let mut words = line.trim_start()["need ".len()..].split_whitespace();
    let number: f64 = words
        .next()
        .and_then(|w| w.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {line:?}"));
    let unit = words
        .next()
        .unwrap_or("B")
        .trim_end_matches([',', ';', ':']);
    let scale: f64 = match unit {
        "kB" | "KB" | "k" | "K" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        "TB" => 1e12,
        "KiB" | "Ki" => 1024.0,
        "MiB" | "Mi" => 1024.0 * 1024.0,
        "GiB" | "Gi" => 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    };
    (number * scale).round() as u64
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client.
// ---------------------------------------------------------------------------------------------

/// A response read off a socket.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Status line and headers.
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `host:port` of an `http://host:port[/]` URL.
pub fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// Connects to `addr` (`host:port`) within 5 s.
pub fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let addr: SocketAddr = addr.parse().expect("numeric host:port");
    TcpStream::connect_timeout(&addr, Duration::from_secs(5))
}

/// Sends `request` as is to `addr` and reads one response within `timeout`. `None` if the server
/// closed (or reset) the connection without a complete status line and headers.
pub fn raw_http(addr: &str, request: &[u8], timeout: Duration) -> Option<Response> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    // The server may answer (or close) before reading everything; read what it said anyway.
    let _ = stream.write_all(request);
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = Vec::new();
        match read_line_until(&mut reader, &mut line, deadline) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        if line == "\r\n" || line == "\n" {
            break;
        }
        head.push_str(&line);
        if head.len() > 1 << 20 {
            return None;
        }
    }
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut response = Response {
        status,
        head,
        body: Vec::new(),
    };
    let is_head = request.starts_with(b"HEAD ");
    if is_head || status == 204 || status == 304 || (100..200).contains(&status) {
        return Some(response);
    }
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let mut size_line = Vec::new();
            if read_line_until(&mut reader, &mut size_line, deadline).unwrap_or(0) == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&size_line);
            let Ok(size) = usize::from_str_radix(text.trim().split(';').next().unwrap_or(""), 16)
            else {
                break;
            };
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            if read_exact_until(&mut reader, &mut chunk, deadline).is_err() {
                break;
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().ok()?;
        // Read no more than declared, and no more than 256 MiB in any case.
        let mut body = vec![0; len.min(256 << 20)];
        let got = read_up_to(&mut reader, &mut body, deadline);
        body.truncate(got);
        response.body = body;
    } else {
        let mut body = vec![0; 64 << 20];
        let got = read_up_to(&mut reader, &mut body, deadline);
        body.truncate(got);
        response.body = body;
    }
    Some(response)
}

/// `read_until(b'\n')` through read timeouts, until `deadline`.
fn read_line_until(
    reader: &mut BufReader<TcpStream>,
    line: &mut Vec<u8>,
    deadline: Instant,
) -> std::io::Result<usize> {
    loop {
        match reader.read_until(b'\n', line) {
            Ok(n) => return Ok(n),
            Err(e) if is_timeout(&e) && Instant::now() < deadline => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Fills `buf` through read timeouts, until `deadline`; an error if it could not.
fn read_exact_until(
    reader: &mut BufReader<TcpStream>,
    buf: &mut [u8],
    deadline: Instant,
) -> std::io::Result<()> {
    if read_up_to(reader, buf, deadline) == buf.len() {
        Ok(())
    } else {
        Err(ErrorKind::UnexpectedEof.into())
    }
}

/// Reads into `buf` until it is full, the peer closes, an error, or `deadline`; returns the count.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8], deadline: Instant) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if is_timeout(&e) && Instant::now() < deadline => {}
            Err(_) => break,
        }
    }
    got
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// `GET path` on `url` with extra header lines (each `Name: value`), within 10 s.
pub fn get(url: &str, path: &str, headers: &[&str]) -> Option<Response> {
    let addr = host_port(url);
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    raw_http(&addr, request.as_bytes(), Duration::from_secs(10))
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sum of the samples of every Prometheus metric whose name contains all of `needles`.
pub fn metric_sum(metrics: &str, needles: &[&str]) -> Option<f64> {
    let mut found = None;
    for line in metrics.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        if !needles.iter().all(|n| name.contains(n)) {
            continue;
        }
        if let Some(value) = line
            .split_whitespace()
            .last()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

// ---------------------------------------------------------------------------------------------
// `modelfs serve`.
// ---------------------------------------------------------------------------------------------

/// A running `modelfs serve`, stopped with SIGTERM (then SIGKILL) on drop.
pub struct Serve {
    child: Option<Child>,
    /// `http://IP:PORT`, from the line it printed once listening.
    pub url: String,
    /// Its stderr.
    pub log: PathBuf,
}

impl Serve {
    /// `modelfs --store STORE serve --listen 127.0.0.1:0 --no-mdns EXTRA…`.
    pub fn start(store: &TestStore, extra: &[&str]) -> Serve {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--no-mdns"];
        args.extend_from_slice(extra);
        Serve::launch(
            modelfs(store, &args),
            store.path(&format!("serve-{}.log", unique())),
        )
    }

    /// Starts `command` (a `serve` command line, possibly wrapped in `ip netns exec`), waits up
    /// to 20 s for its `serving … at http://…` line, and logs its stderr to `log`.
    pub fn launch(mut command: Command, log: PathBuf) -> Serve {
        let what = format!("{command:?}");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep reading so later output never blocks the server.
            for _ in lines.by_ref() {}
        });
        let mut serve = Serve {
            child: Some(child),
            url: String::new(),
            log,
        };
        let first = rx.recv_timeout(Duration::from_secs(20));
        let line = match first {
            Ok(Some(Ok(line))) => line,
            other => {
                serve.stop();
                panic!(
                    "{what} printed no `serving` line ({other:?}); stderr:\n{}",
                    serve.log_text()
                );
            }
        };
        let at = line
            .find("http://")
            .unwrap_or_else(|| panic!("no URL in the serve line {line:?}"));
        assert!(
            line.starts_with("serving "),
            "unexpected serve line {line:?}"
        );
        serve.url = line[at..].trim().trim_end_matches('/').to_owned();
        serve
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        host_port(&self.url)
    }

    /// What it wrote on stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its `/metrics` text.
    pub fn metrics(&self) -> String {
        let response = get(&self.url, "/metrics", &[]).expect("/metrics answers");
        assert_eq!(response.status, 200, "{response:?}");
        response.text()
    }

    /// Freezes it (SIGSTOP): connections are still accepted by the kernel, nothing answers.
    pub fn pause(&self) {
        self.signal(nix::sys::signal::SIGSTOP);
    }

    /// Thaws it after `pause` (SIGCONT).
    pub fn resume(&self) {
        self.signal(nix::sys::signal::SIGCONT);
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        if let Some(child) = &self.child {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, signal);
        }
    }

    /// Stops it now (SIGTERM, then SIGKILL after 5 s); returns how it ended.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.resume();
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Kills it with SIGKILL now.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A number unique within this test process.
pub fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// nginx.
// ---------------------------------------------------------------------------------------------

/// nginx serving a directory as its root on 127.0.0.1, killed on drop. Writes only in its own
/// temporary directory (config, pid file, logs, temp paths).
pub struct Nginx {
    child: Child,
    port: u16,
    pub dir: tempfile::TempDir,
}

impl Nginx {
    pub const BINARY: &'static str = "/usr/sbin/nginx";

    /// Serves `root` (static files, ranges built in) on a free port.
    pub fn serve(root: &Path) -> Nginx {
        assert!(
            Path::new(Nginx::BINARY).exists(),
            "{} is missing (apt-get install nginx-light)",
            Nginx::BINARY
        );
        let mut errors = String::new();
        for _attempt in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let d = dir.path().display();
            let config = format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log info;\nevents {{ worker_connections 256; }}\n\
                 http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
                 proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
                 uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
                 default_type application/octet-stream;\n  \
                 server {{ listen 127.0.0.1:{port}; root {}; }}\n}}\n",
                root.display()
            );
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, config).unwrap();
            let mut child = Command::new(Nginx::BINARY)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let addr = format!("127.0.0.1:{port}");
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    // Most likely the port was taken in the meantime: try another.
                    errors.push_str(
                        &std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default(),
                    );
                    break;
                }
                if connect(&addr).is_ok() {
                    return Nginx { child, port, dir };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("nginx did not start:\n{errors}");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Two network namespaces joined by a veth pair.
// ---------------------------------------------------------------------------------------------

/// Two network namespaces, `a` at `ip_a` and `b` at `ip_b` on one /24 over a veth pair, with
/// loopback up in both. Removed on drop (their processes must be gone by then).
pub struct NetnsPair {
    pub a: String,
    pub b: String,
    pub ip_a: String,
    pub ip_b: String,
    pub veth_a: String,
    pub veth_b: String,
}

/// Runs `ip ARGS…`; its stderr on failure.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = run_within(
        {
            let mut c = Command::new("ip");
            c.args(args);
            c
        },
        Duration::from_secs(20),
    );
    if out.success() {
        Ok(out.stdout_text())
    } else {
        Err(format!("ip {}: {}", args.join(" "), out.stderr.trim()))
    }
}

impl NetnsPair {
    /// Creates the pair; `Err` (why) only if namespaces cannot be created here at all.
    pub fn new() -> Result<NetnsPair, String> {
        NetnsPair::remove_leftovers();
        let pid = std::process::id();
        let n = unique();
        let (a, b) = (format!("mfs-{pid}-{n}-a"), format!("mfs-{pid}-{n}-b"));
        // Interface names: at most 15 bytes.
        let tag = format!("{}{}", pid % 1_000_000, n % 100);
        let (veth_a, veth_b) = (format!("mfa{tag}"), format!("mfb{tag}"));
        let subnet = format!("10.{}.{}", 100 + (pid % 150), n % 250 + 1);
        let pair = NetnsPair {
            a,
            b,
            ip_a: format!("{subnet}.1"),
            ip_b: format!("{subnet}.2"),
            veth_a,
            veth_b,
        };
        ip(&["netns", "add", &pair.a])?;
        if let Err(e) = ip(&["netns", "add", &pair.b]) {
            let _ = ip(&["netns", "del", &pair.a]);
            return Err(e);
        }
        // From here on, drop removes both.
        let setup = || -> Result<(), String> {
            ip(&[
                "link",
                "add",
                &pair.veth_a,
                "netns",
                &pair.a,
                "type",
                "veth",
                "peer",
                "name",
                &pair.veth_b,
                "netns",
                &pair.b,
            ])?;
            for (ns, dev, addr) in [
                (&pair.a, &pair.veth_a, &pair.ip_a),
                (&pair.b, &pair.veth_b, &pair.ip_b),
            ] {
                ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
                ip(&["-n", ns, "link", "set", dev, "up"])?;
                ip(&["-n", ns, "link", "set", "lo", "up"])?;
            }
            Ok(())
        };
        // Namespaces exist: a failure from here on is a real failure (drop removes them).
        setup().unwrap_or_else(|e| panic!("{e}"));
        // Wait until both ends report the link up.
        let deadline = Instant::now() + Duration::from_secs(10);
        let up = |ns: &str, dev: &str| {
            ip(&["-n", ns, "link", "show", "dev", dev]).is_ok_and(|out| out.contains("state UP"))
        };
        while !(up(&pair.a, &pair.veth_a) && up(&pair.b, &pair.veth_b)) {
            assert!(Instant::now() < deadline, "the veth link never came up");
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(pair)
    }

    /// Removes namespaces of this naming scheme left by test processes that no longer run.
    fn remove_leftovers() {
        let Ok(list) = ip(&["netns", "list"]) else {
            return;
        };
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(rest) = name.strip_prefix("mfs-") else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }

    /// `ip netns exec NS PROGRAM ARGS…`.
    pub fn command(&self, ns: &str, program: impl AsRef<OsStr>, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).arg(program).args(args);
        command
    }

    /// `modelfs --store STORE ARGS…` inside `ns`, with the store's cache directory.
    pub fn modelfs(&self, ns: &str, store: &TestStore, args: &[&str]) -> Command {
        let mut command = self.command(ns, MODELFS, &["--store", store.store.to_str().unwrap()]);
        command
            .args(args)
            .env_remove("MODELFS_STORE")
            .env("XDG_CACHE_HOME", store.path("cache"));
        command
    }

    /// (rx_bytes, tx_bytes) of the veth end in `ns`.
    pub fn counters(&self, ns: &str) -> (u64, u64) {
        let dev = if ns == self.a {
            &self.veth_a
        } else {
            &self.veth_b
        };
        let read = |what: &str| -> u64 {
            let path = format!("/sys/class/net/{dev}/statistics/{what}");
            run_within(self.command(ns, "cat", &[&path]), Duration::from_secs(10))
                .ok()
                .trim()
                .parse()
                .unwrap()
        };
        (read("rx_bytes"), read("tx_bytes"))
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            // A namespace still held by a process lingers until it exits; retry briefly.
            for _ in 0..20 {
                if ip(&["netns", "del", ns]).is_ok() {
                    break;
                }
                if !ip(&["netns", "list"])
                    .unwrap_or_default()
                    .contains(ns.as_str())
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Liar: a hostile HTTP server over a real store.
// ---------------------------------------------------------------------------------------------

/// How a `Liar` lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// No lie at all: a control, showing the server itself is a valid source.
    Honest,
    /// Flips bytes inside the chunk records of every ranged `/packs/` response (the tables are
    /// left intact, so only chunk verification can catch it).
    FlipPackBytes,
    /// `/packs/` responses declare their true length but the connection closes halfway.
    TruncateBody,
    /// `/packs/` responses declare a longer body than they send, then close.
    LyingLength,
    /// `/registry.json` declares 10^12 bytes and streams garbage.
    HugeRegistry,
    /// Every response is a status line and then silence, the connection held open.
    Slowloris,
    /// Honest until this many pack bytes were served, then the response under way is cut off
    /// and every later connection is closed at once.
    VanishAfter(u64),
    /// Manifests are served with one byte flipped, so they no longer hash to their names.
    BadManifest,
}

struct LiarState {
    root: PathBuf,
    fault: Fault,
    stop: AtomicBool,
    pack_bytes: AtomicU64,
    vanished: AtomicBool,
    requests: AtomicU64,
    /// Pack file name → where its table starts (from the store's catalog, if it has one).
    tables: HashMap<String, u64>,
}

/// An HTTP/1.1 server (std::net and threads only) serving a store directory as a static tree,
/// ranges included, with one `Fault`. Every thread stops when it is dropped; stalls last at
/// most 60 s.
pub struct Liar {
    addr: SocketAddr,
    state: Arc<LiarState>,
    acceptor: Option<JoinHandle<()>>,
}

/// Longest a `Liar` connection stalls or streams.
const LIAR_STALL: Duration = Duration::from_secs(60);

impl Liar {
    pub fn start(root: &Path, fault: Fault) -> Liar {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tables = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(root.join("catalog.json"))
            && let Ok(catalog) = serde_json::from_str::<serde_json::Value>(&text)
        {
            for pack in catalog["packs"].as_array().into_iter().flatten() {
                if let (Some(id), Some(at)) = (pack["id"].as_str(), pack["table_offset"].as_u64()) {
                    tables.insert(format!("{id}.pack"), at);
                }
            }
        }
        let state = Arc::new(LiarState {
            root: root.to_owned(),
            fault,
            stop: AtomicBool::new(false),
            pack_bytes: AtomicU64::new(0),
            vanished: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            tables,
        });
        let shared = state.clone();
        let acceptor = std::thread::spawn(move || accept_loop(listener, shared));
        Liar {
            addr,
            state,
            acceptor: Some(acceptor),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }
}

impl Drop for Liar {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<LiarState>) {
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    while !state.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if state.vanished.load(Ordering::Relaxed) {
                    let _ = stream.shutdown(Shutdown::Both);
                    continue;
                }
                let _ = stream.set_nonblocking(false);
                let shared = state.clone();
                handlers.retain(|h| !h.is_finished());
                handlers.push(std::thread::spawn(move || {
                    let _ = handle(stream, &shared);
                }));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    for handler in handlers {
        let _ = handler.join();
    }
}

/// Sleeps until the liar stops or `LIAR_STALL` passes.
fn stall(state: &LiarState) {
    let deadline = Instant::now() + LIAR_STALL;
    while Instant::now() < deadline && !state.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads a request head (up to the blank line), at most 64 KiB and 30 s.
fn read_head(stream: &mut TcpStream, state: &LiarState) -> std::io::Result<String> {
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if state.stop.load(Ordering::Relaxed) || Instant::now() > deadline || head.len() > 65536 {
            return Err(ErrorKind::TimedOut.into());
        }
        match stream.read(&mut buf) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Writes `bytes` in pieces, giving up when the liar stops.
fn write_all(stream: &mut TcpStream, bytes: &[u8], state: &LiarState) -> std::io::Result<()> {
    for piece in bytes.chunks(64 << 10) {
        if state.stop.load(Ordering::Relaxed) {
            return Err(ErrorKind::Interrupted.into());
        }
        stream.write_all(piece)?;
    }
    Ok(())
}

/// Parses a single `bytes=` range of a `len`-byte file into an inclusive (first, last).
/// `Err(())` if unsatisfiable.
fn parse_range(value: &str, len: u64) -> Result<(u64, u64), ()> {
    let spec = value.trim().strip_prefix("bytes=").ok_or(())?;
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (first, last) = if a.is_empty() {
        let suffix: u64 = b.trim().parse().map_err(|_| ())?;
        if suffix == 0 {
            return Err(());
        }
        (len.saturating_sub(suffix), len - 1)
    } else {
        let first: u64 = a.trim().parse().map_err(|_| ())?;
        let last = if b.trim().is_empty() {
            len - 1
        } else {
            b.trim().parse::<u64>().map_err(|_| ())?.min(len - 1)
        };
        (first, last)
    };
    if len == 0 || first > last || first >= len {
        return Err(());
    }
    Ok((first, last))
}

fn respond_status(stream: &mut TcpStream, status: &str) -> std::io::Result<()> {
    stream.write_all(
        format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn handle(mut stream: TcpStream, state: &LiarState) -> std::io::Result<()> {
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let head = read_head(&mut stream, state)?;
    state.requests.fetch_add(1, Ordering::Relaxed);
    let mut request_line = head.lines().next().unwrap_or("").split_whitespace();
    let method = request_line.next().unwrap_or("").to_owned();
    let target = request_line.next().unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_owned();
    let range = head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case("range")
            .then(|| value.trim().to_owned())
    });

    if state.fault == Fault::Slowloris {
        stream.write_all(b"HTTP/1.1 200 OK\r\n")?;
        stall(state);
        return Ok(());
    }
    if method != "GET" && method != "HEAD" {
        return respond_status(&mut stream, "405 Method Not Allowed");
    }
    if !path.starts_with('/') || path.split('/').any(|part| part == ".." || part == ".") {
        return respond_status(&mut stream, "400 Bad Request");
    }
    if state.fault == Fault::HugeRegistry && path == "/registry.json" {
        stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\
              Connection: close\r\n\r\n",
        )?;
        // Garbage at about 32 MiB/s, at most 256 MiB or 60 s.
        let garbage = random_bytes(0xBAD, 1 << 20);
        let deadline = Instant::now() + LIAR_STALL;
        let mut sent = 0u64;
        while sent < 256 << 20 && Instant::now() < deadline {
            write_all(&mut stream, &garbage, state)?;
            sent += garbage.len() as u64;
            std::thread::sleep(Duration::from_millis(30));
        }
        return Ok(());
    }
    let file_path = state.root.join(&path[1..]);
    let Ok(file) = std::fs::File::open(&file_path) else {
        return respond_status(&mut stream, "404 Not Found");
    };
    let len = file.metadata()?.len();
    if !file.metadata()?.is_file() {
        return respond_status(&mut stream, "404 Not Found");
    }
    let (first, last, ranged) = match range {
        Some(value) => match parse_range(&value, len) {
            Ok((first, last)) => (first, last, true),
            Err(()) => {
                return stream.write_all(
                    format!(
                        "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\n\
                         Content-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                );
            }
        },
        None if len == 0 => (0, 0, false),
        None => (0, len - 1, false),
    };
    let mut body = vec![
        0u8;
        if len == 0 {
            0
        } else {
            (last - first + 1) as usize
        }
    ];
    file.read_exact_at(&mut body, first)?;
    let file_name = path.rsplit('/').next().unwrap_or("").to_owned();
    let is_pack = path.starts_with("/packs/");
    let mut declared = body.len() as u64;
    let mut send = body.len();
    match state.fault {
        Fault::FlipPackBytes if is_pack => {
            // Only below the table, so the table still checks out.
            let table = state.tables.get(&file_name).copied().unwrap_or(len);
            let end = (last + 1).min(table);
            let mut at = first;
            while at < end {
                let middle = at + (end - at).min(8192) / 2;
                body[(middle - first) as usize] ^= 0x5A;
                at += 8192;
            }
        }
        Fault::BadManifest if path.starts_with("/manifests/") && !body.is_empty() => {
            let middle = body.len() / 2;
            body[middle] ^= 0x01;
        }
        Fault::TruncateBody if is_pack => send = body.len() / 2,
        Fault::LyingLength if is_pack => declared = declared * 2 + 4096,
        Fault::VanishAfter(limit) if is_pack => {
            // Honest up to `limit` bytes, then gone in the middle of this body.
            let before = state
                .pack_bytes
                .fetch_add(body.len() as u64, Ordering::Relaxed);
            let allowance = limit.saturating_sub(before);
            if body.len() as u64 >= allowance {
                send = allowance as usize;
                state.vanished.store(true, Ordering::Relaxed);
            }
        }
        _ => {}
    }
    if is_pack && !matches!(state.fault, Fault::VanishAfter(_)) {
        state.pack_bytes.fetch_add(send as u64, Ordering::Relaxed);
    }
    let mut response = if ranged {
        format!("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {first}-{last}/{len}\r\n")
    } else {
        "HTTP/1.1 200 OK\r\n".to_owned()
    };
    response.push_str(&format!(
        "Content-Length: {declared}\r\nContent-Type: application/octet-stream\r\n\
         Accept-Ranges: bytes\r\nConnection: close\r\n\r\n"
    ));
    stream.write_all(response.as_bytes())?;
    if method == "GET" {
        write_all(&mut stream, &body[..send], state)?;
    }
    stream.flush()?;
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Stores and models shared by the network and object-store tests.
// ---------------------------------------------------------------------------------------------

/// A store (16 KiB chunks) holding one model `name` (file `NAME.gguf`) of `len` pseudo-random
/// bytes.
pub fn store_with(name: &str, seed: u64, len: usize) -> (TestStore, Vec<u8>) {
    let store = TestStore::new();
    let bytes = crate::util::random_bytes(seed, len);
    add(&store, name, &format!("{name}.gguf"), &bytes);
    (store, bytes)
}

/// `modelfs add NAME FILE` with `bytes` written to the scratch file `file`.
pub fn add(store: &TestStore, name: &str, file: &str, bytes: &[u8]) {
    store.ok(&["add", name, store.file(file, bytes).to_str().unwrap()]);
}

/// The verified bytes of `name` in `store` (`modelfs cat`).
pub fn cat(store: &TestStore, name: &str) -> Vec<u8> {
    let out = store.run(&["cat", name]);
    assert!(
        out.status.success(),
        "cat {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Asserts `store` has no models.
pub fn assert_no_models(store: &TestStore) {
    assert_eq!(
        models_of(store),
        serde_json::json!([]),
        "the registry changed"
    );
}
