//! Hostile stores: links planted where writers write, lying registries and manifests, FIFOs and
//! devices where store files should be, damaged packs and indexes, inputs that change under `add`,
//! a full disk, a mount whose pid file lies. Each test names the defect of the hostile-store review
//! it covers (numbers 1–15).
//!
//! Every command runs with a deadline (a hang is a failure), must not panic or die by a signal, and
//! when it fails it prints exactly one line on stderr that names what is wrong. Nothing outside
//! the store (and a command's intended destination) may change: canary files planted outside are
//! compared, content and mode, before and after.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt, symlink};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use modelfs::format::manifest::Manifest;
use modelfs::id::ManifestId;

use crate::util::{
    MODELFS, Mount, SystemMount, TestStore, chunk_places, corpus, flip_byte, random_bytes, sh,
};

/// How long any one command may take.
const DEADLINE: Duration = Duration::from_secs(30);
/// For commands facing a FIFO or a device, which must not wait on it at all.
const SHORT_DEADLINE: Duration = Duration::from_secs(10);
/// Address-space limit for the memory cases (`prlimit --as=1500000000`).
const ADDRESS_SPACE: u64 = 1_500_000_000;

// ---------------------------------------------------------------------------------------------
// Running commands with a deadline and judging what they did.
// ---------------------------------------------------------------------------------------------

