//! Publishing models into an object store: `modelfs pack s3://BUCKET/PREFIX --models a,b`.
//!
//! Owns [`publish`]. The bucket ends up holding a valid store (the files a store directory has,
//! minus the index), which any number of machines read as a source. Order of writes, so readers
//! never see a model whose bytes are not there yet:
//! 1. take the bucket's `lock` (one publisher at a time: a conditional create, read back after
//!    a moment for servers that ignore the condition; a lock left by a dead publisher on this
//!    machine is taken over, any other is reported with its holder);
//! 2. `modelfs.json` and an empty catalog if the bucket holds no store yet;
//! 3. plan as `import` does, with the bucket as the destination: only chunks no pack in the
//!    bucket holds are sent (a fine-tune whose base is published sends only its new chunks);
//! 4. the chunks, verified on their way out of the local store, into new packs staged in the
//!    per-machine cache; each sealed pack is uploaded (in parts when large) and then listed in
//!    the bucket's `catalog.json`, so a publisher killed midway finds those chunks on its rerun;
//! 5. the manifests;
//! 6. the registry, last: the commit, made only if the lock is still this publisher's. Then the
//!    lock is released.

use std::sync::Arc;

use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::format::catalog::{self, Catalog, MAX_CATALOG_LEN, PackEntry};
use crate::format::config;
use crate::format::pack::{MAX_TABLE_ENTRIES, TABLE_ENTRY_LEN, TRAILER_LEN};
use crate::format::registry::{self, MAX_REGISTRY_LEN, Registry};
use crate::peer::bucket::Bucket;
use crate::peer::files::Files;
use crate::peer::remote::Remote;
use crate::progress::Progress;
use crate::source::Source;
use crate::store::pack::{PackWriter, SealedPack};
use crate::store::paths::{CATALOG_FILE, machine_cache_dir};
use crate::store::registry::ModelSpec;
use crate::store::{InitOptions, Store, new_config, now_unix};
use crate::transfer::{Admission, ImportReport, copy_runs, plan_import, runs};

/// Size of the packs a publish writes: small enough that a rerun after a kill re-sends little.
const PUBLISH_PACK_BYTES: u64 = 64 << 20;

/// Publishes `selection` from `src` into `bucket`, reading runs of chunks with `jobs` workers.
pub fn publish(
    src: &Store,
    bucket: Arc<Bucket>,
    selection: &[ModelSpec],
    jobs: usize,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    let lock = BucketLock::take(&bucket)?;
    if !bucket.exists("modelfs.json")? {
        let options = InitOptions {
            chunking: src.config().chunking,
            pack_target_bytes: src.config().pack_target_bytes,
            compression: src.config().compression,
        };
        bucket.put("modelfs.json", config::encode(&new_config(options)))?;
        bucket.put(CATALOG_FILE, catalog::encode(&Catalog::new(0, Vec::new())))?;
        info!(bucket = bucket.base(), "created a store in the bucket");
    }
    let remote = Remote::over(bucket.clone())?;
    let plan = plan_import(src, &remote, selection, Admission::open())?;
    let mut packs = fetch_catalog(&bucket)?.packs;
    let staging = machine_cache_dir(&src.config().store_id)?.join(format!(
        "publish-{}",
        crate::id::PackId(crate::id::random_bytes())
    ));
    std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    let result = (|| {
        let mut report = ImportReport::default();
        let mut pack: Option<PackWriter> = None;
        progress.begin(plan.needed_bytes);
        copy_runs(
            src,
            &runs(&plan.needed, src.run_size()),
            jobs,
            |header, payload| {
                let writer = match pack.as_mut() {
                    Some(writer) => writer,
                    None => pack.insert(PackWriter::create(&staging)?),
                };
                writer.append(header, payload)?;
                report.chunks_copied += 1;
                report.bytes_copied += header.record_len();
                progress.advance(header.record_len());
                if writer.len() >= PUBLISH_PACK_BYTES
                    || writer.records() as u64 >= MAX_TABLE_ENTRIES
                {
                    let sealed = pack.take().expect("a pack is open").seal()?;
                    send_pack(&bucket, &staging, sealed, &mut packs)?;
                }
                Ok(())
            },
        )?;
        if let Some(writer) = pack.take().filter(|w| !w.is_empty()) {
            send_pack(&bucket, &staging, writer.seal()?, &mut packs)?;
        }
        progress.finish();
        for (id, manifest) in &plan.manifests {
            bucket.put(&format!("manifests/{}", id.to_hex()), manifest.encode())?;
        }
        // The commit: only while this publisher still holds the lock.
        lock.check()?;
        let mut registry = fetch_registry(&bucket)?;
        plan.commit_to(&mut registry)?;
        registry.generation += 1;
        registry.version = registry::needed_version(&registry);
        bucket.put(
            CATALOG_FILE,
            catalog::encode(&Catalog::new(registry.generation, packs.clone())),
        )?;
        bucket.put("registry.json", registry::encode(&registry))?;
        report.versions_added = plan.versions.len();
        Ok(report)
    })();
    progress.finish();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

/// Uploads a sealed staged pack, lists it in the bucket's catalog, and deletes the staged file.
fn send_pack(
    bucket: &Bucket,
    staging: &std::path::Path,
    sealed: SealedPack,
    packs: &mut Vec<PackEntry>,
) -> Result<()> {
    let path = crate::store::pack::pack_path(staging, &sealed.id);
    bucket.upload(&format!("packs/{}.pack", sealed.id), &path)?;
    let entries = sealed.entries.len() as u64;
    packs.push(PackEntry {
        id: sealed.id,
        bytes: sealed.bytes,
        table_offset: sealed.bytes - entries * TABLE_ENTRY_LEN as u64 - TRAILER_LEN as u64,
        entries,
    });
    // Listed at once, so a rerun after a kill finds its chunks and does not send them again.
    let generation = fetch_catalog(bucket)?.generation;
    bucket.put(
        CATALOG_FILE,
        catalog::encode(&Catalog::new(generation, packs.clone())),
    )?;
    let _ = std::fs::remove_file(&path);
    Ok(())
}

fn fetch_catalog(bucket: &Bucket) -> Result<Catalog> {
    let bytes = bucket
        .get(CATALOG_FILE, MAX_CATALOG_LEN)?
        .unwrap_or_else(|| catalog::encode(&Catalog::new(0, Vec::new())));
    catalog::decode(std::path::Path::new(&bucket.url(CATALOG_FILE)), &bytes)
}

fn fetch_registry(bucket: &Bucket) -> Result<Registry> {
    match bucket.get("registry.json", MAX_REGISTRY_LEN)? {
        Some(bytes) => crate::store::registry::decode_checked(
            std::path::Path::new(&bucket.url("registry.json")),
            &bytes,
        ),
        None => Ok(Registry::default()),
    }
}

/// The bucket's publisher lock, held while it lives.
///
/// Taken with a conditional create where the server honours it. Some servers (Garage 2.5)
/// ignore `If-None-Match` and let the last writer win, so the lock is also read back after
/// [`SETTLE`]: of publishers that wrote it at about the same time, only the last one reads its
/// own nonce, and the others stop. It is read back again before the registry is written (the
/// commit), and released only while it is still this publisher's.
struct BucketLock<'a> {
    bucket: &'a Bucket,
    nonce: String,
}

