//! Model-aware chunking and compression on generated model families: tensor-aligned chunks,
//! dedup across versions, quantizations and containers, `diff`, and per-model usage.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use modelfs::modelfile::detect;
use modelfs::{Access, Store};

use crate::util::{CORPUS, TestStore};

/// Writes the model family at `scale` into `dir`; returns the bytes of tensors the fine-tune changed.
fn family(dir: &Path, scale: f64) -> u64 {
    let out = Command::new(CORPUS)
        .arg("family")
        .arg(dir)
        .args(["--scale", &scale.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().find(|l| l.contains("finetune.gguf")).unwrap();
    line.split(", ")
        .find_map(|part| part.strip_suffix(" changed)"))
        .unwrap()
        .parse()
        .unwrap()
}

fn json(store: &TestStore, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&store.ok(args)).unwrap()
}

#[test]
fn every_tensor_starts_and_ends_on_a_chunk_boundary() {
    let store = TestStore::new();
    let corpus = store.path("corpus");
    family(&corpus, 0.01);
    store.ok(&["add", "base", corpus.join("base.gguf").to_str().unwrap()]);
    store.ok(&["add", "q8", corpus.join("base.Q8_0.gguf").to_str().unwrap()]);
    store.ok(&[
        "add",
        "st",
        corpus.join("base-safetensors").to_str().unwrap(),
    ]);
    let opened = Store::open(&store.store, Access::Read).unwrap();
    let registry = opened.registry().unwrap();
    let mut checked = 0;
    for (model, entry) in &registry.models {
        let source_dir = match model.as_str() {
            "st" => corpus.join("base-safetensors"),
            _ => corpus.clone(),
        };
        for file in &entry.versions[0].files {
            let source = match model.as_str() {
                "base" => corpus.join("base.gguf"),
                "q8" => corpus.join("base.Q8_0.gguf"),
                _ => source_dir.join(&file.path),
            };
            let bytes = std::fs::read(&source).unwrap();
            let Some(layout) = detect(&bytes) else {
                continue;
            };
            let manifest = opened.manifest(&file.manifest).unwrap();
            let cuts: HashSet<u64> = manifest
                .chunks
                .iter()
                .flat_map(|c| [c.offset, c.end()])
                .collect();
            assert!(
                cuts.contains(&layout.header.end),
                "{}: header end",
                file.path
            );
            for tensor in &layout.tensors {
                assert!(
                    cuts.contains(&tensor.range.start),
                    "{} {}: start",
                    file.path,
                    tensor.name
                );
                assert!(
                    cuts.contains(&tensor.range.end),
                    "{} {}: end",
                    file.path,
                    tensor.name
                );
            }
            checked += layout.tensors.len();
        }
    }
    assert!(checked >= 3 * 75, "only {checked} tensors checked");
}

#[test]
fn the_family_dedups_across_versions_quantizations_and_containers() {
    let store = TestStore::uninitialised();
    store.ok(&["init"]);
    let corpus = store.path("corpus");
    let changed = family(&corpus, 0.02);
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();

    store.ok(&["add", "base", corpus.join("base.gguf").to_str().unwrap()]);
    let base = store.stored_bytes();
    let base_size = size(&corpus.join("base.gguf"));
    assert!(
        base * 100 <= base_size * 87,
        "fp16 base stored at {base} of {base_size}"
    );

    let again = store.ok(&["add", "base", corpus.join("base.gguf").to_str().unwrap()]);
    assert!(
        again.contains("new: 0 B"),
        "re-adding stored bytes: {again}"
    );

    store.ok(&[
        "add",
        "finetune",
        corpus.join("finetune.gguf").to_str().unwrap(),
    ]);
    let finetune_new =
        json(&store, &["ls", "finetune", "--json", "--long"])[0]["usage"]["unique_bytes"]
            .as_u64()
            .unwrap();
    assert!(
        finetune_new <= changed * 102 / 100 + (1 << 20),
        "fine-tune added {finetune_new} for {changed} changed"
    );
    assert!(
        finetune_new >= changed,
        "fine-tune added {finetune_new}, less than the {changed} changed bytes"
    );

    let before = store.stored_bytes();
    store.ok(&[
        "add",
        "st",
        corpus.join("base-safetensors").to_str().unwrap(),
    ]);
    let st_size: u64 = std::fs::read_dir(corpus.join("base-safetensors"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let st_added = store.stored_bytes() - before;
    assert!(
        st_added * 1000 <= st_size * 5,
        "safetensors copy added {st_added} of {st_size}"
    );
    store.ok(&["verify"]);
}

#[test]
fn diff_lists_changed_tensors_and_the_transfer_size() {
    let store = TestStore::uninitialised();
    store.ok(&["init"]);
    let corpus = store.path("corpus");
    let changed = family(&corpus, 0.01);
    store.ok(&["add", "llama", corpus.join("base.gguf").to_str().unwrap()]);
    store.ok(&[
        "add",
        "llama",
        corpus.join("finetune.gguf").to_str().unwrap(),
    ]);
    store.ok(&["add", "hf", corpus.join("hf").to_str().unwrap()]);

    let report = json(&store, &["diff", "llama@v1", "llama@v2", "--json"]);
    let tensors = report["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 8, "every tenth tensor changed: {tensors:?}");
    assert!(tensors.iter().all(|t| t["change"] == "changed"));
    let changed_sum: u64 = tensors.iter().map(|t| t["bytes_b"].as_u64().unwrap()).sum();
    assert_eq!(changed_sum, changed);
    let transfer = report["transfer_bytes"].as_u64().unwrap();
    assert!(
        transfer >= changed && transfer <= changed + 100_000,
        "transfer {transfer} for {changed} changed"
    );

    // The same weights in another container and naming scheme: nothing differs but names.
    let report = json(&store, &["diff", "llama@v1", "hf", "--json"]);
    let tensors = report["tensors"].as_array().unwrap();
    assert!(
        tensors.iter().all(|t| t["change"] == "renamed"),
        "{tensors:?}"
    );
    assert_eq!(tensors.len(), 75);
    let text = store.ok(&["diff", "llama@v1", "llama"]);
    assert!(text.contains("changed blk.2.attn_v.weight"), "{text}");
}

#[test]
fn malformed_model_headers_fall_back_to_plain_chunking() {
    let store = TestStore::new();
    let corpus = store.path("corpus");
    family(&corpus, 0.005);
    let mut bytes = std::fs::read(corpus.join("base.gguf")).unwrap();
    // A tensor count far beyond what the file holds.
    bytes[8..16].copy_from_slice(&1_000_000u64.to_le_bytes());
    let lying = store.file("lying.gguf", &bytes);
    store.ok(&["add", "lying", lying.to_str().unwrap()]);
    assert!(store.run(&["cat", "lying"]).stdout == bytes);
    let mut st =
        std::fs::read(corpus.join("base-safetensors/model-00001-of-00002.safetensors")).unwrap();
    st[8] = b'[';
    let broken = store.file("broken.safetensors", &st);
    store.ok(&["add", "broken", broken.to_str().unwrap()]);
    assert!(store.run(&["cat", "broken"]).stdout == st);
    store.ok(&["verify"]);
}
