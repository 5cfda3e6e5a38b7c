//! `bosun plugin new NAME --kind KIND [--lang rust|go]`: writes a plugin project that builds and
//! runs as it is, to start a plugin from.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::PluginKind;

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Go,
}

/// `bosun plugin new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits and '-'.
    pub name: String,
    /// What the plugin does.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Its language.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    /// Where to write it [default: ./NAME]; must not exist or be empty.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Rust: the `bosun-plugin` crate (the SDK) to build against [default: the one in the
    /// source tree this bosun was built from, if it is still there].
    #[arg(long, value_name = "PATH")]
    pub sdk: Option<PathBuf>,
}

/// `--kind`, as clap reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Transform,
    Stream,
    Storage,
}

impl From<Kind> for PluginKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Transform => PluginKind::Transform,
            Kind::Stream => PluginKind::Stream,
            Kind::Storage => PluginKind::Storage,
        }
    }
}

/// The SDK next to this crate's sources, where `cargo build` of the workspace found it.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../bosun-plugin");

/// Bosun's transform service, for Go's code generator.
const TRANSFORM_PROTO: &str = include_str!("../../../proto/bosun/plugin/v1/transform.proto");

/// Generates the Go code of a Go template's service in `dir`, if protoc and protoc-gen-go are
/// installed; else says how.
fn generate_go(dir: &Path) {
    let command = "protoc --go_out=plugins=grpc,paths=source_relative:. transform.proto";
    let ran = std::process::Command::new("protoc")
        .args(["--go_out=plugins=grpc,paths=source_relative:.", "transform.proto"])
        .current_dir(dir)
        .output();
    match ran {
        Ok(out) if out.status.success() => println!("generated transform.pb.go ({command})"),
        Ok(out) => println!(
            "could not generate transform.pb.go: {}\nrun in {}: {command}",
            String::from_utf8_lossy(&out.stderr).trim(),
            dir.display()
        ),
        Err(e) => println!(
            "protoc not found ({e}): install protobuf-compiler and golang-goprotobuf-dev, then run in {}: {command}",
            dir.display()
        ),
    }
}

/// The files of each template: (path, contents with `{{name}}`, `{{kind}}`, `{{sdk}}`).
fn files(lang: Lang, kind: PluginKind) -> Option<Vec<(&'static str, &'static str)>> {
    match (lang, kind) {
        (Lang::Rust, PluginKind::Transform) => Some(vec![
            ("Cargo.toml", include_str!("template/rust_Cargo.toml")),
            ("src/main.rs", include_str!("template/rust_transform_main.rs")),
        ]),
        (Lang::Rust, PluginKind::Stream) => Some(vec![
            ("Cargo.toml", include_str!("template/rust_Cargo.toml")),
            ("src/main.rs", include_str!("template/rust_stream_main.rs")),
        ]),
        (Lang::Rust, PluginKind::Storage) => Some(vec![
            ("Cargo.toml", include_str!("template/rust_storage_Cargo.toml")),
            ("src/main.rs", include_str!("template/rust_storage_main.rs")),
        ]),
        (Lang::Go, PluginKind::Transform) => {
            Some(vec![("main.go", include_str!("template/go_transform_main.go")), ("transform.proto", TRANSFORM_PROTO)])
        }
        _ => None,
    }
}

