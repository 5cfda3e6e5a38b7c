//! `bosun-bench store`: writes per second and watch latency of a store backend.
//!
//! Phases, each on keys of its own:
//! 1. sequential puts, one at a time (the latency of one acknowledged write), then as many reads
//!    of the revision (the round trip of the smallest call: a plugin's process boundary);
//! 2. concurrent puts from `--concurrency` tasks (throughput with writers in parallel);
//! 3. transactions of 100 puts (bulk loading);
//! 4. watch latency: a watcher on the prefix, the time from a put's start to its event;
//! 5. a list of every key written (pages of 1,000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bosun_store::{Event, Key, Op, Prefix, Selector, Store, StoreExt, Value};
use futures::StreamExt;

/// Options of `bosun-bench store`.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// memory, embedded, etcd, postgres, or plugin:PATH (a storage plugin binary, e.g.
    /// target/release/bosun-embedded-storage-plugin).
    #[arg(long, default_value = "embedded")]
    pub backend: String,
    /// The configuration (JSON) sent to a storage plugin; default `{"path": "<a temp dir>"}`.
    #[arg(long)]
    pub plugin_config: Option<String>,
    /// etcd endpoints (comma-separated) or a PostgreSQL URL; without it, the benchmark starts a
    /// server of its own on loopback (Debian's etcd-server / postgresql).
    #[arg(long)]
    pub url: Option<String>,
    /// Writes in each of the put phases.
    #[arg(long, default_value_t = 2000)]
    pub writes: usize,
    /// Writer tasks in the concurrent phase.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 512)]
    pub value_bytes: usize,
    /// Puts whose watch latency is measured.
    #[arg(long, default_value_t = 500)]
    pub watched: usize,
}

