//! The host against real plugin processes: the example `ratelimit-cap` plugin and small
//! shell scripts that misbehave.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bosun_plugin::{
    LaunchConfig, Plugin, PluginError, PluginHost, PluginState, RestartPolicy, TransformClient, TransformOutcome,
};
use support::{alive, bounded, script};

const PLUGIN: &str = env!("CARGO_BIN_EXE_ratelimit-cap");

fn config() -> LaunchConfig {
    let mut c = LaunchConfig::new("ratelimit-cap", PLUGIN);
    c.handshake_timeout = Duration::from_secs(10);
    c
}

#[tokio::test]
async fn configure_and_transform() {
    let plugin = bounded(Plugin::launch(&config())).await.unwrap();
    assert!(plugin.handshake().app_version == 1);
    bounded(plugin.health()).await.unwrap();
    let mut client = TransformClient::new(plugin.channel());
    bounded(client.configure(r#"{"max_threshold": 50}"#)).await.unwrap();

    let doc = br#"{"kind":"RateLimitStrategy","spec":{"threshold":80}}"#;
    let out = bounded(client.transform("RateLimitStrategy", "default", "rl", doc)).await.unwrap();
    let TransformOutcome::Changed(changed) = out else { panic!("{out:?}") };
    let changed: serde_json::Value = serde_json::from_slice(&changed).unwrap();
    assert_eq!(changed["spec"]["threshold"], 50);

    let doc = br#"{"spec":{"threshold":20}}"#;
    assert_eq!(
        bounded(client.transform("RateLimitStrategy", "default", "rl", doc)).await.unwrap(),
        TransformOutcome::Unchanged
    );

    let doc = br#"{"spec":{"threshold":-1}}"#;
    let out = bounded(client.transform("RateLimitStrategy", "default", "rl", doc)).await.unwrap();
    assert_eq!(out, TransformOutcome::Rejected("default/rl: threshold -1 is negative".into()));

    // A bad configuration is the plugin's error.
    let err = bounded(client.configure(r#"{"max_threshold": -3}"#)).await.unwrap_err();
    assert!(err.to_string().contains("max_threshold"), "{err}");

    let pid = plugin.pid();
    let started = Instant::now();
    let status = bounded(plugin.shutdown()).await;
    assert!(started.elapsed() < Duration::from_secs(2), "graceful shutdown took {:?}", started.elapsed());
    assert!(status.contains("exit status: 0"), "{status}");
    assert!(!alive(pid));
}

#[tokio::test]
async fn junk_before_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config();
    c.path = script(&dir, "echo 'hello from the plugin'\nsleep 30");
    let err = bounded(Plugin::launch(&c)).await.unwrap_err();
    assert_eq!(err.to_string(), "the plugin printed `hello from the plugin` on stdout before its handshake");
}

#[tokio::test]
async fn handshake_timeout_kills_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mut c = config();
    c.path = script(&dir, &format!("echo $$ > {}\nexec sleep 30", pidfile.display()));
    c.handshake_timeout = Duration::from_millis(500);
    let err = bounded(Plugin::launch(&c)).await.unwrap_err();
    assert!(matches!(err, PluginError::HandshakeTimeout(_)), "{err}");
    let pid: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(pid), "the timed-out plugin is still running");
}

#[tokio::test]
async fn wrong_cookie() {
    let mut c = config();
    c.handshake.magic_cookie_value = "wrong".into();
    let err = bounded(Plugin::launch(&c)).await.unwrap_err();
    let PluginError::ExitedBeforeHandshake { status, stderr_tail } = &err else { panic!("{err}") };
    assert!(status.contains("exit status: 1"), "{status}");
    assert!(stderr_tail.contains("This binary is a plugin"), "{stderr_tail}");
}

#[tokio::test]
async fn unsupported_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config();
    c.path = script(&dir, "echo '1|7|unix|/nonexistent.sock|grpc|'\nsleep 30");
    let err = bounded(Plugin::launch(&c)).await.unwrap_err();
    assert_eq!(err.to_string(), "the plugin speaks protocol version 7; supported: [1]");
}

