//! What every scenario uses: the seeded RNG, the scratch directory, running `modelfs` with a
//! timeout, FUSE mounts that are always taken down, reading a file against its expected bytes,
//! and the list of findings.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A small, seeded pseudo-random generator (SplitMix64): the same seed gives the same trials.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6A09_E667_F3BC_C908)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `[0, 1)`.
    pub fn fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An independent generator for one trial, so trials do not shift each other's draws.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    /// `len` pseudo-random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// A scratch directory, removed (after unmounting anything left inside) on drop.
pub struct WorkDir {
    pub path: PathBuf,
    pub keep: bool,
}

impl WorkDir {
    pub fn create(path: &Path, keep: bool) -> anyhow::Result<WorkDir> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(WorkDir {
            path: path.to_owned(),
            keep,
        })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        for mountpoint in mounts_under(&self.path) {
            force_unmount(&mountpoint);
        }
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// Still running at its timeout (then killed).
    Hung,
}

/// A finished command: how it ended and what it printed.
pub struct Run {
    pub exit: Exit,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn panicked(&self) -> bool {
        self.stderr.contains("panicked")
    }

    /// Killed by a signal it did not get from us (an abort, a segfault).
    pub fn crashed(&self) -> bool {
        matches!(self.exit, Exit::Signal(_))
    }

    pub fn hung(&self) -> bool {
        self.exit == Exit::Hung
    }

    /// Lines `modelfs: …`, the CLI's error lines.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("modelfs: "))
            .collect()
    }

    /// Failed with exit status 1 and exactly one `modelfs: ` error line, no panic.
    pub fn clean_failure(&self) -> bool {
        self.exit == Exit::Code(1) && self.error_lines().len() == 1 && !self.panicked()
    }

    /// The error line, else the last stderr line, shortened.
    pub fn message(&self) -> String {
        let line = self
            .error_lines()
            .first()
            .map(|l| l.to_string())
            .or_else(|| {
                self.stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        shorten(&strip_ansi(&line), 300)
    }

    pub fn describe(&self) -> String {
        describe_exit(self.exit)
    }
}

pub fn describe_exit(exit: Exit) -> String {
    match exit {
        Exit::Code(code) => format!("exit {code}"),
        Exit::Signal(signal) => {
            let name = nix::sys::signal::Signal::try_from(signal)
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|_| format!("signal {signal}"));
            format!("killed by {name}")
        }
        Exit::Hung => "hung (killed at the timeout)".to_owned(),
    }
}

/// Removes terminal colour codes from log lines.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max).collect();
        cut.push('…');
        cut
    }
}

/// A started command whose output is collected in the background.
pub struct Proc {
    child: Child,
    started: Instant,
    out: Receiver<Vec<u8>>,
    err: Receiver<Vec<u8>>,
    /// Bytes written to stdout so far.
    pub progress: Arc<AtomicU64>,
}

fn collect(
    mut from: impl Read + Send + 'static,
    progress: Option<Arc<AtomicU64>>,
) -> Receiver<Vec<u8>> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    all.extend_from_slice(&buf[..n]);
                    if let Some(p) = &progress {
                        p.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
        }
        let _ = tx.send(all);
    });
    rx
}

