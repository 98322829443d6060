//! `modelfs mount --metrics ADDR`: reads and bytes by model, decoded-cache hits, verification
//! failures and EIOs by cause, the read latency histogram and the store's totals, in text that
//! `promtool check metrics` accepts and with the totals `modelfs stats --json` prints.

use std::io::Write;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};

use crate::netutil::{add, free_port, get, store_with};
use crate::util::{Mount, TestStore, chunk_places, flip_byte};

/// Mounts `store` in the background with `--metrics` on a free loopback port and `options`;
/// returns the mount and the metrics URL.
pub fn mount_with_metrics(store: &TestStore, options: &[&str]) -> (Mount, String) {
    let address = format!("127.0.0.1:{}", free_port());
    let mut all = vec!["--metrics", &address];
    all.extend_from_slice(options);
    (store.mount_with(&all), format!("http://{address}"))
}

/// The Prometheus text a scrape returns (no `Accept` header: the 0.0.4 text format).
pub fn scrape(url: &str) -> String {
    let response = get(url, "/metrics", &[]).expect("the metrics endpoint answers");
    assert_eq!(response.status, 200);
    String::from_utf8(response.body).expect("metrics are UTF-8")
}

/// The value of the sample `name` whose labels are exactly `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (sample_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let found: Vec<&str> = label_text.split(',').filter(|l| !l.is_empty()).collect();
            (sample_name == name && found == want).then(|| value.parse().ok())?
        })
}

/// Drops the kernel's cached pages of `path`, so the next read reaches the mount again.
fn drop_pages(path: &std::path::Path) {
    let file = std::fs::File::open(path).unwrap();
    nix::fcntl::posix_fadvise(
        file.as_fd(),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .unwrap();
}

#[test]
fn mount_metrics_count_reads_by_model_cache_hits_and_failures_by_cause() {
    let (store, alpha) = store_with("alpha", 71, 1_500_000);
    let (_, beta) = store_with("beta", 72, 400_000);
    add(&store, "beta", "beta.gguf", &beta);
    let (mount, url) = mount_with_metrics(&store, &[]);
    let file = mount.join("alpha.gguf");
    assert!(std::fs::read(&file).unwrap() == alpha);

    let text = scrape(&url);
    let by_model =
        |name: &str, model: &str| sample(&text, name, &[("model", model), ("version", "v1")]);
    assert_eq!(
        by_model("modelfs_mount_read_bytes_total", "alpha"),
        Some(alpha.len() as f64),
        "{text}"
    );
    assert!(by_model("modelfs_mount_reads_total", "alpha").is_some_and(|n| n >= 1.0));
    assert_eq!(by_model("modelfs_mount_read_bytes_total", "beta"), None);
    let verified = sample(&text, "modelfs_mount_chunks_verified_total", &[]).unwrap();
    assert!(verified >= 1.0, "{text}");
    let count = sample(&text, "modelfs_mount_read_seconds_count", &[]).unwrap();
    assert!(count >= 1.0, "{text}");
    assert_eq!(
        sample(
            &text,
            "modelfs_mount_read_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(count)
    );
    assert!(sample(&text, "modelfs_mount_read_seconds_sum", &[]).is_some_and(|s| s > 0.0));

    // Read again after the kernel dropped the file's pages: requests cut chunks where the
    // first read cut them, and the parts the decoded-chunk cache kept are hits.
    let hits = |text: &str| sample(text, "modelfs_mount_decoded_cache_hits_total", &[]).unwrap();
    let hits_before = hits(&text);
    drop_pages(&file);
    assert!(std::fs::read(&file).unwrap() == alpha);
    let text = scrape(&url);
    assert!(
        hits(&text) > hits_before,
        "no cache hits on a re-read:\n{text}"
    );
    assert_eq!(
        sample(
            &text,
            "modelfs_mount_read_bytes_total",
            &[("model", "alpha"), ("version", "v1")]
        ),
        Some(2.0 * alpha.len() as f64)
    );

    // A damaged chunk of beta: EIO, counted by cause.
    let places = chunk_places(&store.store, "beta");
    let (_, location, pack) = &places[3];
    flip_byte(
        pack,
        location.offset + modelfs::format::pack::RECORD_HEADER_LEN as u64 + 5,
    );
    let error = std::fs::read(mount.join("beta.gguf")).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::EIO), "{error}");
    let text = scrape(&url);
    let cause = [("cause", "hash_mismatch")];
    for name in [
        "modelfs_mount_verification_failures_total",
        "modelfs_mount_read_failures_total",
    ] {
        assert!(
            sample(&text, name, &cause).is_some_and(|n| n >= 1.0),
            "{name} did not count the damaged chunk:\n{text}"
        );
        assert_eq!(
            sample(&text, name, &[("cause", "missing_chunk")]),
            Some(0.0)
        );
    }
}

#[test]
fn mount_metrics_pass_promtool_and_carry_the_stats_json_totals() {
    let (store, model) = store_with("gamma", 73, 700_000);
    add(&store, "gamma", "gamma-v2.gguf", &model[..500_000]);
    let (mount, url) = mount_with_metrics(&store, &[]);
    assert!(std::fs::read(mount.join("gamma.gguf")).unwrap() == model[..500_000]);
    let text = scrape(&url);

    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut promtool) = promtool else {
        panic!(
            "promtool not found: install the Debian package `prometheus` (tools/test.sh does), \
             which provides it"
        );
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics failed:\n{}{}\non:\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // Prometheus itself asks for OpenMetrics, and gets it.
    let open = get(
        &url,
        "/metrics",
        &["Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"],
    )
    .unwrap();
    let open = String::from_utf8(open.body).unwrap();
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(
        open.contains("# TYPE modelfs_mount_reads counter"),
        "{open}"
    );

    let stats = store.stats();
    for key in [
        "models",
        "versions",
        "files",
        "logical_bytes",
        "chunks",
        "unique_bytes",
        "stored_bytes",
        "packs",
        "dedup_ratio",
    ] {
        let json = stats[key]
            .as_f64()
            .unwrap_or_else(|| panic!("stats --json has no number {key}: {stats}"));
        let gauge = sample(&text, &format!("modelfs_store_{key}"), &[])
            .unwrap_or_else(|| panic!("no gauge modelfs_store_{key}:\n{text}"));
        assert!(
            (json - gauge).abs() <= json.abs() * 1e-9,
            "{key}: stats --json says {json}, the gauge {gauge}"
        );
    }
    assert_eq!(stats["models"], 1);
    assert_eq!(stats["versions"], 2);
    assert!(stats["model_usage"][0]["model"] == "gamma", "{stats}");
}
