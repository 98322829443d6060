//! The FUSE mount read through the kernel: layout, attributes, ordinary tools, mmap, read-only-ness.

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use crate::util::{TestStore, corpus, random_bytes, sh};

#[test]
fn models_versions_and_folders_read_back_through_the_mount() {
    let store = TestStore::new();
    let base = store.path("base.gguf");
    let finetune = store.path("finetune.gguf");
    corpus("base", &base, 0.002);
    corpus("finetune", &finetune, 0.002);
    store.ok(&["add", "llama", base.to_str().unwrap()]);
    store.ok(&["add", "llama", finetune.to_str().unwrap()]);
    store.file("hf/config.json", b"{}");
    store.file("hf/onnx/model.onnx", &random_bytes(9, 200_000));
    store.ok(&["add", "minilm", store.path("hf").to_str().unwrap()]);

    let mount = store.mount();
    let read = |p: &str| std::fs::read(mount.join(p)).unwrap();
    assert!(
        read("llama.gguf") == std::fs::read(&finetune).unwrap(),
        "bare name = newest version"
    );
    assert!(read(".versions/llama/v1/llama.gguf") == std::fs::read(&base).unwrap());
    assert!(read(".versions/llama/v2/llama.gguf") == std::fs::read(&finetune).unwrap());
    assert!(read("minilm/onnx/model.onnx") == random_bytes(9, 200_000));
    assert!(read(".versions/minilm/v1/config.json") == b"{}");

    let mut root: Vec<_> = std::fs::read_dir(&mount.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    root.sort();
    assert_eq!(
        root,
        [".hf", ".ollama", ".versions", "llama.gguf", "minilm"]
    );

    // Attributes: read-only modes, real sizes and times, one inode for both paths of the newest file.
    let file = std::fs::metadata(mount.join("llama.gguf")).unwrap();
    assert_eq!(file.permissions().mode() & 0o7777, 0o444);
    assert_eq!(file.len(), std::fs::metadata(&finetune).unwrap().len());
    assert_eq!(file.nlink(), 2);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - file.mtime()).abs() < 600,
        "mtime is when the version was added"
    );
    assert_eq!(
        file.ino(),
        std::fs::metadata(mount.join(".versions/llama/v2/llama.gguf"))
            .unwrap()
            .ino()
    );
    assert_ne!(
        file.ino(),
        std::fs::metadata(mount.join(".versions/llama/v1/llama.gguf"))
            .unwrap()
            .ino()
    );
    let dir = std::fs::metadata(mount.join("minilm")).unwrap();
    assert!(dir.is_dir());
    assert_eq!(dir.permissions().mode() & 0o7777, 0o555);
    assert_eq!(
        std::fs::metadata(mount.join("llama.gguf")).unwrap().ino(),
        file.ino(),
        "stable inode"
    );

    // Ordinary tools work on the mount.
    let m = mount.path.display();
    let listing = sh(&format!("ls -l {m}"));
    assert!(
        listing.contains("-r--r--r--") && listing.contains("llama.gguf"),
        "{listing}"
    );
    let found = sh(&format!(
        "cd {m} && find . -path ./.hf -prune -o -path ./.ollama -prune -o -type f -print | sort"
    ));
    assert_eq!(found.lines().count(), 7, "{found}");
    let expected = sh(&format!("sha256sum < {}", finetune.display()));
    assert_eq!(sh(&format!("sha256sum < {m}/llama.gguf")), expected);
    assert_eq!(sh(&format!("cat {m}/llama.gguf | sha256sum")), expected);
    let copy = store.path("copy.gguf");
    sh(&format!(
        "cp {m}/llama.gguf {} && dd if={m}/llama.gguf of=/dev/null bs=1M status=none",
        copy.display()
    ));
    assert!(std::fs::read(&copy).unwrap() == std::fs::read(&finetune).unwrap());
    assert!(sh(&format!("stat -c %s {m}/llama.gguf")).trim() == file.len().to_string());
    let json: serde_json::Value =
        serde_json::from_str(&store.ok(&["ls", "llama", "--json"])).unwrap();
    assert_eq!(
        json[0]["versions"][1]["files"][0]["sha256"]
            .as_str()
            .unwrap(),
        &expected[..64]
    );
}

