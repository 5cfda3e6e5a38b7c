//! Keeps a plugin running: launches it (building it first when it is given as source),
//! prepares it (say, sends its configuration) before any call reaches it, health-checks it,
//! restarts it with exponential backoff when it dies or fails its health checks, reloads it
//! when its binary or source changes on disk, and stops it on request.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::broker::Broker;
use crate::error::{PluginError, Result};
use crate::process::{LaunchConfig, Plugin};
use crate::source::SourceBuild;

/// When and how often a plugin is restarted.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    /// The first delay before a restart.
    pub initial_backoff: Duration,
    /// The longest delay; each restart in a row doubles the delay up to this.
    pub max_backoff: Duration,
    /// A plugin that ran this long resets the delay to `initial_backoff`.
    pub reset_after: Duration,
    /// After this many restarts in a row the plugin is marked failed; `None`: never.
    pub max_restarts: Option<u32>,
    /// How often the plugin's health is checked.
    pub health_interval: Duration,
    /// Failed health checks in a row that make the plugin restart.
    pub health_failures: u32,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
            max_restarts: None,
            health_interval: Duration::from_secs(5),
            health_failures: 3,
        }
    }
}

/// Prepares a freshly launched process before it is handed to callers (for example its
/// `Configure` call, or services offered to it through the broker). An error keeps the
/// process from being used; the text is reported.
pub type OnStart = Arc<dyn Fn(Started) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// A freshly launched process, as [`OnStart`] gets it.
#[derive(Debug, Clone)]
pub struct Started {
    /// A channel to the plugin.
    pub channel: Channel,
    /// The host's side of the plugin's broker, to offer it services.
    pub broker: Broker,
    /// The process id.
    pub pid: u32,
}

/// Where the plugin's binary comes from.
#[derive(Debug, Clone)]
pub enum Executable {
    /// A binary on disk ([`LaunchConfig::path`]).
    Binary,
    /// A source directory, built before each launch whose source changed.
    Source(SourceBuild),
}

/// How [`PluginHost`] runs a plugin besides its [`RestartPolicy`].
#[derive(Clone)]
pub struct HostOptions {
    /// Restarts and health checks.
    pub policy: RestartPolicy,
    /// The binary, or a source to build.
    pub executable: Executable,
    /// Run on each new process before it is used.
    pub on_start: Option<OnStart>,
    /// How often the binary (or source) is checked for a change; `None`: never reloaded.
    /// A change is acted on once it has held for one interval (a file being copied in
    /// is not launched half-written).
    pub reload_interval: Option<Duration>,
    /// After a reload, how long the previous process keeps serving calls that started
    /// before the switch, before it is asked to shut down.
    pub drain: Duration,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            policy: RestartPolicy::default(),
            executable: Executable::Binary,
            on_start: None,
            reload_interval: Some(Duration::from_secs(2)),
            drain: Duration::from_secs(2),
        }
    }
}

impl std::fmt::Debug for HostOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostOptions")
            .field("policy", &self.policy)
            .field("executable", &self.executable)
            .field("on_start", &self.on_start.is_some())
            .field("reload_interval", &self.reload_interval)
            .field("drain", &self.drain)
            .finish()
    }
}

/// The state of a supervised plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginState {
    /// Being built or launched.
    Starting,
    /// Running and connected.
    Running,
    /// Waiting to be launched again after a crash or failed health checks.
    Restarting,
    /// Given up on (too many restarts in a row).
    Failed,
    /// Stopped on request.
    Stopped,
}

/// What [`PluginHost::status`] reports.
#[derive(Debug, Clone)]
pub struct PluginStatus {
    /// The plugin's name.
    pub name: String,
    /// Its state.
    pub state: PluginState,
    /// The pid of the running process.
    pub pid: Option<u32>,
    /// The address of the running process (a unix socket path or `host:port`).
    pub address: Option<String>,
    /// The binary the running process was started from (the build, for a source plugin).
    pub binary: Option<PathBuf>,
    /// How many times it was restarted.
    pub restarts: u32,
    /// How many times a changed binary or source replaced the running process.
    pub reloads: u32,
    /// The last error (a crash, a failed launch, build, reload or health check).
    pub last_error: Option<String>,
    /// When its health was last checked successfully.
    pub last_health_ok: Option<Instant>,
}

struct Shared {
    status: Mutex<PluginStatus>,
    stop: Notify,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut PluginStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    fn name(&self) -> String {
        self.status.lock().map(|s| s.name.clone()).unwrap_or_default()
    }
}

/// What callers of a running plugin need: its channel and the host's side of its broker.
type Connection = (Channel, Broker);

/// A supervised plugin.
pub struct PluginHost {
    shared: Arc<Shared>,
    connection: watch::Receiver<Option<Connection>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost").field("status", &self.status()).finish()
    }
}

impl PluginHost {
    /// Starts supervising the binary of `config`, with `policy` and no reload.
    pub fn start(config: LaunchConfig, policy: RestartPolicy) -> Self {
        Self::start_with(config, HostOptions { policy, reload_interval: None, ..HostOptions::default() })
    }