/// Writes the project and says how to use it.
pub fn new(args: &NewArgs) -> anyhow::Result<()> {
    let name = &args.name;
    anyhow::ensure!(
        name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "NAME {name:?}: must start with a letter and be lowercase letters, digits and '-' (at most 63)"
    );
    let kind = PluginKind::from(args.kind);
    let Some(files) = files(args.lang, kind) else {
        anyhow::bail!("--lang {:?} --kind {}: no template for this pair", args.lang, kind.as_str())
    };
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        let mut entries = std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))?;
        anyhow::ensure!(entries.next().is_none(), "{}: exists and is not empty", dir.display());
    }
    let sdk = match args.lang {
        Lang::Rust => Some(sdk_path(args.sdk.as_deref())?),
        Lang::Go => None,
    };
    for (path, text) in files {
        let text = render(text, path, name, kind, sdk.as_deref());
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("{}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("{}", path.display()))?;
    }
    if args.lang == Lang::Go {
        generate_go(&dir);
    }
    let build = match args.lang {
        Lang::Rust => format!("cargo build --release --manifest-path {}/Cargo.toml", dir.display()),
        Lang::Go => format!("(cd {} && GO111MODULE=off GOPATH=$HOME/go:/usr/share/gocode go build)", dir.display()),
    };
    println!("wrote {} plugin {name:?} in {}", kind.as_str(), dir.display());
    println!("build it:   {build}");
    println!("declare it in bosun.toml (a source directory is built by bosun serve itself):");
    println!("  [[plugin]]\n  name = \"{name}\"\n  kind = \"{}\"\n  path = \"{}\"", kind.as_str(), dir.display());
    Ok(())
}

/// One file of a template with its placeholders filled in.
fn render(text: &str, path: &str, name: &str, kind: PluginKind, sdk: Option<&Path>) -> String {
    let mut text = text.replace("{{name}}", name).replace("{{kind}}", kind.as_str());
    if let Some(sdk) = sdk {
        text = text.replace("{{sdk}}", &path_dependency(sdk));
        // Bosun's other crates, next to the SDK.
        for dep in ["bosun-store", "bosun-store-plugin"] {
            let sibling = sdk.parent().map(|p| p.join(dep)).unwrap_or_default();
            text = text.replace(&format!("{{{{crate:{dep}}}}}"), &path_dependency(&sibling));
        }
    }
    if path.ends_with(".proto") {
        // The generated Go code lives in the plugin's own package.
        text =
            text.replacen("package bosun.plugin.v1;", "package bosun.plugin.v1;\n\noption go_package = \"main\";", 1);
    }
    text
}

/// `{ path = "..." }`.
fn path_dependency(path: &Path) -> String {
    format!("{{ path = {} }}", toml::Value::String(path.display().to_string()))
}

/// Where the SDK (the `bosun-plugin` crate) is.
fn sdk_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(BUILT_SDK),
    };
    let path = std::fs::canonicalize(&path).with_context(|| {
        format!("the Rust SDK (the bosun-plugin crate) is not at {}: give its path with --sdk", path.display())
    })?;
    anyhow::ensure!(
        path.join("Cargo.toml").is_file(),
        "--sdk {}: not a crate (no Cargo.toml); give the path of Bosun's crates/bosun-plugin",
        path.display()
    );
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_filled_in_whole() {
        let sdk = Path::new("/src/bosun/crates/bosun-plugin");
        let mut seen = 0;
        for lang in [Lang::Rust, Lang::Go] {
            for kind in [PluginKind::Transform, PluginKind::Stream, PluginKind::Storage] {
                let Some(files) = files(lang, kind) else { continue };
                seen += 1;
                for (path, text) in files {
                    let out = render(text, path, "my-plugin", kind, (lang == Lang::Rust).then_some(sdk));
                    // A placeholder is `{{` and a lowercase name (Rust's `{{"` is an escaped brace).
                    let left = out
                        .match_indices("{{")
                        .any(|(i, _)| out[i + 2..].starts_with(|c: char| c.is_ascii_lowercase()));
                    assert!(!left, "{lang:?} {kind:?} {path}: a placeholder is left:\n{out}");
                    if path == "Cargo.toml" {
                        let manifest: toml::Table = toml::from_str(&out).expect("Cargo.toml is TOML");
                        assert_eq!(manifest["package"]["name"].as_str(), Some("my-plugin"));
                        let deps = manifest["dependencies"].as_table().expect("dependencies");
                        let local: Vec<_> = deps.iter().filter_map(|(_, d)| d.get("path")?.as_str()).collect();
                        assert!(local.iter().all(|p| p.starts_with("/src/bosun/crates/bosun-")), "{local:?}");
                    }
                    if path.ends_with(".proto") {
                        assert!(out.contains("option go_package = \"main\";"));
                    }
                }
            }
        }
        assert_eq!(seen, 4, "rust transform, stream and storage, and go transform");
    }
}
