//! `bosun-bench`: a load benchmark of the xDS push path (and, with `store`, of a store backend).
//!
//! It starts the server (`bosun-xds` with C EDS clusters and L listeners) in a child process,
//! opens N simulated Envoy ADS clients (State of the World, or Delta with `--delta`), each on its
//! own HTTP/2 connection, waits until all have converged, then changes one resource (the
//! endpoints of one cluster, or with `--change cluster` the cluster itself) and measures the
//! fan-out to every client and the bytes each received for it. It reports convergence and
//! fan-out percentiles, update bytes per client, and the server's RSS and CPU. With `--linear`
//! the endpoints come from a `LinearCache` instead of snapshots; every run also reports the
//! server-side cost of an update (making the new set and waking the streams).
//! `store` benchmarks a store backend; `metadata` the service metadata centre of `bosun serve`.

mod client;
mod delta_client;
mod metadata;
mod proc_stats;
mod server;
mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, mpsc, watch};
use tonic::transport::Endpoint;

use crate::client::ClientResult;
use crate::proc_stats::ProcStats;

#[derive(Debug, Parser)]
#[command(name = "bosun-bench", about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run only the server (used by the benchmark itself; prints `listening <addr>`).
    Server {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        #[arg(long, default_value_t = 100)]
        clusters: usize,
        #[arg(long, default_value_t = 10)]
        listeners: usize,
        #[arg(long, value_enum, default_value_t = server::Change::Endpoints)]
        change: server::Change,
        #[arg(long)]
        linear: bool,
    },
    /// Benchmark a store backend: writes per second and watch latency.
    Store(store::StoreArgs),
    /// Benchmark the metadata centre of a real `bosun serve`: N applications publishing and
    /// heartbeating.
    Metadata(metadata::MetadataArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Simulated Envoy clients, each on its own connection.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// EDS clusters in the snapshot.
    #[arg(long, default_value_t = 100)]
    clusters: usize,
    /// Listeners (each with its RDS route configuration).
    #[arg(long, default_value_t = 10)]
    listeners: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// The clients speak Delta (incremental) ADS instead of State of the World.
    #[arg(long)]
    delta: bool,
    /// Which resource the update changes.
    #[arg(long, value_enum, default_value_t = server::Change::Endpoints)]
    change: server::Change,
    /// Serve the endpoints from a `LinearCache` (behind a `MuxCache`) instead of snapshots; an
    /// update replaces one cluster's endpoints in it.
    #[arg(long)]
    linear: bool,
    /// Updates whose server-side cost is measured: the fan-out one, then the others one at a
    /// time after it.
    #[arg(long, default_value_t = 20)]
    updates: usize,
    /// Give up after this many seconds per phase.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Benchmark this server program instead of the built-in `server` subcommand: a program
    /// path, optionally followed by arguments, split at whitespace (for example
    /// `"target/gcp-bench-server"`). `--clusters`, `--listeners` and `--change` are appended; it
    /// must speak the same stdio protocol (`listening <addr>`, `update` → `updated`).
    #[arg(long, value_name = "COMMAND")]
    server_cmd: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Some(Command::Server { addr, clusters, listeners, change, linear }) => {
            runtime.block_on(server::run(addr, clusters, listeners, change, linear))
        }
        Some(Command::Store(args)) => runtime.block_on(store::run(args)),
        Some(Command::Metadata(args)) => runtime.block_on(metadata::run(args)),
        None => runtime.block_on(bench(cli.run)),
    }
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn median(sorted: &[usize]) -> usize {
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn change_arg(change: server::Change) -> &'static str {
    match change {
        server::Change::Endpoints => "endpoints",
        server::Change::Cluster => "cluster",
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Asks the server for one update and returns what it took the server to make the new set and
/// wake the streams (`updated <µs>`; a server that prints only `updated` gives no figure).
async fn update(
    server_in: &mut tokio::process::ChildStdin,
    server_out: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    timeout: Duration,
) -> anyhow::Result<Option<Duration>> {
    server_in.write_all(b"update\n").await?;
    server_in.flush().await?;
    let line = tokio::time::timeout(timeout, server_out.next_line()).await??.context("server exited")?;
    let micros = line.strip_prefix("updated").with_context(|| format!("server did not update: {line:?}"))?.trim();
    if micros.is_empty() {
        return Ok(None);
    }
    Ok(Some(Duration::from_micros(micros.parse().with_context(|| format!("server update time {micros:?}"))?)))
}

/// The server program and the arguments before the common ones: `--server-cmd` split at
/// whitespace, or this binary's own `server` subcommand.
fn server_command(server_cmd: Option<&str>) -> anyhow::Result<(std::path::PathBuf, Vec<String>)> {
    match server_cmd {
        Some(cmd) => {
            let mut words = cmd.split_whitespace().map(str::to_owned);
            let program = words.next().context("--server-cmd: empty command")?;
            Ok((program.into(), words.collect()))
        }
        None => Ok((std::env::current_exe()?, vec!["server".to_owned()])),
    }
}

async fn bench(args: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !(args.linear && args.server_cmd.is_some()),
        "--linear: an option of the built-in server, not of a --server-cmd program"
    );
    let (program, leading_args) = server_command(args.server_cmd.as_deref())?;
    let mut child = tokio::process::Command::new(&program)
        .args(&leading_args)
        .args(["--clusters", &args.clusters.to_string(), "--listeners", &args.listeners.to_string()])
        .args(["--change", change_arg(args.change)])
        .args(args.linear.then_some("--linear"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the server process {}", program.display()))?;
    let pid = child.id().context("server pid")?;
    let mut server_in = child.stdin.take().context("server stdin")?;
    let mut server_out = BufReader::new(child.stdout.take().context("server stdout")?).lines();
    let timeout = Duration::from_secs(args.timeout_secs);
    let line = tokio::time::timeout(timeout, server_out.next_line()).await??.context("server exited")?;
    let addr: SocketAddr = line.strip_prefix("listening ").context("server handshake")?.parse()?;

    let idle = ProcStats::read(pid)?;
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (report_tx, mut report_rx) = mpsc::unbounded_channel::<(usize, ClientResult)>();
    let gate = std::sync::Arc::new(Semaphore::new(args.connect_concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.clients);
    for id in 0..args.clients {
        let (endpoint, stop, report, gate) = (endpoint.clone(), stop_rx.clone(), report_tx.clone(), gate.clone());
        let (clusters, change, delta) = (args.clusters, args.change, args.delta);
        tasks.push(tokio::spawn(async move {
            // Hold a permit until converged: bounds the connection stampede.
            let permit = gate.acquire_owned().await;
            let (inner_tx, mut inner_rx) = mpsc::unbounded_channel();
            let forward = tokio::spawn(async move {
                let mut permit = permit.ok();
                while let Some(r) = inner_rx.recv().await {
                    permit.take();
                    if report.send(r).is_err() {
                        break;
                    }
                }
            });
            let result = if delta {
                delta_client::run(endpoint, id, clusters, change, stop, inner_tx).await
            } else {
                client::run(endpoint, id, clusters, change, stop, inner_tx).await
            };
            let _ = forward.await;
            result
        }));
    }
    drop(report_tx);

    // Phase 1: convergence.
    let mut results: HashMap<usize, ClientResult> = HashMap::new();
    let deadline = Instant::now() + timeout;
    while results.values().filter(|r| r.converged.is_some()).count() < args.clients {
        match tokio::time::timeout_at(deadline.into(), report_rx.recv()).await {
            Ok(Some((id, r))) => {
                results.insert(id, r);
            }
            Ok(None) => break,
            Err(_) => break,
        }
    }
    let converged_wall = started.elapsed();
    let converged_count = results.values().filter(|r| r.converged.is_some()).count();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_converge = ProcStats::read(pid)?;

    // Phase 2: one changed cluster, fanned out to every client.
    let t0 = Instant::now();
    let mut update_cost = Vec::with_capacity(args.updates.max(1));
    update_cost.extend(update(&mut server_in, &mut server_out, timeout).await?);
    let mut fanout = Vec::with_capacity(args.clients);
    let mut update_bytes = Vec::with_capacity(args.clients);
    let mut update_resources = Vec::with_capacity(args.clients);
    let deadline = Instant::now() + timeout;
    while fanout.len() < converged_count {
        match tokio::time::timeout_at(deadline.into(), report_rx.recv()).await {
            Ok(Some((_, r))) => {
                if let Some(at) = r.updated_at {
                    fanout.push(at.saturating_duration_since(t0));
                    update_bytes.push(r.update_bytes);
                    update_resources.push(r.update_resources);
                }
            }
            _ => break,
        }
    }
    let fanout_wall = t0.elapsed();
    let after_update = ProcStats::read(pid)?;
    for _ in 1..args.updates {
        tokio::time::sleep(Duration::from_millis(50)).await;
        update_cost.extend(update(&mut server_in, &mut server_out, timeout).await?);
    }
    update_cost.sort();
    let _ = stop_tx.send(true);
    let mut failures = 0;
    for t in tasks {
        if !matches!(t.await, Ok(Ok(()))) {
            failures += 1;
        }
    }
    drop(server_in);
    let _ = child.kill().await;

    let mut conv: Vec<Duration> = results.values().filter_map(|r| r.converged).collect();
    conv.sort();
    fanout.sort();
    let rss_per_client = (after_converge.rss_kib.saturating_sub(idle.rss_kib)) as f64 / args.clients.max(1) as f64;
    update_bytes.sort_unstable();
    update_resources.sort_unstable();
    println!(
        "bosun-bench: {} clients ({}), {} clusters, {} listeners, update changes {}, endpoints from {}",
        args.clients,
        if args.delta { "delta" } else { "sotw" },
        args.clusters,
        args.listeners,
        change_arg(args.change),
        if args.linear { "a linear cache" } else { "snapshots" }
    );
    println!("  server             {}", args.server_cmd.as_deref().unwrap_or("bosun-xds (built-in)"));
    println!("  converged          {converged_count}/{} in {}", args.clients, ms(converged_wall));
    println!(
        "  convergence        p50 {}  p99 {}  max {}",
        ms(percentile(&conv, 0.5)),
        ms(percentile(&conv, 0.99)),
        ms(conv.last().copied().unwrap_or_default())
    );
    println!("  updated            {}/{converged_count} in {}", fanout.len(), ms(fanout_wall));
    println!(
        "  update fan-out     p50 {}  p99 {}  max {}",
        ms(percentile(&fanout, 0.5)),
        ms(percentile(&fanout, 0.99)),
        ms(fanout.last().copied().unwrap_or_default())
    );
    println!(
        "  update per client  p50 {} bytes in {} resources, max {} bytes",
        median(&update_bytes),
        median(&update_resources),
        update_bytes.last().copied().unwrap_or_default()
    );
    println!(
        "  server update      p50 {} µs  max {} µs over {} updates (make the new set and wake)",
        percentile(&update_cost, 0.5).as_micros(),
        update_cost.last().copied().unwrap_or_default().as_micros(),
        update_cost.len()
    );
    println!(
        "  server RSS         idle {} MiB, converged {} MiB, {:.1} KiB per client",
        idle.rss_kib / 1024,
        after_converge.rss_kib / 1024,
        rss_per_client
    );
    println!(
        "  server CPU         convergence {:.2} s, fan-out {:.3} s",
        after_converge.cpu_secs - idle.cpu_secs,
        after_update.cpu_secs - after_converge.cpu_secs
    );
    if failures > 0 {
        println!("  client errors      {failures}");
    }
    anyhow::ensure!(converged_count == args.clients, "{} clients did not converge", args.clients - converged_count);
    anyhow::ensure!(fanout.len() == args.clients, "{} clients missed the update", args.clients - fanout.len());
    Ok(())
}
