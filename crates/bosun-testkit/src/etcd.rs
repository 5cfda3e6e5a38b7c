//! etcd (Debian `etcd-server`): one member or a cluster.
//!
//! Every member listens on free ports of 127.0.0.1, keeps its data in a temporary directory, runs
//! in a process group of its own (so killing it kills everything it started) and dies with the
//! thread that started it (`PR_SET_PDEATHSIG`), so a test killed outright leaves no etcd behind.
//! Members are killed when their server or cluster is dropped.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// The etcd binary Debian's `etcd-server` installs.
pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// How long a member (or a cluster) may take to answer after starting.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One etcd process: its ports, data directory and log.
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    /// `name=peer-url,...` of the whole cluster.
    initial_cluster: String,
    /// The same for every member of a cluster, unique to it.
    cluster_token: String,
    child: Option<Child>,
}

impl Member {
    fn new(name: &str, root: &Path) -> Self {
        Self {
            name: name.to_owned(),
            client_port: free_port(),
            peer_port: free_port(),
            data_dir: root.join(format!("{name}.etcd")),
            log: root.join(format!("{name}.log")),
            initial_cluster: String::new(),
            cluster_token: String::new(),
            child: None,
        }
    }

    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// Starts the process (with the data it has, if any); does not wait for it.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "etcd member {} is already running", self.name);
        if !Path::new(ETCD_BIN).exists() {
            panic!("{ETCD_BIN} not found: apt-get install etcd-server (scripts/test.sh installs it)");
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let log_err = log.try_clone().unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let (client, peer) = (self.client_url(), self.peer_url());
        let mut command = Command::new(ETCD_BIN);
        command
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster, "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", &self.cluster_token])
            // Quick elections, so that losing a member costs a test a second at most.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {ETCD_BIN}: {e}"));
        self.child = Some(child);
    }

    /// Whether the member answers `/health` with a leader; an error (with its log) if the process
    /// has exited.
    fn healthy(&mut self) -> Result<bool, String> {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            self.child = None;
            return Err(format!("etcd member {} exited with {status}:\n{}", self.name, self.log_tail()));
        }
        Ok(self.answers())
    }

    /// Whether the member answers `/health` with a leader.
    fn answers(&self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.client_port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n", self.client_port);
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.contains("\"health\":\"true\"")
    }

    /// SIGKILL to the member's process group, then waits for it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: signals the process group this member leads; no memory is involved.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until every running member of `members` is healthy, at most [`START_TIMEOUT`].
fn wait_healthy(members: &mut [Member]) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let mut all = true;
        for member in members.iter_mut().filter(|m| m.child.is_some()) {
            all &= member.healthy()?;
        }
        if all {
            return Ok(());
        }
        if start.elapsed() > START_TIMEOUT {
            let logs: Vec<String> = members.iter().map(|m| format!("== {}\n{}", m.name, m.log_tail())).collect();
            return Err(format!("etcd did not become healthy within {START_TIMEOUT:?}:\n{}", logs.join("\n")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a cluster of `size` members on free ports under `root` and waits until it is healthy.
/// A port taken by someone else between choosing and binding it makes it try again (three times
/// at most) on other ports.
fn launch(size: usize, root: &Path) -> Vec<Member> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let dir = root.join(format!("attempt{attempt}"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut members: Vec<Member> = (0..size).map(|i| Member::new(&format!("bosun{i}"), &dir)).collect();
        let initial_cluster =
            members.iter().map(|m| format!("{}={}", m.name, m.peer_url())).collect::<Vec<_>>().join(",");
        let token = format!("bosun-test-{}", members[0].peer_port);
        for member in &mut members {
            member.initial_cluster = initial_cluster.clone();
            member.cluster_token = token.clone();
            member.spawn();
        }
        match wait_healthy(&mut members) {
            Ok(()) => return members,
            Err(e) if attempt < 3 && e.contains("address already in use") => {
                eprintln!("etcd: a port was taken, trying others");
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// A single-member etcd on free loopback ports, killed on drop.
pub struct EtcdServer {
    member: Member,
    _dir: tempfile::TempDir,
}

impl EtcdServer {
    /// Starts etcd and waits until it answers. Panics with what to install when etcd is missing.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary directory: {e}"));
        let member = launch(1, dir.path()).pop().unwrap_or_else(|| panic!("no etcd member started"));
        Self { member, _dir: dir }
    }

    /// The client URLs (`http://127.0.0.1:PORT`).
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.member.client_url()]
    }

    /// Kills etcd (SIGKILL); its data stays for [`EtcdServer::restart`].
    pub fn kill(&mut self) {
        self.member.kill();
    }

    /// Starts etcd again on the same ports and data (killing it first if it runs) and waits until
    /// it answers.
    pub fn restart(&mut self) {
        self.member.kill();
        self.member.spawn();
        wait_healthy(std::slice::from_mut(&mut self.member)).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// An etcd cluster of several members on free loopback ports, killed on drop.
pub struct EtcdCluster {
    members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `size` members and waits until every one answers with a leader elected.
    pub fn start(size: usize) -> Self {
        assert!(size > 0, "a cluster needs a member");
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary directory: {e}"));
        let members = launch(size, dir.path());
        Self { members, _dir: dir }
    }

    /// Every member's client URL, in member order (running or not).
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// Kills member `i` (SIGKILL); its data stays for [`EtcdCluster::restart_member`].
    pub fn kill_member(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts member `i` again with its data and waits until it answers.
    pub fn restart_member(&mut self, i: usize) {
        let member = &mut self.members[i];
        member.kill();
        member.spawn();
        wait_healthy(std::slice::from_mut(member)).unwrap_or_else(|e| panic!("{e}"));
    }
}
