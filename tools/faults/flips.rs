//! Scenario 1: one random byte flipped in one random store file, then every model file read back
//! (with `modelfs cat`, or through a real FUSE mount every Nth trial) and compared with the
//! original, `modelfs verify` run, and the byte restored.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::harness::{
    Budget, Findings, FuseMount, ModelFile, ReadResult, Reader, Rng, Run, Tools, WorkDir,
    judge_cat, thousands,
};
use crate::models::{Catalog, Inputs};
use crate::report::Report;

pub struct Config {
    pub trials: usize,
    pub fuse_every: usize,
    pub budget: Budget,
}

/// What a flip can hit, and how often it is chosen (percent).
const TARGETS: [(&str, u64); 5] = [
    ("pack", 70),
    ("manifest", 12),
    ("registry.json", 6),
    ("modelfs.json", 4),
    ("index", 8),
];

#[derive(Default, Clone)]
struct Row {
    trials: u64,
    fuse_trials: u64,
    reads: u64,
    correct: u64,
    failed: u64,
    wrong_reads: u64,
    wrong_bytes: u64,
    /// Trials where at least one read failed or was wrong.
    harmful: u64,
    detected: u64,
    /// Harmful flips `verify` reported as "all good".
    missed: u64,
    /// Harmful index flips whose failed reads succeed when run one at a time.
    concurrent_only: u64,
    /// … of them, the ones verify reported as "all good".
    missed_concurrent: u64,
    panics: u64,
    crashes: u64,
    hangs: u64,
}

impl Row {
    fn add(&mut self, other: &Row) {
        self.trials += other.trials;
        self.fuse_trials += other.fuse_trials;
        self.reads += other.reads;
        self.correct += other.correct;
        self.failed += other.failed;
        self.wrong_reads += other.wrong_reads;
        self.wrong_bytes += other.wrong_bytes;
        self.harmful += other.harmful;
        self.detected += other.detected;
        self.missed += other.missed;
        self.concurrent_only += other.concurrent_only;
        self.missed_concurrent += other.missed_concurrent;
        self.panics += other.panics;
        self.crashes += other.crashes;
        self.hangs += other.hangs;
    }
}

/// Files a flip may hit, by target kind.
fn candidates(store: &Path, kind: &str) -> Vec<PathBuf> {
    let list = |dir: &Path| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    };
    let non_empty = |p: &PathBuf| std::fs::metadata(p).is_ok_and(|m| m.len() > 0);
    match kind {
        "pack" => list(&store.join("packs")),
        "manifest" => list(&store.join("manifests")),
        "registry.json" | "modelfs.json" => vec![store.join(kind)],
        // RocksDB's own data (not its informational LOG files, nor the empty LOCK).
        _ => list(&store.join("index"))
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                !name.starts_with("LOG") && name != "LOCK"
            })
            .collect(),
    }
    .into_iter()
    .filter(non_empty)
    .collect()
}

