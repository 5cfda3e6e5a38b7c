//! `bosun plugin new` writes Rust projects that build as they are (against this checkout's
//! crates and lock file), and the transform one works through `bosun serve`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Bosun, eventually, http_get};

/// Where the template builds go: next to this workspace's own, kept between runs.
fn template_target() -> PathBuf {
    let bosun = Path::new(env!("CARGO_BIN_EXE_bosun"));
    bosun.parent().and_then(Path::parent).map(|t| t.join("plugin-templates")).expect("target dir")
}

fn new_project(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let project = dir.join(name);
    let out = Command::new(env!("CARGO_BIN_EXE_bosun"))
        .args(["plugin", "new", name, "--kind", kind, "--dir"])
        .arg(&project)
        .output()
        .expect("bosun plugin new");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The versions this workspace was tested with, so the build is offline and repeatable.
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    std::fs::copy(lock, project.join("Cargo.lock")).expect("Cargo.lock");
    project
}

fn build(project: &Path) -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--quiet", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", template_target())
        .output()
        .expect("cargo build");
    assert!(out.status.success(), "{} does not build:\n{}", project.display(), String::from_utf8_lossy(&out.stderr));
    let name = project.file_name().expect("name");
    template_target().join("debug").join(name)
}

#[test]
fn the_rust_templates_build_and_the_transform_one_runs() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut binaries = Vec::new();
    for kind in ["transform", "stream", "storage"] {
        let project = new_project(work.path(), &format!("tpl-{kind}"), kind);
        binaries.push(build(&project));
    }
    for binary in &binaries {
        assert!(binary.is_file(), "{} was not built", binary.display());
    }
    // A copy: the source builds below rebuild the project in the same target directory.
    let transform = work.path().join("tpl-transform-plugin");
    std::fs::copy(&binaries[0], &transform).expect("copy the transform plugin");
    source_builds_of_a_cargo_project(&work.path().join("tpl-transform"), &work.path().join("builds"));

    // The transform template: refuses documents without an app label, adds configured labels.
    let config = work.path().join("bosun.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"tpl\"\nkind = \"transform\"\npath = {:?}\n\
             config = {{ require_app_label = true, add_labels = {{ owner = \"platform\" }} }}\n",
            transform.display().to_string()
        ),
    )
    .expect("bosun.toml");
    let bosun = Bosun::start(work.path(), &["--config", config.to_str().expect("utf-8")]);
    let running = eventually(Duration::from_secs(20), || {
        let (_, body) = http_get(bosun.admin, "/api/v1/plugins").ok()?;
        body.contains(r#""state":"running""#).then_some(())
    });
    assert!(running.is_some(), "{}", bosun.proc.output());
    let doc = |labels: &str| {
        format!(
            "apiVersion: fault-tolerance.opensergo.io/v1alpha1\nkind: ConcurrencyLimitStrategy\n\
             metadata: {{ name: c, namespace: default, labels: {{ {labels} }} }}\nspec: {{ maxConcurrency: 3, limitMode: Local }}\n"
        )
    };
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&doc("")));
    assert!(!ok && err.contains("has no app label"), "{err}");
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&doc("app: cart")));
    assert!(ok, "{err}");
    let (_, out, _) = bosun.cli(&["get", "concurrencylimitstrategies", "c", "-o", "json"], None);
    assert!(out.contains(r#""owner": "platform""#), "{out}");
}

/// What `bosun serve` does with a Cargo project given as a plugin's path: a build per source
/// version in the cache, none when nothing changed, the compiler's message when it fails.
fn source_builds_of_a_cargo_project(project: &Path, cache: &Path) {
    let mut build = bosun_plugin::SourceBuild::new("tpl-transform", project, cache);
    // The dev profile and the target directory the templates were just built in: quick.
    build.release = false;
    build.target_dir = template_target();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let first = runtime.block_on(build.build()).expect("the source builds");
    assert!(first.starts_with(cache.join("tpl-transform")) && first.is_file(), "{}", first.display());
    assert_eq!(runtime.block_on(build.build()).expect("cached"), first, "an unchanged source is not rebuilt");
    let main = project.join("src/main.rs");
    let text = std::fs::read_to_string(&main).expect("main.rs");
    std::fs::write(&main, text.replace("has no app label", "lacks an app label")).expect("main.rs");
    let second = runtime.block_on(build.build()).expect("the changed source builds");
    assert_ne!(second, first, "a changed source gets a build of its own");
    std::fs::write(&main, format!("{text}\nfn broken() -> u32 {{ \"not a number\" }}\n")).expect("main.rs");
    let err = runtime.block_on(build.build()).expect_err("a broken source").to_string();
    assert!(err.contains("mismatched types") && err.contains("src/main.rs"), "{err}");
    std::fs::write(&main, text).expect("main.rs");
}
