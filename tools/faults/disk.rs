//! Scenario 3: a full disk at every write. The store lives on a small tmpfs; a filler file leaves
//! 0 bytes, a few KiB, a few MiB, or a fraction of what the command needs (measured on a roomy
//! tmpfs first), then `add`, `import`, `rm`, `gc`, `pack` and `index rebuild` run. Recorded:
//! exit status, whether the error is one clean line that names the full disk, whether a failed
//! command left the store as it was, `verify`, and a rerun once space is freed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;

use crate::harness::{
    Budget, Exit, Findings, ModelFile, Rng, Run, Tools, WorkDir, copy_tree, disk_space, file_sizes,
    force_unmount, human, judge_cat, temp_files,
};
use crate::models::{Catalog, Inputs};
use crate::report::Report;

const SCENARIO: &str = "full disk";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Add,
    Import,
    Rm,
    Gc,
    Pack,
    IndexRebuild,
}

const OPS: [Op; 6] = [
    Op::Add,
    Op::Import,
    Op::Rm,
    Op::Gc,
    Op::Pack,
    Op::IndexRebuild,
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Import => "import",
            Op::Rm => "rm",
            Op::Gc => "gc",
            Op::Pack => "pack",
            Op::IndexRebuild => "index rebuild",
        }
    }
}

struct Setup {
    catalog: Catalog,
    template: PathBuf,
    template_gc: PathBuf,
    source: PathBuf,
    new_model: PathBuf,
    committed: Vec<ModelFile>,
    committed_gc: Vec<ModelFile>,
}

fn setup(tools: &Tools, dir: &Path, rng: &mut Rng) -> anyhow::Result<Setup> {
    let inputs = Inputs::generate(tools, &dir.join("in"), rng)?;
    let mut catalog = Catalog::default();
    let template = dir.join("template");
    tools.init_small(&template)?;
    let keep = inputs.random_file(rng, "both/keep.bin", 2_000_000)?;
    inputs.random_file(rng, "both/other.bin", 6_000_000)?;
    let keep_alone = inputs.dir.join("keep.bin");
    std::fs::copy(&keep, &keep_alone)?;
    catalog.add(tools, &template, "base", &inputs.base)?;
    catalog.add(tools, &template, "folder", &inputs.folder)?;
    catalog.add(tools, &template, "both", &inputs.dir.join("both"))?;
    catalog.add(tools, &template, "keep", &keep_alone)?;
    let template_gc = tools.gc_copy(&template, dir)?;
    let source = dir.join("source");
    tools.init_small(&source)?;
    let imp = inputs.random_file(rng, "imp.bin", 8_000_000)?;
    catalog.add(tools, &source, "imp", &imp)?;
    catalog.add(tools, &source, "finetune", &inputs.finetune)?;
    let new_model = inputs.random_file(rng, "new.bin", 8_000_000)?;
    catalog.expect("new", "v1", "new.bin", Arc::new(std::fs::read(&new_model)?));
    let committed = catalog.files(tools, &template)?;
    let committed_gc = catalog.files(tools, &template_gc)?;
    Ok(Setup {
        catalog,
        template,
        template_gc,
        source,
        new_model,
        committed,
        committed_gc,
    })
}

/// A tmpfs of `size` bytes at `path`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: u64) -> anyhow::Result<Tmpfs> {
        std::fs::create_dir_all(path)?;
        nix::mount::mount(
            Some("modelfs-faults"),
            path,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={}k,mode=0755", size.div_ceil(4096) * 4).as_str()),
        )
        .with_context(|| format!("cannot mount a tmpfs at {}", path.display()))?;
        Ok(Tmpfs(path.to_owned()))
    }

    fn clear(&self) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(&self.0)? {
            let path = entry?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        force_unmount(&self.0);
    }
}

