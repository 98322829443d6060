//! Scenario 2: `kill -9` at a random point of every command that writes a store, then: every
//! model committed before reads back byte for byte, `verify` reports all good, no half-added
//! model is visible, and a rerun of the interrupted command succeeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use crate::harness::{
    Budget, Findings, FuseMount, ModelFile, ReadResult, Rng, Run, Tools, WorkDir, copy_tree,
    force_unmount, is_mounted, judge_cat, read_file, temp_files,
};
use crate::models::{Catalog, Inputs};
use crate::report::Report;

pub struct Config {
    pub trials: usize,
    pub budget: Budget,
}

const SCENARIO: &str = "kill -9";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Writer {
    Add,
    Rm,
    Gc,
    Import,
    Pack,
    IndexRebuild,
    MountFill,
}

const WRITERS: [Writer; 7] = [
    Writer::Add,
    Writer::Rm,
    Writer::Gc,
    Writer::Import,
    Writer::Pack,
    Writer::IndexRebuild,
    Writer::MountFill,
];

impl Writer {
    fn name(self) -> &'static str {
        match self {
            Writer::Add => "add",
            Writer::Rm => "rm",
            Writer::Gc => "gc",
            Writer::Import => "import",
            Writer::Pack => "pack",
            Writer::IndexRebuild => "index rebuild",
            Writer::MountFill => "mount --fill",
        }
    }
}

/// Models `rm` trials remove (one is drawn per trial).
const RM_TARGETS: [&str; 4] = ["both", "base@v1", "random@v2", "folder"];
/// What `pack` trials pack.
const PACK_MODELS: &str = "base,folder,keep";

#[derive(Default)]
struct Row {
    trials: u64,
    interrupted: u64,
    lost: u64,
    half_visible: u64,
    verify_bad: u64,
    rerun_failed: u64,
    leftovers: u64,
    wrong_served: u64,
    panics: u64,
    hangs: u64,
    delay_max_ms: f64,
    run_ms: f64,
}

struct Setup {
    dir: PathBuf,
    catalog: Catalog,
    /// All models added (B), and B after `rm both` (G, where gc has work).
    template: PathBuf,
    template_gc: PathBuf,
    /// The store imported from and used as the `--fill` source: `imp` and `imp2`.
    source: PathBuf,
    new_model: PathBuf,
    committed: Vec<ModelFile>,
    committed_gc: Vec<ModelFile>,
    source_files: Vec<ModelFile>,
}

fn setup(tools: &Tools, dir: &Path, rng: &mut Rng) -> anyhow::Result<Setup> {
    let inputs = Inputs::generate(tools, &dir.join("in"), rng)?;
    let mut catalog = Catalog::default();
    let template = dir.join("template");
    tools.init_small(&template)?;
    let keep = inputs.random_file(rng, "both/keep.bin", 4_000_000)?;
    inputs.random_file(rng, "both/other.bin", 12_000_000)?;
    let keep_alone = inputs.dir.join("keep.bin");
    std::fs::copy(&keep, &keep_alone)?;
    catalog.add(tools, &template, "base", &inputs.base)?;
    catalog.add(tools, &template, "base", &inputs.finetune)?;
    catalog.add(tools, &template, "folder", &inputs.folder)?;
    catalog.add(tools, &template, "random", &inputs.random)?;
    catalog.add(tools, &template, "random", &inputs.random_edited)?;
    catalog.add(tools, &template, "both", &inputs.dir.join("both"))?;
    catalog.add(tools, &template, "keep", &keep_alone)?;
    let template_gc = tools.gc_copy(&template, dir)?;

    let source = dir.join("source");
    tools.init_small(&source)?;
    let imp = inputs.random_file(rng, "imp.bin", 24_000_000)?;
    inputs.random_file(rng, "imp2/a.bin", 4_000_000)?;
    std::fs::copy(&inputs.finetune, inputs.dir.join("imp2/finetune.gguf"))?;
    catalog.add(tools, &source, "imp", &imp)?;
    catalog.add(tools, &source, "imp2", &inputs.dir.join("imp2"))?;
    let new_model = inputs.random_file(rng, "new.bin", 40_000_000)?;
    // A rerun after a kill that landed past the commit adds a second version.
    let new_bytes = std::sync::Arc::new(std::fs::read(&new_model)?);
    for version in ["v1", "v2", "v3"] {
        catalog.expect("new", version, "new.bin", new_bytes.clone());
    }

    let committed = catalog.files(tools, &template)?;
    let committed_gc = catalog.files(tools, &template_gc)?;
    let source_files = catalog.files(tools, &source)?;
    Ok(Setup {
        dir: dir.to_owned(),
        catalog,
        template,
        template_gc,
        source,
        new_model,
        committed,
        committed_gc,
        source_files,
    })
}