impl Proc {
    pub fn start(mut command: Command) -> anyhow::Result<Proc> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot run {command:?}"))?;
        let progress = Arc::new(AtomicU64::new(0));
        let out = collect(
            child.stdout.take().context("no stdout pipe")?,
            Some(progress.clone()),
        );
        let err = collect(child.stderr.take().context("no stderr pipe")?, None);
        Ok(Proc {
            child,
            started: Instant::now(),
            out,
            err,
            progress,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Whether it has exited (without reaping it).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL now; returns whether it was still running.
    pub fn kill9(&mut self) -> bool {
        let running = self.running();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::SIGKILL,
        );
        running
    }

    /// Waits up to `timeout` (then kills it and reports `Hung`); a SIGKILL sent by [`Proc::kill9`]
    /// is reported as `Signal(9)`.
    pub fn wait(mut self, timeout: Duration) -> Run {
        let mut hung = false;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if self.started.elapsed() > timeout && !hung => {
                    hung = true;
                    let _ = self.child.kill();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                Err(_) => break None,
            }
        };
        let exit = match status {
            _ if hung => Exit::Hung,
            Some(s) => match (s.code(), s.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(signal)) => Exit::Signal(signal),
                _ => Exit::Code(-1),
            },
            None => Exit::Code(-1),
        };
        // A grandchild (a mount daemon) could hold the pipes; do not wait for it forever.
        let stdout = self
            .out
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default();
        let stderr = self
            .err
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default();
        Run {
            exit,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// The executables, the per-machine cache modelfs uses, and the default timeout.
pub struct Tools {
    pub modelfs: PathBuf,
    pub corpus: PathBuf,
    pub cache: PathBuf,
    pub timeout: Duration,
}

impl Tools {
    /// `modelfs --store STORE ARGS…` with this run's cache directory.
    pub fn command(&self, store: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(&self.modelfs);
        command
            .arg("--store")
            .arg(store)
            .args(args)
            .env_remove("MODELFS_STORE")
            .env_remove("MODELFS_LOG")
            .env("XDG_CACHE_HOME", &self.cache);
        command
    }

    pub fn start(&self, store: &Path, args: &[&str]) -> anyhow::Result<Proc> {
        Proc::start(self.command(store, args))
    }

    /// Runs to the end (or the timeout).
    pub fn run(&self, store: &Path, args: &[&str]) -> Run {
        match self.start(store, args) {
            Ok(proc) => proc.wait(self.timeout),
            Err(e) => Run {
                exit: Exit::Code(-1),
                stdout: Vec::new(),
                stderr: format!("modelfs: cannot start: {e:#}"),
            },
        }
    }

    /// Runs a command that must succeed (setup steps); returns its stdout.
    /// Creates a store at `store` with small chunks and packs, so a few MB make many of each.
    pub fn init_small(&self, store: &Path) -> anyhow::Result<()> {
        self.ok(
            store,
            &["init", "--avg-chunk-kib", "16", "--pack-size-mib", "4"],
        )
        .map(drop)
    }

    /// A copy of the store `template` at `dir/template-gc` with model `both` removed, so `gc`
    /// has work there.
    pub fn gc_copy(&self, template: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
        let copy = dir.join("template-gc");
        copy_tree(template, &copy)?;
        self.ok(&copy, &["rm", "both"])?;
        Ok(copy)
    }

    pub fn ok(&self, store: &Path, args: &[&str]) -> anyhow::Result<String> {
        let run = self.run(store, args);
        if !run.success() {
            bail!(
                "modelfs {} failed ({}): {}",
                args.join(" "),
                run.describe(),
                run.stderr.trim()
            );
        }
        Ok(run.stdout_text())
    }

    /// `modelfs verify`: whether it ran and reported "all good".
    pub fn verify(&self, store: &Path) -> (bool, Run) {
        let run = self.run(store, &["verify"]);
        (run.success() && run.stdout_text().contains("all good"), run)
    }

    /// Forgets per-machine state (private index copies), so trials do not inherit it.
    pub fn clear_cache(&self) {
        let _ = std::fs::remove_dir_all(&self.cache);
    }

    /// Writes a generated GGUF (`base`, `finetune`, …) at `scale`.
    pub fn corpus(&self, kind: &str, path: &Path, scale: f64) -> anyhow::Result<()> {
        let out = Command::new(&self.corpus)
            .arg(kind)
            .arg(path)
            .args(["--scale", &scale.to_string()])
            .output()
            .context("cannot run modelfs-corpus")?;
        if !out.status.success() {
            bail!(
                "modelfs-corpus {kind} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

/// Runs a system command that must succeed; returns its stdout.
pub fn system(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One committed model file: how `cat` names it, where a mount shows it, its bytes.
#[derive(Clone)]
pub struct ModelFile {
    pub spec: String,
    pub mount_path: String,
    pub bytes: Arc<Vec<u8>>,
}

/// The files of a store's models, from `ls --json`, paired with their original bytes by
/// `original(name, version, path)`.
pub fn model_files(
    tools: &Tools,
    store: &Path,
    mut original: impl FnMut(&str, &str, &str) -> Option<Arc<Vec<u8>>>,
) -> anyhow::Result<Vec<ModelFile>> {
    let listing: serde_json::Value = serde_json::from_str(&tools.ok(store, &["ls", "--json"])?)
        .context("ls --json is not JSON")?;
    let mut files = Vec::new();
    for model in listing.as_array().context("ls --json: not a list")? {
        let name = model["name"].as_str().context("model without name")?;
        let mounted_as = model["mounted_as"].as_str().unwrap_or(name);
        let single = mounted_as != name;
        for version in model["versions"].as_array().context("no versions")? {
            let v = version["version"]
                .as_str()
                .context("version without name")?;
            for file in version["files"].as_array().context("no files")? {
                let path = file["path"].as_str().context("file without path")?;
                let bytes = original(name, v, path)
                    .with_context(|| format!("no original bytes for {name}@{v}/{path}"))?;
                let (spec, mount_path) = if single {
                    (
                        format!("{name}@{v}"),
                        format!(".versions/{name}/{v}/{mounted_as}"),
                    )
                } else {
                    (
                        format!("{name}@{v}/{path}"),
                        format!(".versions/{name}/{v}/{path}"),
                    )
                };
                files.push(ModelFile {
                    spec,
                    mount_path,
                    bytes,
                });
            }
        }
    }
    Ok(files)
}

/// How many bytes of `got` differ from `expected` (bytes past its end count as wrong).
pub fn wrong_bytes(got: &[u8], expected: &[u8]) -> u64 {
    let common = got.len().min(expected.len());
    let differing = got[..common]
        .iter()
        .zip(&expected[..common])
        .filter(|(a, b)| a != b)
        .count() as u64;
    differing + (got.len() - common) as u64
}

/// What one read of a whole file gave.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Bytes returned before the end or the error.
    pub bytes: u64,
    /// Returned bytes that differ from the original.
    pub wrong: u64,
    /// The error that ended the read (errno, or -1 for a failed open of the mount), and when.
    pub error: Option<(i32, Instant)>,
    /// Ended without error but before the original's length.
    pub short: bool,
}

impl ReadResult {
    /// Every byte right and the whole file read.
    pub fn correct(&self) -> bool {
        self.wrong == 0 && self.error.is_none() && !self.short
    }

    /// Wrong bytes or a silent short read: what must never happen.
    pub fn served_wrong(&self) -> bool {
        self.wrong > 0 || self.short
    }
}

/// `cat` output judged against the original.
pub fn judge_cat(run: &Run, expected: &[u8]) -> ReadResult {
    let wrong = wrong_bytes(&run.stdout, expected);
    let failed = !run.success();
    ReadResult {
        bytes: run.stdout.len() as u64,
        wrong,
        error: failed.then(|| (-1, Instant::now())),
        short: !failed && run.stdout.len() < expected.len(),
    }
}

/// A file being read in a background thread, in 1 MiB `read`s, compared as it arrives.
pub struct Reader {
    rx: Receiver<ReadResult>,
    pub progress: Arc<AtomicU64>,
}

impl Reader {
    pub fn spawn(path: PathBuf, expected: Arc<Vec<u8>>) -> Reader {
        let progress = Arc::new(AtomicU64::new(0));
        let (tx, rx) = channel();
        let seen = progress.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_file(&path, &expected, &seen));
        });
        Reader { rx, progress }
    }

    /// The result, or `None` if the read is still going at `timeout`.
    pub fn wait(&self, timeout: Duration) -> Option<ReadResult> {
        self.rx.recv_timeout(timeout).ok()
    }
}

pub fn read_file(path: &Path, expected: &[u8], progress: &AtomicU64) -> ReadResult {
    let mut result = ReadResult {
        bytes: 0,
        wrong: 0,
        error: None,
        short: false,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            result.error = Some((e.raw_os_error().unwrap_or(-1), Instant::now()));
            return result;
        }
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let at = result.bytes as usize;
                let expected_part = expected.get(at..).unwrap_or(&[]);
                result.wrong += wrong_bytes(&buf[..n], expected_part);
                result.bytes += n as u64;
                progress.store(result.bytes, Ordering::Relaxed);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                result.error = Some((e.raw_os_error().unwrap_or(-1), Instant::now()));
                return result;
            }
        }
    }
    result.short = (result.bytes as usize) < expected.len();
    result
}