/// Fills the file system of `dir` with `dir/filler` so that `leave` bytes stay free; returns the
/// bytes actually free then.
fn fill(dir: &Path, leave: u64) -> anyhow::Result<u64> {
    let filler = std::fs::File::create(dir.join("filler"))?;
    let (free, _) = disk_space(dir);
    let mut size = free.saturating_sub(leave);
    while size > 0 {
        let allocated = nix::fcntl::fallocate(
            &filler,
            nix::fcntl::FallocateFlags::empty(),
            0,
            size as libc::off_t,
        );
        if allocated.is_ok() {
            break;
        }
        size = size.saturating_sub(4096);
    }
    Ok(disk_space(dir).0)
}

/// The store's durable state: registry and config bytes, and every pack and manifest by size.
#[derive(PartialEq, Eq)]
struct Snapshot {
    registry: Vec<u8>,
    config: Vec<u8>,
    files: BTreeMap<String, u64>,
}

fn snapshot(store: &Path) -> Snapshot {
    Snapshot {
        registry: std::fs::read(store.join("registry.json")).unwrap_or_default(),
        config: std::fs::read(store.join("modelfs.json")).unwrap_or_default(),
        files: file_sizes(store)
            .into_iter()
            .filter(|(name, _)| name.starts_with("packs/") || name.starts_with("manifests/"))
            .collect(),
    }
}

#[derive(Default)]
struct Row {
    trials: u64,
    succeeded: u64,
    clean: u64,
    no_space: u64,
    unclean: u64,
    aborted: u64,
    hung: u64,
    changed: u64,
    verify_bad: u64,
    reads_bad: u64,
    rerun_failed: u64,
    /// Least free space it succeeded with (bisected), and its peak growth of used space.
    threshold: Option<u64>,
    peak: u64,
}