pub fn run(
    tools: &Tools,
    work: &Path,
    rng: &mut Rng,
    config: Config,
    findings: &mut Findings,
) -> anyhow::Result<Report> {
    let dir = WorkDir::create(&work.join("kills"), false)?;
    let setup = setup(tools, &dir.path, rng)?;

    // Calibration: how long each writer runs uninterrupted; kills land in [0, 1.1 × that].
    let mut durations = BTreeMap::new();
    for writer in WRITERS {
        let mut calibration_rng = Rng::new(0);
        let trial = Trial::new(&setup, writer, &mut calibration_rng)?;
        let outcome = trial.run(tools, &setup, None)?;
        let elapsed = outcome.command_time;
        if !outcome.completed_ok {
            findings.add(
                SCENARIO,
                "a writer fails even uninterrupted",
                format!("{}: {}", writer.name(), outcome.first_message),
            );
        }
        for (kind, detail) in &outcome.problems {
            findings.add(
                SCENARIO,
                kind.text(),
                format!("uninterrupted {}: {detail}", trial.describe()),
            );
        }
        durations.insert(writer, elapsed.as_secs_f64());
        eprintln!(
            "kill -9: {} runs {:.0} ms uninterrupted",
            writer.name(),
            elapsed.as_secs_f64() * 1e3
        );
    }

    let mut rows: BTreeMap<Writer, Row> = BTreeMap::new();
    for i in 0..config.trials {
        let progress = format!("{i} of {} trials done", config.trials);
        if config.budget.stops(findings, SCENARIO, progress) {
            break;
        }
        let writer = WRITERS[i % WRITERS.len()];
        let mut rng = rng.fork();
        let delay = Duration::from_secs_f64(durations[&writer] * 1.1 * rng.fraction());
        let trial = Trial::new(&setup, writer, &mut rng)?;
        let outcome = trial.run(tools, &setup, Some(delay))?;
        let row = rows.entry(writer).or_default();
        row.trials += 1;
        row.interrupted += u64::from(outcome.interrupted);
        row.delay_max_ms = row.delay_max_ms.max(delay.as_secs_f64() * 1e3);
        row.run_ms = durations[&writer] * 1e3;
        let what = format!(
            "trial {i}: {} killed after {:.1} ms{}",
            trial.describe(),
            delay.as_secs_f64() * 1e3,
            if outcome.interrupted {
                ""
            } else {
                " (it had already finished)"
            }
        );
        for (kind, detail) in &outcome.problems {
            let count = match *kind {
                Problem::Lost => &mut row.lost,
                Problem::HalfVisible => &mut row.half_visible,
                Problem::VerifyBad => &mut row.verify_bad,
                Problem::RerunFailed => &mut row.rerun_failed,
                Problem::Leftover => &mut row.leftovers,
                Problem::WrongServed => &mut row.wrong_served,
                Problem::Panic => &mut row.panics,
                Problem::Hang => &mut row.hangs,
            };
            *count += 1;
            findings.add(SCENARIO, kind.text(), format!("{what}: {detail}"));
        }
        if (i + 1) % 14 == 0 {
            eprintln!("kill -9: {} trials", i + 1);
        }
    }

    let mut total = Row::default();
    for row in rows.values() {
        total.trials += row.trials;
        total.interrupted += row.interrupted;
        total.lost += row.lost;
        total.half_visible += row.half_visible;
        total.verify_bad += row.verify_bad;
        total.rerun_failed += row.rerun_failed;
        total.leftovers += row.leftovers;
        total.wrong_served += row.wrong_served;
        total.panics += row.panics;
        total.hangs += row.hangs;
    }
    let mut report = Report::new(SCENARIO);
    report.summary(
        &format!(
            "{} kills ({} mid-run) over {} writers",
            total.trials,
            total.interrupted,
            rows.len()
        ),
        "lost-data events (a committed model unreadable or changed)",
        total.lost.to_string(),
        "0",
    );
    report.summary(
        "",
        "half-added model visible / wrong bytes served by a killed mount",
        format!("{} / {}", total.half_visible, total.wrong_served),
        "0 / 0",
    );
    report.summary(
        "",
        "verify not all good after the kill",
        total.verify_bad.to_string(),
        "0",
    );
    report.summary(
        "",
        "rerun of the killed command failed",
        total.rerun_failed.to_string(),
        "0",
    );
    report.summary(
        "",
        "temporary files left after the rerun / panics / hangs",
        format!("{} / {} / {}", total.leftovers, total.panics, total.hangs),
        "0 / 0 / 0",
    );

    let mut table = String::from(
        "| writer | uninterrupted run (ms) | kills | mid-run | lost data | half-added visible | wrong bytes served | verify not all good | rerun failed | temp files left | panics | hangs |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (writer, r) in &rows {
        table.push_str(&format!(
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            writer.name(),
            r.run_ms,
            r.trials,
            r.interrupted,
            r.lost,
            r.half_visible,
            r.wrong_served,
            r.verify_bad,
            r.rerun_failed,
            r.leftovers,
            r.panics,
            r.hangs
        ));
    }
    report.detail(table);
    Ok(report)
}

