//! One launched plugin process: environment, handshake, gRPC channel, logs, health, shutdown.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::broker::{self, Broker};
use crate::error::{PluginError, Result};
use crate::handshake::{Handshake, Network, parse_handshake};
use crate::mtls::{Identity, MutualTls};
use crate::proto::go_plugin::{
    Empty, grpc_controller_client::GrpcControllerClient, grpc_stdio_client::GrpcStdioClient,
};
use crate::transport;
use crate::{HEALTH_SERVICE, HandshakeConfig, logs};

/// How many stderr lines are kept to explain a plugin that exits early.
const STDERR_TAIL_LINES: usize = 20;
/// The longest stdout or stderr line read from a plugin; longer lines are cut.
const MAX_LINE: usize = 64 * 1024;

/// How to launch a plugin.
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    /// The plugin's name, used in logs.
    pub name: String,
    /// The binary.
    pub path: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The cookie and the protocol version.
    pub handshake: HandshakeConfig,
    /// Further protocol versions the host accepts besides `handshake.protocol_version`.
    pub extra_protocol_versions: Vec<u32>,
    /// How long the plugin has to print its handshake.
    pub handshake_timeout: Duration,
    /// The TCP port range offered to plugins that listen on TCP.
    pub port_range: (u16, u16),
    /// How long `Shutdown` waits for the plugin to exit before killing its process group.
    pub shutdown_grace: Duration,
    /// The timeout of one health check.
    pub health_timeout: Duration,
    /// Whether host and plugin talk mutual TLS with fresh certificates (go-plugin's AutoMTLS);
    /// on by default. Off, they talk plaintext, as plugins without AutoMTLS support need.
    pub auto_mtls: bool,
}

impl LaunchConfig {
    /// A configuration with Bosun's handshake and default timeouts.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            path: path.into(),
            args: Vec::new(),
            handshake: HandshakeConfig::bosun(),
            extra_protocol_versions: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
            port_range: (10_000, 25_000),
            shutdown_grace: Duration::from_secs(2),
            health_timeout: Duration::from_secs(2),
            auto_mtls: true,
        }
    }

    fn versions(&self) -> Vec<u32> {
        let mut v = vec![self.handshake.protocol_version];
        v.extend(self.extra_protocol_versions.iter().copied().filter(|x| *x != self.handshake.protocol_version));
        v
    }
}

/// A running plugin process with a gRPC channel to it.
#[derive(Debug)]
pub struct Plugin {
    name: String,
    pid: u32,
    handshake: Handshake,
    channel: Channel,
    broker: Broker,
    /// Set when the plugin is stopped or dropped: the host's brokered servers stop.
    broker_stop: watch::Sender<bool>,
    exit: watch::Receiver<Option<String>>,
    shutdown_grace: Duration,
    health_timeout: Duration,
}

type Tail = Arc<Mutex<VecDeque<String>>>;