/// Runs the store benchmark and prints its figures.
pub async fn run(args: StoreArgs) -> anyhow::Result<()> {
    let (store, _server) = open(&args).await?;
    let namespace = format!("bench{}", std::process::id());
    let value = Value::new(vec![b'x'; args.value_bytes]).label("app", "bench");
    let key = |phase: &str, i: usize| Key::new("Bench", &namespace, &format!("{phase}{i:07}")).context("key");
    println!(
        "bosun-bench store: backend {}, {} writes per phase, {} B values",
        store.backend(),
        args.writes,
        args.value_bytes
    );

    // 1. Sequential.
    let start = Instant::now();
    for i in 0..args.writes {
        store.put(key("s", i)?, value.clone()).await?;
    }
    report("sequential puts", args.writes, start.elapsed());
    let start = Instant::now();
    for _ in 0..args.writes {
        store.revision().await?;
    }
    report_rate("revision reads", "reads", args.writes, start.elapsed());

    // 2. Concurrent.
    let start = Instant::now();
    let per_task = args.writes.div_ceil(args.concurrency);
    let mut tasks = Vec::new();
    for t in 0..args.concurrency {
        let (store, value) = (store.clone(), value.clone());
        let keys: Vec<Key> =
            (t * per_task..((t + 1) * per_task).min(args.writes)).map(|i| key("c", i)).collect::<Result<_, _>>()?;
        tasks.push(tokio::spawn(async move {
            for k in keys {
                store.put(k, value.clone()).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    report(&format!("concurrent puts ({} tasks)", args.concurrency), args.writes, start.elapsed());

    // 3. Transactions of 100.
    let start = Instant::now();
    for chunk in (0..args.writes).collect::<Vec<_>>().chunks(100) {
        let ops =
            chunk.iter().map(|&i| key("t", i).map(|k| Op::put(k, value.clone()))).collect::<Result<Vec<_>, _>>()?;
        store.txn(ops).await?;
    }
    report("puts in txns of 100", args.writes, start.elapsed());

    // 4. Watch latency.
    let prefix = Prefix::name("Bench", &namespace, "w")?;
    let mut watch = store.watch(&prefix, store.revision().await? + 1).await?;
    let mut latencies = Vec::with_capacity(args.watched);
    for i in 0..args.watched {
        let begun = Instant::now();
        let k = key("w", i)?;
        store.put(k.clone(), value.clone()).await?;
        loop {
            let batch = tokio::time::timeout(Duration::from_secs(10), watch.next())
                .await
                .context("no watch event within 10 s")?
                .context("the watch ended")??;
            if batch.events.iter().any(|e| matches!(e, Event::Put(kv) if kv.key == k)) {
                break;
            }
        }
        latencies.push(begun.elapsed());
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{:<34} p50 {:>8.2} ms  p99 {:>8.2} ms  (put start to event, {} puts)",
        "watch latency",
        ms(pct(0.5)),
        ms(pct(0.99)),
        args.watched
    );

    // 5. List.
    let start = Instant::now();
    let all = store.list_all(&Prefix::namespace("Bench", &namespace)?, &Selector::everything()).await?;
    let elapsed = start.elapsed();
    println!("{:<34} {:>8.2} ms for {} keys", "list (pages of 1,000)", ms(elapsed), all.items.len());
    store.close().await;
    Ok(())
}

fn report(phase: &str, writes: usize, elapsed: Duration) {
    report_rate(phase, "writes", writes, elapsed);
}

fn report_rate(phase: &str, what: &str, count: usize, elapsed: Duration) {
    println!(
        "{phase:<34} {:>9.0} {what}/s  ({:.3} ms each)",
        count as f64 / elapsed.as_secs_f64(),
        ms(elapsed) / count as f64
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Keeps what a store needs alive for the benchmark (its directory, a server it started).
type Keep = Box<dyn std::any::Any + Send>;

/// Opens the store under test.
async fn open(args: &StoreArgs) -> anyhow::Result<(Arc<dyn Store>, Keep)> {
    let url = args.url.as_deref();
    if let Some(path) = args.backend.strip_prefix("plugin:") {
        return open_plugin(path, args.plugin_config.as_deref()).await;
    }
    match args.backend.as_str() {
        "memory" => Ok((Arc::new(bosun_store::LocalStore::memory()?), Box::new(()))),
        "embedded" => {
            let dir = tempfile::tempdir()?;
            let store = bosun_store::LocalStore::open(dir.path()).await?;
            Ok((Arc::new(store), Box::new(dir)))
        }
        "etcd" => {
            let (endpoints, server): (Vec<String>, Keep) = match url {
                Some(url) => (url.split(',').map(str::to_owned).collect(), Box::new(())),
                None => {
                    let server = bosun_testkit::etcd::EtcdServer::start();
                    (server.endpoints(), Box::new(server))
                }
            };
            let store = bosun_store_etcd::EtcdStore::connect(&endpoints, Default::default()).await?;
            Ok((Arc::new(store), server))
        }
        "postgres" => {
            let (url, server): (String, Keep) = match url {
                Some(url) => (url.to_owned(), Box::new(())),
                None => {
                    let server = bosun_testkit::postgres::PostgresServer::start();
                    (server.url(), Box::new(server))
                }
            };
            let store = bosun_store_postgres::PostgresStore::connect(&url, Default::default()).await?;
            Ok((Arc::new(store), server))
        }
        other => anyhow::bail!("unknown backend {other:?}: memory, embedded, etcd, postgres or plugin:PATH"),
    }
}

/// Starts the storage plugin at `path`, configured with `config` or a temporary data directory.
async fn open_plugin(path: &str, config: Option<&str>) -> anyhow::Result<(Arc<dyn Store>, Keep)> {
    let dir = tempfile::tempdir()?;
    let config = match config {
        Some(config) => config.to_owned(),
        None => serde_json::json!({ "path": dir.path() }).to_string(),
    };
    let launch = bosun_plugin::LaunchConfig::new("bench", path);
    let store = bosun_store_plugin::PluginStore::start(launch, config)
        .await
        .with_context(|| format!("starting the storage plugin {path}"))?;
    Ok((Arc::new(store), Box::new(dir)))
}
