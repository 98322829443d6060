//! The mount's views for other tools, driven by the real clients: the Hugging Face hub cache
//! (`/MOUNT/.hf/hub`) through `huggingface_hub`, `safetensors`, `tokenizers` and `transformers`
//! from PyPI, and the Ollama models directory (`/MOUNT/.ollama/models`) checked against the
//! layout Ollama's Go source reads (see `the_ollama_view_is_what_ollama_reads`).
//!
//! The Python libraries come from the virtualenv `tools/test.sh` sets up and names in
//! `MODELFS_PYTHON`; without it these tests fail, saying so, rather than skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::Digest;

use crate::util::{Mount, TestStore, corpus, random_bytes};

/// The Python with huggingface_hub, tokenizers, safetensors, numpy and transformers.
fn python() -> PathBuf {
    match std::env::var_os("MODELFS_PYTHON") {
        Some(python) => PathBuf::from(python),
        None => panic!(
            "MODELFS_PYTHON is not set: run tools/test.sh, which installs huggingface_hub, \
             tokenizers, safetensors, numpy and transformers from PyPI into \
             ~/.cache/modelfs-venv and exports MODELFS_PYTHON, or export \
             MODELFS_PYTHON=~/.cache/modelfs-venv/bin/python after running it once"
        ),
    }
}

/// Runs `script` with the test Python against the hub cache view of `mount`, offline; returns
/// its stdout. `args` become `sys.argv[1:]`.
fn run_python(store: &TestStore, mount: &Mount, script: &str, args: &[&str]) -> String {
    let file = store.path("script.py");
    std::fs::write(&file, script).unwrap();
    let out = Command::new(python())
        .arg(&file)
        .args(args)
        .env("HF_HUB_CACHE", mount.join(".hf/hub"))
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", store.path("hf-home"))
        .env("TOKENIZERS_PARALLELISM", "false")
        .env_remove("HF_TOKEN")
        .env_remove("TRANSFORMERS_CACHE")
        .env_remove("HUGGINGFACE_HUB_CACHE")
        .output()
        .expect("run the test Python (MODELFS_PYTHON)");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}\nmount log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        mount.log()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A safetensors file of the `(name, dtype, shape, bytes)` tensors, written as the format says:
/// an 8-byte little-endian header length, the JSON header (padded with spaces to 8 bytes), data.
fn safetensors(tensors: &[(&str, &str, &[usize], Vec<u8>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "np"}));
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        header.insert(
            (*name).into(),
            serde_json::json!({"dtype": dtype, "shape": shape,
                "data_offsets": [data.len(), data.len() + bytes.len()]}),
        );
        data.extend_from_slice(bytes);
    }
    let mut header = serde_json::to_vec(&header).unwrap();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&data);
    out
}

