//! Compiles `proto/bosun/plugin/v1/storage.proto` with a pure-Rust protobuf compiler (protox), so
//! building needs no `protoc`. Bytes fields become `bytes::Bytes` and maps `BTreeMap`s, so values
//! and labels move between the wire and the store's types without copies.

use std::path::PathBuf;

const PROTO: &str = "bosun/plugin/v1/storage.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = protox::compile([PROTO], [&root])?;
    tonic_prost_build::configure().bytes(".").btree_map(".").compile_fds(files)?;
    println!("cargo:rerun-if-changed={}", root.join(PROTO).display());
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}
