//! Build script: links RocksDB's compression libraries statically.
//!
//! `.cargo/config.toml` links the system RocksDB statically (`ROCKSDB_STATIC`), so the `modelfs`
//! executable runs on a machine without librocksdb — copied onto a USB stick, say. The compression
//! libraries that RocksDB's archive refers to are linked statically here; what remains dynamic is
//! only the C and C++ runtime.

fn main() {
    let lib_dir =
        std::env::var("ROCKSDB_LIB_DIR").unwrap_or_else(|_| "/usr/lib/x86_64-linux-gnu".into());
    println!("cargo:rustc-link-search=native={lib_dir}");
    for lib in ["snappy", "lz4", "bz2", "z", "zstd"] {
        println!("cargo:rustc-link-lib=static={lib}");
    }
    println!("cargo:rerun-if-env-changed=ROCKSDB_LIB_DIR");
    println!("cargo:rerun-if-changed=tools/build.rs");
}