#[derive(Debug, Clone, Copy)]
enum Problem {
    Lost,
    HalfVisible,
    VerifyBad,
    RerunFailed,
    Leftover,
    WrongServed,
    Panic,
    Hang,
}

impl Problem {
    fn text(self) -> &'static str {
        match self {
            Problem::Lost => "lost data: a model committed before the kill is unreadable or wrong",
            Problem::HalfVisible => "half-added model visible after the kill",
            Problem::VerifyBad => "verify not all good after the kill",
            Problem::RerunFailed => "rerun of the killed command failed",
            Problem::Leftover => "temporary files left after the rerun",
            Problem::WrongServed => "wrong bytes served by the killed mount",
            Problem::Panic => "panic",
            Problem::Hang => "command hung",
        }
    }
}

struct Outcome {
    interrupted: bool,
    /// How long the command ran (with `mount --fill`: until everything was read and unmounted).
    command_time: Duration,
    /// Without a kill: the command succeeded.
    completed_ok: bool,
    first_message: String,
    problems: Vec<(Problem, String)>,
}

/// One trial: a fresh copy of a template store and the command to interrupt.
struct Trial {
    writer: Writer,
    dir: PathBuf,
    store: PathBuf,
    args: Vec<String>,
    /// Files that must read back intact (all of them, except what `rm` removes).
    committed: Vec<ModelFile>,
}

