//! Keeps a plugin running: launches it, health-checks it, restarts it with exponential
//! backoff when it dies or fails its health checks, and stops it on request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::broker::Broker;
use crate::error::{PluginError, Result};
use crate::process::{LaunchConfig, Plugin};

/// What callers of a running plugin need: its channel and the host's side of its broker.
type Connection = (Channel, Broker);

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

/// The state of a supervised plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginState {
    /// Being launched.
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
    /// How many times it was restarted.
    pub restarts: u32,
    /// The last error (a crash, a failed launch or health check).
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
}

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
    /// Starts supervising the plugin; it is launched in the background.
    pub fn start(config: LaunchConfig, policy: RestartPolicy) -> Self {
        let shared = Arc::new(Shared {
            status: Mutex::new(PluginStatus {
                name: config.name.clone(),
                state: PluginState::Starting,
                pid: None,
                address: None,
                restarts: 0,
                last_error: None,
                last_health_ok: None,
            }),
            stop: Notify::new(),
        });
        let (tx, connection) = watch::channel(None);
        let task = tokio::spawn(supervise(config, policy, shared.clone(), tx));
        Self { shared, connection, task: Mutex::new(Some(task)) }
    }

    /// The plugin's current status.
    pub fn status(&self) -> PluginStatus {
        match self.shared.status.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// A channel to the running plugin, waiting up to `wait` for it to be (re)started.
    pub async fn channel(&self, wait: Duration) -> Result<Channel> {
        self.connection(wait).await.map(|(channel, _)| channel)
    }

    /// The host's side of the running plugin's broker, waiting up to `wait` for it to be
    /// (re)started. A restarted plugin has a new broker: services offered to the old process
    /// must be offered again.
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

async fn supervise(
    config: LaunchConfig,
    policy: RestartPolicy,
    shared: Arc<Shared>,
    connection: watch::Sender<Option<Connection>>,
) {
    let mut backoff = policy.initial_backoff;
    let mut in_a_row = 0u32;
    loop {
        shared.update(|s| s.state = PluginState::Starting);
        let launched = tokio::select! {
            r = Plugin::launch(&config) => r,
            () = shared.stop.notified() => break,
        };
        let ended = match launched {
            Ok(plugin) => {
                let started = Instant::now();
                shared.update(|s| {
                    s.state = PluginState::Running;
                    s.pid = Some(plugin.pid());
                    s.address = Some(plugin.handshake().network.address().to_owned());
                });
                connection.send_replace(Some((plugin.channel(), plugin.broker().clone())));
                let ended = watch_plugin(&plugin, &policy, &shared).await;
                connection.send_replace(None);
                shared.update(|s| {
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
        tracing::warn!(plugin = %config.name, error = %ended, "plugin failed; restarting in {backoff:?}");
        in_a_row += 1;
        let give_up = policy.max_restarts.is_some_and(|max| in_a_row > max);
        shared.update(|s| {
            s.last_error = Some(ended);
            s.state = if give_up { PluginState::Failed } else { PluginState::Restarting };
        });
        if give_up {
            tracing::error!(plugin = %config.name, "plugin failed too often; giving up");
            connection.send_replace(None);
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shared.stop.notified() => break,
        }
        shared.update(|s| s.restarts += 1);
        backoff = (backoff * 2).min(policy.max_backoff);
    }
    shared.update(|s| s.state = PluginState::Stopped);
    connection.send_replace(None);
}

/// Runs until the plugin exits, fails its health checks or a stop is asked for.
async fn watch_plugin(plugin: &Plugin, policy: &RestartPolicy, shared: &Shared) -> Ended {
    let mut failures = 0u32;
    let mut ticker = tokio::time::interval(policy.health_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            status = plugin.exited() => return Ended::Crashed(format!("the plugin exited: {status}")),
            () = shared.stop.notified() => return Ended::Stop,
            _ = ticker.tick() => match plugin.health().await {
                Ok(()) => {
                    failures = 0;
                    shared.update(|s| s.last_health_ok = Some(Instant::now()));
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(plugin = %shared_name(shared), error = %e, failures, "plugin health check failed");
                    if failures >= policy.health_failures {
                        return Ended::Crashed(e.to_string());
                    }
                }
            },
        }
    }
}

fn shared_name(shared: &Shared) -> String {
    shared.status.lock().map(|s| s.name.clone()).unwrap_or_default()
}
