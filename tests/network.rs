//! Stores over the network: `serve`, `pull` (from `serve`, from nginx serving a store directory,
//! from hostile servers, from peers found by mDNS), and mounts that read a remote store lazily.
//!
//! Everything goes through the real binary and real sockets. Every command runs with a deadline
//! (a hang is a failure); a failing command must print exactly one `modelfs: ` line that names the
//! source and the model, and must leave the local registry as it was.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::netutil::{
    Fault, Liar, NetnsPair, Nginx, Run, Serve, Timed, add, assert_no_models, cat, connect,
    free_port, get, metric_sum, models_of, need_bytes, raw_http, run_within, store_with,
};
use crate::util::{Mount, TestStore, chunk_places, kill_after, random_bytes};

/// How long any one command may take.
const DEADLINE: Duration = Duration::from_secs(45);
const MIB: u64 = 1 << 20;

/// `modelfs pull NAME --from SOURCE… EXTRA…` with the standard deadline.
fn pull(store: &TestStore, name: &str, sources: &[&str], extra: &[&str]) -> Run {
    let mut args = vec!["pull", name];
    for source in sources {
        args.extend(["--from", source]);
    }
    args.extend_from_slice(extra);
    store.within(&args, DEADLINE)
}

/// Asserts `line` names the source (by `host:port`) and the model.
fn assert_names(line: &str, addr: &str, model: &str) {
    assert!(
        line.contains(addr),
        "the error does not name the source {addr}: {line}"
    );
    assert!(
        line.contains(model),
        "the error does not name the model {model}: {line}"
    );
}

/// Bytes the server says it sent, if its metrics say so.
fn served_bytes(serve: &Serve) -> Option<u64> {
    let metrics = serve.metrics();
    ["sent", "served", "out", "written", "response"]
        .iter()
        .find_map(|word| metric_sum(&metrics, &["bytes", word]))
        .map(|v| v as u64)
}

