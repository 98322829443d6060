//! Scenario 4: the stick pulled out mid-read. A store on an exFAT image (exfat-fuse on a loop
//! device, mounted read-only) holds a large model; it is read through `modelfs mount --source`,
//! `mount --source --fill`, a mount of the stick's store in place, or `modelfs cat`, and the
//! exfat-fuse process is killed once a random part of the model has been read. The reader must get
//! an error promptly, and no wrong byte before it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::harness::{
    Budget, Findings, FuseMount, Proc, Reader, Rng, Tools, WorkDir, drop_caches, force_unmount,
    human, is_mounted, judge_cat, system,
};
use crate::report::Report;

pub struct Config {
    pub trials: usize,
    pub budget: Budget,
}

const SCENARIO: &str = "pulled stick";
/// A reader with no answer this long after the pull counts as hung.
const HANG: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Source,
    Fill,
    InPlace,
    Cat,
}

const MODES: [Mode; 4] = [Mode::Source, Mode::Fill, Mode::InPlace, Mode::Cat];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Source => "mount --source STICK (no local store)",
            Mode::Fill => "mount --source STICK --fill",
            Mode::InPlace => "mount of the stick's store in place",
            Mode::Cat => "modelfs --store STICK cat",
        }
    }
}

/// A loop device, detached on drop.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = system("losetup", &["-d", &self.0]);
    }
}

/// The exfat-fuse mount of the stick, found by its mount point.
struct Stick {
    device: String,
    mountpoint: PathBuf,
}

impl Stick {
    fn mount(&self, readonly: bool) -> anyhow::Result<i32> {
        let target = self.mountpoint.to_string_lossy().into_owned();
        let mut args = Vec::new();
        if readonly {
            args.extend(["-o", "ro"]);
        }
        args.extend([self.device.as_str(), target.as_str()]);
        system("mount.exfat-fuse", &args)?;
        self.pid().context("exfat-fuse process not found")
    }

