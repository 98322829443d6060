//! The shape and weights of a generated model.

use half::f16;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// IEEE half precision (GGUF type 1).
    F16,
    /// IEEE single precision (GGUF type 0).
    F32,
    /// ggml Q8_0: blocks of 32 values as an f16 scale and 32 signed bytes (GGUF type 8).
    Q8_0,
}

impl DType {
    /// Bytes taken by `elements` values.
    pub fn bytes_for(self, elements: u64) -> u64 {
        match self {
            DType::F16 => elements * 2,
            DType::F32 => elements * 4,
            DType::Q8_0 => elements / 32 * 34,
        }
    }
}

/// One tensor: name, shape (GGUF order: fastest-varying first), type and the seed of its values.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub name: String,
    pub dims: Vec<u64>,
    pub dtype: DType,
    pub seed: u64,
    /// Whether a fine-tune changed it.
    pub changed: bool,
}

impl Tensor {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    pub fn byte_len(&self) -> u64 {
        self.dtype.bytes_for(self.elements())
    }

    /// The tensor's bytes: weights ~N(0, 0.02) (norms ~1.0), little-endian.
    pub fn bytes(&self) -> Vec<u8> {
        let mut rng = SplitMix(self.seed);
        let n = self.elements() as usize;
        let mut out = Vec::with_capacity(self.byte_len() as usize);
        match self.dtype {
            DType::F16 => {
                for _ in 0..n {
                    out.extend_from_slice(&f16::from_f32(rng.normal() * 0.02).to_le_bytes());
                }
            }
            DType::Q8_0 => {
                // The same values the f16 tensor holds, quantized the way ggml does.
                let mut block = [0f32; 32];
                for _ in 0..n / 32 {
                    for value in &mut block {
                        *value = f16::from_f32(rng.normal() * 0.02).to_f32();
                    }
                    let max = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let scale = max / 127.0;
                    out.extend_from_slice(&f16::from_f32(scale).to_le_bytes());
                    for value in block {
                        let q = if scale == 0.0 {
                            0.0
                        } else {
                            (value / scale).round()
                        };
                        out.push(q as i8 as u8);
                    }
                }
            }
            DType::F32 => {
                for _ in 0..n {
                    out.extend_from_slice(&(1.0 + rng.normal() * 0.05).to_le_bytes());
                }
            }
        }
        out
    }
}

/// A generated model: metadata key/values and tensors in file order.
#[derive(Debug, Clone)]
pub struct Model {
    pub metadata: Vec<(String, String)>,
    pub tensors: Vec<Tensor>,
}

impl Model {
    /// A llama-shaped model of about `scale` × 1.07 GB.
    pub fn llama_like(scale: f64, seed: u64) -> Model {
        let hidden = ((2048.0 * scale.sqrt() / 64.0).round() as u64).max(1) * 64;
        let ffn = (hidden * 43 / 16).div_ceil(64) * 64;
        let vocab = 32_000;
        let layers = 8;
        let mut tensors = Vec::new();
        let mut add = |name: String, dims: Vec<u64>, dtype: DType| {
            let seed = seed ^ fnv(&name);
            tensors.push(Tensor {
                name,
                dims,
                dtype,
                seed,
                changed: false,
            });
        };
        add("token_embd.weight".into(), vec![hidden, vocab], DType::F16);
        for layer in 0..layers {
            let t = |suffix: &str| format!("blk.{layer}.{suffix}");
            add(t("attn_norm.weight"), vec![hidden], DType::F32);
            for proj in ["attn_q", "attn_k", "attn_v", "attn_output"] {
                add(
                    t(&format!("{proj}.weight")),
                    vec![hidden, hidden],
                    DType::F16,
                );
            }
            add(t("ffn_norm.weight"), vec![hidden], DType::F32);
            add(t("ffn_gate.weight"), vec![hidden, ffn], DType::F16);
            add(t("ffn_up.weight"), vec![hidden, ffn], DType::F16);
            add(t("ffn_down.weight"), vec![ffn, hidden], DType::F16);
        }
        add("output_norm.weight".into(), vec![hidden], DType::F32);
        add("output.weight".into(), vec![hidden, vocab], DType::F16);
        let metadata = vec![
            ("general.architecture".into(), "llama".into()),
            (
                "general.name".into(),
                format!("modelfs corpus base (seed {seed}, scale {scale})"),
            ),
        ];
        Model { metadata, tensors }
    }

    /// A fine-tune: every tenth tensor (starting with the first attention projection) gets new
    /// values, and a metadata entry is added that moves the data section by 1,376 bytes.
    pub fn finetuned(mut self) -> Model {
        for (i, tensor) in self.tensors.iter_mut().enumerate() {
            if i % 10 == 2 {
                tensor.seed = tensor.seed.wrapping_mul(31).wrapping_add(7);
                tensor.changed = true;
            }
        }
        // Key (8 + 16 bytes) + type (4) + value (8 + 1,340 bytes) = 1,376 bytes, a multiple of the
        // 32-byte alignment, so the data section moves by exactly that much.
        self.metadata
            .push(("general.finetune".into(), "x".repeat(1340)));
        self
    }

    /// The model quantized to Q8_0: every f16 tensor becomes Q8_0 (norms stay f32).
    pub fn quantized_q8_0(mut self) -> Model {
        for tensor in self
            .tensors
            .iter_mut()
            .filter(|t| t.dtype == DType::F16 && t.elements() % 32 == 0)
        {
            tensor.dtype = DType::Q8_0;
        }
        self.metadata
            .push(("general.file_type".into(), "Q8_0".into()));
        self
    }

    /// The model's hidden size (length of a norm vector).
    pub fn hidden(&self) -> u64 {
        self.tensors
            .iter()
            .find(|t| t.name == "output_norm.weight")
            .map_or(0, |t| t.dims[0])
    }

    /// The model with new values for the tensor `name` only.
    pub fn with_changed_tensor(mut self, name: &str) -> Model {
        for tensor in self.tensors.iter_mut().filter(|t| t.name == name) {
            tensor.seed = tensor.seed.wrapping_mul(31).wrapping_add(7);
            tensor.changed = true;
        }
        self
    }

    pub fn changed_tensor_bytes(&self) -> u64 {
        self.tensors
            .iter()
            .filter(|t| t.changed)
            .map(Tensor::byte_len)
            .sum()
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// splitmix64: small, fast and good enough for synthetic weights.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Approximately standard normal: the sum of four uniforms, centred and scaled (Irwin–Hall).
    fn normal(&mut self) -> f32 {
        let r = self.next();
        let sum: u32 = (0..4).map(|i| ((r >> (16 * i)) & 0xffff) as u32).sum();
        (sum as f32 / 65535.0 - 2.0) * 1.732_050_8
    }
}