pub fn run(
    tools: &Tools,
    work: &Path,
    rng: &mut Rng,
    config: Config,
    findings: &mut Findings,
) -> anyhow::Result<Report> {
    const SCENARIO: &str = "byte flips";
    let dir = WorkDir::create(&work.join("flips"), false)?;
    let inputs = Inputs::generate(tools, &dir.path.join("in"), rng)?;
    let store = dir.path.join("store");
    tools.ok(
        &store,
        &["init", "--avg-chunk-kib", "16", "--pack-size-mib", "2"],
    )?;
    let mut catalog = Catalog::default();
    catalog.add(tools, &store, "base", &inputs.base)?;
    catalog.add(tools, &store, "base", &inputs.finetune)?;
    catalog.add(tools, &store, "folder", &inputs.folder)?;
    catalog.add(tools, &store, "random", &inputs.random)?;
    catalog.add(tools, &store, "random", &inputs.random_edited)?;
    let files = catalog.files(tools, &store)?;
    let mountpoint = dir.path.join("mnt");
    let log = dir.path.join("mount.log");

    // The pristine store reads back right both ways, and verifies.
    for file in &files {
        let run = tools.run(&store, &["cat", &file.spec]);
        anyhow::ensure!(
            judge_cat(&run, &file.bytes).correct(),
            "pristine store: cat {} is wrong: {}",
            file.spec,
            run.message()
        );
    }
    let reads = read_mounted(tools, &store, &mountpoint, &log, &files)
        .map_err(|run| anyhow::anyhow!("pristine store does not mount: {}", run.message()))?;
    anyhow::ensure!(
        reads.results.iter().all(|r| r.correct()),
        "pristine store reads wrong through the mount"
    );
    anyhow::ensure!(tools.verify(&store).0, "pristine store does not verify");
    let logical: u64 = files.iter().map(|f| f.bytes.len() as u64).sum();
    eprintln!(
        "byte flips: store of {} files ({} bytes logical), {} trials",
        files.len(),
        thousands(logical),
        config.trials
    );

    let mut rows: BTreeMap<&str, Row> = BTreeMap::new();
    let mut by_path: BTreeMap<&str, (u64, u64, u64, u64)> = BTreeMap::new();
    let mut fuse_errnos: BTreeMap<String, u64> = BTreeMap::new();
    let mut done = 0;
    for trial in 0..config.trials {
        let progress = format!("{trial} of {} trials done", config.trials);
        if config.budget.stops(findings, SCENARIO, progress) {
            break;
        }
        let mut rng = rng.fork();
        let total: u64 = TARGETS.iter().map(|t| t.1).sum();
        let mut pick = rng.below(total);
        let mut kind = TARGETS[0].0;
        for (k, weight) in TARGETS {
            if pick < weight {
                kind = k;
                break;
            }
            pick -= weight;
        }
        let mut targets = candidates(&store, kind);
        if targets.is_empty() {
            kind = "pack";
            targets = candidates(&store, kind);
        }
        let target = targets[rng.below(targets.len() as u64) as usize].clone();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&target)
            .with_context(|| format!("cannot open {}", target.display()))?;
        let len = file.metadata()?.len();
        let offset = rng.below(len);
        let mask = 1 + rng.below(255) as u8;
        let mut old = [0u8];
        file.read_exact_at(&mut old, offset)?;
        file.write_all_at(&[old[0] ^ mask], offset)?;
        tools.clear_cache();
        let what = format!(
            "trial {trial}: byte {offset} of {} ({kind}, {len} bytes) xor {mask:#04x}",
            target.strip_prefix(&store).unwrap_or(&target).display()
        );

        let via_fuse = config.fuse_every > 0 && (trial + 1) % config.fuse_every == 0;
        let mut row = Row {
            trials: 1,
            fuse_trials: u64::from(via_fuse),
            ..Row::default()
        };
        let mut runs: Vec<Run> = Vec::new();
        let results: Vec<ReadResult> = if via_fuse {
            match read_mounted(tools, &store, &mountpoint, &log, &files) {
                Ok(reads) => {
                    row.hangs += reads.hangs;
                    if reads.panicked {
                        row.panics += 1;
                        findings.add(SCENARIO, "mount daemon panicked", what.clone());
                    }
                    if let Some(last) = &reads.died {
                        row.crashes += 1;
                        findings.add(
                            SCENARIO,
                            "mount daemon died under the reads",
                            format!("{what}: {last}"),
                        );
                    }
                    if reads.hangs > 0 {
                        findings.add(SCENARIO, "read through the mount hung", what.clone());
                    }
                    for r in &reads.results {
                        if let Some((errno, _)) = r.error {
                            let name = format!("{:?}", nix::errno::Errno::from_raw(errno));
                            *fuse_errnos.entry(name).or_default() += 1;
                        }
                    }
                    reads.results
                }
                Err(run) => {
                    // A store the mount refuses: every file failed to read, with this error.
                    *fuse_errnos.entry("mount refused".to_owned()).or_default() +=
                        files.len() as u64;
                    let failed = files
                        .iter()
                        .map(|_| ReadResult {
                            bytes: 0,
                            wrong: 0,
                            error: Some((-1, std::time::Instant::now())),
                            short: false,
                        })
                        .collect();
                    runs.push(run);
                    failed
                }
            }
        } else {
            let procs: Vec<_> = files
                .iter()
                .map(|f| tools.start(&store, &["cat", &f.spec]))
                .collect::<anyhow::Result<_>>()?;
            let mut results = Vec::new();
            for (proc, f) in procs.into_iter().zip(&files) {
                let run = proc.wait(tools.timeout);
                results.push(judge_cat(&run, &f.bytes));
                runs.push(run);
            }
            results
        };
        for (result, f) in results.iter().zip(&files) {
            row.reads += 1;
            if result.served_wrong() {
                row.wrong_reads += 1;
                row.wrong_bytes += result.wrong;
                findings.add(
                    SCENARIO,
                    "wrong bytes served",
                    format!(
                        "{what}: {} via {} returned {} wrong bytes{}",
                        f.spec,
                        if via_fuse { "the mount" } else { "cat" },
                        result.wrong,
                        if result.short { " (short read)" } else { "" }
                    ),
                );
            } else if result.error.is_some() {
                row.failed += 1;
            } else {
                row.correct += 1;
            }
        }
        row.harmful = u64::from(row.correct < row.reads);
        // The first failed read's error, for the findings.
        let first_error = results
            .iter()
            .zip(&files)
            .position(|(r, _)| !r.correct())
            .map(|i| match runs.get(i) {
                Some(run) if !via_fuse => format!("{}: {}", files[i].spec, run.message()),
                _ => format!("{}: {:?}", files[i].spec, results[i].error.map(|e| e.0)),
            })
            .unwrap_or_default();

        // verify on its own, not helped or hindered by what the reads left in the cache.
        tools.clear_cache();
        let (all_good, verify) = tools.verify(&store);
        row.detected = u64::from(!all_good);
        runs.push(verify);
        // A damaged store index sends every reader to build a private copy; the reads of a trial
        // run at once. Do the failed ones succeed one at a time?
        if row.harmful == 1 && kind == "index" && !via_fuse {
            tools.clear_cache();
            let mut alone_ok = true;
            for (result, f) in results.iter().zip(&files) {
                if !result.correct() {
                    let run = tools.run(&store, &["cat", &f.spec]);
                    alone_ok &= judge_cat(&run, &f.bytes).correct();
                    runs.push(run);
                }
            }
            row.concurrent_only = u64::from(alone_ok);
        }
        if row.harmful == 1 && all_good {
            row.missed = 1;
            row.missed_concurrent = row.concurrent_only;
            let kind = if row.concurrent_only == 1 {
                "reads failed only when run concurrently (damaged store index: readers race to build the private copy); verify said all good"
            } else {
                "verify said all good about a flip that broke reads"
            };
            findings.add(
                SCENARIO,
                kind,
                format!("{what}; first failed read: {first_error}"),
            );
        }
        for run in &runs {
            if run.panicked() {
                row.panics += 1;
                findings.add(SCENARIO, "panic", format!("{what}: {}", run.message()));
            } else if run.crashed() {
                row.crashes += 1;
                findings.add(
                    SCENARIO,
                    "crash",
                    format!("{what}: {}: {}", run.describe(), run.message()),
                );
            }
            if run.hung() {
                row.hangs += 1;
                findings.add(SCENARIO, "command hung", what.clone());
            }
        }

        file.write_all_at(&old, offset)?;
        file.sync_data()?;
        let mut check = [0u8];
        file.read_exact_at(&mut check, offset)?;
        anyhow::ensure!(check == old, "cannot restore {}", target.display());
        tools.clear_cache();

        let entry = by_path
            .entry(if via_fuse { "FUSE mount" } else { "cat" })
            .or_default();
        entry.0 += row.reads;
        entry.1 += row.correct;
        entry.2 += row.failed;
        entry.3 += row.wrong_reads;
        rows.entry(kind).or_default().add(&row);
        done += 1;
        if done % 100 == 0 {
            eprintln!("byte flips: {done} trials");
            anyhow::ensure!(
                tools.verify(&store).0,
                "the store did not return to its pristine state after trial {trial}"
            );
        }
    }
    anyhow::ensure!(
        tools.verify(&store).0,
        "the store did not return to its pristine state"
    );

    let mut total = Row::default();
    for row in rows.values() {
        total.add(row);
    }
    let mut report = Report::new(SCENARIO);
    report.summary(
        &format!(
            "{} flips ({} read via FUSE)",
            total.trials, total.fuse_trials
        ),
        "wrong bytes served (reads / bytes)",
        format!("{} / {}", total.wrong_reads, total.wrong_bytes),
        "0",
    );
    report.summary(
        "",
        "reads correct / failed with an error",
        format!(
            "{} / {} of {}",
            thousands(total.correct),
            thousands(total.failed),
            thousands(total.reads)
        ),
        "",
    );
    report.summary(
        "",
        "flips that broke a read: detected by verify",
        format!("{} of {}", total.harmful - total.missed, total.harmful),
        "all",
    );
    report.summary(
        "",
        "… of the missed: index flips whose reads fail only when readers run at once",
        format!(
            "{} of {}",
            total.concurrent_only.min(total.missed),
            total.missed
        ),
        "",
    );
    report.summary(
        "",
        "all flips detected by verify",
        format!(
            "{} of {} ({:.0}%)",
            total.detected,
            total.trials,
            100.0 * total.detected as f64 / total.trials.max(1) as f64
        ),
        "",
    );
    report.summary(
        "",
        "panics / crashed processes (e.g. SIGABRT) / hangs",
        format!("{} / {} / {}", total.panics, total.crashes, total.hangs),
        "0 / 0 / 0",
    );

    let mut table = String::new();
    table.push_str(
        "| file hit | flips | reads | correct | failed (error) | wrong | flips breaking a read | … only when readers run at once | verify detected | broke a read, verify missed | panics | crashed processes | hangs |\n",
    );
    table.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let mut line = |name: &str, r: &Row| {
        table.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.trials,
            thousands(r.reads),
            thousands(r.correct),
            thousands(r.failed),
            r.wrong_reads,
            r.harmful,
            r.concurrent_only,
            r.detected,
            r.missed,
            r.panics,
            r.crashes,
            r.hangs
        ))
    };
    for (kind, _) in TARGETS {
        if let Some(row) = rows.get(kind) {
            line(kind, row);
        }
    }
    line("**all**", &total);
    table.push('\n');
    table.push_str(
        "| read path | reads | correct | failed (error) | wrong |\n|---|---:|---:|---:|---:|\n",
    );
    for (path, (reads, correct, failed, wrong)) in &by_path {
        table.push_str(&format!(
            "| {path} | {} | {} | {} | {wrong} |\n",
            thousands(*reads),
            thousands(*correct),
            thousands(*failed)
        ));
    }
    if !fuse_errnos.is_empty() {
        let list: Vec<String> = fuse_errnos
            .iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        table.push_str(&format!(
            "\nErrors returned by the FUSE reads: {}.\n",
            list.join(", ")
        ));
    }
    report.detail(table);
    Ok(report)
}

