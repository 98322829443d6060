//! Stores in an S3-compatible bucket (a real Garage on loopback): publishing with
//! `pack s3://BUCKET/PREFIX`, pulling, importing and lazily mounting from a bucket, a publish
//! killed midway, two publishers at once, a fleet that reads from a peer before the bucket, a
//! bucket that misbehaves (wrong credentials, 503s, truncated or altered bodies, a server gone
//! midway), and URLs that must never be taken for paths.
//!
//! Everything goes through the real binary with the bucket's endpoint and credentials in its
//! environment. Every command runs with a deadline (a hang is a failure); a failing command must
//! print exactly one `modelfs: ` line and leave the local registry as it was.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::garage::{AWS_CLEARED, FaultProxy, Garage, ProxyFault};
use crate::netutil::{
    Run, Serve, add, assert_no_models, cat, models_of, need_bytes, run_within, store_with, unique,
};
use crate::util::{MODELFS, Mount, TestStore, random_bytes};

/// How long any one command may take (large transfers get more).
const DEADLINE: Duration = Duration::from_secs(90);
const LONG: Duration = Duration::from_secs(300);
const MIB: u64 = 1 << 20;

/// Environment variables for a modelfs process.
type Env = Vec<(&'static str, String)>;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `modelfs --store STORE ARGS…` with `env` (a bucket's endpoint and credentials) set and any
/// other AWS setting of this process cleared.
fn command(store: &TestStore, env: &Env, args: &[&str]) -> Command {
    let mut command = crate::netutil::modelfs(store, args);
    for var in AWS_CLEARED {
        command.env_remove(var);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// Runs `command(store, env, args)` with a deadline.
fn run(store: &TestStore, env: &Env, args: &[&str], deadline: Duration) -> Run {
    run_within(command(store, env, args), deadline)
}

/// `modelfs pack URL --models MODELS`.
fn publish(store: &TestStore, env: &Env, url: &str, models: &str) -> Run {
    run(store, env, &["pack", url, "--models", models], LONG)
}

/// `modelfs pull NAME --from SOURCE… EXTRA…`.
fn pull(store: &TestStore, env: &Env, name: &str, sources: &[&str], extra: &[&str]) -> Run {
    let mut args = vec!["pull", name];
    for source in sources {
        args.extend(["--from", source]);
    }
    args.extend_from_slice(extra);
    run(store, env, &args, LONG)
}

/// A store holding one model `name` (file `NAME.gguf`) of `len` random bytes, with the default
/// (larger) chunks, for models of many megabytes.
fn big_store_with(name: &str, seed: u64, len: usize) -> (TestStore, Vec<u8>) {
    let store = TestStore::uninitialised();
    store.ok(&["init"]);
    let bytes = random_bytes(seed, len);
    add(&store, name, &format!("{name}.gguf"), &bytes);
    (store, bytes)
}

/// The byte count of a publish's `published N version(s) into URL: sent X MB in N chunks` line.
fn sent_bytes(stdout: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("published "))
        .unwrap_or_else(|| panic!("no `published` line in:\n{stdout}"));
    let at = line
        .find(" sent ")
        .unwrap_or_else(|| panic!("no byte count in {line:?}"));
    let mut words = line[at + " sent ".len()..].split_whitespace();
    let number: f64 = words
        .next()
        .and_then(|w| w.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {line:?}"));
    let scale = match words.next().unwrap_or("B") {
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    };
    (number * scale).round() as u64
}

/// Mounts `store` (daemon mode) with `sources` behind it, `env` set, and `extra` flags.
fn mount_sources(store: &TestStore, env: &Env, sources: &[&str], extra: &[&str]) -> Mount {
    let n = unique();
    let (mountpoint, log) = (
        store.path(&format!("mnt{n}")),
        store.path(&format!("mount{n}.log")),
    );
    std::fs::create_dir(&mountpoint).unwrap();
    let mut args = vec!["mount", "--daemon", "--log", log.to_str().unwrap()];
    for source in sources {
        args.extend(["--source", source]);
    }
    args.extend_from_slice(extra);
    args.push(mountpoint.to_str().unwrap());
    run(store, env, &args, DEADLINE).ok();
    Mount {
        path: mountpoint,
        log,
    }
}

/// Runs `f` in a thread; `None` if it took longer than `deadline` (the thread is left behind,
/// blocked in the kernel).
fn within<T: Send + 'static>(
    deadline: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(deadline).ok()
}

/// Reads `len` bytes at `offset` of `path`; `None` if it took longer than `deadline`.
fn read_within(
    path: PathBuf,
    offset: u64,
    len: usize,
    deadline: Duration,
) -> Option<std::io::Result<Vec<u8>>> {
    within(deadline, move || {
        std::fs::File::open(&path).and_then(|file| {
            let mut buf = vec![0; len];
            file.read_exact_at(&mut buf, offset).map(|()| buf)
        })
    })
}

/// Reads all of `path` through the mount, which must succeed within `deadline`.
fn read_all(mount: &Mount, name: &str, deadline: Duration) -> Vec<u8> {
    let path = mount.join(name);
    match within(deadline, move || std::fs::read(path)) {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) => panic!(
            "reading {name} through the mount: {e}; log:\n{}",
            mount.log()
        ),
        None => panic!(
            "reading {name} through the mount hung past {deadline:?}; log:\n{}",
            mount.log()
        ),
    }
}

