//! `modelfs-bench`: end-to-end measurements of modelfs next to the native file on the same disk,
//! with squashfuse on the same data as a reference read-only FUSE file system.
//!
//! It generates a ~1 GiB fp16 GGUF (and its fine-tune) with `modelfs-corpus`, adds them, mounts the
//! store (and a second store where the same file is pinned: served from a plain copy by FUSE
//! passthrough), and measures cold and warm sequential reads, random preads, mmap touches, page-cache
//! growth, the fine-tune-after-base load, mount-to-first-`ls` with 1,000 models, daemon memory and
//! `add` throughput. Cold means the page cache was dropped first. Every read measurement runs the
//! targets interleaved, three times, and reports the median. Needs root.

mod measure;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

use measure::{Target, drop_caches};

/// End-to-end benchmark of modelfs against the native file and squashfuse.
#[derive(Debug, Parser)]
#[command(name = "modelfs-bench", version)]
struct Args {
    /// Size of the generated model relative to ~1.07 GB.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Scratch directory (on the disk to measure); a fresh subdirectory is used and removed.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Models in the store for the mount-to-first-ls measurement.
    #[arg(long, default_value_t = 1000)]
    models: usize,
    /// Skip squashfuse (when squashfs-tools or squashfuse are not installed).
    #[arg(long)]
    no_squashfuse: bool,
}

struct Tools {
    modelfs: PathBuf,
    corpus: PathBuf,
}

impl Tools {
    fn modelfs(&self, store: &Path, args: &[&str]) -> anyhow::Result<String> {
        run(Command::new(&self.modelfs)
            .arg("--store")
            .arg(store)
            .args(args))
    }

    /// Mounts `store` at `mountpoint` in the background, logging to `log`.
    fn mount(&self, store: &Path, mountpoint: &Path, log: &Path) -> anyhow::Result<Mounted> {
        let (mountpoint_arg, log_arg) = (
            mountpoint.to_str().unwrap_or_default(),
            log.to_str().unwrap_or_default(),
        );
        self.modelfs(
            store,
            &["mount", "--daemon", mountpoint_arg, "--log", log_arg],
        )?;
        Ok(Mounted(mountpoint.to_owned()))
    }
}

