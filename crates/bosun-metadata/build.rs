//! Compiles the metadata protos (Dubbo's under `proto/dubbo/`, Bosun's under `proto/bosun/metadata/`)
//! with a pure-Rust protobuf compiler (protox), so building needs no `protoc`.

use std::path::PathBuf;

const PROTOS: &[&str] = &["dubbo/networking/v1alpha1/metadata.proto", "bosun/metadata/v1/metadata.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = protox::compile(PROTOS, [&root])?;
    tonic_prost_build::configure().include_file("metadata.rs").compile_fds(files)?;
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}