impl Plugin {
    /// Launches the plugin, waits for its handshake and connects to it (with AutoMTLS when
    /// `config.auto_mtls`), and opens the broker stream.
    ///
    /// The plugin runs in its own process group and gets SIGKILL when the thread that
    /// launched it dies (PR_SET_PDEATHSIG on Linux). On any error the process group is killed.
    pub async fn launch(config: &LaunchConfig) -> Result<Self> {
        let versions = config.versions();
        let identity = if config.auto_mtls {
            // Key generation is CPU work (the first in a process also seeds aws-lc's entropy
            // source, tens of milliseconds): off the async threads.
            let generated = tokio::task::spawn_blocking(Identity::generate).await;
            Some(generated.map_err(|e| PluginError::Tls(format!("certificate generation failed: {e}")))??)
        } else {
            None
        };
        let mut cmd = Command::new(&config.path);
        cmd.args(&config.args)
            .env(&config.handshake.magic_cookie_key, &config.handshake.magic_cookie_value)
            .env("PLUGIN_PROTOCOL_VERSIONS", versions.iter().map(u32::to_string).collect::<Vec<_>>().join(","))
            .env("PLUGIN_MIN_PORT", config.port_range.0.to_string())
            .env("PLUGIN_MAX_PORT", config.port_range.1.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        match &identity {
            Some(identity) => cmd.env("PLUGIN_CLIENT_CERT", identity.cert_pem()),
            // An inherited value would make the plugin serve TLS.
            None => cmd.env_remove("PLUGIN_CLIENT_CERT"),
        };
        #[cfg(target_os = "linux")]
        {
            let parent = std::process::id();
            // SAFETY: prctl and getppid are async-signal-safe and touch no memory of the parent.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The host died before the signal was armed.
                    if u32::try_from(libc::getppid()).ok() != Some(parent) {
                        return Err(std::io::Error::other("the host exited"));
                    }
                    Ok(())
                });
            }
        }
        let mut child =
            cmd.spawn().map_err(|source| PluginError::Spawn { path: config.path.display().to_string(), source })?;
        let pid = child.id().ok_or_else(|| PluginError::NotRunning("exited at once".to_owned()))?;
        let (stdout, stderr) = match (child.stdout.take(), child.stderr.take()) {
            (Some(o), Some(e)) => (o, e),
            _ => return Err(PluginError::NotRunning("no stdout or stderr pipe".to_owned())),
        };
        // The reaper: waits for the process so it never lingers as a zombie.
        let (exit_tx, exit) = watch::channel(None);
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("wait failed: {e}"),
            };
            let _ = exit_tx.send(Some(status));
        });
        let tail: Tail = Arc::new(Mutex::new(VecDeque::new()));
        tokio::spawn(read_stderr(config.name.clone(), stderr, tail.clone()));
        let guard = KillGuard(Some(pid));

        let mut stdout = BufReader::new(stdout);
        let handshake = match tokio::time::timeout(
            config.handshake_timeout,
            read_handshake(&mut stdout, exit.clone(), &tail),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => return Err(PluginError::HandshakeTimeout(config.handshake_timeout)),
        };
        tokio::spawn(drain_stdout(config.name.clone(), stdout));
        if !versions.contains(&handshake.app_version) {
            return Err(PluginError::UnsupportedVersion { got: handshake.app_version, supported: versions });
        }
        let tls = mutual_tls(identity.as_ref(), &handshake)?;
        let channel = transport::connect(&handshake.network, tls.as_ref()).await?;
        let (broker_stop, stopped) = watch::channel(false);
        let (broker, outgoing) = Broker::new(tls, stopped);
        tokio::spawn(broker::run_host_stream(config.name.clone(), channel.clone(), broker.clone(), outgoing));
        guard.disarm();
        tracing::info!(plugin = %config.name, pid, address = handshake.network.address(), "plugin started");
        let plugin = Self {
            name: config.name.clone(),
            pid,
            handshake,
            channel,
            broker,
            broker_stop,
            exit,
            shutdown_grace: config.shutdown_grace,
            health_timeout: config.health_timeout,
        };
        plugin.forward_stdio();
        Ok(plugin)
    }

    /// The process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The parsed handshake.
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    /// A gRPC channel to the plugin; cheap to clone.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The host's side of the plugin's broker: serve services the plugin dials
    /// ([`Broker::accept_and_serve`]) or dial services the plugin offers.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The exit status once the process has exited.
    pub fn exit_status(&self) -> Option<String> {
        self.exit.borrow().clone()
    }

    /// Waits until the process exits; returns its exit status.
    pub async fn exited(&self) -> String {
        let mut exit = self.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(s) => s.clone().unwrap_or_default(),
            Err(_) => "unknown".to_owned(),
        }
    }

    /// Checks the health of the `plugin` service.
    pub async fn health(&self) -> Result<()> {
        let mut client = HealthClient::new(self.channel.clone());
        let req = HealthCheckRequest { service: HEALTH_SERVICE.to_owned() };
        match tokio::time::timeout(self.health_timeout, client.check(req)).await {
            Err(_) => Err(PluginError::Unhealthy(format!("no answer within {:?}", self.health_timeout))),
            Ok(Err(status)) => Err(PluginError::Unhealthy(status.to_string())),
            Ok(Ok(resp)) => match resp.into_inner().status() {
                ServingStatus::Serving => Ok(()),
                other => Err(PluginError::Unhealthy(format!("status {}", other.as_str_name()))),
            },
        }
    }

    /// Stops the plugin: `GRPCController.Shutdown`, up to the grace period for it to exit,
    /// then SIGKILL to its whole process group. Returns once the process is reaped.
    pub async fn shutdown(self) -> String {
        if self.exit_status().is_none() {
            let mut controller = GrpcControllerClient::new(self.channel.clone());
            let asked = tokio::time::timeout(self.shutdown_grace, controller.shutdown(Empty {})).await;
            tracing::debug!(plugin = %self.name, ok = matches!(asked, Ok(Ok(_))), "asked the plugin to shut down");
            if tokio::time::timeout(self.shutdown_grace, self.exited()).await.is_err() {
                tracing::warn!(plugin = %self.name, pid = self.pid, "plugin did not exit in time; killing it");
            }
        }
        self.kill().await
    }

    /// Kills the plugin's process group at once and waits until the process is reaped.
    pub async fn kill(self) -> String {
        self.broker_stop.send_replace(true);
        kill_group(self.pid);
        let status = self.exited().await;
        tracing::info!(plugin = %self.name, pid = self.pid, %status, "plugin stopped");
        if let Network::Unix(path) = &self.handshake.network {
            remove_socket(std::path::Path::new(path));
        }
        status
    }

    /// Forwards the plugin's `GRPCStdio` stream to tracing, for plugins that send one (those
    /// without, like go-plugin before 1.3, answer Unimplemented: nothing to forward).
    fn forward_stdio(&self) {
        let mut client = GrpcStdioClient::new(self.channel.clone());
        let name = self.name.clone();
        tokio::spawn(async move {
            let resp = match client.stream_stdio(Empty {}).await {
                Ok(resp) => resp,
                Err(status) => {
                    tracing::debug!(plugin = %name, %status, "the plugin streams no stdio");
                    return;
                }
            };
            let mut stream = resp.into_inner();
            while let Ok(Some(data)) = stream.message().await {
                let text = String::from_utf8_lossy(&data.data);
                for line in text.lines() {
                    tracing::info!(plugin = %name, channel = data.channel().as_str_name(), "{line}");
                }
            }
        });
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.broker_stop.send_replace(true);
        // A plugin dropped without shutdown (say, the runtime is going away) is killed.
        if self.exit_status().is_none() {
            kill_group(self.pid);
        }
    }
}

