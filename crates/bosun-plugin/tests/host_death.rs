//! When Bosun dies (kill -9), its plugins die with it (PR_SET_PDEATHSIG).
//!
//! The test re-runs this test binary as a stand-in host (`helper_host` with an environment
//! variable set), which launches the example plugin, prints its pid and waits to be killed.

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bosun_plugin::{LaunchConfig, Plugin};
use support::alive;

const HELPER: &str = "BOSUN_PLUGIN_TEST_HELPER_HOST";

#[tokio::test]
async fn helper_host() {
    if std::env::var_os(HELPER).is_none() {
        return;
    }
    let config = LaunchConfig::new("ratelimit-cap", env!("CARGO_BIN_EXE_ratelimit-cap"));
    let plugin = Plugin::launch(&config).await.unwrap();
    println!("PLUGIN_SOCKET={}", plugin.handshake().network.address());
    println!("PLUGIN_PID={}", plugin.pid());
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[test]
fn plugin_dies_with_its_host() {
    let mut host = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_host", "--nocapture", "--test-threads=1"])
        .env(HELPER, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = host.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let socket = std::sync::Arc::new(std::sync::Mutex::new(None));
    let socket_seen = socket.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, path)) = line.split_once("PLUGIN_SOCKET=") {
                *socket_seen.lock().unwrap() = Some(std::path::PathBuf::from(path.trim()));
            }
            // The harness may print `test helper_host ... ` on the same line.
            if let Some((_, pid)) = line.split_once("PLUGIN_PID=") {
                let _ = tx.send(pid.trim().parse::<u32>().unwrap());
            }
        }
    });
    let pid = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(pid) => pid,
        Err(e) => {
            let _ = host.kill();
            panic!("the helper host printed no plugin pid: {e}");
        }
    };
    assert!(alive(pid));
    host.kill().unwrap();
    host.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "the plugin outlived its host");
    // Nobody was left to remove the killed plugin's socket: the test does.
    if let Some(path) = socket.lock().unwrap().take() {
        let _ = std::fs::remove_file(&path);
        let _ = path.parent().map(std::fs::remove_dir);
    }
}
