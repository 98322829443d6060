//! The models the scenarios store: generated inputs (a real GGUF and its fine-tune from
//! `modelfs-corpus`, a folder with a safetensors file and text files, random files) and the
//! catalog of every committed file's original bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use crate::harness::{ModelFile, Rng, Tools, model_files};

/// Original bytes by (model, version, file path as `ls --json` names it).
#[derive(Default, Clone)]
pub struct Catalog {
    originals: HashMap<(String, String, String), Arc<Vec<u8>>>,
}

impl Catalog {
    /// `modelfs add NAME INPUT` into `store`, remembering the added files' bytes.
    pub fn add(
        &mut self,
        tools: &Tools,
        store: &Path,
        name: &str,
        input: &Path,
    ) -> anyhow::Result<()> {
        let out = tools.ok(store, &["add", name, input.to_str().unwrap_or_default()])?;
        let version = out
            .split_once('@')
            .and_then(|(_, rest)| rest.split_once(':'))
            .map(|(v, _)| v.to_owned())
            .with_context(|| format!("cannot find the version in: {out}"))?;
        if input.is_dir() {
            let mut files = Vec::new();
            collect_files(input, input, &mut files)?;
            for (relative, path) in files {
                self.originals.insert(
                    (name.to_owned(), version.clone(), relative),
                    Arc::new(std::fs::read(path)?),
                );
            }
        } else {
            let file_name = input
                .file_name()
                .context("input without a file name")?
                .to_string_lossy()
                .into_owned();
            self.originals.insert(
                (name.to_owned(), version, file_name),
                Arc::new(std::fs::read(input)?),
            );
        }
        Ok(())
    }

    /// Expects `bytes` as `NAME@VERSION`'s file `path` (a model some command under test adds).
    pub fn expect(&mut self, name: &str, version: &str, path: &str, bytes: Arc<Vec<u8>>) {
        self.originals.insert(
            (name.to_owned(), version.to_owned(), path.to_owned()),
            bytes,
        );
    }

    /// Every file the store lists, with its original bytes (an unknown file is an error).
    pub fn files(&self, tools: &Tools, store: &Path) -> anyhow::Result<Vec<ModelFile>> {
        model_files(tools, store, |n, v, p| {
            self.originals
                .get(&(n.to_owned(), v.to_owned(), p.to_owned()))
                .cloned()
        })
    }

    /// Files of the store whose spec starts with `NAME@`.
    pub fn files_of(
        &self,
        tools: &Tools,
        store: &Path,
        name: &str,
    ) -> anyhow::Result<Vec<ModelFile>> {
        let prefix = format!("{name}@");
        Ok(self
            .files(tools, store)?
            .into_iter()
            .filter(|f| f.spec.starts_with(&prefix))
            .collect())
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let relative = path.strip_prefix(root)?.to_string_lossy().into_owned();
            out.push((relative, path));
        }
    }
    Ok(())
}

/// The input files every scenario draws on, generated once into `dir`.
pub struct Inputs {
    /// A llama-shaped fp16 GGUF (9 MB) and its fine-tune (~1% of tensor bytes changed).
    pub base: PathBuf,
    pub finetune: PathBuf,
    /// A folder model: an f16 safetensors file, a config and a tokenizer-like text file.
    pub folder: PathBuf,
    /// A 2 MB random file and a copy with 64 bytes changed in the middle.
    pub random: PathBuf,
    pub random_edited: PathBuf,
    pub dir: PathBuf,
}

impl Inputs {
    pub fn generate(tools: &Tools, dir: &Path, rng: &mut Rng) -> anyhow::Result<Inputs> {
        std::fs::create_dir_all(dir)?;
        let base = dir.join("base.gguf");
        let finetune = dir.join("finetune.gguf");
        tools.corpus("base", &base, 0.001)?;
        tools.corpus("finetune", &finetune, 0.001)?;
        let folder = dir.join("folder");
        std::fs::create_dir_all(&folder)?;
        std::fs::write(
            folder.join("model.safetensors"),
            safetensors_f16(rng, 512 * 1024),
        )?;
        std::fs::write(
            folder.join("config.json"),
            br#"{"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_hidden_layers":2}"#,
        )?;
        std::fs::write(folder.join("tokenizer.json"), text_like(rng, 300_000))?;
        let random = dir.join("random.bin");
        let bytes = rng.bytes(2_000_000);
        std::fs::write(&random, &bytes)?;
        let mut edited = bytes;
        edited[1_000_000..1_000_064].copy_from_slice(&rng.bytes(64));
        let random_edited = dir.join("random-edited.bin");
        std::fs::write(&random_edited, &edited)?;
        Ok(Inputs {
            base,
            finetune,
            folder,
            random,
            random_edited,
            dir: dir.to_owned(),
        })
    }

    /// A new random file of `len` bytes in the inputs folder.
    pub fn random_file(&self, rng: &mut Rng, name: &str, len: usize) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, rng.bytes(len))?;
        Ok(path)
    }
}

/// A safetensors file holding one f16 tensor of `values` small normal-ish weights.
pub fn safetensors_f16(rng: &mut Rng, values: usize) -> Vec<u8> {
    let header = format!(
        r#"{{"weight":{{"dtype":"F16","shape":[{values}],"data_offsets":[0,{}]}}}}"#,
        values * 2
    );
    let mut header = header.into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + values * 2);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for _ in 0..values {
        // |w| in about [2^-10, 2^-4]: exponent 5..=11, random mantissa and sign.
        let r = rng.next_u64();
        let sign = ((r >> 63) as u16) << 15;
        let exponent = (5 + (r >> 32) % 7) as u16;
        let mantissa = (r & 0x3FF) as u16;
        out.extend_from_slice(&(sign | (exponent << 10) | mantissa).to_le_bytes());
    }
    out
}

/// Compressible text (words from a small vocabulary), like a tokenizer file.
pub fn text_like(rng: &mut Rng, len: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "\"the\"",
        "\"model\"",
        "\"token\"",
        "\"Ġand\"",
        "\"ing\"",
        "\"##s\"",
        "\"<unk>\"",
        "\"Ġof\"",
        "\"tion\"",
        "\"Ġa\"",
        "\"er\"",
        "\"Ġto\"",
        "\"ed\"",
        "\"Ġin\"",
        "\"re\"",
        "\"Ġis\"",
    ];
    let mut out = Vec::with_capacity(len + 32);
    out.extend_from_slice(b"{\"vocab\":{");
    let mut id = 0u64;
    while out.len() < len {
        let word = WORDS[rng.below(WORDS.len() as u64) as usize];
        out.extend_from_slice(format!("{word}:{id},").as_bytes());
        id += 1;
    }
    out.truncate(len);
    out
}
