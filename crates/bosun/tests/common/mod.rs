//! Helpers for the end-to-end tests: processes that are always stopped, free ports, a tiny
//! HTTP client and backend, and the Envoy binary the test script installs.

#![allow(dead_code)]

pub mod envoy;
pub mod pki;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A child process that is killed and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr into `log`.
    pub fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("log file");
        let err = file.try_clone().expect("log file");
        cmd.stdin(Stdio::null()).stdout(Stdio::from(file)).stderr(Stdio::from(err));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc { child, name, log }
    }

    /// The process's output so far (for failure messages).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `within` for the process to exit; returns its status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `GET path` over HTTP/1.1; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, &[], "")
}

/// A request over HTTP/1.1 with extra header lines (`Host: test` unless one is given) and a body;
/// returns (status, body).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !headers.iter().any(|h| h.to_ascii_lowercase().starts_with("host:")) {
        head.push_str("Host: test\r\n");
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    write!(stream, "{head}\r\n{body}")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text:?}")))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `within`.
pub fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An HTTP backend on a free port that answers every request with `body`, one request at a time.
/// Stops when dropped.
pub struct Backend {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    pub fn start(body: &'static str) -> Backend {
        Self::slow(body, Duration::ZERO)
    }

    /// A backend that takes `delay` to answer each request (the next waits its turn).
    pub fn slow(body: &'static str, delay: Duration) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 4096];
                        let mut head = Vec::new();
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        std::thread::sleep(delay);
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Backend { port, stop, thread: Some(thread) }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The Envoy binary: `$BOSUN_TEST_ENVOY`, which `scripts/test.sh` sets after installing Envoy.
pub fn envoy_binary() -> PathBuf {
    match std::env::var_os("BOSUN_TEST_ENVOY") {
        Some(path) => PathBuf::from(path),
        None => panic!("BOSUN_TEST_ENVOY is not set: run the tests with scripts/test.sh, which installs Envoy"),
    }
}

/// A running `bosun serve` with its ports.
pub struct Bosun {
    pub proc: Proc,
    pub xds_port: u16,
    pub admin: SocketAddr,
    /// The OpenSergo transport server's port.
    pub opensergo_port: u16,
    dir: PathBuf,
    args: Vec<String>,
    starts: usize,
}

impl Bosun {
    /// Starts `bosun serve` with `args` on free ports and waits for `/healthz`. Without a
    /// `--store` or `--data-dir` in `args`, the embedded store lives in `dir/data`.
    pub fn start(dir: &Path, args: &[&str]) -> Bosun {
        let bosun = Self::launch(dir, args);
        bosun.wait_healthy();
        bosun
    }

    /// Like [`Bosun::start`] without waiting for `/healthz` (for an admin port that speaks TLS).
    pub fn launch(dir: &Path, args: &[&str]) -> Bosun {
        std::fs::create_dir_all(dir).expect("bosun's directory");
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if !args.iter().any(|a| a == "--store" || a == "--data-dir") {
            args.extend(["--data-dir".to_owned(), dir.join("data").display().to_string()]);
        }
        let (xds_port, admin_port, opensergo_port) = (free_port(), free_port(), free_port());
        let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
        args.extend(["--opensergo-addr".to_owned(), format!("127.0.0.1:{opensergo_port}")]);
        let proc = Self::spawn(dir, &args, xds_port, admin_port, 0);
        Bosun { proc, xds_port, admin, opensergo_port, dir: dir.to_owned(), args, starts: 1 }
    }

    fn spawn(dir: &Path, args: &[String], xds_port: u16, admin_port: u16, start: usize) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bosun"));
        cmd.arg("serve")
            .arg("--xds-addr")
            .arg(format!("127.0.0.1:{xds_port}"))
            .arg("--admin-addr")
            .arg(format!("127.0.0.1:{admin_port}"))
            .args(args)
            .env("RUST_LOG", "info,bosun_xds=debug");
        let log = if start == 0 { dir.join("bosun.log") } else { dir.join(format!("bosun.{start}.log")) };
        Proc::spawn("bosun", cmd, log)
    }

    /// Kills the process with SIGKILL (no chance to clean up) and starts it again with the same
    /// arguments on the same ports; waits for `/healthz`.
    pub fn kill_and_restart(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
        let proc = Self::spawn(&self.dir, &self.args, self.xds_port, self.admin.port(), self.starts);
        self.starts += 1;
        // Replacing the field drops (and reaps) the dead process.
        self.proc = proc;
        self.wait_healthy();
    }

    /// `bosun` CLI command against this server: (success, stdout, stderr).
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bosun"));
        cmd.args(args)
            .env("BOSUN_SERVER", format!("http://{}", self.admin))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().expect("bosun CLI");
        if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
            input.write_all(text.as_bytes()).expect("CLI stdin");
        }
        let out = child.wait_with_output().expect("bosun CLI");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn wait_healthy(&self) {
        let ok =
            eventually(Duration::from_secs(20), || http_get(self.admin, "/healthz").ok().filter(|(s, _)| *s == 200));
        assert!(ok.is_some(), "bosun did not become healthy:\n{}", self.proc.output());
    }