/// Mount points (from /proc/self/mountinfo) at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mount_table()
        .into_iter()
        .map(|m| m.mountpoint)
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    found.dedup();
    found
}

pub struct MountEntry {
    pub mountpoint: PathBuf,
    pub minor: u32,
    pub fstype: String,
}

pub fn mount_table() -> Vec<MountEntry> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let minor = fields.get(2)?.split(':').nth(1)?.parse().ok()?;
            let mountpoint = PathBuf::from(fields.get(4)?.replace("\\040", " "));
            let dash = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(dash + 1)?.to_string();
            Some(MountEntry {
                mountpoint,
                minor,
                fstype,
            })
        })
        .collect()
}

pub fn is_mounted(path: &Path) -> bool {
    mount_table().iter().any(|m| m.mountpoint == path)
}

/// Takes a mount down whatever state its server is in: aborts a FUSE connection (through
/// fusectl, else by killing the processes serving it), then detaches the mount.
pub fn force_unmount(path: &Path) {
    let entries: Vec<MountEntry> = mount_table()
        .into_iter()
        .filter(|m| m.mountpoint == path)
        .collect();
    for entry in &entries {
        if entry.fstype.starts_with("fuse") {
            let abort = PathBuf::from(format!("/sys/fs/fuse/connections/{}/abort", entry.minor));
            if std::fs::write(&abort, "1").is_err() {
                for pid in pids_with_arg(&path.to_string_lossy()) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::SIGKILL,
                    );
                }
            }
        }
        let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Processes (other than this one) with `arg` among their command-line arguments.
