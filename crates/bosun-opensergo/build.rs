//! Compiles the OpenSergo protos in the repository's `proto/opensergo/` folder with a pure-Rust
//! protobuf compiler (protox), so building needs no `protoc`.

use std::path::PathBuf;

const PROTOS: &[&str] = &["transport/v1/transport.proto", "fault_tolerance/v1/fault_tolerance.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto/opensergo");
    let files = protox::compile(PROTOS, [&root])?;
    tonic_prost_build::configure().include_file("opensergo.rs").compile_fds(files)?;
    for proto in ["common/v1/common.proto"].iter().chain(PROTOS) {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}
