//! Read measurements on one file: sequential, random pread, mmap touches, page-cache growth.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A file read through one of the compared paths.
pub struct Target {
    pub name: &'static str,
    pub path: PathBuf,
}

impl Target {
    pub fn new(name: &'static str, path: PathBuf) -> Target {
        Target { name, path }
    }
}

/// Rows of the result table: name, unit, whether higher is better, target.
pub const ROWS: &[(&str, &str, bool, &str)] = &[
    ("sequential read, cold", "MB/s", true, "≥ 0.9× native"),
    ("sequential read, warm", "MB/s", true, "≥ 0.95× native"),
    ("4 KiB random pread, cold, p50", "µs", false, "≤ 3× native"),
    ("4 KiB random pread, cold, p99", "µs", false, ""),
    ("4 KiB random pread, cold", "ops/s", true, ""),
    (
        "4 KiB random pread, warm, p50",
        "µs",
        false,
        "≤ 1.5× native",
    ),
    ("4 KiB random pread, warm, p99", "µs", false, ""),
    ("1 MiB random pread, cold, p50", "µs", false, ""),
    ("1 MiB random pread, cold, p99", "µs", false, ""),
    ("1 MiB random pread, cold", "ops/s", true, ""),
    ("mmap, every page in order, cold", "MB/s", true, ""),
    (
        "mmap, every page in order, warm",
        "MB/s",
        true,
        "≥ 0.9× native",
    ),
    ("mmap, random pages, cold, per fault", "µs", false, ""),
    (
        "page cache growth after a cold read",
        "× file size",
        false,
        "≤ 1.15 GiB per GiB",
    ),
];

/// Results by target and row name.
#[derive(Default)]
pub struct Results(HashMap<(&'static str, &'static str), Vec<f64>>);

impl Results {
    fn add(&mut self, target: &'static str, row: &'static str, value: f64) {
        self.0.entry((target, row)).or_default().push(value);
    }

    /// The median of a row's repetitions.
    pub fn get(&self, target: &str, row: &str) -> Option<f64> {
        let values = self
            .0
            .iter()
            .find(|((t, r), _)| *t == target && *r == row)
            .map(|(_, v)| v)?;
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied()
    }
}

pub fn drop_caches() {
    nix::unistd::sync();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

fn cached_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("Cached:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// MB/s of reading `path` once in 1 MiB blocks.
pub fn sequential(path: &Path) -> anyhow::Result<f64> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut buf = vec![0u8; 1 << 20];
    let started = Instant::now();
    let mut offset = 0;
    while offset < len {
        let n = file.read_at(&mut buf, offset)?;
        anyhow::ensure!(n > 0, "short read of {}", path.display());
        offset += n as u64;
    }
    Ok(len as f64 / started.elapsed().as_secs_f64() / 1e6)
}

/// Deterministic pseudo-random offsets, aligned to `align`, below `len - size`.
fn offsets(count: usize, len: u64, size: u64, align: u64, seed: u64) -> Vec<u64> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 16) % ((len - size) / align) * align
        })
        .collect()
}

/// (p50 µs, p99 µs, ops/s) of `count` random preads of `size` bytes.
fn random_preads(
    path: &Path,
    size: usize,
    count: usize,
    seed: u64,
) -> anyhow::Result<(f64, f64, f64)> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut buf = vec![0u8; size];
    let mut times = Vec::with_capacity(count);
    let started = Instant::now();
    for offset in offsets(count, len, size as u64, 4096, seed) {
        let t = Instant::now();
        file.read_exact_at(&mut buf, offset)?;
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let ops = count as f64 / started.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    Ok((times[count / 2], times[count * 99 / 100], ops))
}

/// MB/s of touching one byte of every page of a read-only mapping, in order.
fn mmap_in_order(path: &Path) -> anyhow::Result<f64> {
    let file = File::open(path)?;
    // SAFETY: a read-only mapping of a file nobody writes during the measurement.
    let map = unsafe { memmap2::Mmap::map(&file) }?;
    let started = Instant::now();
    let mut sum = 0u64;
    for page in (0..map.len()).step_by(4096) {
        sum = sum.wrapping_add(u64::from(map[page]));
    }
    std::hint::black_box(sum);
    Ok(map.len() as f64 / started.elapsed().as_secs_f64() / 1e6)
}

/// Median µs per fault of touching `count` random pages of a cold mapping.
fn mmap_random(path: &Path, count: usize) -> anyhow::Result<f64> {
    let file = File::open(path)?;
    // SAFETY: as above.
    let map = unsafe { memmap2::Mmap::map(&file) }?;
    let mut times = Vec::with_capacity(count);
    for offset in offsets(count, map.len() as u64, 4096, 4096, 99) {
        let t = Instant::now();
        std::hint::black_box(map[offset as usize]);
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[count / 2])
}

/// Runs every row for every target, interleaving targets, three repetitions.
pub fn all(targets: &mut [Target]) -> anyhow::Result<Results> {
    let mut results = Results::default();
    for rep in 0..3u64 {
        for target in targets.iter() {
            let name = target.name;
            let path = &target.path;
            let len = std::fs::metadata(path)?.len() as f64;

            drop_caches();
            let before = cached_bytes();
            results.add(name, "sequential read, cold", sequential(path)?);
            results.add(
                name,
                "page cache growth after a cold read",
                (cached_bytes().saturating_sub(before)) as f64 / len,
            );
            results.add(name, "sequential read, warm", sequential(path)?);
            let (p50, p99, _) = random_preads(path, 4096, 20_000, rep)?;
            results.add(name, "4 KiB random pread, warm, p50", p50);
            results.add(name, "4 KiB random pread, warm, p99", p99);
            results.add(
                name,
                "mmap, every page in order, warm",
                mmap_in_order(path)?,
            );

            drop_caches();
            let (p50, p99, ops) = random_preads(path, 4096, 2_000, rep + 10)?;
            results.add(name, "4 KiB random pread, cold, p50", p50);
            results.add(name, "4 KiB random pread, cold, p99", p99);
            results.add(name, "4 KiB random pread, cold", ops);
            drop_caches();
            let (p50, p99, ops) = random_preads(path, 1 << 20, 200, rep + 20)?;
            results.add(name, "1 MiB random pread, cold, p50", p50);
            results.add(name, "1 MiB random pread, cold, p99", p99);
            results.add(name, "1 MiB random pread, cold", ops);
            drop_caches();
            results.add(
                name,
                "mmap, every page in order, cold",
                mmap_in_order(path)?,
            );
            drop_caches();
            results.add(
                name,
                "mmap, random pages, cold, per fault",
                mmap_random(path, 2_000)?,
            );
        }
    }
    Ok(results)
}

/// Peak resident memory of a process in MiB.
pub fn daemon_memory(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    Ok(kb / 1024.0)
}