/// The lock object's name.
const LOCK: &str = "lock";
/// How long a publisher waits after writing the lock before reading it back: longer than two
/// publishers' check-then-write can be apart.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

impl<'a> BucketLock<'a> {
    /// Takes the lock, or names its holder. A lock left by a publisher of this machine that is
    /// no longer running is taken over.
    fn take(bucket: &'a Bucket) -> Result<BucketLock<'a>> {
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let nonce = crate::id::PackId(crate::id::random_bytes()).to_string();
        let me = serde_json::json!({
            "host": host,
            "pid": std::process::id(),
            "since_unix": now_unix(),
            "nonce": nonce,
        });
        let lock = BucketLock { bucket, nonce };
        if let Some(holder) = lock.holder()? {
            let pid = holder["pid"].as_u64().unwrap_or(0);
            let same_host = holder["host"].as_str() == Some(host.as_str());
            let alive = pid > 0
                && pid <= i32::MAX as u64
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok();
            if !same_host || alive {
                return Err(lock.held_by(&holder));
            }
            warn!(
                pid,
                "taking over the publish lock of a publisher that is gone"
            );
            bucket.delete(LOCK)?;
        }
        if !bucket.put_new(LOCK, me.to_string().into_bytes())? {
            let holder = lock.holder()?.unwrap_or_default();
            return Err(lock.held_by(&holder));
        }
        std::thread::sleep(SETTLE);
        lock.check()?;
        Ok(lock)
    }

    /// The lock object's content, if there is one.
    fn holder(&self) -> Result<Option<serde_json::Value>> {
        Ok(self
            .bucket
            .get(LOCK, 4096)?
            .map(|b| serde_json::from_slice(&b).unwrap_or_default()))
    }

    /// Fails unless the lock still holds this publisher's nonce.
    fn check(&self) -> Result<()> {
        match self.holder()? {
            Some(holder) if holder["nonce"].as_str() == Some(self.nonce.as_str()) => Ok(()),
            holder => Err(self.held_by(&holder.unwrap_or_default())),
        }
    }

    fn held_by(&self, holder: &serde_json::Value) -> Error {
        Error::Remote {
            url: self.bucket.url(LOCK),
            reason: format!(
                "another publisher holds the lock (host {}, pid {}, since {}); wait for it to \
                 finish, or delete {} if it is gone",
                holder["host"].as_str().unwrap_or("?"),
                holder["pid"],
                holder["since_unix"],
                self.bucket.url(LOCK)
            ),
        }
    }
}

impl Drop for BucketLock<'_> {
    fn drop(&mut self) {
        if self.check().is_err() {
            return;
        }
        if let Err(e) = self.bucket.delete(LOCK) {
            warn!(error = %e, "cannot release the publish lock; delete it by hand");
        }
    }
}