#[test]
fn mmap_reads_match_in_order_and_scattered() {
    let store = TestStore::new();
    let bytes = random_bytes(21, 3_000_000);
    store.ok(&[
        "add",
        "m",
        store.file("m.safetensors", &bytes).to_str().unwrap(),
    ]);
    let mount = store.mount();
    let file = std::fs::File::open(mount.join("m.safetensors")).unwrap();
    // SAFETY: the mapped file is read-only and its content never changes.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    assert_eq!(map.len(), bytes.len());
    let pages: Vec<usize> = (0..bytes.len() / 4096)
        .map(|i| (i * 7919) % (bytes.len() / 4096))
        .collect();
    for page in pages {
        let at = page * 4096;
        assert_eq!(
            map[at..at + 64],
            bytes[at..at + 64],
            "scattered page {page}"
        );
    }
    assert!(map[..] == bytes[..], "in-order read of the whole map");
}

#[test]
fn writes_are_refused_with_erofs() {
    let store = TestStore::new();
    store.ok(&[
        "add",
        "m",
        store.file("m.gguf", b"weights").to_str().unwrap(),
    ]);
    let mount = store.mount();
    let target = mount.join("m.gguf");
    let erofs = |result: std::io::Result<()>| {
        let err = result.expect_err("write succeeded on a read-only mount");
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    };
    erofs(
        std::fs::OpenOptions::new()
            .write(true)
            .open(&target)
            .map(drop),
    );
    erofs(std::fs::write(mount.join("new.gguf"), b"x"));
    erofs(std::fs::rename(&target, mount.join("renamed.gguf")));
    erofs(std::fs::remove_file(&target));
    erofs(std::fs::create_dir(mount.join("dir")));
    assert_eq!(std::fs::read(&target).unwrap(), b"weights");
    assert_eq!(
        std::fs::metadata(mount.join("nope")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn mountpoints_must_exist_be_directories_and_be_free() {
    let store = TestStore::new();
    let missing = store.path("no-such-dir");
    assert!(
        store
            .fails(&["mount", missing.to_str().unwrap()])
            .contains("does not exist")
    );
    let file = store.file("plain-file", b"");
    assert!(
        store
            .fails(&["mount", file.to_str().unwrap()])
            .contains("is not a directory")
    );
    let mount = store.mount();
    let line = store.fails(&["mount", "--daemon", mount.path.to_str().unwrap()]);
    assert!(line.contains("already has a file system mounted"), "{line}");
    let uninitialised = TestStore::uninitialised();
    std::fs::create_dir(uninitialised.path("mnt")).unwrap();
    let line = uninitialised.fails(&[
        "mount",
        "--daemon",
        uninitialised.path("mnt").to_str().unwrap(),
    ]);
    assert!(line.contains("no modelfs store at"), "{line}");
    assert!(
        store
            .fails(&["umount", missing.to_str().unwrap()])
            .contains("nothing is mounted")
    );
}

#[test]
fn models_added_while_mounted_appear_and_umount_works() {
    let store = TestStore::new();
    store.ok(&[
        "add",
        "first",
        store.file("first.gguf", b"one").to_str().unwrap(),
    ]);
    let mount = store.mount();
    assert!(!mount.join("second.gguf").exists());
    store.ok(&[
        "add",
        "second",
        store
            .file("second.gguf", &random_bytes(4, 100_000))
            .to_str()
            .unwrap(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !mount.join("second.gguf").exists() {
        assert!(
            Instant::now() < deadline,
            "new model not visible within 15 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(std::fs::read(mount.join("second.gguf")).unwrap() == random_bytes(4, 100_000));
    store.ok(&["umount", mount.path.to_str().unwrap()]);
    assert!(!mount.join("first.gguf").exists(), "unmounted");
}

#[test]
fn a_foreground_mount_unmounts_cleanly_on_sigterm_and_sigint() {
    use std::process::{Command, Stdio};
    let store = TestStore::new();
    store.ok(&["add", "m", store.file("m.gguf", b"bytes").to_str().unwrap()]);
    for signal in [nix::sys::signal::SIGTERM, nix::sys::signal::SIGINT] {
        let mountpoint = tempfile::tempdir_in(store.dir.path()).unwrap();
        let mut child = Command::new(crate::util::MODELFS)
            .arg("--store")
            .arg(&store.store)
            .arg("mount")
            .arg(mountpoint.path())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !mountpoint.path().join("m.gguf").exists() {
            assert!(
                Instant::now() < deadline,
                "foreground mount never became ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            std::fs::read(mountpoint.path().join("m.gguf")).unwrap(),
            b"bytes"
        );
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        assert!(
            child.wait().unwrap().success(),
            "{signal} should end the mount with success"
        );
        assert!(
            !mountpoint.path().join("m.gguf").exists(),
            "still mounted after {signal}"
        );
    }
}