    /// Starts supervising the plugin as `options` say; it is launched in the background.
    pub fn start_with(config: LaunchConfig, options: HostOptions) -> Self {
        let shared = Arc::new(Shared {
            status: Mutex::new(PluginStatus {
                name: config.name.clone(),
                state: PluginState::Starting,
                pid: None,
                address: None,
                binary: None,
                restarts: 0,
                reloads: 0,
                last_error: None,
                last_health_ok: None,
            }),
            stop: Notify::new(),
        });
        let (tx, connection) = watch::channel(None);
        let supervisor = Supervisor { config, options, shared: shared.clone(), connection: tx };
        let task = tokio::spawn(supervisor.run());
        Self { shared, connection, task: Mutex::new(Some(task)) }
    }

    /// The plugin's current status.
    pub fn status(&self) -> PluginStatus {
        match self.shared.status.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// A channel to the running plugin, waiting up to `wait` for it to be (re)started; with
    /// a zero `wait`, a plugin that is not running fails the call at once.
    pub async fn channel(&self, wait: Duration) -> Result<Channel> {
        self.connection(wait).await.map(|(channel, _)| channel)
    }

    /// The host's side of the running plugin's broker, waiting up to `wait` for it to be
    /// (re)started. A restarted or reloaded plugin has a new broker: services offered to the
    /// old process must be offered again (an [`OnStart`] hook does it for each process).
    pub async fn broker(&self, wait: Duration) -> Result<Broker> {
        self.connection(wait).await.map(|(_, broker)| broker)
    }

    async fn connection(&self, wait: Duration) -> Result<Connection> {
        let mut rx = self.connection.clone();
        let found = tokio::time::timeout(wait, async {
            loop {
                if let Some(c) = rx.borrow_and_update().clone() {
                    return Some(c);
                }
                let state = self.status().state;
                if matches!(state, PluginState::Failed | PluginState::Stopped) {
                    return None;
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match found {
            Ok(Some(c)) => Ok(c),
            _ => {
                if let Some(c) = rx.borrow().clone() {
                    return Ok(c);
                }
                let s = self.status();
                let why = match s.last_error {
                    Some(e) => format!("{:?}: {e}", s.state),
                    None => format!("{:?}", s.state),
                };
                Err(PluginError::NotRunning(why))
            }
        }
    }

    /// Stops the plugin (controller shutdown, grace period, kill) and the supervisor.
    pub async fn shutdown(&self) {
        self.shared.stop.notify_one();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        // Without an explicit shutdown the supervisor is told to stop; it kills the plugin.
        self.shared.stop.notify_one();
    }
}

/// Why the supervisor leaves the run loop of one process.
enum Ended {
    Stop,
    Crashed(String),
}

/// What identifies the version of a plugin on disk: a binary's size, modification time
/// and inode, or a source's content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fingerprint {
    Binary(u64, Option<SystemTime>, u64),
    Source(String),
    Unreadable(String),
}

struct Supervisor {
    config: LaunchConfig,
    options: HostOptions,
    shared: Arc<Shared>,
    connection: watch::Sender<Option<Connection>>,
}

impl Supervisor {
    async fn run(self) {
        let policy = &self.options.policy;
        let mut backoff = policy.initial_backoff;
        let mut in_a_row = 0u32;
        loop {
            self.shared.update(|s| s.state = PluginState::Starting);
            let launched = tokio::select! {
                r = self.launch() => r,
                () = self.shared.stop.notified() => break,
            };
            let ended = match launched {
                Ok((plugin, fingerprint)) => {
                    let started = Instant::now();
                    self.publish(&plugin);
                    let (plugin, ended) = self.watch(plugin, fingerprint).await;
                    self.connection.send_replace(None);
                    self.shared.update(|s| {
                        s.pid = None;
                        s.address = None;
                    });
                    match ended {
                        Ended::Stop => {
                            plugin.shutdown().await;
                            break;
                        }
                        Ended::Crashed(why) => {
                            let status = plugin.kill().await;
                            if started.elapsed() >= policy.reset_after {
                                backoff = policy.initial_backoff;
                                in_a_row = 0;
                            }
                            format!("{why} ({status})")
                        }
                    }
                }
                Err(e) => e.to_string(),
            };
            tracing::warn!(plugin = %self.config.name, error = %ended, "plugin failed; restarting in {backoff:?}");
            in_a_row += 1;
            let give_up = policy.max_restarts.is_some_and(|max| in_a_row > max);
            self.shared.update(|s| {
                s.last_error = Some(ended);
                s.state = if give_up { PluginState::Failed } else { PluginState::Restarting };
            });
            if give_up {
                tracing::error!(plugin = %self.config.name, "plugin failed too often; giving up");
                self.connection.send_replace(None);
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.shared.stop.notified() => break,
            }
            self.shared.update(|s| s.restarts += 1);
            backoff = (backoff * 2).min(policy.max_backoff);
        }
        self.shared.update(|s| s.state = PluginState::Stopped);
        self.connection.send_replace(None);
    }

    /// Builds (for a source), launches and prepares one process.
    async fn launch(&self) -> Result<(Plugin, Fingerprint)> {
        let fingerprint = self.fingerprint();
        let binary = match &self.options.executable {
            Executable::Binary => self.config.path.clone(),
            Executable::Source(build) => build.build().await?,
        };
        let config = LaunchConfig { path: binary.clone(), ..self.config.clone() };
        let plugin = Plugin::launch(&config).await?;
        if let Some(on_start) = &self.options.on_start
            && let Err(e) =
                on_start(Started { channel: plugin.channel(), broker: plugin.broker().clone(), pid: plugin.pid() })
                    .await
        {
            plugin.shutdown().await;
            return Err(PluginError::Prepare(e));
        }
        self.shared.update(|s| s.binary = Some(binary));
        Ok((plugin, fingerprint))
    }

    /// Hands the process to callers.
    fn publish(&self, plugin: &Plugin) {
        self.shared.update(|s| {
            s.state = PluginState::Running;
            s.pid = Some(plugin.pid());
            s.address = Some(plugin.handshake().network.address().to_owned());
        });
        self.connection.send_replace(Some((plugin.channel(), plugin.broker().clone())));
    }

    fn fingerprint(&self) -> Fingerprint {
        match &self.options.executable {
            Executable::Binary => binary_fingerprint(&self.config.path),
            Executable::Source(build) => match build.source_hash() {
                Ok(hash) => Fingerprint::Source(hash),
                Err(e) => Fingerprint::Unreadable(e.to_string()),
            },
        }
    }

    /// Runs until the plugin exits, fails its health checks or a stop is asked for,
    /// replacing it when its binary or source changes. Returns the process last run.
    async fn watch(&self, mut plugin: Plugin, mut launched: Fingerprint) -> (Plugin, Ended) {
        let policy = &self.options.policy;
        let mut failures = 0u32;
        let mut health = tokio::time::interval(policy.health_interval);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reload = tokio::time::interval(self.options.reload_interval.unwrap_or(Duration::from_secs(3600)));
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reload.tick().await;
        // A change seen once; acted on when the next check sees the same.
        let mut pending: Option<Fingerprint> = None;
        // A version that failed to load: not tried again until it changes.
        let mut refused: Option<Fingerprint> = None;
        loop {
            tokio::select! {
                status = plugin.exited() => {
                    return (plugin, Ended::Crashed(format!("the plugin exited: {status}")));
                }
                () = self.shared.stop.notified() => return (plugin, Ended::Stop),
                _ = health.tick() => match plugin.health().await {
                    Ok(()) => {
                        failures = 0;
                        self.shared.update(|s| s.last_health_ok = Some(Instant::now()));
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(plugin = %self.shared.name(), error = %e, failures, "plugin health check failed");
                        if failures >= policy.health_failures {
                            return (plugin, Ended::Crashed(e.to_string()));
                        }
                    }
                },
                _ = reload.tick(), if self.options.reload_interval.is_some() => {
                    let now = self.fingerprint();
                    if now == launched || matches!(now, Fingerprint::Unreadable(_)) || Some(&now) == refused.as_ref() {
                        pending = None;
                        continue;
                    }
                    if pending.as_ref() != Some(&now) {
                        pending = Some(now);
                        continue;
                    }
                    pending = None;
                    tracing::info!(plugin = %self.config.name, "the plugin changed on disk; reloading");
                    let next = tokio::select! {
                        r = self.launch() => r,
                        () = self.shared.stop.notified() => return (plugin, Ended::Stop),
                    };
                    match next {
                        Ok((new, _)) => {
                            self.switch(&mut plugin, new);
                            launched = now;
                            refused = None;
                            failures = 0;
                        }
                        Err(e) => {
                            tracing::warn!(plugin = %self.config.name, error = %e, "reload failed; the running plugin stays");
                            self.shared.update(|s| s.last_error = Some(format!("reload failed: {e}")));
                            refused = Some(now);
                        }
                    }
                }
            }
        }
    }

    /// Switches callers to the new process and stops the old one after the drain period.
    fn switch(&self, plugin: &mut Plugin, new: Plugin) {
        self.publish(&new);
        let old = std::mem::replace(plugin, new);
        self.shared.update(|s| s.reloads += 1);
        let drain = self.options.drain;
        tokio::spawn(async move {
            tokio::time::sleep(drain).await;
            old.shutdown().await;
        });
        tracing::info!(plugin = %self.config.name, pid = plugin.pid(), "plugin reloaded");
    }
}

fn binary_fingerprint(path: &Path) -> Fingerprint {
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::metadata(path) {
        Ok(m) => Fingerprint::Binary(m.len(), m.modified().ok(), m.ino()),
        Err(e) => Fingerprint::Unreadable(e.to_string()),
    }
}