#[tokio::test]
async fn supervisor_restarts_a_killed_plugin() {
    let policy = RestartPolicy {
        initial_backoff: Duration::from_millis(100),
        health_interval: Duration::from_millis(200),
        ..RestartPolicy::default()
    };
    let host = PluginHost::start(config(), policy);
    let channel = bounded(host.channel(Duration::from_secs(20))).await.unwrap();
    let mut client = TransformClient::new(channel);
    bounded(client.configure(r#"{"max_threshold": 5}"#)).await.unwrap();
    let status = host.status();
    assert_eq!(status.state, PluginState::Running);
    let first = status.pid.unwrap();
    let first_socket = PathBuf::from(status.address.clone().unwrap());
    assert!(first_socket.exists());

    // SAFETY: kill -9 of the plugin we started.
    unsafe { libc::kill(first as libc::pid_t, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = host.status();
        if s.state == PluginState::Running && s.pid.is_some_and(|p| p != first) {
            assert_eq!(s.restarts, 1);
            assert!(s.last_error.as_deref().unwrap_or_default().contains("signal: 9"), "{s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "not restarted: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(first));
    assert!(!first_socket.exists(), "the killed plugin's socket was left behind");
    let mut client = TransformClient::new(bounded(host.channel(Duration::from_secs(20))).await.unwrap());
    bounded(client.configure(r#"{"max_threshold": 5}"#)).await.unwrap();
    let out = bounded(client.transform("RateLimitStrategy", "ns", "a", br#"{"spec":{"threshold":9}}"#)).await.unwrap();
    assert_eq!(out, TransformOutcome::Changed(br#"{"spec":{"threshold":5}}"#.to_vec()));

    let second = host.status().pid.unwrap();
    bounded(host.shutdown()).await;
    assert_eq!(host.status().state, PluginState::Stopped);
    assert!(!alive(second));
    assert!(host.channel(Duration::from_millis(10)).await.is_err());
}

#[tokio::test]
async fn supervisor_gives_up_after_max_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config();
    c.path = script(&dir, "echo 'boom' >&2\nexit 3");
    let policy =
        RestartPolicy { initial_backoff: Duration::from_millis(10), max_restarts: Some(2), ..RestartPolicy::default() };
    let host = PluginHost::start(c, policy);
    let err = bounded(host.channel(Duration::from_secs(20))).await.unwrap_err();
    let s = host.status();
    assert_eq!(s.state, PluginState::Failed, "{s:?}");
    assert_eq!(s.restarts, 2);
    assert!(s.last_error.as_deref().unwrap_or_default().contains("boom"), "{s:?}");
    assert!(err.to_string().contains("Failed"), "{err}");
}

#[tokio::test]
async fn supervisor_restarts_a_plugin_that_stops_answering_health() {
    let mut c = config();
    c.health_timeout = Duration::from_millis(200);
    let policy = RestartPolicy {
        initial_backoff: Duration::from_millis(50),
        health_interval: Duration::from_millis(100),
        health_failures: 2,
        ..RestartPolicy::default()
    };
    let host = PluginHost::start(c, policy);
    bounded(host.channel(Duration::from_secs(20))).await.unwrap();
    let first = host.status().pid.unwrap();
    // A stopped process keeps its socket open but answers nothing: a hung plugin.
    // SAFETY: SIGSTOP to the plugin we started.
    unsafe { libc::kill(first as libc::pid_t, libc::SIGSTOP) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = host.status();
        if s.state == PluginState::Running && s.pid.is_some_and(|p| p != first) {
            assert!(s.last_error.as_deref().unwrap_or_default().contains("not healthy"), "{s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "not restarted: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(first), "the hung plugin was not killed");
    let mut client = TransformClient::new(bounded(host.channel(Duration::from_secs(20))).await.unwrap());
    bounded(client.configure(r#"{"max_threshold": 5}"#)).await.unwrap();
    bounded(host.shutdown()).await;
}

#[tokio::test]
async fn shutdown_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child");
    let mut c = config();
    // The plugin leaves a child of its own behind; the process group kill takes it too.
    c.path = script(&dir, &format!("sleep 30 &\necho $! > {}\nexec {PLUGIN}", pidfile.display()));
    let plugin = bounded(Plugin::launch(&c)).await.unwrap();
    let child: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(alive(child));
    let pid = plugin.pid();
    bounded(plugin.shutdown()).await;
    assert!(!alive(pid));
    // The orphaned `sleep` is reparented (to init or a subreaper) and reaped there; wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(child) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(child), "the plugin's child survived");
}

#[tokio::test]
async fn tcp_plugin() {
    let mut c = config();
    c.args = vec!["--tcp".into()];
    c.port_range = (23_000, 23_999);
    let plugin = bounded(Plugin::launch(&c)).await.unwrap();
    let bosun_plugin::Network::Tcp(addr) = &plugin.handshake().network else { panic!("{:?}", plugin.handshake()) };
    let port: u16 = addr.strip_prefix("127.0.0.1:").unwrap().parse().unwrap();
    assert!((23_000..=23_999).contains(&port), "{addr}");
    bounded(plugin.health()).await.unwrap();
    let mut client = TransformClient::new(plugin.channel());
    let out =
        bounded(client.transform("RateLimitStrategy", "ns", "a", br#"{"spec":{"threshold":1000}}"#)).await.unwrap();
    assert_eq!(out, TransformOutcome::Changed(br#"{"spec":{"threshold":100}}"#.to_vec()));
    bounded(plugin.shutdown()).await;
}
