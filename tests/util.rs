//! Shared helpers: a temporary store driven through the real binary, a real FUSE mount of it,
//! and generated model files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub const MODELFS: &str = env!("CARGO_BIN_EXE_modelfs");
/// The corpus generator.
pub const CORPUS: &str = env!("CARGO_BIN_EXE_modelfs-corpus");

/// A store in a temporary directory, plus scratch space for inputs and mountpoints.
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
}

impl TestStore {
    /// A new, initialised store with small chunks (so small files still have many).
    pub fn new() -> TestStore {
        let store = TestStore::uninitialised();
        store.ok(&["init", "--avg-chunk-kib", "16"]);
        store
    }

    /// A temporary directory where a store would be, not yet created.
    pub fn uninitialised() -> TestStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("store");
        TestStore { dir, store }
    }

    /// A path inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `modelfs --store STORE ARGS…`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_at(&self.store, args)
    }

    /// Runs `modelfs --store STORE ARGS…` for another path of the store (a bind mount of it),
    /// with this test's cache directory.
    pub fn run_at(&self, store: &Path, args: &[&str]) -> Output {
        Command::new(MODELFS)
            .arg("--store")
            .arg(store)
            .args(args)
            .env_remove("MODELFS_STORE")
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .output()
            .expect("run modelfs")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_at(&self.store, args)
    }

    /// [`TestStore::ok`] for another path of the store (see [`TestStore::run_at`]).
    pub fn ok_at(&self, store: &Path, args: &[&str]) -> String {
        let out = self.run_at(store, args);
        assert!(
            out.status.success(),
            "modelfs {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs a command that must fail with a one-line error; returns that line.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "modelfs {args:?} should have failed");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("modelfs: "))
            .collect();
        assert_eq!(lines.len(), 1, "expected one error line, got:\n{stderr}");
        lines[0].to_owned()
    }

    /// Writes `bytes` to a scratch file and returns its path.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// `modelfs stats --json`.
    pub fn stats(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["stats", "--json"])).expect("stats --json prints JSON")
    }

    /// Bytes of the store's pack files.
    pub fn stored_bytes(&self) -> u64 {
        self.stats()["stored_bytes"]
            .as_u64()
            .expect("stored_bytes is a number")
    }

    /// Mounts the store (daemon mode) at a fresh scratch directory.
    pub fn mount(&self) -> Mount {
        self.mount_store(&self.store)
    }

    /// Mounts the store at `store` (which may differ from this store's path, e.g. a bind mount).
    pub fn mount_store(&self, store: &Path) -> Mount {
        self.mount_store_with(store, &[])
    }

    /// Mounts the store with extra `mount` options.
    pub fn mount_with(&self, options: &[&str]) -> Mount {
        self.mount_store_with(&self.store, options)
    }

    /// Mounts the store at `store` with extra `mount` options.
    pub fn mount_store_with(&self, store: &Path, options: &[&str]) -> Mount {
        let mountpoint = tempfile::tempdir_in(self.dir.path()).unwrap().keep();
        let log = self.path(&format!(
            "mount-{}.log",
            mountpoint.file_name().unwrap().to_string_lossy()
        ));
        let out = Command::new(MODELFS)
            .arg("--store")
            .arg(store)
            .args(["mount", "--daemon", "--log"])
            .arg(&log)
            .args(options)
            .arg(&mountpoint)
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount {
            path: mountpoint,
            log,
        }
    }
}

/// A live FUSE mount, unmounted on drop.
pub struct Mount {
    pub path: PathBuf,
    pub log: PathBuf,
}

impl Mount {
    /// A path inside the mount.
    pub fn join(&self, relative: &str) -> PathBuf {
        self.path.join(relative)
    }

    /// What the mount daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let out = Command::new(MODELFS).arg("umount").arg(&self.path).output();
        if !out.is_ok_and(|o| o.status.success()) {
            // Lazy unmount so a failing test cannot leave a busy mount behind.
            let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// `len` deterministic pseudo-random bytes for `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed ^ 0x5851_F42D_4C95_7F2D;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(&(state ^ (state >> 29)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes a generated GGUF model (`base` or `finetune`) at `scale` into `path`.
pub fn corpus(kind: &str, path: &Path, scale: f64) {
    let out = Command::new(CORPUS)
        .arg(kind)
        .arg(path)
        .args(["--scale", &scale.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "corpus generator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a shell command that must succeed; returns its stdout.
pub fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "`{script}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Mounts with the shell command `mount_command` (which must mount `path`) and detaches the mount
/// when dropped, so a failing test cannot leave it behind.
pub struct SystemMount(pub PathBuf);

impl SystemMount {
    pub fn new(path: &Path, mount_command: &str) -> SystemMount {
        std::fs::create_dir_all(path).unwrap();
        sh(mount_command);
        SystemMount(path.to_owned())
    }
}

impl Drop for SystemMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Starts `modelfs --store STORE ARGS…`, kills it with SIGKILL after `delay`, and returns whether
/// it had already finished successfully.
pub fn kill_after(store: &Path, args: &[&str], delay: std::time::Duration) -> bool {
    let mut child = Command::new(MODELFS)
        .arg("--store")
        .arg(store)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGKILL,
    );
    child.wait().unwrap().success()
}

/// The chunks of `model`'s newest first file, each with its location and pack file.
pub fn chunk_places(
    store_dir: &Path,
    model: &str,
) -> Vec<(
    modelfs::format::manifest::ChunkRef,
    modelfs::store::index::Location,
    PathBuf,
)> {
    let store = modelfs::Store::open(store_dir, modelfs::Access::Read).unwrap();
    let registry = store.registry().unwrap();
    let file = &registry.models[model].versions.last().unwrap().files[0];
    let manifest = store.manifest(&file.manifest).unwrap();
    let ids: Vec<_> = manifest.chunks.iter().map(|c| c.id).collect();
    let locations = store.locate(&ids).unwrap();
    manifest
        .chunks
        .iter()
        .zip(locations)
        .map(|(chunk, location)| {
            let location = location.expect("chunk is indexed");
            let pack = modelfs::store::pack::pack_path(&store_dir.join("packs"), &location.pack);
            (*chunk, location, pack)
        })
        .collect()
}

/// Flips bits of the byte at `at` in `path` (and syncs), as damage on a medium would.
pub fn flip_byte(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x20], at).unwrap();
    file.sync_all().unwrap();
}