/// A tiny BERT-shaped model folder as the hub serves one: weights, config, a WordLevel
/// tokenizer `tokenizers` loads, its transformers config, and a sentence-transformers
/// sub-folder. `seed` varies the weights.
fn tiny_model(dir: &Path, seed: u64) {
    let floats = |seed: u64, n: usize| -> Vec<u8> {
        random_bytes(seed, n)
            .iter()
            .flat_map(|b| (f32::from(*b) / 64.0 - 2.0).to_le_bytes())
            .collect()
    };
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    let weights = safetensors(&[
        (
            "embeddings.word_embeddings.weight",
            "F32",
            &[6, 4],
            floats(seed, 24),
        ),
        ("pooler.dense.bias", "F32", &[4], floats(seed + 1, 4)),
        (
            "ids",
            "I64",
            &[3],
            [7i64, -1, 1 << 40]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
    ]);
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
    let vocab =
        serde_json::json!({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[PAD]": 3, "hello": 4, "world": 5});
    let special: Vec<_> = ["[UNK]", "[CLS]", "[SEP]", "[PAD]"]
        .iter()
        .enumerate()
        .map(|(id, token)| {
            serde_json::json!({"id": id, "content": token, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": special,
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let tokenizer_config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "pad_token": "[PAD]",
        "cls_token": "[CLS]", "sep_token": "[SEP]", "model_max_length": 16
    });
    std::fs::write(
        dir.join("tokenizer_config.json"),
        tokenizer_config.to_string(),
    )
    .unwrap();
    let config = serde_json::json!({
        "model_type": "bert", "architectures": ["BertModel"], "vocab_size": 6,
        "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1,
        "intermediate_size": 8, "max_position_embeddings": 16, "modelfs_seed": seed
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::write(
        dir.join("1_Pooling/config.json"),
        br#"{"word_embedding_dimension": 4, "pooling_mode_mean_tokens": true}"#,
    )
    .unwrap();
}

/// Everything the libraries read, checked against the source folder `sys.argv[1]`;
/// `sys.argv[2]`: the expected `refs/main`. Prints the snapshot folder.
const LOAD_SCRIPT: &str = r#"
import os, sys
src, expected_rev = sys.argv[1], sys.argv[2]
from huggingface_hub import hf_hub_download, snapshot_download
cache = os.environ["HF_HUB_CACHE"]
folder = os.path.join(cache, "models--acme--tiny")
with open(os.path.join(folder, "refs", "main")) as f:
    rev = f.read()
assert rev == expected_rev, (rev, expected_rev)

def same(path, name):
    with open(path, "rb") as a, open(os.path.join(src, name), "rb") as b:
        assert a.read() == b.read(), name

config = hf_hub_download("acme/tiny", "config.json")
assert config == os.path.join(folder, "snapshots", rev, "config.json"), config
same(config, "config.json")
same(hf_hub_download("acme/tiny", "config.json", revision=rev), "config.json")
same(hf_hub_download("acme/tiny", "1_Pooling/config.json"), "1_Pooling/config.json")

snapshot = snapshot_download("acme/tiny")
assert snapshot == os.path.join(folder, "snapshots", rev), snapshot
def files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
assert files(snapshot) == files(src), (files(snapshot), files(src))
for name in files(src):
    same(os.path.join(snapshot, name), name)

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file
weights = hf_hub_download("acme/tiny", "model.safetensors")
mounted, original = load_file(weights), load_file(os.path.join(src, "model.safetensors"))
assert sorted(mounted) == sorted(original) == ["embeddings.word_embeddings.weight", "ids", "pooler.dense.bias"]
for name in original:
    assert mounted[name].dtype == original[name].dtype and np.array_equal(mounted[name], original[name]), name
assert mounted["ids"].tolist() == [7, -1, 1 << 40]
assert mounted["embeddings.word_embeddings.weight"].shape == (6, 4)
with safe_open(weights, framework="np") as f:
    assert f.metadata() == {"format": "np"}
    assert np.array_equal(f.get_slice("embeddings.word_embeddings.weight")[1:3], original["embeddings.word_embeddings.weight"][1:3])

from tokenizers import Tokenizer
tokenizer = Tokenizer.from_file(hf_hub_download("acme/tiny", "tokenizer.json"))
assert tokenizer.encode("hello world").ids == [4, 5]

from transformers import AutoConfig, AutoTokenizer
config = AutoConfig.from_pretrained("acme/tiny")
assert config.model_type == "bert" and config.hidden_size == 4, config
auto = AutoTokenizer.from_pretrained("acme/tiny")
assert auto("hello world")["input_ids"] == [4, 5], auto("hello world")
assert AutoConfig.from_pretrained("acme/tiny", revision=rev).hidden_size == 4
print(snapshot)
"#;

/// After a second version: `refs/main` is its revision, and the first version still resolves
/// by its revision and by its version name. `sys.argv[1:]`: v1's and v2's source folders,
/// their revisions.
const VERSIONS_SCRIPT: &str = r#"
import json, os, sys
src1, src2, rev1, rev2 = sys.argv[1:5]
from huggingface_hub import hf_hub_download, snapshot_download
from transformers import AutoConfig
def config(path):
    with open(path) as f:
        return json.load(f)
assert config(hf_hub_download("acme/tiny", "config.json")) == config(os.path.join(src2, "config.json"))
assert config(hf_hub_download("acme/tiny", "config.json", revision=rev1)) == config(os.path.join(src1, "config.json"))
assert config(hf_hub_download("acme/tiny", "config.json", revision="v1")) == config(os.path.join(src1, "config.json"))
assert snapshot_download("acme/tiny").endswith(rev2)
assert snapshot_download("acme/tiny", revision=rev1).endswith(rev1)
assert snapshot_download("acme/tiny", revision="v2").endswith(rev2)
assert AutoConfig.from_pretrained("acme/tiny").modelfs_seed == 2
assert AutoConfig.from_pretrained("acme/tiny", revision=rev1).modelfs_seed == 1
print("ok")
"#;

fn read_string(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn hugging_face_libraries_load_a_model_from_the_mount() {
    python();
    let store = TestStore::new();
    let (v1, v2) = (store.path("tiny-v1"), store.path("tiny-v2"));
    tiny_model(&v1, 1);
    tiny_model(&v2, 2);
    store.ok(&[
        "add",
        "--hf-repo",
        "acme/tiny",
        "tiny",
        v1.to_str().unwrap(),
    ]);
    assert!(
        store
            .ok(&["ls", "tiny"])
            .contains("tiny: Hugging Face repo acme/tiny")
    );
    let json: serde_json::Value = serde_json::from_str(&store.ok(&["ls", "--json"])).unwrap();
    assert_eq!(json[0]["hf_repo"], "acme/tiny");

    let mount = store.mount();
    let main = mount.join(".hf/hub/models--acme--tiny/refs/main");
    let rev1 = read_string(main.clone());
    assert!(
        rev1.len() == 40 && rev1.bytes().all(|b| b.is_ascii_hexdigit()),
        "{rev1:?}"
    );
    assert_eq!(
        read_string(mount.join(".hf/hub/models--acme--tiny/refs/v1")),
        rev1
    );
    let snapshot = run_python(&store, &mount, LOAD_SCRIPT, &[v1.to_str().unwrap(), &rev1]);
    assert_eq!(
        snapshot.trim(),
        mount
            .join(&format!(".hf/hub/models--acme--tiny/snapshots/{rev1}"))
            .to_str()
            .unwrap()
    );

    // A second version (the repo id is kept): refs/main moves to it, v1 stays reachable.
    store.ok(&["add", "tiny", v2.to_str().unwrap()]);
    store.ok(&["refresh", mount.path.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let rev2 = loop {
        let rev = read_string(main.clone());
        if rev != rev1 {
            break rev;
        }
        assert!(
            Instant::now() < deadline,
            "refs/main did not move within 15 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = run_python(
        &store,
        &mount,
        VERSIONS_SCRIPT,
        &[v1.to_str().unwrap(), v2.to_str().unwrap(), &rev1, &rev2],
    );
    assert_eq!(out.trim(), "ok");

    // The same revisions on another mount of the same store: they come from content alone.
    drop(mount);
    let again = store.mount();
    assert_eq!(
        read_string(again.join(".hf/hub/models--acme--tiny/refs/v1")),
        rev1
    );
    assert_eq!(
        read_string(again.join(".hf/hub/models--acme--tiny/refs/main")),
        rev2
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Ollama layout as Ollama's Go source (github.com/ollama/ollama) reads it:
/// - `envconfig/config.go` `Models`: `OLLAMA_MODELS` is the models directory;
/// - `manifest/paths.go` `Path`/`BlobsPath`: `manifests/` and `blobs/` must exist (it
///   `MkdirAll`s them, which a read-only mount refuses if they are missing); blob files are
///   `blobs/sha256-<64 hex>`;
/// - `types/model/name.go` `Name.Filepath`: a manifest is `manifests/registry.ollama.ai/library/
///   NAME/TAG` (default host, namespace and tag `latest`);
/// - `manifest/manifest.go` `Manifest`, `manifest/layer.go` `Layer`: JSON `schemaVersion` 2,
///   `mediaType` `application/vnd.docker.distribution.manifest.v2+json`, `config` and `layers`
///   with `mediaType`, `digest` (`sha256:<hex>`) and `size`;
/// - `server/images.go` `GetModel`: the layer `application/vnd.ollama.image.model` is the GGUF
///   file; the config blob decodes into `types/model/config.go` `ConfigV2`, which
///   `server/create.go` `createConfigLayer` writes with media type
///   `application/vnd.docker.container.image.v1+json`.
#[test]
fn the_ollama_view_is_what_ollama_reads() {
    let store = TestStore::new();
    let (base, finetune) = (store.path("base.gguf"), store.path("finetune.gguf"));
    corpus("base", &base, 0.002);
    corpus("finetune", &finetune, 0.002);
    store.ok(&["add", "llama", base.to_str().unwrap()]);
    store.ok(&["add", "llama", finetune.to_str().unwrap()]);
    store.ok(&[
        "add",
        "fake",
        store.file("fake.gguf", b"not a gguf").to_str().unwrap(),
    ]);
    store.file("folder/m.gguf", &std::fs::read(&base).unwrap());
    store.ok(&["add", "folder", store.path("folder").to_str().unwrap()]);
    let mount = store.mount();
    let models = mount.join(".ollama/models");
    let library = models.join("manifests/registry.ollama.ai/library");
    let listing = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(listing(&models), ["blobs", "manifests"]);
    assert_eq!(listing(&library), ["llama"], "only single-file GGUF models");
    assert_eq!(listing(&library.join("llama")), ["latest", "v1", "v2"]);

    let manifest = |tag: &str| -> serde_json::Value {
        let bytes = std::fs::read(library.join("llama").join(tag)).unwrap();
        assert_eq!(
            bytes.last(),
            Some(&b'\n'),
            "json.Encoder ends with a newline"
        );
        serde_json::from_slice(&bytes).unwrap()
    };
    let mut blobs = std::collections::BTreeSet::new();
    for (tag, source) in [("latest", &finetune), ("v2", &finetune), ("v1", &base)] {
        let manifest = manifest(tag);
        let bytes = std::fs::read(source).unwrap();
        assert_eq!(manifest["schemaVersion"], 2);
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0]["mediaType"], "application/vnd.ollama.image.model");
        assert_eq!(
            layers[0]["digest"],
            format!("sha256:{}", sha256_hex(&bytes))
        );
        assert_eq!(layers[0]["size"], bytes.len());
        let config = &manifest["config"];
        assert_eq!(
            config["mediaType"],
            "application/vnd.docker.container.image.v1+json"
        );
        for layer in [config, &layers[0]] {
            let digest = layer["digest"].as_str().unwrap();
            let hex = digest.strip_prefix("sha256:").unwrap();
            let blob = models.join(format!("blobs/sha256-{hex}"));
            // sha256sum through the mount: the bytes are what the name says.
            let out = Command::new("sha256sum").arg(&blob).output().unwrap();
            assert!(out.status.success(), "{}", blob.display());
            assert_eq!(&String::from_utf8_lossy(&out.stdout)[..64], hex);
            assert_eq!(
                std::fs::metadata(&blob).unwrap().len(),
                layer["size"].as_u64().unwrap()
            );
            blobs.insert(format!("sha256-{hex}"));
        }
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(models.join(format!(
                "blobs/{}",
                config["digest"].as_str().unwrap().replace(':', "-")
            )))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(config["model_format"], "gguf");
        assert_eq!(config["model_family"], "llama", "general.architecture");
        assert_eq!(config["model_families"], serde_json::json!(["llama"]));
        assert_eq!(
            (config["os"].as_str(), config["architecture"].as_str()),
            (Some("linux"), Some("amd64"))
        );
    }
    assert_eq!(
        listing(&models.join("blobs")),
        blobs.into_iter().collect::<Vec<_>>()
    );
    // The GGUF blob is the model file itself: one inode, one page cache.
    use std::os::unix::fs::MetadataExt;
    let latest = manifest("latest");
    let digest = latest["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(
        std::fs::metadata(models.join(format!("blobs/{}", digest.replace(':', "-"))))
            .unwrap()
            .ino(),
        std::fs::metadata(mount.join("llama.gguf")).unwrap().ino()
    );
}

#[test]
fn bad_repo_ids_and_tags_get_one_line() {
    let store = TestStore::new();
    let file = store.file("m.gguf", b"weights");
    let file = file.to_str().unwrap();
    for bad in [
        "acme/../tiny",
        "acme/a..b",
        "acme//tiny",
        "acme/ti ny",
        "acme tiny/x",
        "tiny",
        "acme/tiny/x",
        "acme/-tiny",
        "acme/a--b",
    ] {
        let line = store.fails(&["add", "--hf-repo", bad, "m", file]);
        assert!(line.contains("Hugging Face repo id"), "{bad:?}: {line}");
    }
    let line = store.fails(&["add", "--version", "v:1", "m", file]);
    assert!(line.contains("invalid version \"v:1\""), "{line}");
    store.ok(&["add", "--hf-repo", "acme/tiny", "m", file]);
    let line = store.fails(&["add", "--hf-repo", "acme/tiny", "other", file]);
    assert!(line.contains("is model \"m\"'s already"), "{line}");
    assert!(
        store.ok(&["ls"]).lines().count() == 2,
        "nothing else was added"
    );
}
