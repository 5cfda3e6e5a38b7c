//! A small run of the benchmark: it must converge and fan out to every client.

#[test]
fn small_run_converges_and_fans_out() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bosun-bench"))
        .args(["--clients", "20", "--clusters", "10", "--listeners", "2", "--timeout-secs", "60"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("converged          20/20"), "{stdout}");
    assert!(stdout.contains("updated            20/20"), "{stdout}");
}

#[test]
fn small_delta_run_sends_one_changed_cluster_per_client() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bosun-bench"))
        .args(["--delta", "--change", "cluster", "--clients", "20", "--clusters", "50", "--listeners", "2"])
        .args(["--timeout-secs", "60"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("converged          20/20"), "{stdout}");
    assert!(stdout.contains("updated            20/20"), "{stdout}");
    assert!(stdout.contains(" bytes in 1 resources"), "one changed cluster out of 50: {stdout}");
}

#[test]
fn small_linear_runs_send_one_changed_endpoints_per_client() {
    for protocol in [None, Some("--delta")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bosun-bench"))
            .args(["--linear", "--clients", "20", "--clusters", "200", "--listeners", "2", "--updates", "5"])
            .args(["--timeout-secs", "60"])
            .args(protocol)
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("endpoints from a linear cache"), "{stdout}");
        assert!(stdout.contains("converged          20/20"), "{stdout}");
        assert!(stdout.contains("updated            20/20"), "{stdout}");
        assert!(stdout.contains(" bytes in 1 resources"), "one changed endpoints out of 200: {stdout}");
        assert!(stdout.contains("over 5 updates"), "{stdout}");
    }
}

#[test]
fn server_cmd_runs_the_bench_against_the_given_program() {
    // bosun-bench's own `server` subcommand stands in for an external server here: it speaks the
    // same stdio protocol, and needs no other toolchain.
    let server_cmd = format!("{} server", env!("CARGO_BIN_EXE_bosun-bench"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bosun-bench"))
        .args(["--server-cmd", &server_cmd, "--clients", "10", "--clusters", "5", "--listeners", "1"])
        .args(["--timeout-secs", "60"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("server             {server_cmd}")), "{stdout}");
    assert!(stdout.contains("converged          10/10"), "{stdout}");
    assert!(stdout.contains("updated            10/10"), "{stdout}");
}

#[test]
fn server_cmd_that_cannot_start_is_named_in_the_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bosun-bench"))
        .args(["--server-cmd", "/nonexistent/xds-server --flag", "--clients", "1", "--timeout-secs", "10"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a missing server must fail the run");
    assert!(stderr.contains("starting the server process /nonexistent/xds-server"), "{stderr}");
}

#[test]
fn store_benchmark_runs_on_the_embedded_store() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bosun-bench"))
        .args(["store", "--backend", "embedded", "--writes", "200", "--watched", "20", "--concurrency", "4"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for phase in ["sequential puts", "concurrent puts", "puts in txns of 100", "watch latency", "list"] {
        assert!(stdout.contains(phase), "{phase} missing: {stdout}");
    }
    assert!(stdout.contains("for 620 keys"), "every key written is listed: {stdout}");
}

#[test]
fn metadata_benchmark_publishes_and_heartbeats() {
    // The benchmark drives a real `bosun serve`, found next to bosun-bench.
    let status = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "bosun", "--bin", "bosun"])
        .status()
        .expect("cargo build");
    assert!(status.success(), "building bosun failed");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bosun-bench"))
        .args(["metadata", "--apps", "50", "--ttl-secs", "3", "--heartbeat-secs", "1", "--duration-secs", "4"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("publish    100 RPCs"), "{stdout}");
    assert!(stdout.contains("entries    50/50 present"), "{stdout}");
}