pub fn pids_with_arg(arg: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// Mounts fusectl if it is not, so hung FUSE connections can be aborted; returns whether it did.
pub fn ensure_fusectl() -> bool {
    let dir = Path::new("/sys/fs/fuse/connections");
    if mount_table().iter().any(|m| m.mountpoint == dir) {
        return false;
    }
    nix::mount::mount(
        Some("fusectl"),
        dir,
        Some("fusectl"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .is_ok()
}

/// `modelfs mount --daemon` of `store` (with `extra` arguments) at `mountpoint`; unmounted on drop.
pub struct FuseMount {
    pub path: PathBuf,
    pub log: PathBuf,
    modelfs: PathBuf,
}

impl FuseMount {
    /// Mounts; on failure returns the failed run.
    pub fn daemon(
        tools: &Tools,
        store: &Path,
        mountpoint: &Path,
        log: &Path,
        extra: &[&str],
    ) -> Result<FuseMount, Run> {
        let _ = std::fs::create_dir_all(mountpoint);
        let mut args = vec![
            "mount",
            "--daemon",
            "--log",
            log.to_str().unwrap_or_default(),
            mountpoint.to_str().unwrap_or_default(),
        ];
        args.extend_from_slice(extra);
        let run = tools.run(store, &args);
        if run.success() {
            Ok(FuseMount {
                path: mountpoint.to_owned(),
                log: log.to_owned(),
                modelfs: tools.modelfs.clone(),
            })
        } else {
            // A mount that came up after all (e.g. the parent timed out) must not stay behind.
            force_unmount(mountpoint);
            Err(run)
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `modelfs umount` within `timeout`; else forced. Returns whether the clean unmount worked.
    pub fn unmount(self, timeout: Duration) -> bool {
        let path = self.path.clone();
        let modelfs = self.modelfs.clone();
        std::mem::forget(self);
        let mut command = Command::new(&modelfs);
        command.arg("umount").arg(&path);
        let clean = Proc::start(command)
            .map(|p| p.wait(timeout).success())
            .unwrap_or(false);
        if !clean || is_mounted(&path) {
            force_unmount(&path);
        }
        // Wait for the daemon to let go of the store (it exits right after the unmount).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pids_with_arg(&path.to_string_lossy()).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        clean
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        force_unmount(&self.path);
    }
}

/// Bytes free to unprivileged writers and bytes used on the file system holding `path`.
pub fn disk_space(path: &Path) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(path) {
        Ok(s) => {
            let frsize = s.fragment_size();
            (
                s.blocks_available() * frsize,
                (s.blocks() - s.blocks_free()) * frsize,
            )
        }
        Err(_) => (0, 0),
    }
}

/// Copies a directory tree (files and folders only).
pub fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Relative path → size of every file under `dir`.
pub fn file_sizes(dir: &Path) -> BTreeMap<String, u64> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(root, &path, out),
                Ok(_) => {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    let rel = path.strip_prefix(root).unwrap_or(&path);
                    out.insert(rel.to_string_lossy().into_owned(), size);
                }
                Err(_) => {}
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Files whose name ends in `.tmp` anywhere in the store (unsealed packs, unrenamed writes).
pub fn temp_files(store: &Path) -> Vec<String> {
    file_sizes(store)
        .into_keys()
        .filter(|name| name.ends_with(".tmp") || name.contains(".tmp."))
        .collect()
}

pub fn drop_caches() {
    nix::unistd::sync();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

/// Findings: anything that must not happen, grouped by scenario and kind, with examples.
#[derive(Default)]
pub struct Findings {
    groups: BTreeMap<(String, String), (usize, Vec<String>)>,
}

impl Findings {
    pub fn add(&mut self, scenario: &str, kind: &str, detail: String) {
        eprintln!("  FINDING [{scenario}] {kind}: {detail}");
        let group = self
            .groups
            .entry((scenario.to_owned(), kind.to_owned()))
            .or_default();
        group.0 += 1;
        if group.1.len() < 3 {
            group.1.push(detail);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn print(&self) {
        println!();
        println!("## Findings");
        println!();
        if self.groups.is_empty() {
            println!("none");
            return;
        }
        for ((scenario, kind), (count, examples)) in &self.groups {
            println!("- **{scenario}: {kind}** ({count}×)");
            for example in examples {
                println!("  - {}", example.replace('\n', " "));
            }
        }
    }
}

/// A wall-clock budget for one scenario's loop.
pub struct Budget {
    deadline: Instant,
}

impl Budget {
    pub fn minutes(minutes: f64) -> Budget {
        Budget {
            deadline: Instant::now() + Duration::from_secs_f64(minutes * 60.0),
        }
    }

    pub fn exhausted(&self) -> bool {
        Instant::now() > self.deadline
    }

    /// Whether a scenario's loop must stop now; if so, records why (with `progress`, e.g.
    /// "12 of 100 trials done") among the findings.
    pub fn stops(&self, findings: &mut Findings, scenario: &str, progress: String) -> bool {
        let stop = self.exhausted();
        if stop {
            findings.add(scenario, "stopped early: time budget used up", progress);
        }
        stop
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count for people (binary units).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
