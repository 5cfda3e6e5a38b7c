//! Golden tests: each `golden/<case>.yaml` (documents of one namespace) is translated and the
//! output — resources in canonical proto3 JSON, and every document's status — compared exactly
//! with `golden/<case>.json`. `BOSUN_UPDATE_GOLDEN=1 cargo test -p bosun-translate` rewrites
//! the JSON files; review their diff before committing.

use std::path::{Path, PathBuf};

use bosun_model::Document;
use bosun_translate::{Options, translate};
use serde::Deserialize;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The documents of a YAML file of several (`---`-separated).
fn documents(path: &Path) -> Vec<Document> {
    let text = std::fs::read_to_string(path).expect("golden input");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let value = serde_json::Value::deserialize(doc).expect("YAML");
            Document::parse(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

fn check(case: &str) {
    let input = golden_dir().join(format!("{case}.yaml"));
    let expected_path = golden_dir().join(format!("{case}.json"));
    let output = translate(&documents(&input), &Options::default());
    let actual = serde_json::to_string_pretty(&output.to_json().expect("canonical JSON")).expect("JSON") + "\n";
    if std::env::var_os("BOSUN_UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("{}: {e} (BOSUN_UPDATE_GOLDEN=1 writes it)", expected_path.display()));
    if actual != expected {
        let first = actual.lines().zip(expected.lines()).position(|(a, e)| a != e).unwrap_or(0);
        panic!(
            "{case}: the output differs from {} from line {} on:\n  got:      {}\n  expected: {}\n\
             (BOSUN_UPDATE_GOLDEN=1 rewrites it)",
            expected_path.display(),
            first + 1,
            actual.lines().nth(first).unwrap_or("<end>"),
            expected.lines().nth(first).unwrap_or("<end>"),
        );
    }
}

#[test]
fn services() {
    check("services");
}

#[test]
fn traffic_router() {
    check("traffic_router");
}

#[test]
fn fault_tolerance() {
    check("fault_tolerance");
}

#[test]
fn every_golden_input_has_a_test() {
    let mut cases: Vec<String> = std::fs::read_dir(golden_dir())
        .expect("golden dir")
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_owned))
        .collect();
    cases.sort();
    cases.dedup();
    assert_eq!(cases, ["fault_tolerance", "services", "traffic_router"]);
}