struct MountedReads {
    results: Vec<ReadResult>,
    hangs: u64,
    panicked: bool,
    /// The daemon died under the reads (an abort: reads then get ENOTCONN); its last log line.
    died: Option<String>,
}

/// Mounts the store, reads every file through the mount, unmounts.
fn read_mounted(
    tools: &Tools,
    store: &Path,
    mountpoint: &Path,
    log: &Path,
    files: &[ModelFile],
) -> Result<MountedReads, Run> {
    let _ = std::fs::remove_file(log);
    let mount = FuseMount::daemon(tools, store, mountpoint, log, &[])?;
    let mut reads = MountedReads {
        results: Vec::new(),
        hangs: 0,
        panicked: false,
        died: None,
    };
    for file in files {
        let reader = Reader::spawn(mountpoint.join(&file.mount_path), file.bytes.clone());
        match reader.wait(tools.timeout) {
            Some(result) => reads.results.push(result),
            None => {
                // Abort the connection so the reader returns, and count the read as hung.
                reads.hangs += 1;
                crate::harness::force_unmount(mountpoint);
                let result = reader.wait(Duration::from_secs(10)).unwrap_or(ReadResult {
                    bytes: 0,
                    wrong: 0,
                    error: Some((-1, std::time::Instant::now())),
                    short: false,
                });
                reads.results.push(result);
            }
        }
    }
    let log_text = mount.log_text();
    reads.panicked = log_text.contains("panicked");
    let disconnected = reads
        .results
        .iter()
        .any(|r| r.error.is_some_and(|(errno, _)| errno == libc::ENOTCONN));
    if disconnected || log_text.contains("Assertion") {
        let last = log_text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("reads got ENOTCONN");
        reads.died = Some(crate::harness::shorten(
            &crate::harness::strip_ansi(last),
            300,
        ));
    }
    mount.unmount(Duration::from_secs(10));
    Ok(reads)
}