pub fn run(
    tools: &Tools,
    work: &Path,
    rng: &mut Rng,
    budget: Budget,
    findings: &mut Findings,
) -> anyhow::Result<Report> {
    let dir = WorkDir::create(&work.join("disk"), false)?;
    let setup = setup(tools, &dir.path, rng)?;
    let template_bytes: u64 = file_sizes(&setup.template).values().sum();
    let fs_path = dir.path.join("fs");
    // Every command runs on this tmpfs; "roomy" is the most a filler leaves free.
    const ROOMY: u64 = 256 << 20;
    let tmpfs = Tmpfs::mount(&fs_path, template_bytes * 2 + ROOMY + (64 << 20))?;

    let mut matrix = String::from(
        "| command | free before | outcome | one clean error line | says no space | store unchanged | verify after | rerun after freeing |\n|---|---:|---|---|---|---|---|---|\n",
    );
    let mut rows: BTreeMap<Op, Row> = BTreeMap::new();
    let mut probes = 0;
    'ops: for op in OPS {
        // Peak growth of used space during an uninterrupted run, with room to spare.
        let peak = {
            tmpfs.clear()?;
            let store = prepare(&setup, op, &tmpfs.0)?;
            let (_, before) = disk_space(&tmpfs.0);
            let peak = Arc::new(AtomicU64::new(before));
            let stop = Arc::new(AtomicBool::new(false));
            let sampler = {
                let (peak, stop, path) = (peak.clone(), stop.clone(), tmpfs.0.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        peak.fetch_max(disk_space(&path).1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_micros(500));
                    }
                })
            };
            let run = run_op(tools, &setup, op, &store, &tmpfs.0);
            stop.store(true, Ordering::Relaxed);
            let _ = sampler.join();
            peak.fetch_max(disk_space(&tmpfs.0).1, Ordering::Relaxed);
            if !run.success() {
                findings.add(
                    SCENARIO,
                    "a command fails even with room to spare",
                    format!("{}: {}", op.name(), run.message()),
                );
                continue 'ops;
            }
            peak.load(Ordering::Relaxed).saturating_sub(before)
        };
        // The least free space it runs with: bisect between 0 and ROOMY (every probe is a run
        // with all the checks below).
        let (mut lo, mut hi) = (0u64, ROOMY);
        let mut threshold = None;
        for step in 0..10 {
            let leave = if step == 0 { hi } else { (lo + hi) / 2 };
            if budget.exhausted() {
                break;
            }
            let attempt = attempt(tools, &setup, op, &tmpfs, leave, &mut rows, findings)?;
            probes += 1;
            if attempt.succeeded {
                hi = attempt.free;
                threshold = Some(attempt.free);
            } else if step == 0 {
                findings.add(
                    SCENARIO,
                    "a command fails even with room to spare",
                    format!("{} with {} free", op.name(), human(attempt.free)),
                );
                break;
            } else {
                lo = attempt.free;
            }
        }
        rows.entry(op).or_default().threshold = threshold;
        rows.entry(op).or_default().peak = peak;
        let needed = threshold.unwrap_or(peak);
        let mut leaves = vec![
            0,
            4 << 10,
            64 << 10,
            1 << 20,
            4 << 20,
            needed / 2,
            needed.saturating_sub(1 << 20),
            needed + (1 << 20),
        ];
        leaves.sort_unstable();
        leaves.dedup();
        eprintln!(
            "full disk: {} grows the store by up to {}, runs with {} free or more; leaving {:?} bytes free",
            op.name(),
            human(peak),
            threshold.map_or("(not found)".to_owned(), human),
            leaves
        );
        for leave in leaves {
            if budget.stops(
                findings,
                SCENARIO,
                format!("at {} with {leave} bytes free", op.name()),
            ) {
                break 'ops;
            }
            let a = attempt(tools, &setup, op, &tmpfs, leave, &mut rows, findings)?;
            let shown = a.message.replace(&*tmpfs.0.to_string_lossy(), "FS");
            matrix.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                op.name(),
                human(a.free),
                if a.succeeded {
                    "succeeded".to_owned()
                } else if a.clean {
                    format!("failed: `{}`", shown.replace('|', "\\|"))
                } else {
                    format!("**{}**: `{}`", a.exit, shown.replace('|', "\\|"))
                },
                yes_no(!a.succeeded, a.clean, "**no**"),
                yes_no(!a.succeeded, a.says_no_space, "no"),
                yes_no(!a.succeeded, a.unchanged, "**no**"),
                if a.verify_ok {
                    "all good"
                } else {
                    "**problems**"
                },
                match a.rerun_ok {
                    None => "n/a",
                    Some(true) => "ok",
                    Some(false) => "**failed**",
                }
            ));
        }
    }
    drop(tmpfs);

    let mut total = Row::default();
    for r in rows.values() {
        total.trials += r.trials;
        total.succeeded += r.succeeded;
        total.clean += r.clean;
        total.no_space += r.no_space;
        total.unclean += r.unclean;
        total.aborted += r.aborted;
        total.hung += r.hung;
        total.changed += r.changed;
        total.verify_bad += r.verify_bad;
        total.reads_bad += r.reads_bad;
        total.rerun_failed += r.rerun_failed;
    }
    let failed = total.trials - total.succeeded;
    let mut report = Report::new(SCENARIO);
    report.summary(
        &format!(
            "{} runs over {} commands ({probes} of them bisecting the least free space each needs)",
            total.trials,
            rows.len()
        ),
        "runs that failed / failed with one clean error line",
        format!("{failed} / {}", total.clean),
        "all failures clean",
    );
    report.summary(
        "",
        "error names the full disk (\"no space\")",
        format!("{} of {failed}", total.no_space),
        "all",
    );
    report.summary(
        "",
        "aborted by a signal / hung",
        format!("{} / {}", total.aborted, total.hung),
        "0 / 0",
    );
    report.summary(
        "",
        "failed runs that changed the store",
        total.changed.to_string(),
        "0",
    );
    report.summary(
        "",
        "verify not all good / committed models unreadable afterwards",
        format!("{} / {}", total.verify_bad, total.reads_bad),
        "0 / 0",
    );
    report.summary(
        "",
        "rerun after freeing space failed",
        total.rerun_failed.to_string(),
        "0",
    );
    let mut table = String::from(
        "| command | peak extra disk use with room to spare (includes RocksDB preallocation) | least free space it runs with (bisected, ±0.5 MiB) | runs | succeeded | failed cleanly | unclean output | aborted | hung | store changed by a failure | verify not all good | rerun failed |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (op, r) in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            op.name(),
            human(r.peak),
            r.threshold.map_or("–".to_owned(), human),
            r.trials,
            r.succeeded,
            r.clean,
            r.unclean,
            r.aborted,
            r.hung,
            r.changed,
            r.verify_bad,
            r.rerun_failed
        ));
    }
    report.detail(table);
    report.detail(matrix);
    Ok(report)
}

