//! Copies the descriptor set of every Envoy proto, which the `envoy-types` crate ships as
//! `src/generated/types.bin` but does not export, into OUT_DIR, so that Bosun can transcode
//! Envoy's JSON/YAML with `prost-reflect`.

use std::path::{Path, PathBuf};
use std::process::Command;

const CRATE: &str = "envoy-types";
const FILE: &str = "src/generated/types.bin";

fn main() {
    let dir = from_env().or_else(from_metadata).unwrap_or_else(|| {
        panic!("cannot find the {CRATE} crate's {FILE}: set BOSUN_ENVOY_TYPES_DIR to its source directory")
    });
    let src = dir.join(FILE);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("envoy_descriptors.bin");
    std::fs::copy(&src, &out).unwrap_or_else(|e| panic!("copying {}: {e}", src.display()));
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=BOSUN_ENVOY_TYPES_DIR");
}

fn from_env() -> Option<PathBuf> {
    std::env::var_os("BOSUN_ENVOY_TYPES_DIR").map(PathBuf::from)
}

/// Asks cargo where the resolved `envoy-types` package lives (works for registry, vendored and
/// path dependencies alike).
fn from_metadata() -> Option<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?).join("Cargo.toml");
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform"])
        .arg(std::env::var_os("TARGET")?)
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .ok()?;
    if !output.status.success() {
        println!("cargo:warning=cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
        return None;
    }
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    meta["packages"]
        .as_array()?
        .iter()
        .filter(|p| p["name"] == CRATE)
        .filter_map(|p| Some(Path::new(p["manifest_path"].as_str()?).parent()?.to_path_buf()))
        .find(|dir| dir.join(FILE).is_file())
}