    /// The exfat-fuse process serving the stick.
    fn pid(&self) -> Option<i32> {
        crate::harness::pids_with_arg(&self.mountpoint.to_string_lossy())
            .into_iter()
            .find(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.contains("exfat"))
            })
    }

    /// Unmounts (cleanly if possible) and waits for the process to be gone.
    fn unmount(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while nix::mount::umount(&self.mountpoint).is_err()
            && is_mounted(&self.mountpoint)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        force_unmount(&self.mountpoint);
        while self.pid().is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Stick {
    /// Declared after the loop device, so on every path it is unmounted before the device goes.
    fn drop(&mut self) {
        force_unmount(&self.mountpoint);
    }
}

#[derive(Default)]
struct Row {
    trials: u64,
    errors: u64,
    finished_before_pull: u64,
    completed_after_pull: u64,
    hangs: u64,
    wrong: u64,
    times_ms: Vec<f64>,
    errnos: BTreeMap<String, u64>,
    bytes_after_pull: u64,
    unmount_failed: u64,
    panics: u64,
    fill_verify_bad: u64,
    /// What `cat` said when the stick went.
    cat_messages: std::collections::BTreeSet<String>,
}

pub fn run(
    tools: &Tools,
    work: &Path,
    rng: &mut Rng,
    config: Config,
    findings: &mut Findings,
) -> anyhow::Result<Report> {
    for program in ["mount.exfat-fuse", "mkfs.exfat", "losetup"] {
        anyhow::ensure!(
            system("sh", &["-c", &format!("command -v {program}")]).is_ok(),
            "{program} not found (apt-get install exfat-fuse exfatprogs)"
        );
    }
    let dir = WorkDir::create(&work.join("stick"), false)?;
    let image = dir.path.join("stick.img");
    std::fs::File::create(&image)?.set_len(320 << 20)?;
    let device = Loop(
        system("losetup", &["-f", "--show", &image.to_string_lossy()])?
            .trim()
            .to_owned(),
    );
    system("mkfs.exfat", &[&device.0])?;
    let stick = Stick {
        device: device.0.clone(),
        mountpoint: dir.path.join("stick"),
    };
    std::fs::create_dir_all(&stick.mountpoint)?;

    // The store on the stick: one large model.
    let big = dir.path.join("big.gguf");
    tools.corpus("base", &big, 0.1)?;
    let bytes = Arc::new(std::fs::read(&big)?);
    let on_stick = stick.mountpoint.join("models");
    stick.mount(false)?;
    let setup = (|| -> anyhow::Result<()> {
        tools.ok(&on_stick, &["init"])?;
        tools.ok(&on_stick, &["add", "big", &big.to_string_lossy()])?;
        anyhow::ensure!(
            tools.verify(&on_stick).0,
            "the stick's store does not verify"
        );
        Ok(())
    })();
    stick.unmount();
    setup?;
    eprintln!(
        "pulled stick: {} model on exFAT ({}), {} trials",
        human(bytes.len() as u64),
        device.0,
        config.trials
    );

    let mut rows: BTreeMap<Mode, Row> = BTreeMap::new();
    for i in 0..config.trials {
        let progress = format!("{i} of {} trials done", config.trials);
        if config.budget.stops(findings, SCENARIO, progress) {
            break;
        }
        let mode = MODES[i % MODES.len()];
        let mut rng = rng.fork();
        let fraction = 0.1 + 0.6 * rng.fraction();
        let target = (bytes.len() as f64 * fraction) as u64;
        let what = format!(
            "trial {i}: {}, stick pulled after {} of {}",
            mode.name(),
            human(target),
            human(bytes.len() as u64)
        );
        let row = rows.entry(mode).or_default();
        row.trials += 1;
        let pid = stick.mount(true)?;
        let result = trial(tools, &dir.path, &on_stick, &bytes, mode, pid, target, row);
        stick.unmount();
        match result {
            Ok(problems) => {
                for (kind, detail) in problems {
                    findings.add(SCENARIO, kind, format!("{what}: {detail}"));
                }
            }
            Err(e) => findings.add(SCENARIO, "trial could not run", format!("{what}: {e:#}")),
        }
    }

    let mut report = Report::new(SCENARIO);
    let mut all_times: Vec<f64> = rows.values().flat_map(|r| r.times_ms.clone()).collect();
    all_times.sort_by(f64::total_cmp);
    let trials: u64 = rows.values().map(|r| r.trials).sum();
    let errors: u64 = rows.values().map(|r| r.errors).sum();
    let sum = |f: fn(&Row) -> u64| rows.values().map(f).sum::<u64>();
    report.summary(
        &format!("{trials} pulls over {} ways of reading", rows.len()),
        "reads ended by an error after the pull",
        format!("{errors} of {trials}"),
        "all",
    );
    report.summary(
        "",
        "time from the pull to the error, median / max (ms)",
        format!(
            "{} / {}",
            ms(median(&all_times)),
            ms(all_times.last().copied())
        ),
        "bounded",
    );
    report.summary(
        "",
        "hung reads (no answer 30 s after the pull)",
        sum(|r| r.hangs).to_string(),
        "0",
    );
    report.summary(
        "",
        "wrong bytes returned before the error",
        sum(|r| r.wrong).to_string(),
        "0",
    );
    report.summary(
        "",
        "modelfs mounts that did not unmount cleanly / panics",
        format!("{} / {}", sum(|r| r.unmount_failed), sum(|r| r.panics)),
        "0 / 0",
    );
    let mut table = String::from(
        "| read through | pulls | ended by an error | errors seen | time to error, median (ms) | max (ms) | bytes served after the pull (all verified) | hung | wrong bytes | unclean unmount | panics |\n|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (mode, r) in &rows {
        let mut times = r.times_ms.clone();
        times.sort_by(f64::total_cmp);
        let errnos: Vec<String> = r.errnos.iter().map(|(e, n)| format!("{e} ×{n}")).collect();
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            mode.name(),
            r.trials,
            r.errors,
            errnos.join(", "),
            ms(median(&times)),
            ms(times.last().copied()),
            human(r.bytes_after_pull),
            r.hangs,
            r.wrong,
            r.unmount_failed,
            r.panics
        ));
    }
    let before = sum(|r| r.finished_before_pull);
    let after = sum(|r| r.completed_after_pull);
    let fill_bad = sum(|r| r.fill_verify_bad);
    table.push_str(&format!(
        "\nReads that finished before the pull: {before}; reads that completed despite the pull: {after}; local stores of `--fill` that did not verify afterwards: {fill_bad}.\n"
    ));
    for message in rows.values().flat_map(|r| r.cat_messages.iter()) {
        table.push_str(&format!("\n`cat` said: `{message}`\n"));
    }
    report.detail(table);
    Ok(report)
}

fn median(sorted: &[f64]) -> Option<f64> {
    sorted.get(sorted.len() / 2).copied()
}

fn ms(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), |v| format!("{v:.0}"))
}