/// What a finished (or killed) command did.
struct Outcome {
    what: String,
    /// `None`: still running at the deadline, killed.
    status: Option<ExitStatus>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Outcome {
    fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Non-empty lines on stderr.
    fn stderr_lines(&self) -> Vec<String> {
        self.stderr_text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn status_text(&self) -> String {
        match self.status {
            None => "HUNG (killed at the deadline)".into(),
            Some(s) => match (s.code(), s.signal()) {
                (Some(code), _) => format!("exit {code}"),
                (_, Some(signal)) => format!("killed by signal {signal}"),
                _ => format!("{s:?}"),
            },
        }
    }

    /// A description for assertion messages.
    fn show(&self) -> String {
        let stdout = self.stdout_text();
        let stdout: String = stdout.chars().take(1500).collect();
        format!(
            "{}\n  -> {}\n  stderr: {:?}\n  stdout: {:?}",
            self.what,
            self.status_text(),
            self.stderr_text(),
            stdout
        )
    }

    /// Finished in time, not by a signal, no panic.
    fn sane(&self) -> &Outcome {
        assert!(self.status.is_some(), "hung:\n{}", self.show());
        let status = self.status.unwrap();
        assert!(
            status.signal().is_none(),
            "died by a signal:\n{}",
            self.show()
        );
        assert!(
            !self.stderr_text().contains("panicked"),
            "panicked:\n{}",
            self.show()
        );
        self
    }

    /// Neither stream holds a raw ESC byte (terminal escapes from hostile names).
    fn no_escape(&self) -> &Outcome {
        assert!(
            !self.stdout.contains(&0x1b) && !self.stderr.contains(&0x1b),
            "raw ESC byte in the output:\n{}",
            self.show()
        );
        self
    }

    /// Succeeded.
    fn ok(&self) -> &Outcome {
        self.sane();
        assert!(self.success(), "failed:\n{}", self.show());
        self
    }

    /// Failed with exactly one line on stderr, which contains one of `names` (case-insensitive;
    /// any line if `names` is empty). Returns the line.
    fn one_line_failure(&self, names: &[&str]) -> String {
        self.sane();
        assert!(!self.success(), "should have failed:\n{}", self.show());
        let lines = self.stderr_lines();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one line on stderr:\n{}",
            self.show()
        );
        let line = lines[0].to_lowercase();
        assert!(
            names.is_empty() || names.iter().any(|n| line.contains(&n.to_lowercase())),
            "the error line names none of {names:?}:\n{}",
            self.show()
        );
        lines[0].clone()
    }

    /// Succeeded, or failed with one line naming one of `names`.
    fn ok_or_one_line(&self, names: &[&str]) -> &Outcome {
        if self.success() {
            self.sane();
        } else {
            self.one_line_failure(names);
        }
        self
    }

    /// Did not run into the address-space limit (an allocation failure, reported or not, means
    /// the command tried to take 1.5 GB for what should be refused by its size).
    fn within_memory(&self) -> &Outcome {
        let stderr = self.stderr_text().to_lowercase();
        assert!(
            !stderr.contains("out of memory") && !stderr.contains("memory allocation"),
            "ran into the {ADDRESS_SPACE}-byte address-space limit:\n{}",
            self.show()
        );
        self
    }

    /// Failed with an I/O error (`cat`/`dd` reading through a mount).
    fn is_eio(&self) -> bool {
        self.status.is_some()
            && !self.success()
            && self.stderr_text().contains("Input/output error")
    }
}

/// Reads a pipe to its end in a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

/// Runs `command` in its own process group; kills the group at `deadline`. With `address_space`,
/// under that RLIMIT_AS. With `stdout`, that is its standard output (and none is captured).
fn run_full(
    mut command: Command,
    deadline: Duration,
    address_space: Option<u64>,
    stdout: Option<Stdio>,
) -> Outcome {
    let what = format!("{command:?}");
    let capture = stdout.is_none();
    command
        .stdin(Stdio::null())
        .stdout(stdout.unwrap_or_else(Stdio::piped))
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(limit) = address_space {
        // SAFETY: setrlimit is async-signal-safe and the closure only uses its copied argument.
        unsafe {
            command.pre_exec(move || {
                let rlimit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let out = capture.then(|| drain(child.stdout.take().unwrap()));
    let err = drain(child.stderr.take().unwrap());
    let end = Instant::now() + deadline;
    let status = loop {
        match child.try_wait().unwrap() {
            Some(status) => break Some(status),
            None if Instant::now() >= end => {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(child.id() as i32),
                    nix::sys::signal::SIGKILL,
                );
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    // A daemon that kept a copy of a pipe must not block the test: wait a little, then go on.
    let grace = Duration::from_secs(5);
    Outcome {
        what,
        status,
        stdout: out
            .map(|rx| rx.recv_timeout(grace).unwrap_or_default())
            .unwrap_or_default(),
        stderr: err.recv_timeout(grace).unwrap_or_default(),
    }
}

fn run_command(command: Command, deadline: Duration, address_space: Option<u64>) -> Outcome {
    run_full(command, deadline, address_space, None)
}

/// `modelfs --store STORE ARGS…` as `TestStore::run` builds it, but with a deadline.
trait Hostile {
    fn command(&self, args: &[&str]) -> Command;
    /// Runs with the default deadline.
    fn exec(&self, args: &[&str]) -> Outcome;
    /// Runs with a deadline.
    fn exec_within(&self, args: &[&str], deadline: Duration) -> Outcome;
    /// Runs under the address-space limit, with the short deadline.
    fn exec_limited(&self, args: &[&str]) -> Outcome;
}

impl Hostile for TestStore {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(MODELFS);
        command
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .env_remove("MODELFS_STORE")
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"));
        command
    }

    fn exec(&self, args: &[&str]) -> Outcome {
        run_command(self.command(args), DEADLINE, None)
    }

    fn exec_within(&self, args: &[&str], deadline: Duration) -> Outcome {
        run_command(self.command(args), deadline, None)
    }

    fn exec_limited(&self, args: &[&str]) -> Outcome {
        run_command(self.command(args), SHORT_DEADLINE, Some(ADDRESS_SPACE))
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Collects the failures of independent parts of one test, so one failing part does not hide
/// how the others fare; [`Soft::finish`] fails the test listing every part that failed.
#[derive(Default)]
struct Soft(Vec<String>);

impl Soft {
    fn check(&mut self, part: &str, f: impl FnOnce()) {
        if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            self.0.push(format!("[{part}] {message}"));
        }
    }

    fn finish(self) {
        assert!(
            self.0.is_empty(),
            "{} part(s) failed:\n\n{}",
            self.0.len(),
            self.0.join("\n\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Mounts.
// ---------------------------------------------------------------------------------------------

/// Whether something is mounted exactly at `path` (no canonicalisation: a dead mount cannot be
/// stat'ed, and the test directories hold no links).
fn is_mounted(path: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = s(path);
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|field| field.replace("\\040", " ") == want)
}

/// `modelfs mount --daemon --log LOG EXTRA… MOUNTPOINT` at a fresh mountpoint, with a deadline;
/// the mount (if one came up) is unmounted when the returned guard drops.
fn try_mount(
    store: &TestStore,
    extra: &[&str],
    address_space: Option<u64>,
    deadline: Duration,
) -> (Outcome, Option<Mount>) {
    let mountpoint = tempfile::tempdir_in(store.dir.path()).unwrap().keep();
    let log = mountpoint.with_extension("log");
    let mut args = vec!["mount", "--daemon", "--log", s(&log)];
    args.extend_from_slice(extra);
    args.push(s(&mountpoint));
    let outcome = run_command(store.command(&args), deadline, address_space);
    let mounted = outcome.success() || is_mounted(&mountpoint);
    (
        outcome,
        mounted.then_some(Mount {
            path: mountpoint,
            log,
        }),
    )
}

/// Mounts and insists that it worked.
fn mount_ok(store: &TestStore, extra: &[&str], address_space: Option<u64>) -> Mount {
    let (outcome, mount) = try_mount(store, extra, address_space, DEADLINE);
    outcome.ok();
    mount.expect("mounted")
}

/// `cat PATH` in a child with a deadline (a read that blocks on a broken mount cannot hang the test).
fn read_through(path: &Path, deadline: Duration) -> Outcome {
    let mut command = Command::new("cat");
    command.arg(path);
    run_command(command, deadline, None)
}

/// `len` bytes from `offset` of `path`, read by `dd` in a child with a deadline.
fn read_range(path: &Path, offset: u64, len: u64, deadline: Duration) -> Outcome {
    let mut command = Command::new("dd");
    command
        .arg(format!("if={}", path.display()))
        .arg("bs=65536")
        .arg(format!("skip={offset}"))
        .arg(format!("count={len}"))
        .arg("iflag=skip_bytes,count_bytes")
        .arg("status=none");
    run_command(command, deadline, None)
}

/// Reads `path` through the mount and insists on `expected`.
fn assert_reads(path: &Path, expected: &[u8]) {
    let out = read_through(path, DEADLINE);
    out.ok();
    assert!(
        out.stdout == expected,
        "{} read back {} bytes that differ from the {} expected",
        path.display(),
        out.stdout.len(),
        expected.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Canaries: snapshots of trees outside the store.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    File { mode: u32, uid: u32, blake3: String },
    Dir { mode: u32, uid: u32 },
    Link(PathBuf),
    Other { mode: u32 },
}

/// Every entry under `root` (itself included), links not followed, FIFOs not opened.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    fn visit(path: &Path, out: &mut BTreeMap<PathBuf, Node>) {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        let kind = meta.file_type();
        let node = if kind.is_symlink() {
            Node::Link(std::fs::read_link(path).unwrap())
        } else if kind.is_dir() {
            Node::Dir {
                mode: meta.mode(),
                uid: meta.uid(),
            }
        } else if kind.is_file() {
            Node::File {
                mode: meta.mode(),
                uid: meta.uid(),
                blake3: blake3::hash(&std::fs::read(path).unwrap_or_default())
                    .to_hex()
                    .to_string(),
            }
        } else {
            Node::Other { mode: meta.mode() }
        };
        out.insert(path.to_owned(), node);
        if kind.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            entries.sort();
            for entry in entries {
                visit(&entry, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    visit(root, &mut out);
    out
}

fn assert_same_tree(before: &BTreeMap<PathBuf, Node>, root: &Path, context: &str) {
    let after = snapshot(root);
    let mut changes = Vec::new();
    for path in before.keys().chain(after.keys()) {
        let (a, b) = (before.get(path), after.get(path));
        if a != b && !changes.iter().any(|(p, _): &(PathBuf, String)| p == path) {
            changes.push((path.clone(), format!("{}: {a:?} -> {b:?}", path.display())));
        }
    }
    let changes: Vec<String> = changes.into_iter().map(|(_, c)| c).collect();
    assert!(
        changes.is_empty(),
        "{context}: something outside the store changed:\n{}",
        changes.join("\n")
    );
}

/// A canary file with known content and mode 0640.
fn canary(path: &Path) -> PathBuf {
    std::fs::write(path, format!("canary {}\n", path.display())).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640)).unwrap();
    path.to_owned()
}

// ---------------------------------------------------------------------------------------------
// Crafting store contents.
// ---------------------------------------------------------------------------------------------

fn registry_of(store: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(store.join("registry.json")).unwrap()).unwrap()
}

fn save_registry(store: &Path, registry: &serde_json::Value) {
    std::fs::write(
        store.join("registry.json"),
        serde_json::to_vec_pretty(registry).unwrap(),
    )
    .unwrap();
}

/// The manifest id (hex) of the newest version's first file of `model`.
fn manifest_hex(store: &Path, model: &str) -> String {
    let registry = registry_of(store);
    let versions = registry["models"][model]["versions"].as_array().unwrap();
    versions.last().unwrap()["files"][0]["manifest"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn load_manifest(store: &Path, hex: &str) -> Manifest {
    let id: ManifestId = hex.parse().unwrap();
    Manifest::decode(
        &id,
        &std::fs::read(store.join("manifests").join(hex)).unwrap(),
    )
    .unwrap()
}

/// Writes `manifest` under its id and points `model`'s newest version's first file at it (size
/// too). Returns the new id.
fn install_manifest(store: &Path, model: &str, manifest: &Manifest) -> String {
    let bytes = manifest.encode();
    let hex = ManifestId::of(&bytes).to_hex();
    std::fs::write(store.join("manifests").join(&hex), &bytes).unwrap();
    let mut registry = registry_of(store);
    let versions = registry["models"][model]["versions"]
        .as_array_mut()
        .unwrap();
    let file = &mut versions.last_mut().unwrap()["files"][0];
    file["manifest"] = hex.clone().into();
    file["size"] = manifest.size.into();
    save_registry(store, &registry);
    hex
}

/// Names and sizes of the files in a store's `packs/` and `manifests/`.
fn store_files(store: &Path) -> Vec<(String, u64)> {
    let mut files = Vec::new();
    for dir in ["packs", "manifests"] {
        for entry in std::fs::read_dir(store.join(dir)).unwrap() {
            let entry = entry.unwrap();
            files.push((
                format!("{dir}/{}", entry.file_name().to_string_lossy()),
                entry.metadata().unwrap().len(),
            ));
        }
    }
    files.sort();
    files
}

/// A store with `model` added from `bytes` (file `MODEL.bin`).
fn add_model(store: &TestStore, model: &str, bytes: &[u8]) {
    let path = store.file(&format!("inputs/{model}.bin"), bytes);
    store.exec(&["add", model, s(&path)]).ok();
}

/// A child process killed when the guard drops (only the one this test started).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// FIFOs planted in a store; on drop, anything blocked opening one for reading is released (a
/// writer opens and closes it), so a stuck process can finish.
struct Fifos(Vec<PathBuf>);

impl Fifos {
    fn release(&self) {
        use std::os::unix::fs::OpenOptionsExt;
        for _ in 0..20 {
            for fifo in &self.0 {
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(fifo);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Fifos {
    fn drop(&mut self) {
        self.release();
    }
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 1. Planted links.
// ---------------------------------------------------------------------------------------------

/// Defect 1: writers (add, rm, gc, init, the config upgrade, `pack --with-binary`) must never
/// write through a link planted at a temp name, at `lock`, or at the launcher names in DEST.
#[test]
fn planted_links_are_never_followed_by_writers() {
    let h = TestStore::new();
    let outside = h.path("outside");
    std::fs::create_dir(&outside).unwrap();
    let input = h.file("inputs/m.bin", &random_bytes(101, 400_000));
    h.exec(&["add", "m", s(&input)]).ok();
    // The manifest the next add of this file writes: add it, forget it, collect it.
    let manifest = manifest_hex(&h.store, "m");
    h.exec(&["rm", "m"]).ok();
    h.exec(&["gc"]).ok();
    assert!(!h.store.join("manifests").join(&manifest).exists());
    add_model(&h, "other", &random_bytes(102, 300_000));

    // Phase A: links at every fixed temp name a writer might use, to canaries and to nowhere.
    let manifests = h.store.join("manifests");
    let plants: Vec<(PathBuf, PathBuf)> = vec![
        (
            h.store.join("registry.json.tmp"),
            canary(&outside.join("registry")),
        ),
        (
            h.store.join(".registry.json.tmp"),
            outside.join("registry-created"),
        ),
        (
            h.store.join("modelfs.json.tmp"),
            canary(&outside.join("config")),
        ),
        (
            h.store.join(".modelfs.json.tmp"),
            outside.join("config-created"),
        ),
        (
            manifests.join(format!("{manifest}.tmp")),
            canary(&outside.join("manifest")),
        ),
        (
            manifests.join(format!(".{manifest}.tmp")),
            outside.join("manifest-created"),
        ),
    ];
    for (link, target) in &plants {
        symlink(target, link).unwrap();
    }
    // A store of layout version 1: the next writer rewrites modelfs.json (the upgrade path).
    let config = h.store.join("modelfs.json");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("\"version\": 2"), "{text}");
    std::fs::write(&config, text.replace("\"version\": 2", "\"version\": 1")).unwrap();

    let before = snapshot(&outside);
    let second = h.file("inputs/second.bin", &random_bytes(103, 200_000));
    let steps: Vec<Vec<&str>> = vec![
        vec!["add", "m", s(&input)],
        vec!["add", "second", s(&second)],
        vec!["rm", "other"],
        vec!["gc"],
        vec!["init"],
        vec!["index", "rebuild"],
    ];
    for args in &steps {
        h.exec(args).ok_or_one_line(&[]);
        assert_same_tree(
            &before,
            &outside,
            &format!("modelfs {args:?} (temp-name links)"),
        );
    }
    if h.exec(&["ls", "m"]).success() {
        assert!(h.run(&["cat", "m"]).stdout == std::fs::read(&input).unwrap());
    }

    // Phase B: `lock` itself is a link, first to a canary, then to a path that does not exist.
    let lock = h.store.join("lock");
    let third = h.file("inputs/third.bin", &random_bytes(104, 100_000));
    for target in [canary(&outside.join("lock")), outside.join("lock-created")] {
        let _ = std::fs::remove_file(&lock);
        symlink(&target, &lock).unwrap();
        let before = snapshot(&outside);
        for args in [
            vec!["add", "third", s(&third)],
            vec!["rm", "second"],
            vec!["gc"],
            vec!["index", "rebuild"],
        ] {
            h.exec(&args).ok_or_one_line(&["lock"]);
            assert_same_tree(&before, &outside, &format!("modelfs {args:?} (lock link)"));
        }
    }

    // pack --with-binary into a folder (empty but for the links, or an earlier pack) whose
    // launcher names are links to canaries.
    let _ = std::fs::remove_file(&lock);
    let p = TestStore::new();
    add_model(&p, "m", &random_bytes(105, 200_000));
    let launchers = ["modelfs", "mount.sh", "install.sh"];
    let plant_launchers = |dest: &Path, tag: &str| {
        for name in launchers {
            symlink(
                canary(&outside.join(format!("{tag}-{name}"))),
                dest.join(name),
            )
            .unwrap();
        }
        symlink(
            canary(&outside.join(format!("{tag}-registry"))),
            dest.join("registry.json.tmp"),
        )
        .unwrap_or(());
    };
    let empty_dest = p.path("dest-empty");
    std::fs::create_dir(&empty_dest).unwrap();
    plant_launchers(&empty_dest, "empty");
    let store_dest = p.path("dest-store");
    p.exec(&["pack", s(&store_dest), "--models", "m"]).ok();
    plant_launchers(&store_dest, "store");
    let before = snapshot(&outside);
    for dest in [&empty_dest, &store_dest] {
        let out = p.exec(&["pack", s(dest), "--models", "m", "--with-binary"]);
        out.ok_or_one_line(&[s(dest)]);
        assert_same_tree(
            &before,
            &outside,
            &format!("pack --with-binary into {}", dest.display()),
        );
        if out.success() {
            for name in launchers {
                let meta = std::fs::symlink_metadata(dest.join(name)).unwrap();
                assert!(
                    meta.is_file(),
                    "{name} in DEST should now be a regular file"
                );
                assert_eq!(meta.mode() & 0o777, 0o755, "{name}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. No HOME: the per-machine cache must not land in a guessable shared place.
// ---------------------------------------------------------------------------------------------

/// Paths planted for one test; removed (links) or deleted (dirs) on drop. Only paths this test
/// created are listed.
struct Planted(Vec<PathBuf>);

impl Drop for Planted {
    fn drop(&mut self) {
        for path in &self.0 {
            match std::fs::symlink_metadata(path) {
                Ok(meta) if meta.is_dir() => {
                    let _ = std::fs::remove_dir_all(path);
                }
                Ok(_) => {
                    let _ = std::fs::remove_file(path);
                }
                Err(_) => {}
            }
        }
    }
}

/// Defect 2: with HOME (and the XDG variables) unset, `mount --daemon` and a reader that builds a
/// private index copy must not write through a link or into another user's world-writable
/// directory planted at the names a fallback cache directory under the temp dir would have.
#[test]
fn without_home_the_cache_never_goes_through_planted_temp_paths() {
    let h = TestStore::new();
    let bytes = random_bytes(201, 300_000);
    add_model(&h, "m", &bytes);
    let outside = h.path("outside");
    let canary_dir = outside.join("canary-dir");
    std::fs::create_dir_all(&canary_dir).unwrap();
    canary(&canary_dir.join("keep"));
    // A private TMPDIR (what std::env::temp_dir() returns) and, where free, the real /tmp.
    let tmp = h.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let uid = nix::unistd::getuid().as_raw();
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "root".into());
    let mut names = vec![
        "modelfs".to_owned(),
        format!("modelfs-{uid}"),
        format!("modelfs-{user}"),
        format!("modelfs.{uid}"),
        format!("modelfs_{uid}"),
        format!("modelfs{uid}"),
    ];
    names.dedup();

    let without_home = |args: &[&str]| {
        let mut command = h.command(args);
        command
            .env_remove("HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_DATA_HOME")
            .env("TMPDIR", &tmp);
        command
    };

    for round in ["links to a canary dir", "dirs of uid 65534 with mode 0777"] {
        let mut planted = Planted(Vec::new());
        for dir in [tmp.as_path(), Path::new("/tmp")] {
            for name in &names {
                let path = dir.join(name);
                if std::fs::symlink_metadata(&path).is_ok() {
                    continue; // not ours to touch
                }
                if round.starts_with("links") {
                    symlink(&canary_dir, &path).unwrap();
                } else {
                    std::fs::create_dir(&path).unwrap();
                    nix::unistd::chown(
                        &path,
                        Some(nix::unistd::Uid::from_raw(65534)),
                        Some(nix::unistd::Gid::from_raw(65534)),
                    )
                    .unwrap();
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
                        .unwrap();
                }
                planted.0.push(path);
            }
        }
        let canaries = snapshot(&outside);
        let tmp_before = snapshot(&tmp);
        let check = |what: &str| {
            assert_same_tree(&canaries, &outside, &format!("{round}: {what}"));
            for path in &planted.0 {
                if let Ok(meta) = std::fs::symlink_metadata(path)
                    && meta.is_dir()
                {
                    let inside: Vec<_> = std::fs::read_dir(path).unwrap().collect();
                    assert!(
                        inside.is_empty(),
                        "{round}: {what} wrote into {}, a directory another user owns",
                        path.display()
                    );
                }
            }
            // Whatever modelfs created in the temp dir itself must be private to this user.
            for (path, node) in snapshot(&tmp) {
                if tmp_before.contains_key(&path) || planted.0.iter().any(|p| path.starts_with(p)) {
                    continue;
                }
                if let Node::Dir { mode, uid: owner } = node {
                    assert!(
                        owner == uid && mode & 0o022 == 0,
                        "{round}: {what} created {} with mode {mode:o} owner {owner}",
                        path.display()
                    );
                }
            }
        };

        // The background mount: its log and pid file go to the per-machine cache.
        let mountpoint = tempfile::tempdir_in(h.dir.path()).unwrap().keep();
        let out = run_command(
            without_home(&["mount", "--daemon", s(&mountpoint)]),
            DEADLINE,
            None,
        );
        let guard = (out.success() || is_mounted(&mountpoint)).then(|| Mount {
            path: mountpoint.clone(),
            log: h.path("unused.log"),
        });
        out.ok_or_one_line(&[]);
        if guard.is_some() {
            assert_reads(&mountpoint.join("m.bin"), &bytes);
            run_command(without_home(&["refresh", s(&mountpoint)]), DEADLINE, None)
                .ok_or_one_line(&[]);
        }
        drop(guard);
        check("mount --daemon");

        // A reader of a store without an index builds a private copy in the cache.
        let index = h.store.join("index");
        let parked = h.path("index-parked");
        std::fs::rename(&index, &parked).unwrap();
        let out = run_command(without_home(&["cat", "m"]), DEADLINE, None);
        std::fs::rename(&parked, &index).unwrap();
        out.ok_or_one_line(&[]);
        if out.success() {
            assert!(out.stdout == bytes, "cat without an index read wrong bytes");
        }
        check("cat with the store index missing");
        drop(planted);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. refresh and a lying pid file; dead mounts.
// ---------------------------------------------------------------------------------------------

/// Pids of processes whose command line holds `needle` (a unique mountpoint) and that are modelfs.
fn processes_serving(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_modelfs = args.first().is_some_and(|a| a.ends_with("modelfs"));
        if is_modelfs && args.iter().any(|a| a == "mount") && args.iter().any(|a| a == needle) {
            pids.push(pid);
        }
    }
    pids
}

fn pid_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(pid_files(&path));
        } else if path.extension().is_some_and(|e| e == "pid") {
            found.push(path);
        }
    }
    found
}

/// Defect 3: `modelfs refresh` must not signal whatever pid the pid file names when that process
/// is not the mount; a mount whose daemon died is reported as dead by refresh and mount, and
/// `umount` clears it.
#[test]
fn refresh_never_signals_a_stranger_and_dead_mounts_are_named() {
    let h = TestStore::new();
    let bytes = random_bytes(301, 200_000);
    add_model(&h, "m", &bytes);
    let mount = mount_ok(&h, &[], None);
    let mnt = s(&mount.path).to_owned();

    // The daemon records itself once it serves; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut files = pid_files(&h.dir.path().join("cache"));
    while files.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        files = pid_files(&h.dir.path().join("cache"));
    }
    assert_eq!(
        files.len(),
        1,
        "one pid file under $XDG_CACHE_HOME: {files:?}"
    );
    let pid_file = &files[0];
    let recorded = std::fs::read_to_string(pid_file).unwrap();
    // As if the mount's pid had been reused: the record names the pid of an unrelated process
    // (whatever else the record holds stays as the mount wrote it).
    let sleeper = ChildGuard(Command::new("sleep").arg("60").spawn().unwrap());
    let mut fields: Vec<String> = recorded.split_whitespace().map(str::to_owned).collect();
    fields[0] = sleeper.0.id().to_string();
    std::fs::write(pid_file, format!("{}\n", fields.join(" "))).unwrap();
    let out = h.exec(&["refresh", &mnt]);
    std::thread::sleep(Duration::from_millis(300));
    let mut sleeper = sleeper;
    let status = sleeper.0.try_wait().unwrap();
    assert!(
        status.is_none(),
        "refresh signalled the unrelated process the pid file named (it ended: {status:?}); {}",
        out.show()
    );
    out.one_line_failure(&[&mnt, "mount"]);
    drop(sleeper);
    std::fs::write(pid_file, recorded).unwrap();

    // Kill the daemon: a dead mount.
    let daemons = processes_serving(&mnt);
    assert_eq!(daemons.len(), 1, "the mount daemon: {daemons:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemons[0]),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&mount.path)
        .err()
        .and_then(|e| e.raw_os_error())
        != Some(libc::ENOTCONN)
    {
        assert!(Instant::now() < deadline, "the mount never went dead");
        std::thread::sleep(Duration::from_millis(50));
    }
    h.exec(&["refresh", &mnt])
        .one_line_failure(&["dead", "stale"]);
    h.exec(&["mount", "--daemon", &mnt])
        .one_line_failure(&["dead", "stale"]);
    h.exec(&["umount", &mnt]).ok();
    assert!(!is_mounted(&mount.path), "umount cleared the dead mount");
    // The same path mounts again.
    h.exec(&["mount", "--daemon", "--log", s(&mount.log), &mnt])
        .ok();
    assert_reads(&mount.path.join("m.bin"), &bytes);
}

// ---------------------------------------------------------------------------------------------
// 4. Links out of an added folder.
// ---------------------------------------------------------------------------------------------

/// Defect 4: `add NAME FOLDER` refuses a folder holding a link that leads out of it (to a secret
/// file, to another folder, deeper down), naming the link; nothing is added.
#[test]
fn add_refuses_a_folder_with_links_leading_out_of_it() {
    let h = TestStore::new();
    let secret = canary(&h.path("secret"));
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let elsewhere = h.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    canary(&elsewhere.join("private.txt"));
    let cases: [(&str, &Path); 3] = [
        ("leak", &secret),
        ("leakdir", &elsewhere),
        ("sub/deep/leak", Path::new("/etc/passwd")),
    ];
    for (i, (link, target)) in cases.iter().enumerate() {
        let folder = h.path(&format!("folder{i}"));
        std::fs::create_dir_all(folder.join("sub/deep")).unwrap();
        std::fs::write(folder.join("config.json"), b"{}").unwrap();
        std::fs::write(
            folder.join("sub/weights.bin"),
            random_bytes(400 + i as u64, 50_000),
        )
        .unwrap();
        symlink(target, folder.join(link)).unwrap();
        let name = Path::new(link).file_name().unwrap().to_str().unwrap();
        h.exec(&["add", "m", s(&folder)]).one_line_failure(&[name]);
        let listing = h.exec(&["ls", "--json"]);
        listing.ok();
        let json: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
        assert_eq!(
            json.as_array().map(Vec::len),
            Some(0),
            "a model was added from a folder with {link} -> {}",
            target.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. A manifest claiming a longer chunk than stored.
// ---------------------------------------------------------------------------------------------

/// Defect 5: a manifest whose chunk is longer than the stored chunk: `cat` fails with one line,
/// reads through a mount (local, or the store as `--source`) give EIO while another model keeps
/// reading and the mount stays up, and `verify` names it.
#[test]
fn a_manifest_claiming_a_longer_chunk_fails_cleanly_everywhere() {
    let h = TestStore::new();
    let victim = random_bytes(501, 1_000_000);
    let bystander = random_bytes(502, 400_000);
    add_model(&h, "victim", &victim);
    add_model(&h, "bystander", &bystander);
    let mut manifest = load_manifest(&h.store, &manifest_hex(&h.store, "victim"));
    let i = manifest.chunks.len() / 2;
    let grow = 1000u32;
    manifest.chunks[i].len += grow;
    for chunk in &mut manifest.chunks[i + 1..] {
        chunk.offset += u64::from(grow);
    }
    manifest.size += u64::from(grow);
    let bad = manifest.chunks[i];
    install_manifest(&h.store, "victim", &manifest);
    let chunk_hex = bad.id.to_hex();

    let mut soft = Soft::default();
    soft.check("cat", || {
        h.exec(&["cat", "victim"])
            .one_line_failure(&["victim", &chunk_hex, &chunk_hex[..12]]);
    });

    let check_mount = |mount: &Mount, what: &str| {
        let path = mount.join("victim.bin");
        let range = read_range(&path, bad.offset, u64::from(bad.len), SHORT_DEADLINE);
        assert!(
            range.is_eio(),
            "{what}: read of the lying chunk:\n{}",
            range.show()
        );
        let whole = read_through(&path, SHORT_DEADLINE);
        assert!(
            whole.is_eio(),
            "{what}: read of the whole file:\n{}",
            whole.show()
        );
        assert!(is_mounted(&mount.path), "{what}: the mount died");
        assert_reads(&mount.join("bystander.bin"), &bystander);
        assert_reads(&mount.join("bystander.bin"), &bystander);
    };
    soft.check("local mount", || {
        let mount = mount_ok(&h, &[], None);
        check_mount(&mount, "local mount");
    });
    soft.check("mount --source", || {
        let empty = TestStore::new();
        let mount = mount_ok(&empty, &["--source", s(&h.store)], None);
        check_mount(&mount, "mount --source");
    });
    soft.check("verify", || {
        let out = h.exec(&["verify"]);
        out.sane();
        assert!(
            !out.success(),
            "verify passed a lying manifest:\n{}",
            out.show()
        );
        let report = format!("{}{}", out.stdout_text(), out.stderr_text());
        assert!(
            report.contains("victim")
                && (report.contains(&chunk_hex) || report.contains(&chunk_hex[..12])),
            "verify names the file and the chunk:\n{}",
            out.show()
        );
    });
    soft.finish();
}

// ---------------------------------------------------------------------------------------------
// 6. Lengths and file types.
// ---------------------------------------------------------------------------------------------

/// A store with `victim` and `bystander`, for the file-type cases.
fn two_models() -> (TestStore, Vec<u8>, Vec<u8>) {
    let h = TestStore::new();
    let victim = random_bytes(601, 300_000);
    let bystander = random_bytes(602, 300_000);
    add_model(&h, "victim", &victim);
    add_model(&h, "bystander", &bystander);
    (h, victim, bystander)
}

/// Defect 6a: registry.json, then a manifest, replaced by a link to /dev/zero: ls, cat, verify and
/// mount finish quickly under a 1.5 GB address-space limit with one line.
#[test]
fn dev_zero_in_place_of_store_files_fails_fast_within_memory() {
    let (h, _victim, bystander) = two_models();
    // The limit itself is harmless for a healthy store.
    h.exec_limited(&["verify"]).ok();

    let registry = h.store.join("registry.json");
    let saved = std::fs::read(&registry).unwrap();
    std::fs::remove_file(&registry).unwrap();
    symlink("/dev/zero", &registry).unwrap();
    for args in [
        vec!["ls"],
        vec!["ls", "victim"],
        vec!["cat", "victim"],
        vec!["verify"],
    ] {
        h.exec_limited(&args)
            .within_memory()
            .one_line_failure(&["registry.json"]);
    }
    let (out, _mount) = try_mount(&h, &[], Some(ADDRESS_SPACE), SHORT_DEADLINE);
    out.within_memory().one_line_failure(&["registry.json"]);
    drop(_mount);
    std::fs::remove_file(&registry).unwrap();
    std::fs::write(&registry, saved).unwrap();

    let hex = manifest_hex(&h.store, "victim");
    let manifest = h.store.join("manifests").join(&hex);
    std::fs::remove_file(&manifest).unwrap();
    symlink("/dev/zero", &manifest).unwrap();
    h.exec_limited(&["cat", "victim"])
        .within_memory()
        .one_line_failure(&[&hex, &hex[..12], "victim"]);
    h.exec_limited(&["ls"])
        .within_memory()
        .ok_or_one_line(&[&hex, &hex[..12], "victim"]);
    h.exec_limited(&["ls", "victim"])
        .within_memory()
        .ok_or_one_line(&[&hex, &hex[..12], "victim"]);
    let out = h.exec_limited(&["verify"]);
    out.sane().within_memory();
    assert!(!out.success(), "{}", out.show());
    let (out, mount) = try_mount(&h, &[], Some(ADDRESS_SPACE), SHORT_DEADLINE);
    out.ok();
    let mount = mount.unwrap();
    let read = read_through(&mount.join("victim.bin"), SHORT_DEADLINE);
    assert!(read.is_eio(), "{}", read.show());
    assert!(is_mounted(&mount.path), "the mount died");
    assert_reads(&mount.join("bystander.bin"), &bystander);
    let log = mount.log().to_lowercase();
    assert!(
        !log.contains("out of memory") && !log.contains("memory allocation"),
        "the mount ran into the address-space limit:\n{log}"
    );
}

/// Defect 6b: registry.json, then a manifest, replaced by a FIFO: commands finish within the
/// deadline with one line; through a mount, the file whose manifest is a FIFO fails with EIO and
/// reads of other models are not held up.
#[test]
fn fifos_in_place_of_store_files_never_block() {
    let (h, _victim, bystander) = two_models();
    let registry = h.store.join("registry.json");
    let saved = std::fs::read(&registry).unwrap();
    let fifos = Fifos(vec![registry.clone()]);
    mkfifo(&registry);
    for args in [
        vec!["ls"],
        vec!["cat", "victim"],
        vec!["verify"],
        vec!["gc"],
    ] {
        h.exec_within(&args, SHORT_DEADLINE)
            .one_line_failure(&["registry.json"]);
        fifos.release();
    }
    let (out, mount) = try_mount(&h, &[], None, SHORT_DEADLINE);
    fifos.release();
    out.one_line_failure(&["registry.json"]);
    drop(mount);
    drop(fifos);
    std::fs::remove_file(&registry).unwrap();
    std::fs::write(&registry, saved).unwrap();

    let hex = manifest_hex(&h.store, "victim");
    let manifest = h.store.join("manifests").join(&hex);
    let mount = mount_ok(&h, &[], None);
    let fifos = Fifos(vec![manifest.clone()]);
    mkfifo(&manifest);
    h.exec_within(&["cat", "victim"], SHORT_DEADLINE)
        .one_line_failure(&[&hex, &hex[..12], "victim"]);
    fifos.release();
    let out = h.exec_within(&["verify"], SHORT_DEADLINE);
    fifos.release();
    out.sane();
    assert!(!out.success(), "{}", out.show());
    // Through the mount: the victim read runs in the background while the bystander is read.
    let path = mount.join("victim.bin");
    let victim_read = std::thread::spawn(move || read_through(&path, SHORT_DEADLINE));
    std::thread::sleep(Duration::from_millis(200));
    let other = read_through(&mount.join("bystander.bin"), Duration::from_secs(5));
    let victim_read = victim_read.join().unwrap();
    fifos.release();
    other.ok();
    assert!(
        other.stdout == bystander,
        "the bystander read back wrong bytes"
    );
    assert!(victim_read.is_eio(), "{}", victim_read.show());
    assert!(is_mounted(&mount.path), "the mount died");
}

/// Defect 6c: an index value claiming a huge chunk length: cat and verify stay under the memory
/// limit and fail cleanly.
#[test]
fn an_index_claiming_a_huge_chunk_fails_cleanly_within_memory() {
    use modelfs::format::pack::{RecordHeader, TableEntry};
    let h = TestStore::new();
    let bytes = random_bytes(603, 600_000);
    add_model(&h, "m", &bytes);
    let places = chunk_places(&h.store, "m");
    let (chunk, location, pack) = places[1].clone();
    {
        let index = modelfs::store::index::Index::open_writable(&h.store.join("index")).unwrap();
        let pack_len = std::fs::metadata(&pack).unwrap().len();
        index
            .add_pack(
                location.pack,
                pack_len,
                &[TableEntry {
                    header: RecordHeader {
                        chunk_id: chunk.id,
                        codec: location.codec,
                        raw_len: 0x7fff_ffff,
                        stored_len: 0x7fff_ffff,
                    },
                    offset: location.offset,
                }],
            )
            .unwrap();
    }
    let hex = chunk.id.to_hex();
    let names = [hex.as_str(), &hex[..12], "m@v1", "m.bin", "index"];
    h.exec_limited(&["cat", "m"])
        .within_memory()
        .one_line_failure(&names);
    let out = h.exec_limited(&["verify"]);
    out.sane().within_memory();
    assert!(
        !out.success(),
        "verify passed a lying index:\n{}",
        out.show()
    );
    let (out, mount) = try_mount(&h, &[], Some(ADDRESS_SPACE), SHORT_DEADLINE);
    out.ok();
    let mount = mount.unwrap();
    let read = read_range(
        &mount.join("m.bin"),
        chunk.offset,
        u64::from(chunk.len),
        SHORT_DEADLINE,
    );
    assert!(read.is_eio(), "{}", read.show());
    assert!(is_mounted(&mount.path), "the mount died");
    let log = mount.log().to_lowercase();
    assert!(
        !log.contains("out of memory") && !log.contains("memory allocation"),
        "the mount ran into the address-space limit:\n{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Bad names in registry.json.
// ---------------------------------------------------------------------------------------------

/// Defect 7: a registry naming models "a/b", "", "x\0y", an escape sequence, a version "..", a
/// version without files, or file paths "../../etc/passwd" and "/abs": ls, cat, mount, verify,
/// rm and import fail with one line naming registry.json, print no raw ESC, change nothing, and
/// import copies nothing.
#[test]
fn bad_names_in_the_registry_are_refused_everywhere() {
    let src = TestStore::new();
    add_model(&src, "good", &random_bytes(701, 100_000));
    let pristine = registry_of(&src.store);
    type Mutation = fn(&mut serde_json::Value);
    let mutations: Vec<(&str, Mutation, Option<&str>)> = vec![
        (
            "model a/b",
            |r| r["models"]["a/b"] = r["models"]["good"].clone(),
            Some("a/b"),
        ),
        (
            "empty model name",
            |r| r["models"][""] = r["models"]["good"].clone(),
            None,
        ),
        (
            "model name with NUL",
            |r| r["models"]["x\u{0}y"] = r["models"]["good"].clone(),
            Some("x"),
        ),
        (
            "model name with an escape sequence",
            |r| r["models"]["\u{1b}[31mred"] = r["models"]["good"].clone(),
            Some("\u{1b}[31mred"),
        ),
        (
            "version ..",
            |r| r["models"]["good"]["versions"][0]["version"] = "..".into(),
            Some("good@.."),
        ),
        (
            "version without files",
            |r| {
                let mut v2 = r["models"]["good"]["versions"][0].clone();
                v2["version"] = "v2".into();
                v2["files"] = serde_json::json!([]);
                r["models"]["good"]["versions"]
                    .as_array_mut()
                    .unwrap()
                    .push(v2);
            },
            Some("good@v2"),
        ),
        (
            "file path ../../etc/passwd",
            |r| {
                let v = &mut r["models"]["good"]["versions"][0];
                v["layout"] = "dir".into();
                v["files"][0]["path"] = "../../etc/passwd".into();
            },
            None,
        ),
        (
            "file path /abs",
            |r| {
                let v = &mut r["models"]["good"]["versions"][0];
                v["layout"] = "dir".into();
                v["files"][0]["path"] = "/abs".into();
            },
            None,
        ),
        (
            "file path /abs in a single-file model",
            |r| r["models"]["good"]["versions"][0]["files"][0]["path"] = "/abs.bin".into(),
            None,
        ),
    ];
    for (what, mutate, rm_name) in mutations {
        let mut registry = pristine.clone();
        mutate(&mut registry);
        save_registry(&src.store, &registry);
        let saved = std::fs::read(src.store.join("registry.json")).unwrap();
        let context = |out: &Outcome| format!("[{what}] {}", out.show());
        for args in [
            vec!["ls"],
            vec!["ls", "good"],
            vec!["ls", "--json"],
            vec!["cat", "good"],
            vec!["verify"],
            vec!["rm", "good"],
        ] {
            let out = src.exec(&args);
            out.no_escape();
            assert!(!out.success(), "should fail: {}", context(&out));
            out.one_line_failure(&["registry.json"]);
        }
        if let Some(name) = rm_name {
            let out = src.exec(&["rm", name]);
            out.no_escape();
            out.one_line_failure(&[]);
        }
        let (out, mount) = try_mount(&src, &[], None, DEADLINE);
        drop(mount);
        out.no_escape();
        assert!(!out.success(), "mount should fail: {}", context(&out));
        out.one_line_failure(&["registry.json"]);
        assert_eq!(
            std::fs::read(src.store.join("registry.json")).unwrap(),
            saved,
            "[{what}] the registry changed"
        );

        let dst = TestStore::new();
        let out = dst.exec(&["import", s(&src.store)]);
        out.no_escape();
        assert!(!out.success(), "import should fail: {}", context(&out));
        out.one_line_failure(&["registry.json"]);
        let listing = dst.exec(&["ls", "--json"]);
        listing.ok();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&listing.stdout).unwrap(),
            serde_json::json!([]),
            "[{what}] import added models"
        );
        assert_eq!(
            store_files(&dst.store),
            Vec::<(String, u64)>::new(),
            "[{what}] import copied packs or manifests"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 8. gc without a registry.
// ---------------------------------------------------------------------------------------------

/// Defect 8: `gc` with registry.json missing refuses (one line) and deletes no pack or manifest;
/// putting the registry back makes every model readable again.
#[test]
fn gc_without_a_registry_deletes_nothing() {
    let h = TestStore::new();
    let a = random_bytes(801, 500_000);
    let b = random_bytes(802, 300_000);
    add_model(&h, "a", &a);
    add_model(&h, "b", &b);
    let before = store_files(&h.store);
    let registry = h.store.join("registry.json");
    let parked = h.path("registry.parked");
    std::fs::rename(&registry, &parked).unwrap();
    h.exec(&["gc"]).one_line_failure(&["registry.json"]);
    assert_eq!(store_files(&h.store), before, "gc deleted store files");
    std::fs::rename(&parked, &registry).unwrap();
    assert!(h.exec(&["cat", "a"]).ok().stdout == a);
    assert!(h.exec(&["cat", "b"]).ok().stdout == b);
    h.exec(&["verify"]).ok();
}

// ---------------------------------------------------------------------------------------------
// 9. gc on a pack with a damaged table and first record.
// ---------------------------------------------------------------------------------------------

/// Defect 9: gc on a store where one pack's table and first record are damaged, while its later
/// records hold a live model's chunks: afterwards every chunk but the damaged first one still
/// reads, and verify names only that one.
#[test]
fn gc_keeps_the_intact_chunks_of_a_pack_with_a_damaged_table() {
    let h = TestStore::uninitialised();
    h.exec(&["init", "--avg-chunk-kib", "16", "--pack-size-mib", "4"])
        .ok();
    let live = random_bytes(901, 3_000_000);
    add_model(&h, "live", &live);
    add_model(&h, "dead", &random_bytes(902, 500_000));
    h.exec(&["rm", "dead"]).ok();
    let places = chunk_places(&h.store, "live");
    let pack = places[0].2.clone();
    assert!(
        places.iter().all(|(_, _, p)| *p == pack),
        "the live model fits one pack"
    );
    let first = places
        .iter()
        .min_by_key(|(_, l, _)| l.offset)
        .unwrap()
        .clone();
    assert_eq!(
        first.1.offset, 32,
        "first record right after the pack header"
    );
    assert_eq!(
        first.0.offset, 0,
        "the first record holds the file's first chunk"
    );

    let len = std::fs::metadata(&pack).unwrap().len();
    let mut trailer = [0u8; 56];
    std::fs::File::open(&pack)
        .unwrap()
        .read_exact_at(&mut trailer, len - 56)
        .unwrap();
    let table_offset = u64::from_le_bytes(trailer[32..40].try_into().unwrap());
    assert!(table_offset < len - 56);
    flip_byte(&pack, table_offset + 10); // first table entry
    flip_byte(&pack, len - 56 + 5); // table hash
    flip_byte(&pack, 32 + 48 + 100); // first record's payload

    let mut soft = Soft::default();
    soft.check("gc", || {
        h.exec(&["gc"]).ok_or_one_line(&[]);
    });
    let first_hex = first.0.id.to_hex();
    soft.check("verify after gc", || {
        let out = h.exec(&["verify"]);
        out.sane();
        assert!(!out.success(), "verify found nothing:\n{}", out.show());
        let report = out.stdout_text();
        let bad_chunks: Vec<&str> = report
            .lines()
            .filter(|l| l.contains("BAD") && l.contains("chunk "))
            .collect();
        assert!(
            bad_chunks.len() == 1 && bad_chunks[0].contains(&first_hex),
            "verify reports exactly one damaged chunk, the first:\n{}",
            out.show()
        );
    });
    soft.check(
        "the chunks after the damaged one read through a mount",
        || {
            let mount = mount_ok(&h, &[], None);
            let start = first.0.end().div_ceil(4096) * 4096 + 4096;
            let rest = read_range(
                &mount.join("live.bin"),
                start,
                live.len() as u64 - start,
                DEADLINE,
            );
            rest.ok();
            assert!(
                rest.stdout == live[start as usize..],
                "the chunks after the damaged one read back wrong"
            );
        },
    );
    soft.finish();
}

// ---------------------------------------------------------------------------------------------
// 10. Inputs changing during add; whole-file digests.
// ---------------------------------------------------------------------------------------------

/// Runs `add NAME INPUT` while `mutate` changes the input once a pack is being written.
fn add_while(
    h: &TestStore,
    name: &str,
    input: &Path,
    mutate: impl Fn(&Path, u32) + Send + 'static,
) -> Outcome {
    let stop = Arc::new(AtomicBool::new(false));
    let packs = h.store.join("packs");
    let (stop2, input2) = (stop.clone(), input.to_owned());
    let mutator = std::thread::spawn(move || {
        let start = Instant::now();
        // Wait until add writes a pack (it is reading the input), at most 2 s.
        while start.elapsed() < Duration::from_secs(2) && !stop2.load(Ordering::Relaxed) {
            let writing = std::fs::read_dir(&packs)
                .map(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().ends_with(".pack.tmp"))
                })
                .unwrap_or(false);
            if writing {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut round = 0;
        while !stop2.load(Ordering::Relaxed) && round < 200 {
            mutate(&input2, round);
            round += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let out = run_command(
        h.command(&["add", name, s(input)]),
        Duration::from_secs(180),
        None,
    );
    stop.store(true, Ordering::Relaxed);
    mutator.join().unwrap();
    out
}

/// Defect 10: an input rewritten or truncated while `add` reads it: add fails with one line saying
/// the input changed (never dies by SIGBUS) or succeeds; verify is all good either way, and adding
/// the intact file afterwards reads back bit-identical.
#[test]
fn an_input_changing_during_add_never_corrupts_the_store() {
    let size = 200_000_000usize;
    let original = Arc::new(random_bytes(1001, size));
    let change_words = ["changed", "truncat", "shrank", "modified"];
    let mut soft = Soft::default();

    type Mutate = Box<dyn Fn(&Path, u32) + Send>;
    let scenarios: [(&str, Mutate); 2] = [
        (
            // Parts rewritten, again and again, from the end backwards.
            "rewritten",
            Box::new(move |path, round| {
                let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                let at = (size as u64 - (1 << 20)) - u64::from(round % 150) * (1 << 20);
                let _ = file.write_all_at(&random_bytes(5000 + u64::from(round), 1 << 20), at);
            }),
        ),
        (
            // Truncated to a quarter.
            "truncated",
            Box::new(|path, round| {
                if round == 0 {
                    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
                    file.set_len(50_000_000).unwrap();
                }
            }),
        ),
    ];
    for (name, mutate) in scenarios {
        let h = TestStore::new();
        let input = h.file("inputs/big.bin", &original);
        let out = add_while(&h, name, &input, mutate);
        eprintln!("add while the input is {name}: {}", out.show());
        soft.check(&format!("add while the input is {name}"), || {
            out.ok_or_one_line(&change_words);
        });
        soft.check(&format!("verify after the add of a {name} input"), || {
            h.exec_within(&["verify"], Duration::from_secs(120)).ok();
        });
        soft.check(
            &format!("the intact file added again after the {name} input reads back identical"),
            || {
                let good = h.file("inputs/good.bin", &original);
                h.exec_within(&["add", "again", s(&good)], Duration::from_secs(180))
                    .ok();
                let out = h.exec_within(&["cat", "again"], Duration::from_secs(120));
                out.ok();
                assert!(
                    out.stdout[..] == original[..],
                    "the re-added file reads back different"
                );
            },
        );
    }
    soft.finish();
}

/// Defect 10 (digests): verify detects a file whose manifest's whole-file sha256 or blake3 does
/// not match its (intact) chunks, and names the file.
#[test]
fn verify_checks_whole_file_digests() {
    let h = TestStore::new();
    add_model(&h, "sha", &random_bytes(1011, 400_000));
    add_model(&h, "b3", &random_bytes(1012, 400_000));
    add_model(&h, "fine", &random_bytes(1013, 100_000));
    let mut manifest = load_manifest(&h.store, &manifest_hex(&h.store, "sha"));
    manifest.sha256[0] ^= 1;
    install_manifest(&h.store, "sha", &manifest);
    let mut manifest = load_manifest(&h.store, &manifest_hex(&h.store, "b3"));
    manifest.blake3[0] ^= 1;
    install_manifest(&h.store, "b3", &manifest);
    for model in ["sha", "b3"] {
        let out = h.exec(&["verify", model]);
        out.sane();
        assert!(!out.success(), "verify {model} passed:\n{}", out.show());
        assert!(
            out.stdout_text().contains(&format!("{model}@v1"))
                || out.stdout_text().contains(&format!("{model}.bin")),
            "verify names the file:\n{}",
            out.show()
        );
    }
    h.exec(&["verify", "fine"]).ok();
}

// ---------------------------------------------------------------------------------------------
// 11. Verify policy after the kernel dropped pages.
// ---------------------------------------------------------------------------------------------

/// Defect 11: a pack byte changed after a mount verified a chunk: once the page cache is dropped,
/// reads of that range (same handle, and a new one) give EIO, never the changed byte.
#[test]
fn a_pack_changed_after_first_read_gives_eio_not_new_bytes() {
    let h = TestStore::new();
    let bytes = random_bytes(1101, 3_000_000);
    add_model(&h, "m", &bytes);
    let places = chunk_places(&h.store, "m");
    let (chunk, location, pack) = places[places.len() / 2].clone();
    let mount = mount_ok(&h, &[], None);
    let file = std::fs::File::open(mount.join("m.bin")).unwrap();
    let mut whole = vec![0u8; bytes.len()];
    file.read_exact_at(&mut whole, 0).unwrap();
    assert!(whole == bytes);

    flip_byte(&pack, location.offset + 48 + 100);
    sh("sync; echo 3 > /proc/sys/vm/drop_caches");
    // One request from the page holding the chunk's start to its end: the chunk is read whole,
    // the way a verified chunk is read again after the kernel dropped its pages.
    let page = chunk.offset / 4096 * 4096;
    let len = (chunk.end() - page) as usize;
    let expect_eio = |file: &std::fs::File, what: &str| {
        let mut buf = vec![0u8; len];
        match file.read_exact_at(&mut buf, page) {
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{what}: {e}"),
            Ok(()) if buf[..] != bytes[page as usize..page as usize + len] => {
                panic!("{what}: the changed pack byte reached the reader")
            }
            Ok(()) => panic!("{what}: read the original bytes (expected EIO)"),
        }
    };
    let mut soft = Soft::default();
    soft.check("the handle kept open", || {
        expect_eio(&file, "the handle kept open")
    });
    soft.check("a new handle", || {
        let reopened = std::fs::File::open(mount.join("m.bin")).unwrap();
        expect_eio(&reopened, "a new handle");
    });
    soft.finish();
}

// ---------------------------------------------------------------------------------------------
// 12. umount, then mount again at once.
// ---------------------------------------------------------------------------------------------

/// Defect 12: `umount` then at once `mount --daemon` at the same path, ten times: each new mount
/// is still mounted and readable three seconds later.
#[test]
fn a_remount_right_after_umount_stays_mounted() {
    let h = TestStore::new();
    let bytes = random_bytes(1201, 200_000);
    add_model(&h, "m", &bytes);
    let mount = mount_ok(&h, &[], None);
    let mnt = s(&mount.path).to_owned();
    for round in 0..10 {
        h.exec(&["umount", &mnt]).ok();
        h.exec(&["mount", "--daemon", "--log", s(&mount.log), &mnt])
            .ok();
        std::thread::sleep(Duration::from_secs(3));
        assert!(
            is_mounted(&mount.path),
            "round {round}: the new mount was unmounted"
        );
        assert_reads(&mount.join("m.bin"), &bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// 13. A full disk.
// ---------------------------------------------------------------------------------------------

/// Defect 13: on a full file system, add, import and rm each fail with one line about the lack of
/// space (no SIGABRT from RocksDB) and leave the store as it was.
#[test]
fn a_full_disk_fails_cleanly_and_changes_nothing() {
    let scratch = TestStore::new();
    let tmpfs = scratch.path("tmpfs");
    let full = TestStore {
        dir: tempfile::tempdir().unwrap(),
        store: tmpfs.join("store"),
    };
    let _fs = SystemMount::new(
        &tmpfs,
        &format!("mount -t tmpfs -o size=64m tmpfs {}", tmpfs.display()),
    );
    full.exec(&["init", "--avg-chunk-kib", "16"]).ok();
    let a = random_bytes(1301, 2_000_000);
    let b = random_bytes(1302, 2_000_000);
    add_model(&full, "a", &a);
    add_model(&full, "b", &b);
    let source = TestStore::new();
    add_model(&source, "d", &random_bytes(1303, 2_000_000));
    let c = scratch.file("c.bin", &random_bytes(1304, 4_000_000));

    let filler = tmpfs.join("filler");
    let _ = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", filler.display()))
        .args(["bs=1M", "status=none"])
        .status();
    let registry = std::fs::read(full.store.join("registry.json")).unwrap();
    for args in [
        vec!["add", "c", s(&c)],
        vec!["import", s(&source.store)],
        vec!["rm", "a"],
    ] {
        full.exec(&args).one_line_failure(&["no space"]);
        assert_eq!(
            std::fs::read(full.store.join("registry.json")).unwrap(),
            registry,
            "modelfs {args:?} changed the registry"
        );
    }
    std::fs::remove_file(&filler).unwrap();
    full.exec(&["verify"]).ok();
    assert!(full.exec(&["cat", "a"]).ok().stdout == a);
    assert!(full.exec(&["cat", "b"]).ok().stdout == b);
    full.exec(&["add", "c", s(&c)]).ok();
}

// ---------------------------------------------------------------------------------------------
// 14. Flipped bytes in a pack header and a record header.
// ---------------------------------------------------------------------------------------------

/// Builds a store with `hurt`, `fine` and a removed `dead` (each in its own pack), damages `hurt`'s
/// pack with `damage(pack, record offsets)`, and checks verify, gc, index rebuild and import.
fn damaged_pack_spares_the_rest(damage: impl Fn(&Path, &[u64])) {
    let h = TestStore::new();
    let fine = random_bytes(1401, 800_000);
    add_model(&h, "hurt", &random_bytes(1402, 800_000));
    add_model(&h, "fine", &fine);
    add_model(&h, "dead", &random_bytes(1403, 300_000));
    h.exec(&["rm", "dead"]).ok();
    let places = chunk_places(&h.store, "hurt");
    let pack = places[0].2.clone();
    assert!(
        chunk_places(&h.store, "fine")
            .iter()
            .all(|(_, _, p)| *p != pack),
        "hurt has a pack of its own"
    );
    let offsets: Vec<u64> = places.iter().map(|(_, l, _)| l.offset).collect();
    damage(&pack, &offsets);

    let out = h.exec(&["verify"]);
    out.sane();
    assert!(!out.success(), "verify found nothing:\n{}", out.show());

    let dst = TestStore::new();
    dst.exec(&["import", s(&h.store)]).ok_or_one_line(&[]);
    let out = dst.exec(&["cat", "fine"]);
    out.ok();
    assert!(out.stdout == fine, "import: fine read back wrong");

    h.exec(&["gc"]).ok_or_one_line(&[]);
    assert!(h.exec(&["cat", "fine"]).ok().stdout == fine, "after gc");
    h.exec(&["index", "rebuild"]).ok_or_one_line(&[]);
    assert!(
        h.exec(&["cat", "fine"]).ok().stdout == fine,
        "after index rebuild"
    );
    h.exec(&["verify", "fine"]).ok();
}

/// Defect 14 (pack header): one flipped byte in a pack's 32-byte header.
#[test]
fn a_flipped_pack_header_byte_spares_the_rest_of_the_store() {
    damaged_pack_spares_the_rest(|pack, _| flip_byte(pack, 3));
}

/// Defect 14 (record header): one flipped byte in the 48-byte header of a record in the middle of
/// a pack (its raw length).
#[test]
fn a_flipped_record_header_byte_spares_the_rest_of_the_store() {
    damaged_pack_spares_the_rest(|pack, offsets| flip_byte(pack, offsets[offsets.len() / 2] + 37));
}

// ---------------------------------------------------------------------------------------------
// 15. Small ones.
// ---------------------------------------------------------------------------------------------

/// Defect 15: ls, stats and verify writing to a closed stdout (`| head -c1`) do not panic.
#[test]
fn a_closed_stdout_never_panics() {
    let h = TestStore::new();
    for i in 0..5 {
        add_model(&h, &format!("model{i}"), &random_bytes(1500 + i, 50_000));
    }
    for args in [
        vec!["ls"],
        vec!["ls", "-l"],
        vec!["ls", "--json"],
        vec!["ls", "model1"],
        vec!["stats"],
        vec!["stats", "--json"],
        vec!["verify"],
    ] {
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let out = run_full(h.command(&args), DEADLINE, None, Some(Stdio::from(write)));
        out.sane();
        let mut piped = Command::new("sh");
        piped.arg("-c").arg(format!(
            "XDG_CACHE_HOME={} {MODELFS} --store {} {} | head -c1 >/dev/null",
            h.path("cache").display(),
            h.store.display(),
            args.join(" ")
        ));
        run_command(piped, DEADLINE, None).sane();
    }
}

/// Defect 15: a store config with chunk sizes 0, or min above max: every command fails with one
/// line naming modelfs.json.
#[test]
fn a_config_with_impossible_chunk_sizes_is_one_line_naming_modelfs_json() {
    for (what, min, avg, max) in [
        ("zero", 0, 0, 0),
        ("min above max", 300_000, 65_536, 262_144),
    ] {
        let h = TestStore::new();
        add_model(&h, "m", &random_bytes(1510, 100_000));
        let input = h.file("inputs/x.bin", &random_bytes(1511, 100_000));
        let config = h.store.join("modelfs.json");
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        json["chunking"] = serde_json::json!({ "min_size": min, "avg_size": avg, "max_size": max });
        std::fs::write(&config, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
        for args in [
            vec!["ls"],
            vec!["add", "x", s(&input)],
            vec!["cat", "m"],
            vec!["verify"],
            vec!["gc"],
            vec!["stats"],
        ] {
            let out = h.exec(&args);
            assert!(!out.success(), "[{what}] should fail: {}", out.show());
            out.one_line_failure(&["modelfs.json"]);
        }
        let (out, _mount) = try_mount(&h, &[], None, DEADLINE);
        assert!(!out.success(), "[{what}] mount should fail: {}", out.show());
        out.one_line_failure(&["modelfs.json"]);
    }
}

/// Defect 15: an empty and a truncated `.gguf` are added as plain bytes, with one warning line
/// each saying they are not valid GGUF.
#[test]
fn invalid_gguf_files_are_stored_as_plain_bytes_with_one_warning() {
    let h = TestStore::new();
    let empty = h.file("inputs/empty.gguf", b"");
    let whole = h.path("inputs/whole.gguf");
    corpus("base", &whole, 0.001);
    let mut bytes = std::fs::read(&whole).unwrap();
    bytes.truncate(bytes.len() / 2);
    let truncated = h.file("inputs/truncated.gguf", &bytes);
    for (model, path, content) in [
        ("empty", &empty, Vec::new()),
        ("truncated", &truncated, bytes),
    ] {
        let out = h.exec(&["add", model, s(path)]);
        out.ok();
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), 1, "one warning line:\n{}", out.show());
        let line = lines[0].to_lowercase();
        assert!(
            line.contains(&format!("{model}.gguf"))
                && ["not a valid", "invalid", "not gguf"]
                    .iter()
                    .any(|w| line.contains(w)),
            "the warning names the file and says it is not valid:\n{}",
            out.show()
        );
        assert!(h.exec(&["cat", model]).ok().stdout == content);
    }
}

/// Defect 15: a model or version name with a newline is refused with one line.
#[test]
fn a_name_with_a_newline_is_one_line() {
    let h = TestStore::new();
    let input = h.file("inputs/m.bin", &random_bytes(1520, 10_000));
    h.exec(&["add", "a\nb", s(&input)])
        .one_line_failure(&["name"]);
    h.exec(&["add", "m", s(&input), "--version", "v\n1"])
        .one_line_failure(&["version"]);
    h.exec(&["cat", "a\nb"]).one_line_failure(&["name"]);
    h.exec(&["rm", "a\nb"]).one_line_failure(&["name"]);
}

/// Defect 15: opening and closing a file in the mount leaves no "flush" warnings in the log.
#[test]
fn open_and_close_in_the_mount_log_no_flush_warnings() {
    let h = TestStore::new();
    add_model(&h, "m", &random_bytes(1530, 100_000));
    let mount = mount_ok(&h, &[], None);
    for _ in 0..10 {
        let file = std::fs::File::open(mount.join("m.bin")).unwrap();
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, 0).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = mount.log();
    let flush: Vec<&str> = log
        .lines()
        .filter(|l| l.to_lowercase().contains("flush"))
        .collect();
    assert!(
        flush.is_empty(),
        "flush lines in the mount log:\n{}",
        flush.join("\n")
    );
}

/// Defect 15: a registry whose file size is smaller than the manifest's: the mount and `cat` give
/// the same bytes, or both fail.
#[test]
fn a_registry_size_below_the_manifest_size_reads_the_same_everywhere() {
    let h = TestStore::new();
    add_model(&h, "m", &random_bytes(1540, 300_000));
    let mut registry = registry_of(&h.store);
    registry["models"]["m"]["versions"][0]["files"][0]["size"] = 295_000.into();
    save_registry(&h.store, &registry);
    let cat = h.exec(&["cat", "m"]);
    cat.sane();
    let (out, mount) = try_mount(&h, &[], None, DEADLINE);
    out.ok_or_one_line(&["registry.json", "size", "m"]);
    let through = mount
        .as_ref()
        .map(|mount| read_through(&mount.join("m.bin"), DEADLINE));
    match (&through, cat.success()) {
        (Some(read), true) => {
            read.sane();
            assert!(
                read.success(),
                "cat works but the mount fails: {}",
                read.show()
            );
            assert!(
                read.stdout == cat.stdout,
                "cat gives {} bytes, the mount {} bytes",
                cat.stdout.len(),
                read.stdout.len()
            );
        }
        (Some(read), false) => assert!(
            !read.success(),
            "the mount reads {} bytes but cat fails: {}",
            read.stdout.len(),
            cat.show()
        ),
        (None, true) => panic!("cat works but mount fails: {}", out.show()),
        (None, false) => {}
    }
    if !cat.success() {
        cat.one_line_failure(&["m"]);
    }
}
