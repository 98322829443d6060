//! Shared pieces of the modelfs fuzz targets: an input cursor, small deterministic model files
//! (GGUF, safetensors) for seeds and for the whole-store fixture, and the whole-store fixture
//! itself (`store`), which builds a real store once and replays byte-level damage against copies.

pub mod models;
pub mod store;

/// Reads little-endian values from a fuzz input; every read past the end yields `None`.
pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    /// A cursor over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Input { bytes }
    }

    /// The next `n` bytes (fewer if the input ends first).
    pub fn take_up_to(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.bytes.len());
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        head
    }

    /// Exactly the next `N` bytes.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.bytes.len() < N {
            return None;
        }
        let head = self.take_up_to(N);
        head.try_into().ok()
    }

    /// The next byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|b| b[0])
    }

    /// The next little-endian u16.
    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    /// The next little-endian u32.
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    /// The next little-endian u64.
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.bytes
    }
}

/// A scratch directory for this process named `name`: under `$MODELFS_FUZZ_SCRATCH`
/// (tools/fuzz.sh sets it and removes it afterwards), else tmpfs if there is one (fsyncs are free
/// there), else the temp directory.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let base = match std::env::var_os("MODELFS_FUZZ_SCRATCH") {
        Some(dir) if !dir.is_empty() => std::path::PathBuf::from(dir),
        _ if shm.is_dir() => shm.to_owned(),
        _ => std::env::temp_dir(),
    };
    base.join(format!("modelfs-fuzz-{name}-{}", std::process::id()))
}

/// `len` deterministic pseudo-random bytes for `seed` (splitmix64), as the library's tests use.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}
