//! Compiles the plugin protos in the repository's `proto/` folder with a pure-Rust protobuf
//! compiler (protox), so building needs no `protoc`.

use std::path::PathBuf;

const PROTOS: &[&str] = &["plugin/go_plugin.proto", "bosun/plugin/v1/transform.proto", "bosun/plugin/v1/stream.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = protox::compile(PROTOS, [&root])?;
    tonic_prost_build::configure().compile_fds(files)?;
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}