fn yes_no(applies: bool, value: bool, no: &'static str) -> &'static str {
    match (applies, value) {
        (false, _) => "n/a",
        (true, true) => "yes",
        (true, false) => no,
    }
}

/// One run of `op` with `leave` bytes free, and everything checked afterwards.
struct Attempt {
    free: u64,
    succeeded: bool,
    clean: bool,
    says_no_space: bool,
    exit: String,
    message: String,
    unchanged: bool,
    verify_ok: bool,
    rerun_ok: Option<bool>,
}

fn attempt(
    tools: &Tools,
    setup: &Setup,
    op: Op,
    tmpfs: &Tmpfs,
    leave: u64,
    rows: &mut BTreeMap<Op, Row>,
    findings: &mut Findings,
) -> anyhow::Result<Attempt> {
    tmpfs.clear()?;
    let store = prepare(setup, op, &tmpfs.0)?;
    tools.clear_cache();
    let before = snapshot(&store);
    let free = fill(&tmpfs.0, leave)?;
    let run = run_op(tools, setup, op, &store, &tmpfs.0);
    std::fs::remove_file(tmpfs.0.join("filler"))?;
    let row = rows.entry(op).or_default();
    row.trials += 1;
    let what = format!("{} with {free} bytes free", op.name());
    let says_no_space = run.stderr.to_lowercase().contains("no space");
    match run.exit {
        Exit::Code(0) => row.succeeded += 1,
        Exit::Code(_) if run.clean_failure() => {
            row.clean += 1;
            row.no_space += u64::from(says_no_space);
            if !says_no_space {
                findings.add(
                    SCENARIO,
                    "error line does not say the disk is full",
                    format!("{what}: {}", run.message()),
                );
            }
        }
        Exit::Code(code) => {
            row.unclean += 1;
            row.no_space += u64::from(says_no_space);
            findings.add(
                SCENARIO,
                "error output is not one clean line",
                format!(
                    "{what}: exit {code}: {}",
                    run.stderr.trim().replace('\n', " ⏎ ")
                ),
            );
        }
        Exit::Signal(_) => {
            row.aborted += 1;
            findings.add(
                SCENARIO,
                "aborted",
                format!("{what}: {}: {}", run.describe(), run.message()),
            );
        }
        Exit::Hung => {
            row.hung += 1;
            findings.add(SCENARIO, "hung", what.clone());
        }
    }
    if run.panicked() {
        findings.add(SCENARIO, "panic", format!("{what}: {}", run.message()));
    }
    let failed = !run.success();
    let unchanged = if failed {
        let same = snapshot(&store) == before && temp_files(&store).is_empty();
        if !same {
            row.changed += 1;
            findings.add(
                SCENARIO,
                "a failed command changed the store",
                format!("{what}: {}", describe_change(&before, &store)),
            );
        }
        same
    } else {
        true
    };
    let committed = if op == Op::Gc {
        &setup.committed_gc
    } else {
        &setup.committed
    };
    let (verify_ok, verify) = tools.verify(&store);
    if !verify_ok {
        row.verify_bad += 1;
        findings.add(
            SCENARIO,
            "verify not all good afterwards",
            format!("{what}: {}", verify_text(&verify)),
        );
    }
    let broken = committed_reads(tools, setup, &store, committed, op);
    if !broken.is_empty() {
        row.reads_bad += 1;
        findings.add(
            SCENARIO,
            "models unreadable afterwards",
            format!("{what}: {}", broken.join("; ")),
        );
    }
    let rerun_ok = if failed {
        let rerun = run_op(tools, setup, op, &store, &tmpfs.0);
        let ok = rerun.success()
            && tools.verify(&store).0
            && (op != Op::Pack || tools.verify(&tmpfs.0.join("dest")).0);
        if !ok {
            row.rerun_failed += 1;
            findings.add(
                SCENARIO,
                "rerun after freeing space failed",
                format!("{what}: {}: {}", rerun.describe(), rerun.message()),
            );
        }
        Some(ok)
    } else {
        None
    };
    Ok(Attempt {
        free,
        succeeded: !failed,
        clean: run.clean_failure(),
        says_no_space,
        exit: run.describe(),
        message: run.message(),
        unchanged,
        verify_ok,
        rerun_ok,
    })
}

/// Puts the template this command starts from at `fs/store`.
fn prepare(setup: &Setup, op: Op, fs: &Path) -> anyhow::Result<PathBuf> {
    let store = fs.join("store");
    let template = if op == Op::Gc {
        &setup.template_gc
    } else {
        &setup.template
    };
    copy_tree(template, &store)?;
    Ok(store)
}

fn run_op(tools: &Tools, setup: &Setup, op: Op, store: &Path, fs: &Path) -> Run {
    let source = setup.source.to_string_lossy().into_owned();
    let new_model = setup.new_model.to_string_lossy().into_owned();
    let dest = fs.join("dest").to_string_lossy().into_owned();
    let args: Vec<&str> = match op {
        Op::Add => vec!["add", "new", &new_model],
        Op::Import => vec!["import", &source],
        Op::Rm => vec!["rm", "keep"],
        Op::Gc => vec!["gc"],
        Op::Pack => vec!["pack", &dest, "--models", "base,folder"],
        Op::IndexRebuild => vec!["index", "rebuild"],
    };
    tools.run(store, &args)
}

/// Committed files that do not read back intact (`rm`'s target may be gone).
fn committed_reads(
    tools: &Tools,
    setup: &Setup,
    store: &Path,
    committed: &[ModelFile],
    op: Op,
) -> Vec<String> {
    let listed = match setup.catalog.files(tools, store) {
        Ok(listed) => listed,
        Err(e) => return vec![format!("cannot list: {e:#}")],
    };
    let mut broken = Vec::new();
    for file in committed {
        if !listed.iter().any(|l| l.spec == file.spec) {
            if !(op == Op::Rm && file.spec.starts_with("keep@")) {
                broken.push(format!("{} not listed", file.spec));
            }
            continue;
        }
        let run = tools.run(store, &["cat", &file.spec]);
        if !judge_cat(&run, &file.bytes).correct() {
            broken.push(format!("cat {}: {}", file.spec, run.message()));
        }
    }
    broken
}

fn verify_text(run: &Run) -> String {
    let text = run.stdout_text();
    if text.trim().is_empty() {
        run.message()
    } else {
        text.trim().replace('\n', "; ")
    }
}

fn describe_change(before: &Snapshot, store: &Path) -> String {
    let after = snapshot(store);
    let mut parts = Vec::new();
    if after.registry != before.registry {
        parts.push("registry.json differs".to_owned());
    }
    if after.config != before.config {
        parts.push("modelfs.json differs".to_owned());
    }
    for (name, size) in &after.files {
        match before.files.get(name) {
            None => parts.push(format!("new {name} ({size} bytes)")),
            Some(old) if old != size => parts.push(format!("{name} {old} -> {size} bytes")),
            _ => {}
        }
    }
    for name in before.files.keys() {
        if !after.files.contains_key(name) {
            parts.push(format!("{name} gone"));
        }
    }
    for name in temp_files(store) {
        parts.push(format!("temporary file {name} left"));
    }
    parts.join(", ")
}
