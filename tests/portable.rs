//! Stores on removable media: `pack` onto exFAT and FAT images (through their FUSE drivers, as
//! this kernel has no vfat driver), then use the stick in place, read-write and read-only.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::{SystemMount, TestStore, random_bytes, sh};

/// A loop device over an image file, detached on drop (after the file system on it).
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&self.0)
            .status();
    }
}

/// Unmounts a FUSE file system once nothing holds it any more: the modelfs daemon that served
/// from it exits a moment after its own unmount.
fn unmount_when_free(mountpoint: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while nix::mount::umount(mountpoint).is_err() {
        assert!(
            Instant::now() < deadline,
            "{} stayed busy",
            mountpoint.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Packs a model onto the stick mounted at `stick`, then mounts it from there with the copied
/// binary and `mount.sh`, and checks every byte.
fn pack_and_use(store: &TestStore, stick: &Path, model: &[u8]) -> PathBuf {
    let dest = stick.join("models");
    store.ok(&[
        "pack",
        dest.to_str().unwrap(),
        "--models",
        "m",
        "--with-binary",
    ]);
    let binary = dest.join("modelfs");
    let verify = sh(&format!(
        "{} --store {} verify",
        binary.display(),
        dest.display()
    ));
    assert!(verify.contains("all good"), "{verify}");
    let mountpoint = store.path(&format!(
        "mnt-{}",
        stick.file_name().unwrap().to_string_lossy()
    ));
    sh(&format!(
        "XDG_CACHE_HOME={} sh {}/mount.sh {}",
        store.path("cache").display(),
        dest.display(),
        mountpoint.display()
    ));
    let read = std::fs::read(mountpoint.join("m.gguf"));
    sh(&format!(
        "{} umount {}",
        binary.display(),
        mountpoint.display()
    ));
    assert!(read.unwrap() == model, "bytes read from the stick differ");
    dest
}

#[test]
fn a_store_on_exfat_and_fat_sticks_is_packed_and_used_in_place() {
    let store = TestStore::new();
    let model = random_bytes(61, 4_000_000);
    store.ok(&["add", "m", store.file("m.gguf", &model).to_str().unwrap()]);

    // exFAT through exfat-fuse on a loop device.
    let image = store.path("exfat.img");
    sh(&format!("truncate -s 64M {}", image.display()));
    let device = Loop(
        sh(&format!("losetup -f --show {}", image.display()))
            .trim()
            .to_owned(),
    );
    sh(&format!("mkfs.exfat {} >/dev/null", device.0));
    let stick = store.path("exfat");
    let mounted = SystemMount::new(
        &stick,
        &format!("mount.exfat-fuse {} {}", device.0, stick.display()),
    );
    pack_and_use(&store, &stick, &model);
    unmount_when_free(&stick);
    drop(mounted);
    // The same stick read-only: it mounts and serves, and nothing is written to it.
    let readonly = SystemMount::new(
        &stick,
        &format!("mount.exfat-fuse -o ro {} {}", device.0, stick.display()),
    );
    let dest = stick.join("models");
    let ro_store = TestStore {
        dir: tempfile::tempdir().unwrap(),
        store: dest.clone(),
    };
    let mount = store.mount_store(&dest);
    assert!(std::fs::read(mount.join("m.gguf")).unwrap() == model);
    ro_store.ok(&["verify"]);
    drop(mount);
    unmount_when_free(&stick);
    drop(readonly);

    // FAT32 through fusefat (read-write mode).
    let image = store.path("fat.img");
    sh(&format!(
        "truncate -s 64M {} && mkfs.vfat -F 32 {} >/dev/null",
        image.display(),
        image.display()
    ));
    let stick = store.path("fat");
    let mounted = SystemMount::new(
        &stick,
        &format!(
            "fusefat -o rw+ {} {} >/dev/null 2>&1",
            image.display(),
            stick.display()
        ),
    );
    pack_and_use(&store, &stick, &model);
    unmount_when_free(&stick);
    drop(mounted);
}

#[test]
fn a_store_owned_by_another_user_is_read_without_write_access() {
    use std::os::unix::fs::PermissionsExt;
    let store = TestStore::new();
    let model = random_bytes(62, 1_000_000);
    store.ok(&["add", "m", store.file("m.gguf", &model).to_str().unwrap()]);
    std::fs::set_permissions(store.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // `nobody` may read the root-owned store but write nothing in it.
    let cache = store.path("nobody-cache");
    std::fs::create_dir(&cache).unwrap();
    sh(&format!("chown nobody {}", cache.display()));
    // A copy of the binary `nobody` can execute (the build directory may be private to root).
    let binary = store.path("modelfs");
    std::fs::copy(crate::util::MODELFS, &binary).unwrap();
    let out = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "env"])
        .arg(format!("XDG_CACHE_HOME={}", cache.display()))
        .arg(&binary)
        .arg("--store")
        .arg(&store.store)
        .args(["cat", "m"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == model);
}