/// Waits up to `deadline` for the store to hold at least `bytes` in packs (a mount with
/// `--fill` seals what it copied as it exits, a moment after the unmount).
fn wait_for_stored(store: &TestStore, bytes: u64, deadline: Duration) {
    let until = Instant::now() + deadline;
    while store.stored_bytes() < bytes && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        store.stored_bytes() >= bytes,
        "the store kept {} bytes, expected at least {bytes}",
        store.stored_bytes()
    );
}

/// Whether `log` (a proxy's) shows a pack written into the bucket and then the catalog written
/// successfully: from then on the bucket lists that pack.
fn a_pack_is_listed(log: &[String]) -> bool {
    let Some(first_pack) = log
        .iter()
        .position(|l| (l.starts_with("PUT ") || l.starts_with("POST ")) && l.contains("/packs/"))
    else {
        return false;
    };
    log[first_pack..]
        .iter()
        .any(|l| l.starts_with("PUT ") && l.contains("/catalog.json") && l.ends_with("-> 200"))
}

// ---------------------------------------------------------------------------------------------
// Publish, pull, import
// ---------------------------------------------------------------------------------------------

/// A model published into a bucket pulls (and imports) byte for byte into an empty store and
/// verifies; publishing it again sends nothing, pulling it again needs nothing.
#[test]
fn a_published_model_pulls_identically_and_a_second_publish_sends_nothing() {
    let garage = Garage::new("models");
    let env = garage.env();
    let site = garage.url("site");
    let (source, model) = store_with("m", 1, 4_000_000);
    let len = model.len() as u64;

    let out = publish(&source, &env, &site, "m").ok();
    assert!(
        out.contains(&format!("published 1 version(s) into {site}")),
        "{out}"
    );
    let sent = sent_bytes(&out);
    assert!(
        sent >= len * 9 / 10 && sent <= len + len / 5,
        "publishing a {len}-byte model into an empty bucket sent {sent} bytes: {out}"
    );

    let local = TestStore::new();
    let out = pull(&local, &env, "m", &[&site], &[]).ok();
    let need = need_bytes(&out);
    assert!(
        need >= len * 9 / 10 && need <= len + len / 5,
        "an empty store needs about the whole model ({len} bytes): {out}"
    );
    assert!(cat(&local, "m") == model, "pulled bytes differ");
    local.ok(&["verify"]);
    assert_eq!(models_of(&local)[0]["name"], "m", "{}", models_of(&local));
    let again = pull(&local, &env, "m", &[&site], &[]).ok();
    assert_eq!(need_bytes(&again), 0, "a second pull needed bytes: {again}");

    let out = publish(&source, &env, &site, "m").ok();
    assert_eq!(sent_bytes(&out), 0, "a second publish sent bytes: {out}");

    let imported = TestStore::new();
    run(&imported, &env, &["import", &site, "--models", "m"], LONG).ok();
    assert!(cat(&imported, "m") == model, "imported bytes differ");
    imported.ok(&["verify"]);
}