/// The manifest id (hex) of the first file of the newest version of `model` in `store`.
fn manifest_hex(store: &Path, model: &str) -> String {
    let registry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("registry.json")).unwrap()).unwrap();
    let versions = registry["models"][model]["versions"].as_array().unwrap();
    versions.last().unwrap()["files"][0]["manifest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The largest pack file of `store`: (URL path, length).
fn largest_pack(store: &Path) -> (String, u64) {
    std::fs::read_dir(store.join("packs"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pack"))
        .map(|e| {
            (
                format!("/packs/{}", e.file_name().to_string_lossy()),
                e.metadata().unwrap().len(),
            )
        })
        .max_by_key(|(_, len)| *len)
        .expect("the store has a pack")
}

// ---------------------------------------------------------------------------------------------
// serve + pull
// ---------------------------------------------------------------------------------------------

/// A model pulled from `serve` reads back byte for byte, verifies, and a second pull needs
/// nothing.
#[test]
fn a_pulled_model_is_identical_and_a_second_pull_needs_nothing() {
    let (source, model) = store_with("tiny-llama", 1, 3_000_000);
    let serve = Serve::start(&source, &[]);
    let local = TestStore::new();

    let out = pull(&local, "tiny-llama", &[&serve.url], &[]).ok();
    let need = need_bytes(&out);
    let len = model.len() as u64;
    assert!(
        need >= len * 9 / 10 && need <= len + len / 5,
        "an empty store needs about the whole model ({len} bytes): {out}"
    );
    assert!(cat(&local, "tiny-llama") == model, "pulled bytes differ");
    local.ok(&["verify"]);
    assert_eq!(
        models_of(&local)[0]["name"],
        "tiny-llama",
        "{}",
        models_of(&local)
    );

    let again = pull(&local, "tiny-llama", &[&serve.url], &[]).ok();
    assert_eq!(need_bytes(&again), 0, "a second pull needed bytes: {again}");
    assert!(cat(&local, "tiny-llama") == model);
}

/// Pulling a fine-tune into a store that has its base moves about the changed region only.
#[test]
fn a_finetune_over_its_base_moves_only_the_changed_chunks() {
    let source = TestStore::new();
    let base = random_bytes(2, 4_000_000);
    let mut tuned = base.clone();
    let changed = 256 * 1024;
    tuned[1_500_000..1_500_000 + changed].copy_from_slice(&random_bytes(3, changed));
    add(&source, "llama", "base.gguf", &base);
    add(&source, "llama", "tuned.gguf", &tuned);
    let serve = Serve::start(&source, &[]);
    let local = TestStore::new();
    pull(&local, "llama@v1", &[&serve.url], &[]).ok();
    assert!(cat(&local, "llama@v1") == base);

    let served_before = served_bytes(&serve);
    let out = pull(&local, "llama@v2", &[&serve.url], &[]).ok();
    let need = need_bytes(&out);
    let bound = 2 * changed as u64 + MIB;
    assert!(
        need < bound && need < tuned.len() as u64 / 4,
        "needed {need} bytes for a {changed}-byte change of a {}-byte file: {out}",
        tuned.len()
    );
    if let (Some(before), Some(after)) = (served_before, served_bytes(&serve)) {
        // The pack tables are fetched too: allow for them.
        assert!(
            after - before < bound + MIB,
            "served {} bytes for a {changed}-byte change",
            after - before
        );
    }
    assert!(cat(&local, "llama@v2") == tuned);
    assert!(
        cat(&local, "llama") == tuned,
        "the newest version is the fine-tune"
    );
    local.ok(&["verify"]);
}

/// nginx serving a store directory as its root is a source; `--dry-run` only prints the need.
#[test]
fn nginx_serving_a_store_directory_is_a_source_and_dry_run_changes_nothing() {
    let (source, model) = store_with("web-model", 4, 2_000_000);
    let nginx = Nginx::serve(&source.store);
    let local = TestStore::new();
    let stored = local.stored_bytes();

    let dry = pull(&local, "web-model", &[&nginx.url()], &["--dry-run"]).ok();
    assert!(
        need_bytes(&dry) >= model.len() as u64 * 9 / 10,
        "dry run of a pull into an empty store: {dry}"
    );
    assert_no_models(&local);
    assert_eq!(local.stored_bytes(), stored, "--dry-run stored chunks");

    pull(&local, "web-model", &[&nginx.url()], &[]).ok();
    assert!(cat(&local, "web-model") == model);
    local.ok(&["verify"]);
    let log = nginx.access_log();
    assert!(
        log.contains(" 206 "),
        "no ranged reads in nginx's log:\n{log}"
    );
}

/// Bytes of the files in `store`'s pack directory, sealed or not.
fn pack_dir_bytes(store: &TestStore) -> u64 {
    std::fs::read_dir(store.store.join("packs"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A pull killed with SIGKILL midway keeps what it verified: the rerun needs and fetches only
/// the rest, and the result is identical.
#[test]
fn a_pull_killed_midway_resumes_without_fetching_chunks_twice() {
    let (source, model) = store_with("big", 5, 48_000_000);
    let len = model.len() as u64;
    let serve = Serve::start(&source, &[]);
    let local = TestStore::new();
    let url = serve.url.clone();
    let args: [&str; 8] = [
        "pull",
        "big",
        "--from",
        &url,
        "--limit-rate",
        "10M",
        "--jobs",
        "2",
    ];
    assert!(
        !kill_after(&local.store, &args, Duration::from_millis(2500)),
        "a 48 MB pull at 10 MB/s finished in 2.5 s"
    );
    assert_no_models(&local);
    // What the killed pull wrote, in sealed packs or in the pack it was filling.
    let kept = pack_dir_bytes(&local);
    assert!(kept > MIB, "nothing was written in the first 2.5 s");
    let served_first = served_bytes(&serve);

    let out = pull(&local, "big", &[&url], &[]).ok();
    let need = need_bytes(&out);
    assert!(
        need + kept <= len + 2 * MIB,
        "the rerun needs {need} bytes although {kept} of {len} were written: {out}"
    );
    assert!(cat(&local, "big") == model, "resumed pull differs");
    local.ok(&["verify"]);
    if let (Some(first), Some(total)) = (served_first, served_bytes(&serve)) {
        // The pack tables are fetched again: allow for them.
        assert!(
            total - first <= need + MIB,
            "the rerun needed {need} bytes but was sent {}",
            total - first
        );
    }
}

/// `--limit-rate` slows a pull down (a loose lower bound, not a benchmark).
#[test]
fn limit_rate_slows_a_pull() {
    let (source, model) = store_with("slow", 6, 12_000_000);
    let serve = Serve::start(&source, &[]);
    let local = TestStore::new();
    let run = pull(&local, "slow", &[&serve.url], &["--limit-rate", "4M"]);
    let elapsed = run.elapsed;
    run.ok();
    // 12 MB at 4 MB/s is 3 s; allow one second of burst.
    assert!(
        elapsed >= Duration::from_secs(2),
        "12 MB at --limit-rate 4M took only {elapsed:?}"
    );
    assert!(cat(&local, "slow") == model);
}

// ---------------------------------------------------------------------------------------------
// serve's access rules
// ---------------------------------------------------------------------------------------------

/// `serve --token-file`: requests without the bearer token get 401 and pulls without it fail
/// with one line; `pull --token-file` works.
#[test]
fn serve_token_file_requires_the_bearer_token() {
    let (source, model) = store_with("secret-model", 7, 1_000_000);
    let token = source.file("token", b"s3cret-token\nignored second line\n");
    let serve = Serve::start(&source, &["--token-file", token.to_str().unwrap()]);
    for path in ["/registry.json", "/modelfs.json", "/catalog.json"] {
        assert_eq!(get(&serve.url, path, &[]).unwrap().status, 401, "{path}");
        let wrong = get(&serve.url, path, &["Authorization: Bearer wrong"]).unwrap();
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
        let right = get(&serve.url, path, &["Authorization: Bearer s3cret-token"]).unwrap();
        assert_eq!(right.status, 200, "{path} with the token");
    }

    let local = TestStore::new();
    let line = pull(&local, "secret-model", &[&serve.url], &[]).error_line();
    assert_names(&line, &serve.addr(), "secret-model");
    assert_no_models(&local);
    let client_token = local.file("token", b"s3cret-token\n");
    pull(
        &local,
        "secret-model",
        &[&serve.url],
        &["--token-file", client_token.to_str().unwrap()],
    )
    .ok();
    assert!(cat(&local, "secret-model") == model);
}

/// `serve --models`: the registry shows only those models, other manifests are 404, other
/// chunks' bytes are zeroed, and pulling another model fails naming it.
#[test]
fn serve_models_shows_only_the_chosen_models() {
    let source = TestStore::new();
    let shown = random_bytes(20, 1_000_000);
    let hidden = random_bytes(21, 1_000_000);
    add(&source, "shown", "shown.gguf", &shown);
    add(&source, "hidden", "hidden.gguf", &hidden);
    let serve = Serve::start(&source, &["--models", "shown"]);

    let registry = get(&serve.url, "/registry.json", &[]).unwrap();
    assert_eq!(registry.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&registry.body).unwrap();
    let names: Vec<&String> = json["models"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["shown"], "{}", registry.text());
    let hidden_manifest = format!("/manifests/{}", manifest_hex(&source.store, "hidden"));
    assert_eq!(get(&serve.url, &hidden_manifest, &[]).unwrap().status, 404);
    let shown_manifest = format!("/manifests/{}", manifest_hex(&source.store, "shown"));
    assert_eq!(get(&serve.url, &shown_manifest, &[]).unwrap().status, 200);

    // The stored payload of a hidden chunk comes back as zeros; a shown one as it is.
    for (model, zeroed) in [("hidden", true), ("shown", false)] {
        let (_, location, pack) = chunk_places(&source.store, model).swap_remove(0);
        let first = location.offset + modelfs::format::pack::RECORD_HEADER_LEN as u64;
        let last = first + u64::from(location.stored_len) - 1;
        let path = format!("/packs/{}", pack.file_name().unwrap().to_string_lossy());
        let response = get(
            &serve.url,
            &path,
            &[&format!("Range: bytes={first}-{last}")],
        )
        .unwrap();
        assert_eq!(response.status, 206, "{model}: {}", response.head);
        let mut on_disk = vec![0; (last - first + 1) as usize];
        std::fs::File::open(&pack)
            .unwrap()
            .read_exact_at(&mut on_disk, first)
            .unwrap();
        if zeroed {
            assert!(
                response.body.iter().all(|&b| b == 0),
                "a hidden chunk's bytes were served"
            );
        } else {
            assert!(
                response.body == on_disk,
                "a shown chunk's bytes were altered"
            );
        }
    }

    let local = TestStore::new();
    let line = pull(&local, "hidden", &[&serve.url], &[]).error_line();
    assert_names(&line, &serve.addr(), "hidden");
    assert_no_models(&local);
    pull(&local, "shown", &[&serve.url], &[]).ok();
    assert!(cat(&local, "shown") == shown);
}

/// `serve --allow`: a client outside the allowed networks is refused.
#[test]
fn serve_allow_refuses_other_addresses() {
    let (source, _) = store_with("guarded", 22, 200_000);
    let serve = Serve::start(&source, &["--allow", "10.99.0.0/16"]);
    if let Some(response) = get(&serve.url, "/registry.json", &[]) {
        assert_eq!(response.status, 403, "{response:?}");
    }
    let local = TestStore::new();
    let line = pull(&local, "guarded", &[&serve.url], &[]).error_line();
    assert_names(&line, &serve.addr(), "guarded");
    assert_no_models(&local);

    // The same server allowing loopback serves it.
    let open = Serve::start(&source, &["--allow", "10.99.0.0/16,127.0.0.0/8"]);
    assert_eq!(get(&open.url, "/registry.json", &[]).unwrap().status, 200);
}

/// `/health` and `/metrics` answer; paths leading out of the store, and names that are not
/// store names, are 4xx and never reveal a file.
#[test]
fn serve_health_metrics_and_no_path_out_of_the_store() {
    let (source, _) = store_with("plain", 23, 200_000);
    // A file next to the store, which `/../secret.txt` would reach.
    source.file("secret.txt", b"CANARY-OUTSIDE-THE-STORE");
    let serve = Serve::start(&source, &[]);

    let health = get(&serve.url, "/health", &[]).unwrap();
    assert_eq!((health.status, health.text().trim()), (200, "ok"));
    for path in ["/modelfs.json", "/registry.json", "/catalog.json"] {
        assert_eq!(get(&serve.url, path, &[]).unwrap().status, 200, "{path}");
    }
    let metrics = serve.metrics();
    assert!(
        metric_sum(&metrics, &["requests"]).is_some_and(|n| n >= 4.0),
        "no request counter counting the requests so far:\n{metrics}"
    );

    let pack = largest_pack(&source.store).0;
    let pack_name = pack.trim_start_matches("/packs/").to_owned();
    for path in [
        "/../secret.txt",
        "/../modelfs.json",
        "/packs/../../secret.txt",
        "/packs/../../etc/passwd",
        "/packs/../../../../../../etc/passwd",
        "/manifests/../../secret.txt",
        "/manifests/notahex",
        "/manifests/../registry.json",
        "/%2e%2e/secret.txt",
        "/packs/..%2f..%2fsecret.txt",
        "/packs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/packs/%2E%2E/%2E%2E/etc/passwd",
        "//etc/passwd",
        "/packs//etc/passwd",
        "/etc/passwd",
        "/packs/notahex.pack",
        format!("/packs/{pack_name}/../../secret.txt").as_str(),
        format!("/packs/../packs/{pack_name}/../../../secret.txt").as_str(),
        "/packs/..\\..\\secret.txt",
        "/manifests/%00",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let response = raw_http(&serve.addr(), request.as_bytes(), Duration::from_secs(10));
        let Some(response) = response else {
            continue; // closed without an answer: nothing revealed
        };
        assert!(
            (400..500).contains(&response.status),
            "GET {path} answered {}",
            response.head
        );
        let body = response.text();
        assert!(
            !body.contains("CANARY") && !body.contains("root:"),
            "GET {path} revealed a file outside the store: {body}"
        );
    }
    let health = get(&serve.url, "/health", &[]).unwrap();
    assert_eq!(health.status, 200);
}

/// `serve` survives garbage, a huge header, bad ranges, a client that never reads and one that
/// never finishes its request; then eight concurrent pulls all succeed and `/health` answers.
#[test]
fn serve_survives_malformed_and_stalled_clients_then_eight_concurrent_pulls() {
    let (source, model) = store_with("sturdy", 8, 6_000_000);
    let serve = Serve::start(&source, &[]);
    let addr = serve.addr();
    let short = Duration::from_secs(5);

    // Garbage and broken requests: any answer or none, but the server stays up.
    let mut huge_header = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge_header.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge_header.extend_from_slice(b"\r\n\r\n");
    let mut many_headers = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..20_000 {
        many_headers.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
    }
    many_headers.extend_from_slice(b"\r\n");
    let requests: Vec<Vec<u8>> = vec![
        random_bytes(9, 65536),
        huge_header,
        many_headers,
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"\r\n\r\n\r\n\r\n".to_vec(),
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"POST /registry.json HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\nab"
            .to_vec(),
        b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
    ];
    for request in &requests {
        let _ = raw_http(&addr, request, short);
    }
    assert_eq!(get(&serve.url, "/health", &[]).unwrap().status, 200);

    // Bad ranges: refused, or answered consistently.
    let (pack, pack_len) = largest_pack(&source.store);
    let on_disk = std::fs::read(source.store.join(&pack[1..])).unwrap();
    for range in [
        "bytes=5-1",
        "bytes=-0",
        "bytes=0-99999999999999",
        "bytes=99999999999999-",
        "bytes=99999999999999-99999999999999",
        "bytes=18446744073709551615-18446744073709551615",
        "bytes=0-18446744073709551616",
        "bytes=abc",
        "bytes=--1",
        "bytes=0-1,5-6",
        "bytes=",
        "items=0-1",
    ] {
        let response = get(&serve.url, &pack, &[&format!("Range: {range}")])
            .unwrap_or_else(|| panic!("no answer to Range: {range}"));
        match response.status {
            206 => {
                let content_range = response.header("content-range").unwrap_or_default();
                let first: usize = content_range
                    .trim_start_matches("bytes ")
                    .split('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("bad Content-Range {content_range:?}"));
                assert_eq!(
                    response.header("content-length").unwrap(),
                    response.body.len().to_string()
                );
                assert!(first + response.body.len() <= pack_len as usize, "{range}");
                assert!(
                    response.body[..] == on_disk[first..first + response.body.len()],
                    "{range}: wrong bytes"
                );
            }
            200 => assert!(response.body == on_disk, "{range}: 200 with other bytes"),
            status => assert!(
                status == 416 || status == 400,
                "Range: {range} answered {}",
                response.head
            ),
        }
    }

    // A client that asks for a whole pack and never reads, and one that never ends its request.
    let mut never_reads = connect(&addr).unwrap();
    std::io::Write::write_all(
        &mut never_reads,
        format!(
            "GET {pack} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-{}\r\n\r\n",
            pack_len - 1
        )
        .as_bytes(),
    )
    .unwrap();
    let mut never_ends = connect(&addr).unwrap();
    std::io::Write::write_all(&mut never_ends, b"GET /registry.json HTTP/1.1\r\nHost:").unwrap();
    let idle: Vec<_> = (0..16).filter_map(|_| connect(&addr).ok()).collect();

    let stores: Vec<TestStore> = (0..8).map(|_| TestStore::new()).collect();
    let url = serve.url.as_str();
    std::thread::scope(|scope| {
        let pulls: Vec<_> = stores
            .iter()
            .map(|store| scope.spawn(move || pull(store, "sturdy", &[url], &[])))
            .collect();
        for handle in pulls {
            handle.join().unwrap().ok();
        }
    });
    for store in &stores {
        assert!(cat(store, "sturdy") == model);
    }
    assert_eq!(get(&serve.url, "/health", &[]).unwrap().status, 200);
    drop((never_reads, never_ends, idle));
    assert_eq!(get(&serve.url, "/health", &[]).unwrap().status, 200);
}

// ---------------------------------------------------------------------------------------------
// hostile peers
// ---------------------------------------------------------------------------------------------

/// A pull from a `Liar` with `fault` fails within `deadline` with one line naming it and the
/// model, and leaves the local store as it was; with an honest source after the liar the pull
/// succeeds with the right bytes.
fn hostile_source_is_refused(fault: Fault, timeout: &str, deadline: Duration) {
    let (source, model) = store_with("victim-model", 30, 2_000_000);
    let liar = Liar::start(&source.store, fault);
    let local = TestStore::new();
    let registry = std::fs::read(local.store.join("registry.json")).ok();

    let run = pull(
        &local,
        "victim-model",
        &[&liar.url()],
        &["--timeout", timeout],
    );
    assert!(
        run.elapsed < deadline,
        "{fault:?}: the pull took {:?}",
        run.elapsed
    );
    let line = run.error_line();
    eprintln!("{fault:?}: {line}");
    assert_names(&line, &liar.addr(), "victim-model");
    assert!(liar.requests() > 0, "{fault:?}: the liar was never asked");
    assert_no_models(&local);
    assert_eq!(
        std::fs::read(local.store.join("registry.json")).ok(),
        registry,
        "{fault:?}: registry.json changed"
    );
    local.ok(&["verify"]);

    let serve = Serve::start(&source, &[]);
    let run = pull(
        &local,
        "victim-model",
        &[&liar.url(), &serve.url],
        &["--timeout", timeout],
    );
    let stderr = run.stderr.clone();
    run.ok();
    assert!(
        cat(&local, "victim-model") == model,
        "{fault:?}: wrong bytes after falling back; stderr:\n{stderr}"
    );
    local.ok(&["verify"]);
}

/// The hostile server without a fault is a valid source, so the failures below are the faults'.
#[test]
fn the_hostile_server_without_a_fault_is_a_valid_source() {
    let (source, model) = store_with("victim-model", 30, 2_000_000);
    let liar = Liar::start(&source.store, Fault::Honest);
    let local = TestStore::new();
    pull(&local, "victim-model", &[&liar.url()], &["--timeout", "5"]).ok();
    assert!(cat(&local, "victim-model") == model);
    local.ok(&["verify"]);
}

#[test]
fn a_source_flipping_pack_bytes_is_refused() {
    hostile_source_is_refused(Fault::FlipPackBytes, "10", Duration::from_secs(40));
}

#[test]
fn a_source_truncating_bodies_is_refused() {
    hostile_source_is_refused(Fault::TruncateBody, "10", Duration::from_secs(40));
}

#[test]
fn a_source_lying_about_content_length_is_refused() {
    hostile_source_is_refused(Fault::LyingLength, "5", Duration::from_secs(40));
}

#[test]
fn a_source_with_a_huge_registry_is_refused() {
    hostile_source_is_refused(Fault::HugeRegistry, "5", Duration::from_secs(40));
}

#[test]
fn a_slowloris_source_times_out() {
    hostile_source_is_refused(Fault::Slowloris, "3", Duration::from_secs(15));
}

#[test]
fn a_source_vanishing_midway_is_refused() {
    hostile_source_is_refused(Fault::VanishAfter(512 * 1024), "5", Duration::from_secs(40));
}

#[test]
fn a_source_with_a_bad_manifest_is_refused() {
    hostile_source_is_refused(Fault::BadManifest, "10", Duration::from_secs(40));
}

// ---------------------------------------------------------------------------------------------
// lazy mounts of a remote store
// ---------------------------------------------------------------------------------------------

/// Mounts `store` (daemon mode) with the remote `url` behind it and `extra` flags.
fn mount_remote(store: &TestStore, url: &str, extra: &[&str]) -> Mount {
    let n = crate::netutil::unique();
    let (mountpoint, log) = (
        store.path(&format!("mnt{n}")),
        store.path(&format!("mount{n}.log")),
    );
    std::fs::create_dir(&mountpoint).unwrap();
    let mut args = vec!["mount", "--daemon", "--log", log.to_str().unwrap()];
    args.extend(["--source", url]);
    args.extend_from_slice(extra);
    args.push(mountpoint.to_str().unwrap());
    store.ok_within(&args, DEADLINE);
    Mount {
        path: mountpoint,
        log,
    }
}

/// Reads `len` bytes at `offset` of `path` in a thread; `None` if it took longer than
/// `deadline`.
fn read_within(
    path: PathBuf,
    offset: u64,
    len: usize,
    deadline: Duration,
) -> Option<std::io::Result<Vec<u8>>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = std::fs::File::open(&path).and_then(|file| {
            let mut buf = vec![0; len];
            file.read_exact_at(&mut buf, offset).map(|()| buf)
        });
        let _ = tx.send(result);
    });
    rx.recv_timeout(deadline).ok()
}

/// `mount --metrics ADDR` serves Prometheus counters: the reads and bytes a reader got, and the
/// requests and bytes each network source was asked for.
#[test]
fn a_mount_serves_its_reads_and_source_traffic_as_metrics() {
    let (source, model) = store_with("metered", 12, 2_000_000);
    let serve = Serve::start(&source, &[]);
    let local = TestStore::new();
    let address = format!("127.0.0.1:{}", free_port());
    let mount = mount_remote(&local, &serve.url, &["--metrics", &address]);
    assert!(std::fs::read(mount.join("metered.gguf")).unwrap() == model);
    let metrics = get(&format!("http://{address}"), "/metrics", &[]).expect("metrics answer");
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    let read = metric_sum(&text, &["modelfs_mount_read_bytes_total"]).unwrap_or(0.0);
    assert!(read >= model.len() as f64, "read bytes {read} in:\n{text}");
    let received = metric_sum(&text, &["modelfs_source_received_bytes_total"]).unwrap_or(0.0);
    assert!(
        text.contains(&format!("source=\"{}\"", serve.url)),
        "{text}"
    );
    assert!(
        received >= model.len() as f64 * 0.5,
        "source bytes {received} in:\n{text}"
    );
    assert!(metric_sum(&text, &["modelfs_source_requests_total"]).unwrap_or(0.0) >= 2.0);
    assert_eq!(
        metric_sum(&text, &["modelfs_mount_read_failures_total"]),
        Some(0.0)
    );
}

/// A mount with `--source http://…` reads a remote model lazily; with `--fill` the local store
/// keeps the chunks it read, which stay valid after the source is gone.
#[test]
fn a_lazy_mount_reads_a_remote_model_and_fill_keeps_its_chunks() {
    let (source, model) = store_with("remote-model", 11, 3_000_000);
    let mut serve = Serve::start(&source, &[]);
    let local = TestStore::new();
    let stored = local.stored_bytes();
    {
        let mount = mount_remote(&local, &serve.url, &[]);
        let read = std::fs::read(mount.join("remote-model.gguf"));
        assert!(
            read.as_ref().is_ok_and(|bytes| *bytes == model),
            "read through the mount: {:?}; log:\n{}",
            read.map(|b| b.len()),
            mount.log()
        );
    }
    assert_eq!(
        local.stored_bytes(),
        stored,
        "without --fill nothing is kept"
    );

    {
        let mount = mount_remote(&local, &serve.url, &["--fill"]);
        assert!(std::fs::read(mount.join("remote-model.gguf")).unwrap() == model);
    }
    // The mount process seals the copied chunks as it exits, a moment after the unmount.
    let deadline = Instant::now() + Duration::from_secs(15);
    while local.stored_bytes() < model.len() as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        local.stored_bytes() >= model.len() as u64,
        "--fill kept {} bytes of a {}-byte model",
        local.stored_bytes(),
        model.len()
    );
    // The filled chunks are the model's: pulling it needs no chunk bytes.
    let out = pull(&local, "remote-model", &[&serve.url], &[]).ok();
    assert_eq!(
        need_bytes(&out),
        0,
        "the filled chunks were not used: {out}"
    );
    serve.stop();
    assert!(cat(&local, "remote-model") == model);
    local.ok(&["verify"]);
}

/// When the source stops answering (frozen) or dies, reading a region not read yet fails with
/// EIO within the source timeout plus a margin instead of hanging; with `--fill`, what was read
/// stays readable from the local store.
#[test]
fn a_lazy_mount_of_a_dead_source_gives_eio_not_a_hang() {
    let (source, model) = store_with("fragile", 12, 16_000_000);
    let mut serve = Serve::start(&source, &[]);
    let local = TestStore::new();
    let mount = mount_remote(&local, &serve.url, &["--fill", "--source-timeout", "3"]);
    let file = mount.join("fragile.gguf");
    let deadline = Duration::from_secs(3 + 10);

    let head = read_within(file.clone(), 0, 4096, deadline)
        .expect("reading the start hung")
        .expect("reading the start failed");
    assert!(head[..] == model[..4096]);
    // The mount seals copied chunks at its next registry check (every 2 s).
    std::thread::sleep(Duration::from_secs(3));

    // Frozen: the kernel still accepts connections, nothing answers.
    serve.pause();
    let started = Instant::now();
    let frozen = read_within(file.clone(), 8_000_000, 4096, deadline);
    let frozen = frozen.unwrap_or_else(|| {
        panic!(
            "a read with a frozen source hung past {deadline:?}; log:\n{}",
            mount.log()
        )
    });
    let err = frozen.expect_err("a read with a frozen source succeeded");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    eprintln!("frozen source: EIO after {:?}", started.elapsed());

    // Dead: connections are refused.
    serve.kill();
    let dead = read_within(file.clone(), 15_000_000, 4096, deadline)
        .unwrap_or_else(|| panic!("a read with a dead source hung; log:\n{}", mount.log()));
    let err = dead.expect_err("a read with a dead source succeeded");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");

    let again = read_within(file, 0, 4096, deadline)
        .expect("re-reading the start hung")
        .expect("re-reading what was read failed");
    assert!(again[..] == model[..4096]);
}

// ---------------------------------------------------------------------------------------------
// mDNS
// ---------------------------------------------------------------------------------------------

/// A server in one network namespace is found by `peers` in another over mDNS, with its
/// models, and `pull --from auto` fetches from it over the veth link.
#[test]
fn peers_are_found_by_mdns_across_namespaces_and_pull_from_auto_works() {
    let pair = match NetnsPair::new() {
        Ok(pair) => pair,
        Err(why) => {
            eprintln!("skipped: network namespaces are not available here: {why}");
            return;
        }
    };
    let (source, model) = store_with("mdns-model", 13, 2_000_000);
    let local = TestStore::new();
    let listen = format!("{}:0", pair.ip_a);
    let serve = Serve::launch(
        pair.modelfs(&pair.a, &source, &["serve", "--listen", &listen]),
        source.path("serve-netns.log"),
    );
    assert!(
        serve.url.starts_with(&format!("http://{}:", pair.ip_a)),
        "{}",
        serve.url
    );

    let peers = run_within(
        pair.modelfs(&pair.b, &local, &["peers", "--json", "--wait", "4"]),
        DEADLINE,
    )
    .ok();
    let peers: serde_json::Value = serde_json::from_str(&peers)
        .unwrap_or_else(|e| panic!("peers --json is not JSON ({e}): {peers}"));
    let found = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["url"].as_str().map(|u| u.trim_end_matches('/')) == Some(serve.url.as_str()))
        .unwrap_or_else(|| panic!("{} not among the peers: {peers}", serve.url));
    assert!(
        found["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "mdns-model"),
        "{found}"
    );
    assert!(
        found["store_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{found}"
    );
    assert!(found["generation"].as_u64().is_some(), "{found}");

    let (rx_before, _) = pair.counters(&pair.b);
    let out = run_within(
        pair.modelfs(&pair.b, &local, &["pull", "mdns-model", "--from", "auto"]),
        DEADLINE,
    )
    .ok();
    assert!(need_bytes(&out) > 0, "{out}");
    assert!(cat(&local, "mdns-model") == model);
    let (rx_after, _) = pair.counters(&pair.b);
    assert!(
        rx_after - rx_before >= model.len() as u64,
        "only {} bytes came over the veth link",
        rx_after - rx_before
    );
    drop(serve);
}
