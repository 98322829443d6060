//! A store shared over a network file system (sshfs on loopback, which caches attributes the way
//! NFS does): a machine's mount sees models another machine adds, within the documented bound or
//! at once on `modelfs refresh`, never half of one, and keeps serving while the writer works.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::{SystemMount, TestStore, random_bytes, sh};

/// An sshd on a loopback port, stopped on drop.
struct Sshd {
    pid_file: std::path::PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// Starts sshd on `port` with a fresh key in `dir`; returns it and the client key.
fn start_sshd(dir: &Path, port: u16) -> (Sshd, std::path::PathBuf) {
    let d = dir.display();
    sh(&format!(
        "mkdir -p /run/sshd && ssh-keygen -q -t ed25519 -N '' -f {d}/key && ssh-keygen -q -t ed25519 -N '' -f {d}/hostkey"
    ));
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/hostkey\nAuthorizedKeysFile {d}/key.pub\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nSubsystem sftp internal-sftp\nPidFile {d}/sshd.pid\nStrictModes no\n"
    );
    std::fs::write(dir.join("sshd_config"), config).unwrap();
    sh(&format!("/usr/sbin/sshd -f {d}/sshd_config"));
    (
        Sshd {
            pid_file: dir.join("sshd.pid"),
        },
        dir.join("key"),
    )
}

fn wait_for(path: &Path, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if path.exists() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn a_store_shared_over_sshfs_shows_new_models_and_keeps_serving() {
    let writer = TestStore::new();
    let first = random_bytes(71, 3_000_000);
    writer.ok(&[
        "add",
        "first",
        writer.file("first.gguf", &first).to_str().unwrap(),
    ]);

    let ssh_dir = writer.path("ssh");
    std::fs::create_dir(&ssh_dir).unwrap();
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let (_sshd, key) = start_sshd(&ssh_dir, port);
    let remote = writer.path("remote");
    let _sshfs = SystemMount::new(
        &remote,
        &format!(
            "sshfs -p {port} -o IdentityFile={},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null root@127.0.0.1:{} {}",
            key.display(),
            writer.dir.path().display(),
            remote.display()
        ),
    );

    // The reading machine mounts the store through sshfs, with its own cache directory.
    let mount = writer.mount_store(&remote.join("store"));
    assert!(std::fs::read(mount.join("first.gguf")).unwrap() == first);

    // Reads go on while the writer adds a model.
    let reader = {
        let path = mount.join("first.gguf");
        let expected = first.clone();
        std::thread::spawn(move || {
            for _ in 0..20 {
                assert!(
                    std::fs::read(&path).unwrap() == expected,
                    "a read failed while the writer worked"
                );
            }
        })
    };
    let second = random_bytes(72, 20_000_000);
    writer.ok(&[
        "add",
        "second",
        writer.file("second.gguf", &second).to_str().unwrap(),
    ]);
    reader.join().unwrap();
    let delay = wait_for(&mount.join("second.gguf"), Duration::from_secs(15))
        .expect("new model not seen within 15 s");
    eprintln!("sshfs: new model visible after {delay:?}");
    assert!(
        delay <= Duration::from_secs(10),
        "new model took {delay:?} to show"
    );
    assert!(std::fs::read(mount.join("second.gguf")).unwrap() == second);

    // `modelfs refresh` shows a change at once.
    writer.ok(&[
        "add",
        "third",
        writer.file("third.gguf", b"third model").to_str().unwrap(),
    ]);
    writer.ok(&["refresh", mount.path.to_str().unwrap()]);
    let delay = wait_for(&mount.join("third.gguf"), Duration::from_secs(10))
        .expect("refresh did not show the model");
    assert!(delay <= Duration::from_secs(2), "refresh took {delay:?}");
}