impl Trial {
    fn new(setup: &Setup, writer: Writer, rng: &mut Rng) -> anyhow::Result<Trial> {
        let dir = setup.dir.join("trial");
        if dir.exists() {
            for mountpoint in crate::harness::mounts_under(&dir) {
                force_unmount(&mountpoint);
            }
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let store = dir.join("store");
        let template = if writer == Writer::Gc {
            &setup.template_gc
        } else {
            &setup.template
        };
        copy_tree(template, &store)?;
        let source = setup.source.to_string_lossy().into_owned();
        let args: Vec<String> = match writer {
            Writer::Add => vec![
                "add".into(),
                "new".into(),
                setup.new_model.to_string_lossy().into_owned(),
            ],
            Writer::Rm => vec![
                "rm".into(),
                RM_TARGETS[rng.below(RM_TARGETS.len() as u64) as usize].into(),
            ],
            Writer::Gc => vec!["gc".into()],
            Writer::Import => vec!["import".into(), source],
            Writer::Pack => vec![
                "pack".into(),
                dir.join("dest").to_string_lossy().into_owned(),
                "--models".into(),
                PACK_MODELS.into(),
            ],
            Writer::IndexRebuild => vec!["index".into(), "rebuild".into()],
            Writer::MountFill => vec![
                "mount".into(),
                dir.join("mnt").to_string_lossy().into_owned(),
                "--source".into(),
                source,
                "--fill".into(),
                "--log".into(),
                dir.join("mount.log").to_string_lossy().into_owned(),
            ],
        };
        let committed = if writer == Writer::Gc {
            setup.committed_gc.clone()
        } else {
            setup.committed.clone()
        };
        Ok(Trial {
            writer,
            dir,
            store,
            args,
            committed,
        })
    }

    fn describe(&self) -> String {
        format!("modelfs {}", self.args.join(" "))
    }

    /// Runs the command, killed after `delay` (or to its end with `None`), and checks the store.
    fn run(
        &self,
        tools: &Tools,
        setup: &Setup,
        delay: Option<Duration>,
    ) -> anyhow::Result<Outcome> {
        tools.clear_cache();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut outcome = Outcome {
            interrupted: false,
            command_time: Duration::ZERO,
            completed_ok: false,
            first_message: String::new(),
            problems: Vec::new(),
        };
        let mut runs: Vec<Run> = Vec::new();
        let started = Instant::now();
        if self.writer == Writer::MountFill {
            self.run_fill(tools, setup, delay, &mut outcome)?;
            outcome.command_time = started.elapsed();
        } else {
            let mut proc = tools.start(&self.store, &args)?;
            let run = match delay {
                Some(delay) => {
                    std::thread::sleep(delay);
                    outcome.interrupted = proc.kill9();
                    proc.wait(tools.timeout)
                }
                None => proc.wait(tools.timeout),
            };
            outcome.command_time = started.elapsed();
            outcome.completed_ok = run.success();
            outcome.first_message = run.message();
            if delay.is_none() && !run.success() {
                return Ok(outcome);
            }
            runs.push(run);
        }

        // Every model committed before is intact; anything new is whole.
        self.check_models(tools, setup, &mut outcome, &mut runs);
        let (all_good, verify) = tools.verify(&self.store);
        if !all_good {
            outcome.problems.push((
                Problem::VerifyBad,
                verify.stdout_text().trim().replace('\n', "; "),
            ));
        }
        runs.push(verify);

        // The rerun succeeds, and leaves a clean store.
        if delay.is_some() {
            if let Some(rerun) = self.rerun(tools, setup, &mut outcome)? {
                if !rerun.success() {
                    outcome.problems.push((
                        Problem::RerunFailed,
                        format!("{}: {}", rerun.describe(), rerun.message()),
                    ));
                }
                runs.push(rerun);
            }
            self.check_models(tools, setup, &mut outcome, &mut runs);
            let (all_good, verify) = tools.verify(&self.store);
            if !all_good {
                outcome.problems.push((
                    Problem::VerifyBad,
                    format!(
                        "after the rerun: {}",
                        verify.stdout_text().trim().replace('\n', "; ")
                    ),
                ));
            }
            runs.push(verify);
            let left = temp_files(&self.store);
            if !left.is_empty() {
                outcome.problems.push((Problem::Leftover, left.join(", ")));
            }
        }
        for run in &runs {
            if run.panicked() {
                outcome.problems.push((Problem::Panic, run.message()));
            }
            if run.hung() {
                outcome.problems.push((Problem::Hang, run.message()));
            }
        }
        Ok(outcome)
    }

    /// Reads every listed file with `cat`: committed files must be listed (unless `rm` removed
    /// them) and intact; files that were not committed must be whole.
    fn check_models(
        &self,
        tools: &Tools,
        setup: &Setup,
        outcome: &mut Outcome,
        runs: &mut Vec<Run>,
    ) {
        let lost = Problem::Lost;
        let listed = match setup.catalog.files(tools, &self.store) {
            Ok(listed) => listed,
            Err(e) => {
                outcome
                    .problems
                    .push((lost, format!("cannot list the store: {e:#}")));
                return;
            }
        };
        let removed = match self.writer {
            Writer::Rm => Some(self.args[1].clone()),
            _ => None,
        };
        for file in &self.committed {
            if listed.iter().any(|l| l.spec == file.spec) {
                continue;
            }
            let target_of_rm = removed.as_ref().is_some_and(|r| {
                file.spec == *r
                    || file.spec.starts_with(&format!("{r}@"))
                    || file.spec.starts_with(&format!("{r}/"))
            });
            if !target_of_rm {
                outcome
                    .problems
                    .push((lost, format!("{} is no longer listed", file.spec)));
            }
        }
        for file in &listed {
            let run = tools.run(&self.store, &["cat", &file.spec]);
            let result = judge_cat(&run, &file.bytes);
            if !result.correct() {
                let was_committed = self.committed.iter().any(|c| c.spec == file.spec);
                let kind = if was_committed {
                    lost
                } else {
                    Problem::HalfVisible
                };
                outcome.problems.push((
                    kind,
                    format!(
                        "cat {}: {} ({} of {} bytes, {} wrong)",
                        file.spec,
                        run.message(),
                        result.bytes,
                        file.bytes.len(),
                        result.wrong
                    ),
                ));
            }
            runs.push(run);
        }
    }

    /// Runs the interrupted command again (`rm` only if its target is still there); checks what
    /// it should have produced.
    fn rerun(
        &self,
        tools: &Tools,
        setup: &Setup,
        outcome: &mut Outcome,
    ) -> anyhow::Result<Option<Run>> {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        match self.writer {
            Writer::Rm => {
                let target = &self.args[1];
                let still_there = setup.catalog.files(tools, &self.store).is_ok_and(|files| {
                    files.iter().any(|f| {
                        f.spec == *target
                            || f.spec.starts_with(&format!("{target}@"))
                            || f.spec.starts_with(&format!("{target}/"))
                    })
                });
                Ok(still_there.then(|| tools.run(&self.store, &args)))
            }
            Writer::MountFill => {
                // Mount again with --fill, read everything, unmount cleanly.
                let mountpoint = self.dir.join("mnt");
                force_unmount(&mountpoint);
                let log = self.dir.join("mount-rerun.log");
                let source = setup.source.to_string_lossy().into_owned();
                let mount = match FuseMount::daemon(
                    tools,
                    &self.store,
                    &mountpoint,
                    &log,
                    &["--source", &source, "--fill"],
                ) {
                    Ok(mount) => mount,
                    Err(run) => return Ok(Some(run)),
                };
                for file in &setup.source_files {
                    let result = read_file(
                        &mountpoint.join(&file.mount_path),
                        &file.bytes,
                        &AtomicU64::new(0),
                    );
                    if !result.correct() {
                        outcome.problems.push((
                            Problem::RerunFailed,
                            format!("reading {} through the new mount: {result:?}", file.spec),
                        ));
                    }
                }
                let panicked = mount.log_text().contains("panicked");
                if panicked {
                    outcome
                        .problems
                        .push((Problem::Panic, "the rerun mount panicked".into()));
                }
                if !mount.unmount(Duration::from_secs(15)) {
                    outcome.problems.push((
                        Problem::RerunFailed,
                        "the rerun mount did not unmount".into(),
                    ));
                }
                Ok(None)
            }
            _ => {
                let run = tools.run(&self.store, &args);
                if run.success() {
                    match self.writer {
                        Writer::Import => {
                            for name in ["imp", "imp2"] {
                                let files = setup
                                    .catalog
                                    .files_of(tools, &self.store, name)
                                    .unwrap_or_default();
                                if files.is_empty() {
                                    outcome.problems.push((
                                        Problem::RerunFailed,
                                        format!("{name} missing after the rerun of import"),
                                    ));
                                }
                            }
                        }
                        Writer::Add => {
                            let files = setup
                                .catalog
                                .files_of(tools, &self.store, "new")
                                .unwrap_or_default();
                            if files.is_empty() {
                                outcome.problems.push((
                                    Problem::RerunFailed,
                                    "new model missing after the rerun of add".into(),
                                ));
                            }
                        }
                        Writer::Pack => self.check_packed(tools, setup, outcome),
                        _ => {}
                    }
                }
                Ok(Some(run))
            }
        }
    }

    /// The store `pack` wrote verifies and holds the packed models intact.
    fn check_packed(&self, tools: &Tools, setup: &Setup, outcome: &mut Outcome) {
        let dest = self.dir.join("dest");
        let (all_good, verify) = tools.verify(&dest);
        if !all_good {
            outcome.problems.push((
                Problem::RerunFailed,
                format!(
                    "packed store does not verify: {}",
                    verify.stdout_text().trim()
                ),
            ));
        }
        match setup.catalog.files(tools, &dest) {
            Ok(files) => {
                let names: Vec<&str> = PACK_MODELS.split(',').collect();
                for name in &names {
                    if !files
                        .iter()
                        .any(|f| f.spec.starts_with(&format!("{name}@")))
                    {
                        outcome
                            .problems
                            .push((Problem::RerunFailed, format!("packed store lacks {name}")));
                    }
                }
                for file in files {
                    let run = tools.run(&dest, &["cat", &file.spec]);
                    if !judge_cat(&run, &file.bytes).correct() {
                        outcome.problems.push((
                            Problem::RerunFailed,
                            format!("packed store: cat {}: {}", file.spec, run.message()),
                        ));
                    }
                }
            }
            Err(e) => outcome.problems.push((
                Problem::RerunFailed,
                format!("cannot list the packed store: {e:#}"),
            )),
        }
    }

    /// `mount --source S --fill` in the foreground, reading the source's models through it,
    /// killed after `delay` (or unmounted cleanly once everything was read, for calibration).
    fn run_fill(
        &self,
        tools: &Tools,
        setup: &Setup,
        delay: Option<Duration>,
        outcome: &mut Outcome,
    ) -> anyhow::Result<()> {
        let mountpoint = self.dir.join("mnt");
        std::fs::create_dir_all(&mountpoint)?;
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut proc = tools.start(&self.store, &args)?;
        let started = Instant::now();
        let files = setup.source_files.clone();
        let reading_mountpoint = mountpoint.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !is_mounted(&reading_mountpoint) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            let mut results: Vec<(String, ReadResult)> = Vec::new();
            for file in &files {
                let result = read_file(
                    &reading_mountpoint.join(&file.mount_path),
                    &file.bytes,
                    &AtomicU64::new(0),
                );
                let failed = result.error.is_some();
                results.push((file.spec.clone(), result));
                if failed {
                    break;
                }
            }
            let _ = tx.send(results);
        });
        let results = match delay {
            Some(delay) => {
                std::thread::sleep(delay.saturating_sub(started.elapsed()));
                outcome.interrupted = proc.kill9();
                let run = proc.wait(tools.timeout);
                // The dead daemon's connection is gone; take the mount point back.
                force_unmount(&mountpoint);
                let results = rx.recv_timeout(tools.timeout);
                if run.panicked() {
                    outcome.problems.push((Problem::Panic, run.message()));
                }
                results
            }
            None => {
                let results = rx.recv_timeout(tools.timeout);
                // Past one 2 s registry check, so the filled chunks are sealed once.
                std::thread::sleep(Duration::from_millis(2500));
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(proc.pid()),
                    nix::sys::signal::SIGTERM,
                );
                let run = proc.wait(tools.timeout);
                outcome.completed_ok = run.success()
                    && results.as_ref().is_ok_and(|r| {
                        r.len() == setup.source_files.len() && r.iter().all(|(_, r)| r.correct())
                    });
                outcome.first_message = run.message();
                force_unmount(&mountpoint);
                results
            }
        };
        match results {
            Ok(results) => {
                for (spec, result) in results {
                    if result.served_wrong() {
                        outcome.problems.push((
                            Problem::WrongServed,
                            format!(
                                "{spec}: {} wrong of {} bytes read",
                                result.wrong, result.bytes
                            ),
                        ));
                    }
                }
            }
            Err(_) => outcome
                .problems
                .push((Problem::Hang, "a read through the killed mount hung".into())),
        }
        Ok(())
    }
}