/// The median of a few measurements.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn run(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A scratch directory removed on drop.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(path: &Path) -> anyhow::Result<WorkDir> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(WorkDir(path.to_owned()))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Unmounts on drop.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        nix::unistd::geteuid().is_root(),
        "modelfs-bench needs root (it drops caches and mounts)"
    );
    let here = std::env::current_exe()?
        .parent()
        .context("executable has no directory")?
        .to_owned();
    let tools = Tools {
        modelfs: here.join("modelfs"),
        corpus: here.join("modelfs-corpus"),
    };
    let work_dir = WorkDir::create(
        &args
            .dir
            .join(format!("modelfs-bench-{}", std::process::id())),
    )?;
    let work = work_dir.0.as_path();
    let (base, finetune) = (work.join("base.gguf"), work.join("finetune.gguf"));
    run(Command::new(&tools.corpus)
        .arg("base")
        .arg(&base)
        .args(["--scale", &args.scale.to_string()]))?;
    run(Command::new(&tools.corpus)
        .arg("finetune")
        .arg(&finetune)
        .args(["--scale", &args.scale.to_string()]))?;
    let size = std::fs::metadata(&base)?.len();
    println!(
        "model: {:.2} GB fp16 GGUF ({})",
        size as f64 / 1e9,
        base.display()
    );

    // Ingest: modelfs add against copying the file and fsyncing it, both from a cold cache, in
    // turn, three times (each add into a fresh store); medians.
    let store = work.join("store");
    let (mut copy_rates, mut add_rates) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        drop_caches();
        let started = Instant::now();
        run(Command::new("sh").arg("-c").arg(format!(
            "cp {} {}/copy && sync {}/copy",
            base.display(),
            work.display(),
            work.display()
        )))?;
        copy_rates.push(size as f64 / started.elapsed().as_secs_f64() / 1e6);
        std::fs::remove_file(work.join("copy"))?;
        if store.exists() {
            std::fs::remove_dir_all(&store)?;
        }
        tools.modelfs(&store, &["init"])?;
        drop_caches();
        let started = Instant::now();
        tools.modelfs(&store, &["add", "base", base.to_str().unwrap()])?;
        add_rates.push(size as f64 / started.elapsed().as_secs_f64() / 1e6);
    }
    let (copy_rate, add_rate) = (median(copy_rates), median(add_rates));
    let stats: serde_json::Value =
        serde_json::from_str(&tools.modelfs(&store, &["stats", "--json"])?)?;

    // The same file in a second store, pinned: its mount serves it from a plain copy by FUSE
    // passthrough. (A second store, because pins follow file contents: a second name in the same
    // store would pin the first one's file too.) `pin` is timed like `cp` + `sync` above, cold,
    // three times (unpinned in between); median.
    let pinned_store = work.join("store-pinned");
    tools.modelfs(&pinned_store, &["init"])?;
    tools.modelfs(&pinned_store, &["add", "base", base.to_str().unwrap()])?;
    let mut pin_rates = Vec::new();
    for rep in 0..3 {
        if rep > 0 {
            tools.modelfs(&pinned_store, &["unpin", "base"])?;
        }
        drop_caches();
        let started = Instant::now();
        tools.modelfs(&pinned_store, &["pin", "base"])?;
        pin_rates.push(size as f64 / started.elapsed().as_secs_f64() / 1e6);
    }
    let pin_rate = median(pin_rates);

    let mnt = work.join("mnt");
    std::fs::create_dir(&mnt)?;
    let _mounted = tools.mount(&store, &mnt, &work.join("mount.log"))?;
    let daemon = daemon_pid(&mnt)?;
    let pinned_mnt = work.join("mnt-pinned");
    std::fs::create_dir(&pinned_mnt)?;
    let _pinned_mounted = tools.mount(&pinned_store, &pinned_mnt, &work.join("pinned.log"))?;

    let mut targets = vec![
        Target::new("modelfs", mnt.join("base.gguf")),
        Target::new("pinned", pinned_mnt.join("base.gguf")),
        Target::new("native", base.clone()),
    ];
    let _squash = if args.no_squashfuse {
        None
    } else {
        let image = work.join("base.sqfs");
        let started = Instant::now();
        run(Command::new("mksquashfs").arg(&base).arg(&image).args([
            "-comp",
            "zstd",
            "-noappend",
            "-quiet",
        ]))?;
        println!(
            "mksquashfs (zstd): {:.0} MB/s",
            size as f64 / started.elapsed().as_secs_f64() / 1e6
        );
        let squash_mnt = work.join("squash");
        std::fs::create_dir(&squash_mnt)?;
        run(Command::new("squashfuse_ll").arg(&image).arg(&squash_mnt))?;
        targets.push(Target::new("squashfuse", squash_mnt.join("base.gguf")));
        Some(Mounted(squash_mnt))
    };

    let results = measure::all(&mut targets)?;

    // A fine-tune right after its base: shared chunks come from warm packs. The fine-tune is added
    // to the running mount, which picks it up and works out which chunks the two share.
    tools.modelfs(&store, &["add", "finetune", finetune.to_str().unwrap()])?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !mnt.join("finetune.gguf").exists() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the mount did not show the fine-tune"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    drop_caches();
    measure::sequential(&mnt.join("base.gguf"))?;
    let finetune_after_base = measure::sequential(&mnt.join("finetune.gguf"))?;
    drop_caches();
    let finetune_native_cold = measure::sequential(&finetune)?;
    let memory = measure::daemon_memory(daemon)?;
    drop(_squash);
    drop(_mounted);
    drop(_pinned_mounted);

    let (mount_to_ls, models) = mount_to_first_ls(&tools, work, args.models)?;

    println!();
    println!(
        "| measurement | modelfs | native | modelfs / native | pinned | pinned / native | squashfuse | target |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    let squash = |name: &str| {
        results
            .get("squashfuse", name)
            .map(|v| format!("{v:.0}"))
            .unwrap_or_default()
    };
    for (name, unit, higher_is_better, target) in measure::ROWS {
        let name: &str = name;
        let (m, n, p) = (
            results.get("modelfs", name).unwrap_or(f64::NAN),
            results.get("native", name).unwrap_or(f64::NAN),
            results.get("pinned", name).unwrap_or(f64::NAN),
        );
        let better = if *higher_is_better {
            "higher is better"
        } else {
            "lower is better"
        };
        println!(
            "| {name} ({unit}, {better}) | {m:.1} | {n:.1} | {:.2}× | {p:.1} | {:.2}× | {} | {target} |",
            m / n,
            p / n,
            squash(name)
        );
    }
    println!(
        "| fine-tune read right after its base (MB/s) | {finetune_after_base:.0} | {finetune_native_cold:.0} (cold) | {:.2}× | | | | ≥ 2× |",
        finetune_after_base / finetune_native_cold
    );
    println!(
        "| add (MB/s; native: cp + sync) | {add_rate:.0} | {copy_rate:.0} | {:.2}× | | | | ≥ 600 MB/s |",
        add_rate / copy_rate
    );
    println!(
        "| pin (MB/s; native: cp + sync) | | {copy_rate:.0} | | {pin_rate:.0} | {:.2}× | | ≥ 0.8× |",
        pin_rate / copy_rate
    );
    println!(
        "| stored / logical, fp16 base alone | {:.3} | | | | | | ≤ 0.87 |",
        stats["stored_bytes"].as_f64().unwrap_or(0.0)
            / stats["logical_bytes"].as_f64().unwrap_or(1.0)
    );
    println!("| mount to first ls, {models} models (ms) | {mount_to_ls:.0} | | | | | | < 100 ms |");
    println!(
        "| daemon memory, peak RSS (MiB; chunk cache 64 MiB) | {memory:.0} | | | | | | < 64 MiB + cache |"
    );
    Ok(())
}

fn daemon_pid(mountpoint: &Path) -> anyhow::Result<u32> {
    let pattern = format!("mount --daemon {}", mountpoint.display());
    let out = run(Command::new("pgrep").arg("-f").arg(&pattern))?;
    out.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .context("mount daemon not found")
}

/// Median time from starting `modelfs mount --daemon` to a successful listing of the mount, for a
/// store with `count` small models.
fn mount_to_first_ls(tools: &Tools, work: &Path, count: usize) -> anyhow::Result<(f64, usize)> {
    let store = work.join("many");
    tools.modelfs(&store, &["init"])?;
    let input = work.join("tiny");
    std::fs::create_dir(&input)?;
    for i in 0..count {
        let file = input.join(format!("m{i}.gguf"));
        std::fs::write(&file, format!("model {i}").repeat(100))?;
        tools.modelfs(
            &store,
            &["add", &format!("model-{i}"), file.to_str().unwrap()],
        )?;
    }
    let mnt = work.join("many-mnt");
    std::fs::create_dir(&mnt)?;
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let mounted = tools.mount(&store, &mnt, Path::new("/dev/null"))?;
        let entries = std::fs::read_dir(&mnt)?.count();
        times.push(started.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(entries > count, "listing shows {entries} entries");
        drop(mounted);
        std::thread::sleep(Duration::from_millis(200));
    }
    times.sort_by(f64::total_cmp);
    Ok((times[1], count))
}
