//! `modelfs doctor`: a healthy store and mount pass; a writer holding the lock, a stale mount
//! and a pack the index does not list are each found, named and given their fix.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::netutil::store_with;
use crate::util::TestStore;

/// Every check doctor runs when given a mountpoint, in order.
const CHECKS: [&str; 12] = [
    "fuse_device",
    "fusermount3",
    "mount_access",
    "kernel",
    "fuse_max_pages",
    "store",
    "store_writable",
    "writer_lock",
    "free_space",
    "index",
    "pins",
    "mountpoint",
];

/// `modelfs doctor --json ARGS…`: whether it exited 0, and its checks.
fn doctor(store: &TestStore, args: &[&str]) -> (bool, Vec<serde_json::Value>) {
    let mut all = vec!["doctor", "--json"];
    all.extend_from_slice(args);
    let out = store.run(&all);
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.success(),
        checks.as_array().expect("an array of checks").clone(),
    )
}

/// The check called `name`.
fn check<'a>(checks: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {checks:?}"))
}

/// Kills `child` when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn doctor_passes_a_healthy_store_and_mount() {
    let (store, _) = store_with("m", 81, 300_000);
    let mount = store.mount();
    let mountpoint = mount.path.to_str().unwrap();
    let (ok, checks) = doctor(&store, &[mountpoint]);
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, CHECKS);
    assert!(ok, "doctor failed on a healthy store: {checks:#?}");
    for check in &checks {
        assert_ne!(check["status"], "fail", "{check}");
        assert!(check["finding"].as_str().is_some_and(|f| !f.is_empty()));
        assert!(check["fix"].is_string());
    }
    let live = check(&checks, "mountpoint");
    assert_eq!(live["status"], "ok", "{live}");
    assert!(
        live["finding"]
            .as_str()
            .unwrap()
            .contains("live modelfs mount"),
        "{live}"
    );
    assert_eq!(check(&checks, "index")["status"], "ok");
    assert_eq!(check(&checks, "writer_lock")["status"], "ok");
}

#[test]
fn doctor_names_the_process_holding_the_writer_lock() {
    let (store, _) = store_with("m", 81, 300_000);
    let lock = store.store.join("lock");
    // `--close`: the lock is flock's alone (not its child's), so killing flock releases it; `cat`
    // ends when its input closes with the child handle.
    let holder = Killed(
        Command::new("flock")
            .arg("--close")
            .arg(&lock)
            .arg("cat")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("flock (util-linux)"),
    );
    let pid = format!("pid {}", holder.0.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    let (ok, checks) = loop {
        let (ok, checks) = doctor(&store, &[]);
        if check(&checks, "writer_lock")["status"] != "ok" || Instant::now() > deadline {
            break (ok, checks);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let held = check(&checks, "writer_lock");
    assert_eq!(held["status"], "fail", "{held}");
    let finding = held["finding"].as_str().unwrap();
    assert!(
        finding.contains(&pid) && finding.contains("flock"),
        "{held}"
    );
    assert!(held["fix"].as_str().unwrap().contains("kill"), "{held}");
    assert!(!ok, "doctor exited 0 with the lock held by another process");
    // The writer it names really is in the way.
    let add = store.fails(&["add", "n", store.file("n.bin", b"x").to_str().unwrap()]);
    assert!(add.contains("another modelfs process"), "{add}");
    drop(holder);
    let (ok, checks) = doctor(&store, &[]);
    assert!(ok, "{checks:#?}");
}

#[test]
fn doctor_finds_a_stale_mount_and_passes_after_its_fix() {
    let (store, _) = store_with("m", 81, 300_000);
    let mount = store.mount();
    let mountpoint = mount.path.to_str().unwrap();
    // The daemon recorded itself (pid, start time, command hash) before it reported ready.
    let records = store.dir.path().join("cache/modelfs/mounts");
    let record = std::fs::read_dir(&records)
        .unwrap()
        .next()
        .expect("a pid file")
        .unwrap()
        .path();
    let pid: i32 = std::fs::read_to_string(record)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&mount.path)
        .err()
        .and_then(|e| e.raw_os_error())
        != Some(libc::ENOTCONN)
    {
        assert!(Instant::now() < deadline, "the mount never went stale");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (ok, checks) = doctor(&store, &[mountpoint]);
    assert!(!ok, "doctor exited 0 on a stale mount: {checks:#?}");
    let stale = check(&checks, "mountpoint");
    assert_eq!(stale["status"], "fail", "{stale}");
    assert!(
        stale["finding"]
            .as_str()
            .unwrap()
            .contains("transport endpoint is not connected"),
        "{stale}"
    );
    let fix = stale["fix"].as_str().unwrap();
    assert!(
        fix.contains(&format!("modelfs umount {mountpoint}")),
        "{stale}"
    );
    // The text report says the same, with the fix.
    let text = store.run(&["doctor", mountpoint]);
    assert!(!text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("transport endpoint is not connected") && text.contains("fix: "),
        "{text}"
    );

    store.ok(&["umount", mountpoint]);
    let (ok, checks) = doctor(&store, &[mountpoint]);
    assert!(ok, "doctor still fails after the fix: {checks:#?}");
    let cleared = check(&checks, "mountpoint");
    assert!(
        cleared["finding"]
            .as_str()
            .unwrap()
            .contains("nothing is mounted"),
        "{cleared}"
    );
}

#[test]
fn doctor_warns_of_a_pack_the_index_does_not_list() {
    let (store, _) = store_with("m", 81, 300_000);
    let (other, _) = store_with("o", 82, 200_000);
    let packs = other.store.join("packs");
    let pack = std::fs::read_dir(&packs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pack"))
        .expect("a sealed pack");
    let name = pack.file_name().unwrap();
    std::fs::copy(&pack, store.store.join("packs").join(name)).unwrap();
    let id = pack.file_stem().unwrap().to_str().unwrap();

    let (ok, checks) = doctor(&store, &[]);
    let index = check(&checks, "index");
    assert_eq!(index["status"], "warn", "{index}");
    assert!(index["finding"].as_str().unwrap().contains(id), "{index}");
    assert!(
        index["fix"].as_str().unwrap().contains("index rebuild"),
        "{index}"
    );
    assert!(ok, "a warning alone keeps the exit status 0: {checks:#?}");

    store.ok(&["index", "rebuild"]);
    let (_, checks) = doctor(&store, &[]);
    assert_eq!(check(&checks, "index")["status"], "ok", "{checks:#?}");
}