    /// `GET /status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        let (code, body) = http_get(self.admin, "/status").expect("GET /status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("status JSON")
    }

    /// The versions the node `node_id` has ACKed, per type, once it has ACKed CDS, EDS, LDS and RDS.
    pub fn acked_versions(&self, node_id: &str) -> Option<serde_json::Value> {
        let status = self.status();
        let node = status["nodes"].as_array()?.iter().find(|n| n["node_id"] == node_id)?.clone();
        let acked: serde_json::Map<String, serde_json::Value> =
            node["types"].as_object()?.iter().map(|(t, s)| (t.clone(), s["acked_version"].clone())).collect();
        (acked.len() == 4 && acked.values().all(serde_json::Value::is_string))
            .then_some(serde_json::Value::Object(acked))
    }

    /// The value of a metric sample line that starts with `prefix` (e.g. `name{labels}`).
    pub fn metric(&self, prefix: &str) -> f64 {
        let (_, body) = http_get(self.admin, "/metrics").expect("GET /metrics");
        body.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }
}

/// Writes `text` to `path` atomically (a hidden temporary file renamed into place).
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("f")));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// The binary `name` of the workspace package `package` (an example plugin), next to
/// `bosun`. `cargo test --workspace` builds it; a narrower run that finds it missing or older
/// than its package's sources builds it here (once per test process).
pub fn workspace_binary(package: &str, name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let bosun = PathBuf::from(env!("CARGO_BIN_EXE_bosun"));
    let path = bosun.with_file_name(name);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(package);
    let stale = match std::fs::metadata(&path).and_then(|m| m.modified()) {
        Ok(binary) => newest(&sources).is_some_and(|source| source > binary),
        Err(_) => true,
    };
    if stale && !built.iter().any(|b| b == name) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--locked", "-p", package, "--bin", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build");
        assert!(status.success(), "building {name} failed");
        built.push(name.to_owned());
    }
    path
}

/// The latest modification time of the files under `dir`.
fn newest(dir: &Path) -> Option<std::time::SystemTime> {
    let mut latest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() { newest(&path) } else { entry.metadata().and_then(|m| m.modified()).ok() };
        latest = latest.max(time);
    }
    latest
}

/// Whether a process with this pid exists.
pub fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// An OpenSergo subscription to the RateLimitStrategies of app `cart` in namespace `shop`.
pub fn cart_rate_limit_subscription(request_id: &str) -> bosun_opensergo::proto::transport::SubscribeRequest {
    use bosun_opensergo::proto::transport::{SubscribeRequest, SubscribeRequestTarget};
    SubscribeRequest {
        target: Some(SubscribeRequestTarget {
            namespace: "shop".into(),
            app: "cart".into(),
            kinds: vec!["fault-tolerance.opensergo.io/v1alpha1/RateLimitStrategy".into()],
            ..Default::default()
        }),
        request_id: request_id.into(),
        ..Default::default()
    }
}
