//! Crash safety of the embedded store: a child process (this test binary again, in child mode)
//! writes transactions in a loop and reports each acknowledged one; it is SIGKILLed at an
//! arbitrary point; the data dir, opened again, has every acknowledged write, no half of any
//! transaction, and takes writes.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bosun_store::{Key, LocalStore, Op, Prefix, Selector, Store, StoreExt, Value};

const CHILD_DIR: &str = "BOSUN_STORE_CRASH_CHILD_DIR";
const CHILD_START: &str = "BOSUN_STORE_CRASH_CHILD_START";

fn key(side: &str, i: u64) -> Key {
    Key::new("Crash", side, &format!("k{i:06}")).unwrap()
}

/// The child: writes `a/i` and `b/i` in one transaction per `i`, printing `ACK i` after each.
/// Does nothing unless started by [`acknowledged_writes_survive_sigkill`].
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let start: u64 = std::env::var(CHILD_START).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let store = LocalStore::open(Path::new(&dir)).await.unwrap();
        let mut out = std::io::stdout().lock();
        for i in start..start + 1_000_000 {
            let value = Value::new(format!("value {i}"));
            store.txn(vec![Op::put(key("a", i), value.clone()), Op::put(key("b", i), value)]).await.unwrap();
            writeln!(out, "ACK {i}").unwrap();
            out.flush().unwrap();
        }
    });
}

/// Runs the child until it has acknowledged `acks` writes (or 30 s pass), then SIGKILLs it.
/// Returns the acknowledged `i`s.
fn run_child_and_kill(dir: &Path, start: u64, acks: usize) -> Vec<u64> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_START, start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, receive) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(i) = line.strip_prefix("ACK ").and_then(|i| i.parse::<u64>().ok())
                && send.send(i).is_err()
            {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut acked = Vec::new();
    while acked.len() < acks {
        let left = deadline.saturating_duration_since(Instant::now());
        match receive.recv_timeout(left) {
            Ok(i) => acked.push(i),
            Err(_) => break,
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Acknowledgements printed before the kill count too.
    reader.join().unwrap();
    acked.extend(receive.try_iter());
    acked
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut acked_all: Vec<u64> = Vec::new();
    let mut start = 0;
    // A few rounds, each killed after a different number of writes.
    for (round, acks) in [37usize, 150, 61].into_iter().enumerate() {
        let acked = run_child_and_kill(dir.path(), start, acks);
        assert!(!acked.is_empty(), "round {round}: the child acknowledged nothing");
        acked_all.extend(&acked);
        runtime.block_on(async {
            let store = LocalStore::open(dir.path()).await.expect("reopens after SIGKILL");
            for &i in &acked_all {
                let a = store.get(&key("a", i)).await.unwrap();
                assert_eq!(
                    a.map(|kv| kv.value.data),
                    Some(format!("value {i}").into()),
                    "round {round}: acknowledged write {i} lost"
                );
            }
            // No half transaction: a and b hold the same keys.
            let names = |side: &'static str| {
                let store = &store;
                async move {
                    let prefix = Prefix::namespace("Crash", side).unwrap();
                    let page = store.list_all(&prefix, &Selector::everything()).await.unwrap();
                    page.items.into_iter().map(|kv| kv.key.name().to_owned()).collect::<Vec<_>>()
                }
            };
            let (a, b) = (names("a").await, names("b").await);
            assert_eq!(a, b, "round {round}: a transaction was half written");
            assert!(a.len() >= acked_all.len());
            // Usable: it takes writes, at a revision after everything there.
            let before = store.revision().await.unwrap();
            let after = store.put(key("c", round as u64), Value::new("after")).await.unwrap();
            assert!(after > before);
            start = a.len() as u64;
            store.close().await;
        });
    }
}