/// A fine-tune published after its base sends about the changed region only, and both versions
/// pull back identically.
#[test]
fn a_finetune_published_after_its_base_sends_only_the_changed_chunks() {
    let garage = Garage::new("tunes");
    let env = garage.env();
    let site = garage.url("site");
    let source = TestStore::new();
    let base = random_bytes(2, 8_000_000);
    let mut tuned = base.clone();
    let changed = 256 * 1024;
    tuned[3_000_000..3_000_000 + changed].copy_from_slice(&random_bytes(3, changed));
    add(&source, "llama", "base.gguf", &base);
    publish(&source, &env, &site, "llama").ok();

    add(&source, "llama", "tuned.gguf", &tuned);
    let out = publish(&source, &env, &site, "llama").ok();
    let sent = sent_bytes(&out);
    let bound = 2 * changed as u64 + MIB;
    assert!(
        sent < bound && sent < tuned.len() as u64 / 4,
        "publishing a {changed}-byte change of a {}-byte file sent {sent} bytes: {out}",
        tuned.len()
    );

    let local = TestStore::new();
    pull(&local, &env, "llama@v1", &[&site], &[]).ok();
    let out = pull(&local, &env, "llama@v2", &[&site], &[]).ok();
    assert!(
        need_bytes(&out) < bound,
        "pulling the fine-tune over its base: {out}"
    );
    assert!(cat(&local, "llama@v1") == base, "the base differs");
    assert!(cat(&local, "llama@v2") == tuned, "the fine-tune differs");
    local.ok(&["verify"]);
}

// ---------------------------------------------------------------------------------------------
// Lazy mounts of a bucket
// ---------------------------------------------------------------------------------------------

