//! The supervisor's preparation hook, hot reload of a changed binary, and builds from source.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bosun_plugin::{
    HostOptions, LaunchConfig, OnStart, PluginError, PluginHost, PluginState, RestartPolicy, SourceBuild,
    TransformClient, TransformOutcome,
};

const PLUGIN: &str = env!("CARGO_BIN_EXE_ratelimit-cap");

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.expect("test step timed out")
}

/// Waits until `f` holds, at most 30 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An on-start hook that configures `max_threshold` and counts its calls.
fn configure(config: &'static str, calls: Arc<AtomicU32>) -> OnStart {
    Arc::new(move |started| {
        let calls = calls.clone();
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            TransformClient::new(started.channel).configure(config).await.map_err(|e| e.to_string())
        })
    })
}

fn fast_policy() -> RestartPolicy {
    RestartPolicy {
        initial_backoff: Duration::from_millis(50),
        health_interval: Duration::from_millis(200),
        ..RestartPolicy::default()
    }
}

async fn cap(host: &PluginHost, threshold: u32) -> Result<TransformOutcome, PluginError> {
    let mut client = TransformClient::new(host.channel(Duration::from_secs(10)).await?);
    let doc = format!(r#"{{"spec":{{"threshold":{threshold}}}}}"#);
    client.transform("RateLimitStrategy", "default", "rl", doc.as_bytes()).await
}

#[tokio::test]
async fn every_process_is_configured_before_its_first_call() {
    let calls = Arc::new(AtomicU32::new(0));
    let options = HostOptions {
        policy: fast_policy(),
        on_start: Some(configure(r#"{"max_threshold": 7}"#, calls.clone())),
        reload_interval: None,
        ..HostOptions::default()
    };
    let host = PluginHost::start_with(LaunchConfig::new("cap", PLUGIN), options);
    let out = bounded(cap(&host, 9)).await.unwrap();
    let TransformOutcome::Changed(doc) = out else { panic!("{out:?}") };
    assert!(String::from_utf8_lossy(&doc).contains(r#""threshold":7"#));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A killed process is replaced by one that is configured before any call reaches it.
    let pid = host.status().pid.unwrap();
    // SAFETY: kills the plugin's process group, which the host created.
    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
    eventually("a restart", || host.status().pid.is_some_and(|p| p != pid)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let out = bounded(cap(&host, 9)).await.unwrap();
    assert!(matches!(out, TransformOutcome::Changed(_)), "{out:?}");
    host.shutdown().await;
}

#[tokio::test]
async fn a_refused_configuration_keeps_the_plugin_from_use() {
    let calls = Arc::new(AtomicU32::new(0));
    let options = HostOptions {
        policy: RestartPolicy { initial_backoff: Duration::from_secs(5), ..fast_policy() },
        on_start: Some(configure(r#"{"max_threshold": "lots"}"#, calls.clone())),
        reload_interval: None,
        ..HostOptions::default()
    };
    let host = PluginHost::start_with(LaunchConfig::new("cap", PLUGIN), options);
    eventually("the refusal", || host.status().state == PluginState::Restarting).await;
    let status = host.status();
    let error = status.last_error.unwrap();
    assert!(error.contains("refused to start") && error.contains("max_threshold"), "{error}");
    assert_eq!(status.pid, None);
    // A call with no wait fails at once with the reason.
    let err = host.channel(Duration::ZERO).await.unwrap_err();
    assert!(err.to_string().contains("max_threshold"), "{err}");
    host.shutdown().await;
}

#[tokio::test]
async fn a_new_binary_on_disk_replaces_the_running_one_without_a_failed_call() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("cap");
    std::fs::copy(PLUGIN, &binary).unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let options = HostOptions {
        policy: fast_policy(),
        on_start: Some(configure(r#"{"max_threshold": 7}"#, calls.clone())),
        reload_interval: Some(Duration::from_millis(100)),
        drain: Duration::from_millis(500),
        ..HostOptions::default()
    };
    let host = Arc::new(PluginHost::start_with(LaunchConfig::new("cap", &binary), options));
    bounded(cap(&host, 1)).await.unwrap();
    let first = host.status().pid.unwrap();

    // Calls without pause while the binary is replaced.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let caller = {
        let (host, stop) = (host.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match cap(&host, 9).await {
                    Ok(TransformOutcome::Changed(_)) => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Replaced as operators do (a new file renamed over the old; the running one is busy).
    let staged = dir.path().join(".cap.new");
    std::fs::copy(PLUGIN, &staged).unwrap();
    std::fs::rename(&staged, &binary).unwrap();
    eventually("the reload", || host.status().reloads == 1).await;
    let second = host.status().pid.unwrap();
    assert_ne!(first, second);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the new process was configured");
    // Calls go on across the drain and the old process's shutdown.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let (ok, failed) = bounded(caller).await.unwrap();
    assert!(failed.is_empty(), "{} calls failed around the reload: {:?}", failed.len(), &failed[..failed.len().min(3)]);
    assert!(ok > 10, "only {ok} calls");
    // SAFETY: signal 0 only checks that the process exists.
    eventually("the old process to exit", || unsafe { libc::kill(first as libc::pid_t, 0) != 0 }).await;
    assert_eq!(host.status().state, PluginState::Running);
    assert_eq!(host.status().restarts, 0);
    host.shutdown().await;
}

#[tokio::test]
async fn a_binary_that_fails_to_start_leaves_the_running_one_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("cap");
    std::fs::copy(PLUGIN, &binary).unwrap();
    let options = HostOptions {
        policy: fast_policy(),
        reload_interval: Some(Duration::from_millis(100)),
        ..HostOptions::default()
    };
    let host = PluginHost::start_with(LaunchConfig::new("cap", &binary), options);
    eventually("the start", || host.status().state == PluginState::Running).await;
    let pid = host.status().pid.unwrap();
    let staged = dir.path().join(".cap.new");
    std::fs::write(&staged, "#!/bin/sh\necho 'not a plugin'\nexit 3\n").unwrap();
    std::fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::rename(&staged, &binary).unwrap();
    eventually("the failed reload", || host.status().last_error.is_some_and(|e| e.starts_with("reload failed"))).await;
    let status = host.status();
    assert_eq!((status.state, status.pid, status.reloads), (PluginState::Running, Some(pid), 0));
    assert!(status.last_error.unwrap().contains("not a plugin"));
    host.shutdown().await;
}

#[tokio::test]
async fn a_go_source_is_built_once_per_version_and_a_build_error_is_the_compilers() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("main.go"), "package main\n\nfunc main() { println(\"hi\") }\n").unwrap();
    let cache = dir.path().join("cache");
    let build = SourceBuild::new("hello", &src, &cache);
    let first = bounded(build.build()).await.unwrap();
    assert!(first.starts_with(cache.join("hello")) && first.is_file(), "{}", first.display());
    let out = std::process::Command::new(&first).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "hi\n");
    // Unchanged: the same binary, not rebuilt.
    let modified = std::fs::metadata(&first).unwrap().modified().unwrap();
    assert_eq!(bounded(build.build()).await.unwrap(), first);
    assert_eq!(std::fs::metadata(&first).unwrap().modified().unwrap(), modified);
    // A compile error is reported with the compiler's words.
    std::fs::write(src.join("main.go"), "package main\n\nfunc main() { undefinedThing() }\n").unwrap();
    let err = bounded(build.build()).await.unwrap_err().to_string();
    assert!(err.contains("undefined: undefinedThing") && err.contains(&src.display().to_string()), "{err}");
    // The earlier build is still there for the running plugin.
    assert!(first.is_file());
}
