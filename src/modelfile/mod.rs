//! Model file layouts: where a GGUF or safetensors file keeps its header and each tensor's bytes.
//!
//! Owns [`FileLayout`] and [`detect`], which parses a file's header (never trusting it: offsets
//! past the end, overlaps, absurd counts or unknown versions make it give up) and returns the byte
//! ranges of the header and of every tensor, with their element types. Ingest cuts chunk
//! boundaries at these ranges so an unchanged tensor maps to the same chunks in any file, and
//! `diff` compares files tensor by tensor. Anything not recognised is `None`: plain chunking.

mod gguf;
mod safetensors;

use std::ops::Range;

/// Element type of a tensor, as far as compression cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE single precision.
    F32,
    /// ggml Q8_0 blocks: an f16 scale and 32 signed 8-bit quants.
    Q8_0,
    /// ggml Q4_0 blocks: an f16 scale and 32 packed 4-bit quants.
    Q4_0,
    /// Anything else (other quantizations, integers, f64 …).
    Other,
}

impl ElementType {
    /// The byte fields of one record (value or quantized block) of this type, for grouping bytes
    /// of like kind before compression; `None` where grouping does not help.
    pub fn record_fields(self) -> Option<crate::codec::Fields> {
        match self {
            ElementType::F16 | ElementType::BF16 => Some(&[1, 1]),
            ElementType::F32 => Some(&[1, 1, 1, 1]),
            ElementType::Q8_0 => Some(&[2, 32]),
            ElementType::Q4_0 => Some(&[2, 16]),
            ElementType::Other => None,
        }
    }
}

/// One tensor's bytes in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorExtent {
    /// The tensor's name.
    pub name: String,
    /// Byte range in the file.
    pub range: Range<u64>,
    /// Element type.
    pub element: ElementType,
}

/// The recognised layout of a model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLayout {
    /// Container format.
    pub format: Format,
    /// Header bytes (metadata and tensor table), from offset 0.
    pub header: Range<u64>,
    /// Tensors in file order, non-overlapping, all inside the file.
    pub tensors: Vec<TensorExtent>,
}

/// Recognised containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// GGUF version 2 or 3.
    Gguf,
    /// safetensors.
    Safetensors,
}

/// Refuse headers claiming more tensors than this (a damaged count would otherwise allocate wildly).
const MAX_TENSORS: u64 = 1 << 20;

impl FileLayout {
    /// Checks the invariants every consumer relies on: sorted, disjoint, non-empty, in the file,
    /// after the header.
    fn validated(mut self, file_len: u64) -> Option<FileLayout> {
        self.tensors.sort_by_key(|t| t.range.start);
        let mut end = self.header.end;
        if end > file_len {
            return None;
        }
        for tensor in &self.tensors {
            if tensor.range.start < end || tensor.range.end > file_len || tensor.range.is_empty() {
                return None;
            }
            end = tensor.range.end;
        }
        Some(self)
    }

    /// Offsets where a chunk must end: the header/data border and both ends of every tensor.
    pub fn cut_points(&self) -> Vec<u64> {
        let mut cuts = Vec::with_capacity(self.tensors.len() * 2 + 1);
        cuts.push(self.header.end);
        for tensor in &self.tensors {
            cuts.push(tensor.range.start);
            cuts.push(tensor.range.end);
        }
        cuts.dedup();
        cuts
    }

    /// The tensor holding byte `offset`, if any.
    pub fn tensor_at(&self, offset: u64) -> Option<&TensorExtent> {
        let index = self.tensors.partition_point(|t| t.range.end <= offset);
        self.tensors
            .get(index)
            .filter(|t| t.range.contains(&offset))
    }
}

/// Recognises the layout of a model file from its bytes; `None` (logged at debug level) if it is
/// not a GGUF or safetensors file, or its header is inconsistent.
pub fn detect(data: &[u8]) -> Option<FileLayout> {
    detect_from_prefix(data, data.len() as u64)
}

/// Largest header read to find tensors (GGUF vocabularies can take several MiB).
pub const MAX_HEADER_READ: usize = 256 << 20;

/// Like [`detect`] for a file of `file_len` bytes read through `read`, which fills a buffer with
/// the file's first bytes (returning how many it read): reads 1 MiB, then four times more each
/// time the header runs past the prefix, up to [`MAX_HEADER_READ`].
pub fn detect_by_prefix<E>(
    file_len: u64,
    mut read: impl FnMut(&mut [u8]) -> Result<usize, E>,
) -> Result<Option<FileLayout>, E> {
    let limit = file_len.min(MAX_HEADER_READ as u64) as usize;
    let mut prefix = vec![0u8; limit.min(1 << 20)];
    loop {
        let wanted = prefix.len();
        let n = read(&mut prefix)?.min(wanted);
        prefix.truncate(n);
        let layout = detect_from_prefix(&prefix, file_len);
        // A short read means the file ended early: there is no more header to find.
        if layout.is_some() || n < wanted || n >= limit {
            return Ok(layout);
        }
        prefix.resize((prefix.len() * 4).min(limit), 0);
    }
}

/// Like [`detect`], from the first bytes of a file of `file_len` bytes; `None` also when the
/// prefix ends before the header does.
pub fn detect_from_prefix(prefix: &[u8], file_len: u64) -> Option<FileLayout> {
    let parsed = if prefix.starts_with(b"GGUF") {
        gguf::parse(prefix, file_len)
    } else if safetensors::looks_like(prefix) {
        safetensors::parse(prefix)
    } else {
        return None;
    };
    match parsed.and_then(|layout| layout.validated(file_len)) {
        Some(layout) => Some(layout),
        None => {
            tracing::debug!("model header not usable; chunking the file without it");
            None
        }
    }
}

/// A bounds-checked little-endian reader over a header.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok()?;
        let end = self.pos.checked_add(n)?;
        let bytes = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
pub(crate) mod tests;