/// One pull; returns the problems found (kind, detail).
#[allow(clippy::too_many_arguments)]
fn trial(
    tools: &Tools,
    dir: &Path,
    on_stick: &Path,
    bytes: &Arc<Vec<u8>>,
    mode: Mode,
    exfat_pid: i32,
    target: u64,
    row: &mut Row,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    let mountpoint = dir.join("mnt");
    let log = dir.join("mount.log");
    let _ = std::fs::remove_file(&log);
    let local = dir.join("local");
    let _ = std::fs::remove_dir_all(&local);
    tools.clear_cache();
    let source = on_stick.to_string_lossy().into_owned();
    let mount = match mode {
        Mode::Source => Some(FuseMount::daemon(
            tools,
            &local,
            &mountpoint,
            &log,
            &["--source", &source],
        )),
        Mode::Fill => {
            tools.ok(&local, &["init"])?;
            Some(FuseMount::daemon(
                tools,
                &local,
                &mountpoint,
                &log,
                &["--source", &source, "--fill"],
            ))
        }
        Mode::InPlace => Some(FuseMount::daemon(tools, on_stick, &mountpoint, &log, &[])),
        Mode::Cat => None,
    };
    let mount = match mount {
        Some(Ok(mount)) => Some(mount),
        Some(Err(run)) => anyhow::bail!("mount failed: {}", run.message()),
        None => None,
    };
    drop_caches();

    enum Reading {
        Mount(Reader),
        Cat(Proc),
    }
    let reading = match &mount {
        Some(m) => Reading::Mount(Reader::spawn(m.path.join("big.gguf"), bytes.clone())),
        None => Reading::Cat(tools.start(on_stick, &["cat", "big"])?),
    };
    let progress = match &reading {
        Reading::Mount(r) => r.progress.clone(),
        Reading::Cat(p) => p.progress.clone(),
    };
    // Wait until `target` bytes have arrived, then pull the stick.
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::Relaxed) < target && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(exfat_pid),
        nix::sys::signal::SIGKILL,
    );
    let pulled = Instant::now();
    let at_pull = progress.load(Ordering::Relaxed);

    let (result, message) = match reading {
        Reading::Mount(reader) => match reader.wait(HANG) {
            Some(result) => (Some(result), None),
            None => {
                row.hangs += 1;
                problems.push(("read hung after the pull", "no answer in 30 s".to_owned()));
                if let Some(m) = &mount {
                    force_unmount(&m.path);
                }
                (reader.wait(Duration::from_secs(10)), None)
            }
        },
        Reading::Cat(proc) => {
            let run = proc.wait(HANG);
            let ended = Instant::now();
            if run.hung() {
                row.hangs += 1;
                problems.push((
                    "read hung after the pull",
                    "cat still running after 30 s".to_owned(),
                ));
                (None, None)
            } else {
                let mut result = judge_cat(&run, bytes);
                if result.error.is_some() {
                    result.error = Some((-1, ended));
                }
                if run.panicked() {
                    row.panics += 1;
                    problems.push(("panic", run.message()));
                }
                if !run.success() && !run.clean_failure() {
                    problems.push((
                        "cat's error is not one clean line",
                        format!(
                            "{}: {}",
                            run.describe(),
                            run.stderr.trim().replace('\n', " ⏎ ")
                        ),
                    ));
                }
                if !run.success() {
                    // One line per kind of message: the byte offset and pack name vary.
                    let message = run
                        .message()
                        .replace(&*on_stick.to_string_lossy(), "STICK/models");
                    let message: String = message
                        .split(' ')
                        .map(|w| {
                            if w.trim_end_matches(':').chars().all(|c| c.is_ascii_digit())
                                && w.len() > 3
                            {
                                if w.ends_with(':') { "N:" } else { "N" }.to_owned()
                            } else if w.contains("/packs/") {
                                "STICK/models/packs/ID.pack:".to_owned()
                            } else {
                                w.to_owned()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    row.cat_messages.insert(message);
                }
                (Some(result), Some(run.message()))
            }
        }
    };
    if let Some(result) = &result {
        if result.served_wrong() {
            row.wrong += result.wrong.max(1);
            problems.push((
                "wrong bytes returned",
                format!(
                    "{} wrong of {} read (short: {})",
                    result.wrong, result.bytes, result.short
                ),
            ));
        }
        if at_pull >= bytes.len() as u64 && result.error.is_none() {
            row.finished_before_pull += 1;
        } else if let Some((errno, when)) = result.error {
            row.errors += 1;
            row.times_ms
                .push(when.saturating_duration_since(pulled).as_secs_f64() * 1e3);
            let name = match (errno, &message) {
                (-1, Some(m)) if m.contains("Input/output error") => "cat: I/O error".to_owned(),
                (-1, Some(_)) => "cat: error".to_owned(),
                (-1, None) => "open failed".to_owned(),
                (e, _) => format!("{:?}", nix::errno::Errno::from_raw(e)),
            };
            *row.errnos.entry(name).or_default() += 1;
            row.bytes_after_pull += result.bytes.saturating_sub(at_pull);
            if errno != libc::EIO && errno != -1 {
                problems.push((
                    "read error is not EIO",
                    format!("{:?}", nix::errno::Errno::from_raw(errno)),
                ));
            }
        } else if !result.served_wrong() {
            row.completed_after_pull += 1;
            row.bytes_after_pull += result.bytes.saturating_sub(at_pull);
        }
    }

    if let Some(mount) = mount {
        if mount.log_text().contains("panicked") {
            row.panics += 1;
            problems.push((
                "mount daemon panicked",
                mount
                    .log_text()
                    .lines()
                    .filter(|l| l.contains("panicked"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ));
        }
        if !mount.unmount(Duration::from_secs(15)) {
            row.unmount_failed += 1;
            problems.push(("modelfs umount failed after the pull", String::new()));
        }
    }
    if mode == Mode::Fill {
        let (all_good, verify) = tools.verify(&local);
        if !all_good {
            row.fill_verify_bad += 1;
            problems.push((
                "the --fill local store does not verify after the pull",
                verify.stdout_text().trim().replace('\n', "; "),
            ));
        }
    }
    Ok(problems)
}
