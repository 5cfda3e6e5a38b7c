//! `bosun-bench metadata`: N Dubbo applications publishing service metadata to a real
//! `bosun serve` and heartbeating its leases.
//!
//! Phases:
//! 1. publish: every application publishes its metadata (a `MetadataInfo` of `--info-bytes`) and
//!    registers its interface mapping, `--concurrency` at a time over `--connections` channels;
//! 2. heartbeat: for `--duration-secs`, every application heartbeats every `--heartbeat-secs`
//!    (spread evenly), as Dubbo instances keep their metadata alive.
//!
//! For each phase it reports the RPC rate, the store's write rate (its revision's growth, read
//! from bosun's `/status`) and bosun's CPU time (from `/proc`). Heartbeats must all succeed and no
//! entry may expire, or it exits non-zero.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bosun_metadata::proto::bosun::metadata::v1 as bosun;
use bosun_metadata::proto::dubbo::networking::v1alpha1 as dubbo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tonic::transport::{Channel, Endpoint};

use crate::proc_stats::ProcStats;

/// Options of `bosun-bench metadata`.
#[derive(Debug, clap::Args)]
pub struct MetadataArgs {
    /// Applications publishing and heartbeating.
    #[arg(long, default_value_t = 1000)]
    pub apps: usize,
    /// The bosun binary [default: `bosun` next to this one].
    #[arg(long)]
    pub bosun: Option<PathBuf>,
    /// bosun's --store: embedded (in a temporary directory) or memory.
    #[arg(long, default_value = "embedded")]
    pub store: String,
    /// bosun's --metadata-ttl, seconds.
    #[arg(long, default_value_t = 90)]
    pub ttl_secs: u64,
    /// Seconds between an application's heartbeats.
    #[arg(long, default_value_t = 30)]
    pub heartbeat_secs: u64,
    /// How long the heartbeat phase lasts, seconds.
    #[arg(long, default_value_t = 60)]
    pub duration_secs: u64,
    /// Bytes of each application's MetadataInfo.
    #[arg(long, default_value_t = 1024)]
    pub info_bytes: usize,
    /// HTTP/2 connections the applications share.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Publishes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
}

/// A `bosun serve` child process, killed on drop.
struct Server {
    /// Killed when the server is dropped.
    _child: tokio::process::Child,
    pid: u32,
    xds: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl Server {
    async fn start(args: &MetadataArgs) -> anyhow::Result<Self> {
        let bosun = match &args.bosun {
            Some(path) => path.clone(),
            None => std::env::current_exe()?.with_file_name("bosun"),
        };
        let dir = tempfile::tempdir()?;
        let (xds, admin, opensergo) = (free_addr()?, free_addr()?, free_addr()?);
        let child = tokio::process::Command::new(&bosun)
            .arg("serve")
            .args(["--xds-addr", &xds.to_string(), "--admin-addr", &admin.to_string()])
            .args(["--opensergo-addr", &opensergo.to_string(), "--store", &args.store])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--metadata-ttl", &args.ttl_secs.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} (build it: cargo build --release -p bosun)", bosun.display()))?;
        let pid = child.id().context("bosun's pid")?;
        let server = Self { _child: child, pid, xds, admin, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(admin, "/healthz").await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "bosun did not become healthy within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(server)
    }

    /// The store's revision, from `/status`.
    async fn store_revision(&self) -> anyhow::Result<i64> {
        let body = http_get(self.admin, "/status").await?;
        let status: serde_json::Value = serde_json::from_str(&body).context("/status is not JSON")?;
        status["store"]["revision"].as_i64().context("/status has no store revision")
    }
}

/// `GET path` over HTTP/1.1; the body of a 200 answer.
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("not HTTP")?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    Ok(body.to_owned())
}

/// What one phase cost.
struct Phase {
    name: &'static str,
    rpcs: u64,
    wall: Duration,
    writes: i64,
    cpu_secs: f64,
}

impl Phase {
    fn print(&self) {
        let secs = self.wall.as_secs_f64().max(1e-9);
        println!(
            "  {:<10} {} RPCs in {:.1} s ({:.0}/s); store writes {} ({:.0}/s); bosun CPU {:.2} s ({:.0}% of a core)",
            self.name,
            self.rpcs,
            secs,
            self.rpcs as f64 / secs,
            self.writes,
            self.writes as f64 / secs,
            self.cpu_secs,
            100.0 * self.cpu_secs / secs
        );
    }
}