/// Kills a process group unless disarmed: a launch that fails leaves no process behind.
struct KillGuard(Option<u32>);

impl KillGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            kill_group(pid);
        }
    }
}

/// Removes the unix socket a killed plugin could not clean up, and its directory if that is
/// then empty. Only a socket is removed, whatever path the plugin printed.
fn remove_socket(path: &std::path::Path) {
    use std::os::unix::fs::FileTypeExt as _;
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if is_socket
        && std::fs::remove_file(path).is_ok()
        && let Some(dir) = path.parent()
    {
        // Fails, harmlessly, unless the directory is empty.
        let _ = std::fs::remove_dir(dir);
    }
}

fn kill_group(pid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pid) {
        // SAFETY: plain syscall; a negative pid addresses the process group we created.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Reads one line of at most [`MAX_LINE`] bytes; `None` at end of file.
async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    loop {
        let available = r.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() { None } else { Some(String::from_utf8_lossy(&buf).into_owned()) });
        }
        let (take, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        let room = MAX_LINE.saturating_sub(buf.len());
        buf.extend_from_slice(&available[..take.min(room)]);
        r.consume(take);
        if done {
            let line = String::from_utf8_lossy(&buf);
            return Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()));
        }
    }
}

async fn read_handshake<R: AsyncRead + Unpin>(
    stdout: &mut BufReader<R>,
    mut exit: watch::Receiver<Option<String>>,
    tail: &Tail,
) -> Result<Handshake> {
    match read_line(stdout).await? {
        Some(line) => parse_handshake(&line),
        None => {
            // Stdout closed: the plugin exited (or closed it); its stderr says why.
            let status = match tokio::time::timeout(Duration::from_secs(2), exit.wait_for(Option::is_some)).await {
                Ok(Ok(s)) => s.clone().unwrap_or_default(),
                _ => "stdout closed".to_owned(),
            };
            // Let the stderr reader catch up with the last lines.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let stderr_tail = tail.lock().map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default();
            Err(PluginError::ExitedBeforeHandshake { status, stderr_tail })
        }
    }
}

async fn drain_stdout<R: AsyncRead + Unpin>(name: String, mut stdout: BufReader<R>) {
    while let Ok(Some(line)) = read_line(&mut stdout).await {
        tracing::debug!(plugin = %name, "stdout: {line}");
    }
}

async fn read_stderr<R: AsyncRead + Unpin>(name: String, stderr: R, tail: Tail) {
    let mut stderr = BufReader::new(stderr);
    while let Ok(Some(line)) = read_line(&mut stderr).await {
        logs::log_line(&name, &line);
        if let Ok(mut t) = tail.lock() {
            if t.len() == STDERR_TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}

/// The TLS of the connection to a plugin: both sides' certificates, or plaintext.
fn mutual_tls(identity: Option<&Identity>, handshake: &Handshake) -> Result<Option<MutualTls>> {
    let invalid = |reason: &str| PluginError::Tls(reason.to_owned());
    match (identity, &handshake.server_cert) {
        (Some(identity), Some(cert)) => Ok(Some(MutualTls::new(identity, cert)?)),
        (Some(_), None) => Err(invalid(
            "the plugin's handshake has no certificate although AutoMTLS is on: the plugin does \
             not support AutoMTLS (turn auto_mtls off for it)",
        )),
        (None, Some(_)) => Err(invalid("the plugin's handshake has a certificate although AutoMTLS is off")),
        (None, None) => Ok(None),
    }
}