/// An empty store mounted with the bucket as its source reads a model identically without
/// keeping it, and a model published after the mount started appears within 25 s.
#[test]
fn a_lazy_mount_of_a_bucket_reads_models_and_sees_new_ones() {
    let garage = Garage::new("lazy");
    let env = garage.env();
    let site = garage.url("site");
    let (source, first) = store_with("first", 4, 6_000_000);
    publish(&source, &env, &site, "first").ok();

    let local = TestStore::new();
    let stored = local.stored_bytes();
    let mount = mount_sources(&local, &env, &[&site], &["--timeout", "10"]);
    assert!(
        read_all(&mount, "first.gguf", DEADLINE) == first,
        "read through the mount differs; log:\n{}",
        mount.log()
    );

    let second = random_bytes(5, 3_000_000);
    add(&source, "second", "second.gguf", &second);
    publish(&source, &env, &site, "second").ok();
    let published = Instant::now();
    loop {
        let root = mount.path.clone();
        let names = within(Duration::from_secs(20), move || {
            std::fs::read_dir(root).map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
        })
        .unwrap_or_else(|| panic!("listing the mount hung; log:\n{}", mount.log()))
        .expect("listing the mount");
        if names.iter().any(|n| n == "second.gguf") {
            break;
        }
        assert!(
            published.elapsed() < Duration::from_secs(25),
            "a model published into the bucket did not appear in the mount within 25 s \
             (it shows {names:?}); log:\n{}",
            mount.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("the new model appeared after {:?}", published.elapsed());
    assert!(read_all(&mount, "second.gguf", DEADLINE) == second);
    drop(mount);
    assert_eq!(
        local.stored_bytes(),
        stored,
        "without --fill nothing is kept"
    );
}

// ---------------------------------------------------------------------------------------------
// A publish killed midway; publishers at once
// ---------------------------------------------------------------------------------------------

/// A publish killed with SIGKILL after its first pack was listed leaves its lock behind; the
/// rerun takes the lock over, sends only what the bucket still lacks, and the model pulls back
/// identically.
#[test]
fn a_publish_killed_midway_takes_its_lock_over_and_sends_only_the_rest() {
    let garage = Garage::new("resume");
    let env = garage.env();
    let site = garage.url("site");
    let (source, model) = big_store_with("big", 6, 160_000_000);
    let len = model.len() as u64;

    // Published through a proxy whose log shows when the first pack is listed in the catalog.
    let proxy = FaultProxy::start(&garage.addr(), ProxyFault::Nothing);
    let mut child = command(
        &source,
        &garage.env_at(&proxy.endpoint()),
        &["pack", &site, "--models", "big", "--jobs", "1"],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + LONG;
    while !a_pack_is_listed(&proxy.log()) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the publish ended ({status}) before any pack was listed; requests:\n{}",
                proxy.log().join("\n")
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "no pack was listed within {LONG:?}; requests:\n{}",
                proxy.log().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGKILL,
    );
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the publish finished before it was killed"
    );
    // Killed, it could not remove its lock: the rerun has to take it over.
    let requests = proxy.log();
    assert!(
        requests
            .iter()
            .any(|l| l.starts_with("PUT ") && l.contains("/site/lock ")),
        "the publish took no lock; requests:\n{}",
        requests.join("\n")
    );
    assert!(
        !requests
            .iter()
            .any(|l| l.starts_with("DELETE ") || l.contains("?delete")),
        "the killed publish deleted something; requests:\n{}",
        requests.join("\n")
    );

    let rerun = publish(&source, &env, &site, "big");
    let stderr = rerun.stderr.clone();
    let out = rerun.ok();
    let sent = sent_bytes(&out);
    eprintln!("rerun: {}", out.trim());
    // At least one 64 MiB pack was listed before the kill.
    assert!(
        sent + 56 * MIB <= len,
        "the rerun sent {sent} bytes of a {len}-byte model although a pack was listed: {out}\n{stderr}"
    );

    let local = TestStore::new();
    pull(&local, &env, "big", &[&site], &[]).ok();
    assert!(
        cat(&local, "big") == model,
        "the model pulled after the resumed publish differs"
    );
    local.ok(&["verify"]);
}

/// Two publishers of different models started at once: at most one is refused, with one line
/// naming the lock; every model a publisher reported as published pulls correctly; the refused
/// one succeeds once the other is done, and then the bucket holds both.
#[test]
fn two_publishers_at_once_never_lose_a_published_model() {
    let garage = Garage::new("shared");
    let env = garage.env();
    let site = garage.url("site");
    // Each under 32 MiB, so each is sent as one object (the killed-publish test covers packs
    // sent in parts).
    let (alpha_store, alpha) = big_store_with("alpha", 11, 30_000_000);
    let (beta_store, beta) = big_store_with("beta", 12, 30_000_000);
    let publishers = [
        ("alpha", &alpha_store, &alpha),
        ("beta", &beta_store, &beta),
    ];

    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = publishers
            .iter()
            .map(|(name, store, _)| {
                let (env, site) = (&env, &site);
                scope.spawn(move || publish(store, env, site, name))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut refused = Vec::new();
    for ((name, _, _), run) in publishers.iter().zip(&runs) {
        if run.success() {
            eprintln!("{name}: {}", run.stdout_text().trim());
            assert!(
                run.stdout_text().contains("published 1 version(s)"),
                "{name}: {}",
                run.stdout_text()
            );
        } else {
            let line = run.error_line();
            eprintln!("{name} was refused: {line}");
            assert!(
                line.contains("lock"),
                "{name} failed, but not for the lock: {line}"
            );
            refused.push(*name);
        }
    }
    assert!(refused.len() <= 1, "both publishers failed: {runs:?}");

    // Every model reported as published is in the bucket, whole.
    for (name, _, bytes) in publishers.iter().filter(|(n, _, _)| !refused.contains(n)) {
        let local = TestStore::new();
        let pulled = pull(&local, &env, name, &[&site], &[]);
        assert!(
            pulled.success(),
            "{name} was reported as published but does not pull: {}",
            pulled.stderr
        );
        assert!(cat(&local, name) == **bytes, "{name} pulled differently");
        local.ok(&["verify"]);
    }
    for (name, store, _) in publishers.iter().filter(|(n, _, _)| refused.contains(n)) {
        publish(store, &env, &site, name).ok();
    }
    let both = TestStore::new();
    run(
        &both,
        &env,
        &["import", &site, "--models", "alpha,beta"],
        LONG,
    )
    .ok();
    assert!(cat(&both, "alpha") == alpha, "alpha differs");
    assert!(cat(&both, "beta") == beta, "beta differs");
    both.ok(&["verify"]);
}

// ---------------------------------------------------------------------------------------------
// A fleet: a peer first, the bucket behind it
// ---------------------------------------------------------------------------------------------

/// N1 reads a model from the bucket through a mount with `--fill` and serves its store; N2
/// mounts with N1 first and the bucket second: N2 reads the model identically, and the bucket
/// sends (almost) no pack bytes for it.
#[test]
fn a_fleet_reads_from_a_peer_first_and_the_bucket_sends_almost_no_pack_bytes() {
    let garage = Garage::new("fleet");
    let env = garage.env();
    let site = garage.url("site");
    let (source, model) = store_with("fleet-model", 21, 24_000_000);
    let len = model.len() as u64;
    publish(&source, &env, &site, "fleet-model").ok();

    let n1 = TestStore::new();
    {
        let mount = mount_sources(&n1, &env, &[&site], &["--fill"]);
        assert!(
            read_all(&mount, "fleet-model.gguf", LONG) == model,
            "N1 read the model differently; log:\n{}",
            mount.log()
        );
    }
    wait_for_stored(&n1, len, Duration::from_secs(30));
    n1.ok(&["verify"]);
    let serve = Serve::start(&n1, &[]);

    // N2 reaches the bucket through a proxy that counts the pack bytes it relays.
    let proxy = FaultProxy::start(&garage.addr(), ProxyFault::Nothing);
    let n2 = TestStore::new();
    let mount = mount_sources(
        &n2,
        &garage.env_at(&proxy.endpoint()),
        &[&serve.url, &site],
        &[],
    );
    assert!(
        read_all(&mount, "fleet-model.gguf", LONG) == model,
        "N2 read the model differently; log:\n{}",
        mount.log()
    );
    eprintln!(
        "the bucket sent {} pack bytes in {} requests for N2",
        proxy.pack_bytes(),
        proxy.requests()
    );
    // Pack tables may come from the bucket; chunk bytes must come from N1.
    assert!(
        proxy.pack_bytes() < 2 * MIB,
        "the bucket sent {} pack bytes for a {len}-byte model N1 holds; requests:\n{}",
        proxy.pack_bytes(),
        proxy.log().join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

/// Wrong credentials: a pull and a publish each fail with one line naming the endpoint and the
/// bucket.
#[test]
fn wrong_credentials_fail_with_one_line_naming_the_endpoint_and_the_bucket() {
    let garage = Garage::new("guarded");
    let site = garage.url("site");
    let (source, _) = store_with("m", 31, 500_000);
    publish(&source, &garage.env(), &site, "m").ok();
    let mut wrong = garage.env();
    for (name, value) in &mut wrong {
        if *name == "AWS_SECRET_ACCESS_KEY" {
            *value = value.chars().rev().collect();
        }
    }

    let local = TestStore::new();
    let pulled = pull(&local, &wrong, "m", &[&site], &["--timeout", "5"]);
    let published = publish(&source, &wrong, &site, "m");
    for (what, run) in [("pull", pulled), ("publish", published)] {
        assert!(run.elapsed < DEADLINE, "{what} took {:?}", run.elapsed);
        let line = run.error_line();
        eprintln!("{what}: {line}");
        assert!(
            line.contains(&garage.addr()),
            "{what}: the error does not name the endpoint {}: {line}",
            garage.addr()
        );
        assert!(
            line.contains("s3://guarded"),
            "{what}: the error does not name the bucket: {line}"
        );
    }
    assert_no_models(&local);
}

/// A bucket answering `503 SlowDown` to the first requests: the pull retries and succeeds.
#[test]
fn slow_down_answers_are_retried() {
    let garage = Garage::new("busy");
    let env = garage.env();
    let site = garage.url("site");
    let (source, model) = store_with("m", 32, 2_000_000);
    publish(&source, &env, &site, "m").ok();

    let proxy = FaultProxy::start(&garage.addr(), ProxyFault::SlowDown(4));
    let local = TestStore::new();
    pull(
        &local,
        &garage.env_at(&proxy.endpoint()),
        "m",
        &[&site],
        &[],
    )
    .ok();
    assert_eq!(
        proxy.injected(),
        4,
        "the proxy did not answer 503 four times"
    );
    assert!(cat(&local, "m") == model);
    local.ok(&["verify"]);
}

/// Truncated pack bodies: a few are retried and the pull succeeds; when every one is cut, the
/// pull fails with one line and the local store is as it was.
#[test]
fn truncated_bodies_are_retried_then_refused() {
    let garage = Garage::new("cut");
    let env = garage.env();
    let site = garage.url("site");
    let (source, model) = store_with("cut-model", 33, 2_000_000);
    publish(&source, &env, &site, "cut-model").ok();

    let proxy = FaultProxy::start(&garage.addr(), ProxyFault::TruncatePacks(2));
    let local = TestStore::new();
    pull(
        &local,
        &garage.env_at(&proxy.endpoint()),
        "cut-model",
        &[&site],
        &["--timeout", "10"],
    )
    .ok();
    assert_eq!(proxy.injected(), 2, "no pack body was cut");
    assert!(cat(&local, "cut-model") == model);
    local.ok(&["verify"]);

    let proxy = FaultProxy::start(&garage.addr(), ProxyFault::TruncatePacks(u64::MAX));
    let local = TestStore::new();
    let registry = std::fs::read(local.store.join("registry.json")).ok();
    let run = pull(
        &local,
        &garage.env_at(&proxy.endpoint()),
        "cut-model",
        &[&site],
        &["--timeout", "5"],
    );
    assert!(run.elapsed < DEADLINE, "the pull took {:?}", run.elapsed);
    let line = run.error_line();
    eprintln!("every body cut: {line}");
    assert!(
        line.contains("cut-model") && line.contains("s3://cut"),
        "{line}"
    );
    assert_no_models(&local);
    assert_eq!(
        std::fs::read(local.store.join("registry.json")).ok(),
        registry,
        "registry.json changed"
    );
    local.ok(&["verify"]);
}

/// A bucket whose pack bytes arrive altered: the pull fails with one line and stores nothing
/// wrong; with a good peer after the bucket, the pull succeeds with the right bytes.
#[test]
fn altered_pack_bytes_are_refused_and_the_next_source_is_used() {
    let garage = Garage::new("flipped");
    let env = garage.env();
    let site = garage.url("site");
    let (source, model) = store_with("flip-model", 34, 2_000_000);
    publish(&source, &env, &site, "flip-model").ok();
    let proxy = FaultProxy::start(&garage.addr(), ProxyFault::FlipPacks);
    let via_proxy = garage.env_at(&proxy.endpoint());

    let local = TestStore::new();
    let registry = std::fs::read(local.store.join("registry.json")).ok();
    let run = pull(
        &local,
        &via_proxy,
        "flip-model",
        &[&site],
        &["--timeout", "5"],
    );
    assert!(run.elapsed < DEADLINE, "the pull took {:?}", run.elapsed);
    let line = run.error_line();
    eprintln!("altered bytes: {line}");
    assert!(proxy.injected() > 0, "no pack bytes were altered");
    assert!(
        line.contains("s3://flipped") && line.contains("flip-model"),
        "{line}"
    );
    assert_no_models(&local);
    assert_eq!(
        std::fs::read(local.store.join("registry.json")).ok(),
        registry,
        "registry.json changed"
    );
    local.ok(&["verify"]);

    let serve = Serve::start(&source, &[]);
    let run = pull(
        &local,
        &via_proxy,
        "flip-model",
        &[&site, &serve.url],
        &["--timeout", "5"],
    );
    let stderr = run.stderr.clone();
    run.ok();
    assert!(
        cat(&local, "flip-model") == model,
        "wrong bytes after falling back; stderr:\n{stderr}"
    );
    local.ok(&["verify"]);
}

/// Garage stopped during a slow pull: the pull fails with one line within its timeout plus
/// 30 s and the local registry is unchanged; once Garage is back the pull resumes and completes.
#[test]
fn a_bucket_gone_midway_fails_the_pull_with_one_line_and_a_rerun_completes() {
    let mut garage = Garage::new("vanishing");
    let env = garage.env();
    let site = garage.url("site");
    let (source, model) = store_with("m", 35, 24_000_000);
    let len = model.len() as u64;
    publish(&source, &env, &site, "m").ok();

    let local = TestStore::new();
    let pulling = command(
        &local,
        &env,
        &[
            "pull",
            "m",
            "--from",
            &site,
            "--limit-rate",
            "2M",
            "--timeout",
            "5",
        ],
    );
    let handle = std::thread::spawn(move || run_within(pulling, LONG));
    std::thread::sleep(Duration::from_secs(3));
    let stopped = Instant::now();
    garage.stop();
    let run = handle.join().unwrap();
    let after_stop = stopped.elapsed();
    let line = run.error_line();
    eprintln!("bucket gone after {after_stop:?}: {line}");
    assert!(
        after_stop < Duration::from_secs(5 + 30),
        "the pull failed {after_stop:?} after the bucket went away"
    );
    assert!(line.contains("s3://vanishing"), "{line}");
    assert_no_models(&local);
    local.ok(&["verify"]);

    garage.start();
    let out = pull(&local, &env, "m", &[&site], &[]).ok();
    assert!(
        need_bytes(&out) < len,
        "the rerun needs the whole model again: {out}"
    );
    assert!(cat(&local, "m") == model);
    local.ok(&["verify"]);
}

/// A lazy mount whose bucket stops: reading a region not read yet gives EIO within the timeout
/// plus 30 s instead of hanging, and the mount still lists its models.
#[test]
fn a_lazy_mount_of_a_stopped_bucket_gives_eio_not_a_hang() {
    let mut garage = Garage::new("fragile");
    let env = garage.env();
    let site = garage.url("site");
    let (source, model) = store_with("fragile", 36, 24_000_000);
    publish(&source, &env, &site, "fragile").ok();

    let local = TestStore::new();
    let mount = mount_sources(&local, &env, &[&site], &["--timeout", "3"]);
    let file = mount.join("fragile.gguf");
    let deadline = Duration::from_secs(3 + 30);
    let head = read_within(file.clone(), 0, 4096, deadline)
        .unwrap_or_else(|| panic!("reading the start hung; log:\n{}", mount.log()))
        .expect("reading the start failed");
    assert!(head[..] == model[..4096]);

    garage.stop();
    let started = Instant::now();
    let read = read_within(file, 20_000_000, 4096, deadline).unwrap_or_else(|| {
        panic!(
            "a read with the bucket stopped hung past {deadline:?}; log:\n{}",
            mount.log()
        )
    });
    let err = read.expect_err("a read with the bucket stopped succeeded");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    eprintln!("bucket stopped: EIO after {:?}", started.elapsed());

    let root = mount.path.clone();
    let names = within(Duration::from_secs(20), move || {
        std::fs::read_dir(root).map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
    })
    .unwrap_or_else(|| panic!("listing the mount hung; log:\n{}", mount.log()))
    .expect("listing the mount");
    assert!(names.contains(&"fragile.gguf".to_owned()), "{names:?}");
}

// ---------------------------------------------------------------------------------------------
// URLs are never paths
// ---------------------------------------------------------------------------------------------

/// Unsupported or misplaced URLs fail with one line each and never create a directory named
/// after them (`s3:`, `ftp:`, …) in the working directory.
#[test]
fn urls_are_never_taken_for_paths() {
    let (store, _) = store_with("m", 40, 100_000);
    let workdir = tempfile::tempdir().unwrap();
    let mountpoint = store.path("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let store_arg = store.store.to_str().unwrap();
    let mnt = mountpoint.to_str().unwrap();
    let cases: [&[&str]; 7] = [
        &["--store", store_arg, "pack", "ftp://x", "--models", "m"],
        &["--store", "s3://b/p", "ls"],
        &["--store", store_arg, "mount", "--source", "gs://b/p", mnt],
        &[
            "--store",
            store_arg,
            "pack",
            "http://127.0.0.1:1",
            "--models",
            "m",
        ],
        &["--store", store_arg, "pull", "m", "--from", "ftp://x/y"],
        &["--store", store_arg, "import", "ftp://x/y", "--models", "m"],
        &["--store", store_arg, "mount", "--source", "s3://", mnt],
    ];
    let mut problems = Vec::new();
    for args in cases {
        let mut command = Command::new(MODELFS);
        command
            .args(args)
            .current_dir(workdir.path())
            .env_remove("MODELFS_STORE")
            .env("XDG_CACHE_HOME", store.path("cache"));
        for var in AWS_CLEARED {
            command.env_remove(var);
        }
        let run = run_within(command, Duration::from_secs(30));
        let lines: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("modelfs: "))
            .collect();
        match run.status {
            None => problems.push(format!("{args:?}: still running after 30 s")),
            Some(status) if status.success() => problems.push(format!("{args:?} succeeded")),
            Some(_) if lines.len() != 1 => problems.push(format!(
                "{args:?}: expected one `modelfs: ` line, got:\n{}",
                run.stderr
            )),
            Some(_) => eprintln!("{args:?}: {}", lines[0]),
        }
        let left: Vec<_> = std::fs::read_dir(workdir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        if !left.is_empty() {
            problems.push(format!(
                "{args:?} created {left:?} in the working directory"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let beside: Vec<String> = std::fs::read_dir(store.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(':'))
        .collect();
    assert!(beside.is_empty(), "created {beside:?} next to the store");
    assert!(
        std::fs::read_dir(&mountpoint).unwrap().next().is_none(),
        "something was mounted or written at the mountpoint"
    );
}
