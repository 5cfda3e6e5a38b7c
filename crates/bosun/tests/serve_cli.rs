//! `bosun serve` as an operator runs it: defaults, bad input, shutdown.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Bosun, Proc, eventually, http_get};

#[test]
fn serve_with_no_arguments_answers_healthz() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bosun"));
    cmd.arg("serve").current_dir(work.path());
    let mut proc = Proc::spawn("bosun", cmd, work.path().join("bosun.log"));
    let admin = ([127, 0, 0, 1], 19000).into();
    let healthy = eventually(Duration::from_secs(20), || http_get(admin, "/healthz").ok().filter(|(s, _)| *s == 200));
    assert!(healthy.is_some(), "no /healthz on the default admin port:\n{}", proc.output());
    let (_, metrics) = http_get(admin, "/metrics").expect("metrics");
    assert!(metrics.contains("bosun_xds_streams"), "{metrics}");
    // SIGTERM ends it cleanly.
    let status = proc.terminate(Duration::from_secs(10)).expect("exits after SIGTERM");
    assert!(status.success(), "exit status {status}:\n{}", proc.output());
}

const CLUSTER: &str = r#"
"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: static
type: STATIC
connect_timeout: 1s
"#;

#[test]
fn a_malformed_file_changes_nothing_that_is_served() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("resources");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("cluster.yaml"), CLUSTER).expect("write");
    let bosun = Bosun::start(work.path(), &["--resources", dir.to_str().expect("utf-8")]);
    let before = bosun.status()["resources"]["versions"].clone();
    assert!(before["*"]["type.googleapis.com/envoy.config.cluster.v3.Cluster"].is_string(), "{before}");

    std::fs::write(
        dir.join("bad.yaml"),
        "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: x\nconnect_timeout: forever\n",
    )
    .expect("write");
    let error =
        eventually(Duration::from_secs(5), || bosun.status()["directory"]["last_error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no error reported: {}", bosun.status()));
    assert!(error.contains("bad.yaml"), "the error names the file: {error}");
    assert!(error.contains("connect_timeout") || error.contains("duration"), "the error names the field: {error}");
    assert_eq!(bosun.status()["resources"]["versions"], before, "what is served did not change");
    assert!(bosun.proc.output().contains("bad.yaml"), "the log names the file");
}