/// Runs the benchmark and prints its figures.
pub async fn run(args: MetadataArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.apps > 0 && args.connections > 0 && args.concurrency > 0,
        "--apps, --connections and --concurrency must be positive"
    );
    anyhow::ensure!(args.heartbeat_secs < args.ttl_secs, "--heartbeat-secs must be under --ttl-secs");
    let server = Server::start(&args).await?;
    let endpoint = Endpoint::from_shared(format!("http://{}", server.xds))?.tcp_nodelay(true);
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        channels.push(endpoint.connect().await?);
    }
    let channel = |app: usize| channels[app % channels.len()].clone();
    println!(
        "bosun-bench metadata: {} apps, store {}, TTL {} s, heartbeat every {} s, {} B MetadataInfo",
        args.apps, args.store, args.ttl_secs, args.heartbeat_secs, args.info_bytes
    );

    // 1. Publish.
    let info = "x".repeat(args.info_bytes);
    let gate = Arc::new(Semaphore::new(args.concurrency));
    let (before, revision) = (ProcStats::read(server.pid)?, server.store_revision().await?);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.apps);
    for app in 0..args.apps {
        let (channel, gate, info) = (channel(app), gate.clone(), info.clone());
        tasks.push(tokio::spawn(async move { publish(channel, gate, app, info).await }));
    }
    for task in tasks {
        task.await??;
    }
    let publish = Phase {
        name: "publish",
        rpcs: 2 * args.apps as u64,
        wall: started.elapsed(),
        writes: server.store_revision().await? - revision,
        cpu_secs: ProcStats::read(server.pid)?.cpu_secs - before.cpu_secs,
    };

    // 2. Heartbeat.
    let (before, revision) = (ProcStats::read(server.pid)?, server.store_revision().await?);
    let (beats, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let period = Duration::from_secs(args.heartbeat_secs);
    let started = Instant::now();
    let end = tokio::time::Instant::now() + Duration::from_secs(args.duration_secs);
    let mut tasks = Vec::with_capacity(args.apps);
    for app in 0..args.apps {
        let offset = period.mul_f64(app as f64 / args.apps as f64);
        let (channel, beats, failures) = (channel(app), beats.clone(), failures.clone());
        tasks.push(tokio::spawn(async move { heartbeat(channel, app, offset, period, end, &beats, &failures).await }));
    }
    for task in tasks {
        task.await?;
    }
    let heartbeat = Phase {
        name: "heartbeat",
        rpcs: beats.load(Ordering::Relaxed),
        wall: started.elapsed(),
        writes: server.store_revision().await? - revision,
        cpu_secs: ProcStats::read(server.pid)?.cpu_secs - before.cpu_secs,
    };
    let listed: serde_json::Value = serde_json::from_str(&http_get(server.admin, "/api/v1/metadata").await?)?;
    let present = listed["items"].as_array().map_or(0, Vec::len);
    let rss = ProcStats::read(server.pid)?.rss_kib;
    drop(server);

    publish.print();
    heartbeat.print();
    println!("  entries    {present}/{} present after the heartbeat phase; bosun RSS {} MiB", args.apps, rss / 1024);
    let failed = failures.load(Ordering::Relaxed);
    anyhow::ensure!(failed == 0, "{failed} heartbeats failed");
    anyhow::ensure!(present == args.apps, "{} entries expired while heartbeating", args.apps - present);
    Ok(())
}

fn application(app: usize) -> String {
    format!("app-{app:05}")
}

async fn publish(channel: Channel, gate: Arc<Semaphore>, app: usize, info: String) -> anyhow::Result<()> {
    let _permit = gate.acquire().await?;
    let mut metadata = dubbo::service_metadata_service_client::ServiceMetadataServiceClient::new(channel.clone());
    let request = dubbo::PublishServiceMetadataRequest {
        namespace: "bench".into(),
        application_name: application(app),
        revision: format!("{app:08x}"),
        metadata_info: info,
    };
    metadata.publish(request).await.with_context(|| format!("publishing {}", application(app)))?;
    let mut mapping = dubbo::service_name_mapping_service_client::ServiceNameMappingServiceClient::new(channel);
    let request = dubbo::ServiceMappingRequest {
        namespace: "bench".into(),
        application_name: application(app),
        interface_names: vec![format!("org.bench.Service{app}")],
    };
    mapping.register_service_app_mapping(request).await.with_context(|| format!("mapping {}", application(app)))?;
    Ok(())
}

async fn heartbeat(
    channel: Channel,
    app: usize,
    offset: Duration,
    period: Duration,
    end: tokio::time::Instant,
    beats: &AtomicU64,
    failures: &AtomicU64,
) {
    let mut client = bosun::service_metadata_service_client::ServiceMetadataServiceClient::new(channel);
    let mut next = tokio::time::Instant::now() + offset;
    while next < end {
        tokio::time::sleep_until(next).await;
        let request = bosun::HeartbeatRequest { namespace: "bench".into(), application_name: application(app) };
        match client.heartbeat(request).await {
            Ok(_) => beats.fetch_add(1, Ordering::Relaxed),
            Err(_) => failures.fetch_add(1, Ordering::Relaxed),
        };
        next += period;
    }
}
