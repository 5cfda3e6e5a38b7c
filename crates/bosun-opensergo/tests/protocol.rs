//! The SubscribeConfig protocol over a real tonic connection on 127.0.0.1, against a server that
//! follows an in-memory store.

use std::sync::Arc;
use std::time::Duration;

use bosun_opensergo::proto::fault_tolerance::RateLimitStrategy;
use bosun_opensergo::proto::transport::open_sergo_universal_transport_service_client::OpenSergoUniversalTransportServiceClient as Client;
use bosun_opensergo::proto::transport::{
    Status as WireStatus, SubscribeOpType, SubscribeRequest, SubscribeRequestTarget, SubscribeResponse,
};
use bosun_opensergo::{CODE_INVALID_REQUEST, CODE_OK, CODE_PUSH, OpenSergoServer};
use bosun_store::{Key, LocalStore, Store, StoreExt, Value};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const RLS: &str = "fault-tolerance.opensergo.io/v1alpha1/RateLimitStrategy";
const CBS: &str = "fault-tolerance.opensergo.io/v1alpha1/CircuitBreakerStrategy";
const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    store: Arc<dyn Store>,
    server: OpenSergoServer,
    addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Harness {
    async fn start() -> Harness {
        let store: Arc<dyn Store> = Arc::new(LocalStore::memory().expect("memory store"));
        let server = OpenSergoServer::new("bosun-test");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let (follower, rx) = (server.clone(), stopped.clone());
        let followed = store.clone();
        tasks.push(tokio::spawn(async move { follower.follow(followed, rx).await }));
        let service = server.service();
        let mut rx = stopped;
        tasks.push(tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
                .expect("server");
        }));
        Harness { store, server, addr, stop, tasks }
    }

    async fn connect(&self) -> Conn {
        let mut client = Client::connect(format!("http://{}", self.addr)).await.expect("connect");
        let (tx, rx) = mpsc::channel(16);
        let responses = client.subscribe_config(ReceiverStream::new(rx)).await.expect("stream").into_inner();
        Conn { tx, responses }
    }

    async fn put_rate_limit(&self, name: &str, app: &str, threshold: u64) {
        let spec = serde_json::json!({"metricType": "RequestAmount", "limitMode": "Global", "threshold": threshold, "statDurationSeconds": 1});
        let key = Key::new("RateLimitStrategy", "shop", name).expect("key");
        self.store.put(key, Value::new(spec.to_string()).label("app", app)).await.expect("put");
        self.synced().await;
    }

    /// Waits until the server has followed the store up to its current revision.
    async fn synced(&self) {
        let revision = self.store.revision().await.expect("revision");
        tokio::time::timeout(WAIT, async {
            while self.server.status().revision.is_none_or(|r| r < revision) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the server follows the store");
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = tokio::time::timeout(WAIT, task).await;
        }
    }
}

struct Conn {
    tx: mpsc::Sender<SubscribeRequest>,
    responses: Streaming<SubscribeResponse>,
}

impl Conn {
    async fn send(&self, request: SubscribeRequest) {
        self.tx.send(request).await.expect("send");
    }

    async fn subscribe(&self, request_id: &str, namespace: &str, app: &str, kinds: &[&str]) {
        self.send(target_request(request_id, namespace, app, kinds, SubscribeOpType::Subscribe)).await;
    }

    async fn ack(&self, response_id: &str, code: i32, message: &str) {
        let flag = if code == CODE_OK { "ACK" } else { "NACK" };
        self.send(SubscribeRequest {
            response_ack: flag.into(),
            request_id: response_id.into(),
            status: Some(WireStatus { code, message: message.into(), details: vec![] }),
            ..Default::default()
        })
        .await;
    }

    async fn recv(&mut self) -> SubscribeResponse {
        tokio::time::timeout(WAIT, self.responses.message())
            .await
            .expect("a response in time")
            .expect("no stream error")
            .expect("the stream is open")
    }

    /// Asserts that nothing arrives for a while.
    async fn quiet(&mut self, within: Duration) {
        if let Ok(message) = tokio::time::timeout(within, self.responses.message()).await {
            panic!("unexpected: {message:?}");
        }
    }
}

fn target_request(id: &str, namespace: &str, app: &str, kinds: &[&str], op: SubscribeOpType) -> SubscribeRequest {
    SubscribeRequest {
        target: Some(SubscribeRequestTarget {
            namespace: namespace.into(),
            app: app.into(),
            labels: vec![],
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
        }),
        op_type: op.into(),
        identifier: "test-client".into(),
        request_id: id.into(),
        ..Default::default()
    }
}

fn code(response: &SubscribeResponse) -> i32 {
    response.status.as_ref().map_or(0, |s| s.code)
}

fn rate_limits(response: &SubscribeResponse) -> (i64, Vec<RateLimitStrategy>) {
    let data = response.data_with_version.as_ref().expect("data");
    let rules = data.data.iter().map(|any| RateLimitStrategy::decode(any.value.as_slice()).expect("decodes")).collect();
    (data.version, rules)
}

#[tokio::test]
async fn subscribe_push_ack_nack_and_delete() {
    let h = Harness::start().await;
    h.put_rate_limit("rl", "cart", 5).await;
    h.put_rate_limit("other-app", "orders", 7).await;
    let mut c = h.connect().await;
    c.subscribe("req-1", "shop", "cart", &[RLS]).await;

    let first = c.recv().await;
    assert_eq!((code(&first), first.response_id.as_str(), first.kind.as_str()), (CODE_OK, "req-1", RLS));
    assert_eq!((first.namespace.as_str(), first.app.as_str(), first.ack.as_str()), ("shop", "cart", ""));
    assert_eq!(first.control_plane.as_ref().map(|c| c.identifier.as_str()), Some("bosun-test"));
    let (v1, rules) = rate_limits(&first);
    assert_eq!(rules.len(), 1, "only the cart app's rule");
    assert_eq!(
        (rules[0].name.as_str(), rules[0].threshold, rules[0].metric_type, rules[0].limit_mode),
        ("rl", 5, 1, 2)
    );
    c.ack("req-1", CODE_OK, "").await;

    h.put_rate_limit("rl", "cart", 9).await;
    let push = c.recv().await;
    assert_eq!(code(&push), CODE_PUSH);
    assert_ne!(push.response_id, "req-1");
    let (v2, rules) = rate_limits(&push);
    assert!(v2 > v1, "{v2} > {v1}");
    assert_eq!(rules[0].threshold, 9);
    c.ack(&push.response_id, 4007, "subscriber failed").await;

    // The ACK of the first version and the NACK of the second are visible.
    let status = tokio::time::timeout(WAIT, async {
        loop {
            let status = h.server.status();
            let sub = status.clients.first().and_then(|c| c.subscriptions.first().cloned());
            if let Some(sub) = sub.filter(|s| s.last_nack.is_some()) {
                return (status.clients[0].clone(), sub);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the NACK is recorded");
    let (client, sub) = status;
    assert_eq!(client.identifier.as_deref(), Some("test-client"));
    assert_eq!((client.acks, client.nacks), (1, 1));
    assert_eq!(sub.acked.map(|a| a.version), Some(v1));
    let nack = sub.last_nack.expect("nack");
    assert_eq!((nack.version, nack.code, nack.message.as_str()), (v2, 4007, "subscriber failed"));

    // A write to another application pushes nothing here; a delete pushes an empty set.
    h.put_rate_limit("other-app", "orders", 8).await;
    h.store.delete(Key::new("RateLimitStrategy", "shop", "rl").expect("key")).await.expect("delete");
    let gone = c.recv().await;
    let (v3, rules) = rate_limits(&gone);
    assert!(v3 > v2 && rules.is_empty(), "{v3} {rules:?}");
    drop(c);
    h.stop().await;
}

#[tokio::test]
async fn invalid_subscriptions_get_4002() {
    let h = Harness::start().await;
    let mut c = h.connect().await;
    for (id, ns, app, kinds, field) in [
        ("no-ns", "", "cart", vec![RLS], "target.namespace: missing"),
        ("no-app", "shop", "", vec![RLS], "target.app: missing"),
        ("no-kinds", "shop", "cart", vec![], "target.kinds: missing"),
        ("bad-kind", "shop", "cart", vec!["RateLimitStrategy"], "target.kinds[0]: unknown kind"),
        ("lane", "shop", "cart", vec!["traffic.opensergo.io/v1alpha1/TrafficLane"], "target.kinds[0]"),
    ] {
        c.subscribe(id, ns, app, &kinds).await;
        let response = c.recv().await;
        assert_eq!(
            (code(&response), response.response_id.as_str(), response.ack.as_str()),
            (CODE_INVALID_REQUEST, id, "NACK")
        );
        let message = &response.status.as_ref().expect("status").message;
        assert!(message.contains(field), "{id}: {message}");
        assert!(response.data_with_version.is_none());
    }
    let status = h.server.status();
    assert!(status.clients[0].subscriptions.is_empty(), "nothing was subscribed");
    drop(c);
    h.stop().await;
}

#[tokio::test]
async fn unsubscribe_stops_pushes_of_those_kinds_only() {
    let h = Harness::start().await;
    let mut c = h.connect().await;
    c.subscribe("s", "shop", "cart", &[RLS, CBS]).await;
    let kinds = [c.recv().await.kind, c.recv().await.kind];
    assert_eq!(kinds, [RLS, CBS]);
    c.send(target_request("u", "shop", "cart", &[RLS], SubscribeOpType::Unsubscribe)).await;
    let answer = c.recv().await;
    assert_eq!((code(&answer), answer.response_id.as_str(), answer.ack.as_str()), (CODE_OK, "u", "ACK"));

    h.put_rate_limit("rl", "cart", 1).await;
    c.quiet(Duration::from_millis(500)).await;
    let spec = serde_json::json!({"strategy": "ErrorRequestRatio", "triggerRatio": "50%", "statDuration": "1s",
        "recoveryTimeout": "1s", "minRequestAmount": 1});
    let key = Key::new("CircuitBreakerStrategy", "shop", "cb").expect("key");
    h.store.put(key, Value::new(spec.to_string()).label("app", "cart")).await.expect("put");
    let push = c.recv().await;
    assert_eq!((code(&push), push.kind.as_str()), (CODE_PUSH, CBS));
    let subs: Vec<_> = h.server.status().clients[0].subscriptions.iter().map(|s| s.kind.clone()).collect();
    assert_eq!(subs, [CBS]);
    drop(c);
    h.stop().await;
}

#[tokio::test]
async fn every_client_gets_pushes_and_a_stalled_one_blocks_nobody() {
    let h = Harness::start().await;
    h.put_rate_limit("rl", "cart", 0).await;
    // This client subscribes and then never reads.
    let stalled = h.connect().await;
    stalled.subscribe("s", "shop", "cart", &[RLS]).await;
    let mut a = h.connect().await;
    let mut b = h.connect().await;
    for c in [&a, &b] {
        c.subscribe("s", "shop", "cart", &[RLS]).await;
    }
    for c in [&mut a, &mut b] {
        assert_eq!(code(&c.recv().await), CODE_OK);
    }
    // Enough changes of a large rule set to fill the stalled client's queues many times over.
    for i in 0..50 {
        for j in 0..20 {
            h.put_rate_limit(&format!("rl-{j}-{}", "x".repeat(200)), "cart", i).await;
        }
    }
    for c in [&mut a, &mut b] {
        let mut last = 0;
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let response = c.recv().await;
                let (version, rules) = rate_limits(&response);
                assert!(version > last, "versions grow: {version} after {last}");
                last = version;
                if rules.len() == 21 && rules.iter().all(|r| r.name == "rl" || r.threshold == 49) {
                    return;
                }
            }
        })
        .await
        .expect("both readers get the final rules");
    }
    assert_eq!(h.server.status().clients.len(), 3);
    drop((stalled, a, b));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_change_reaches_every_subscriber() {
    const CONNECTIONS: usize = 4;
    const STREAMS: usize = 50;
    let h = Harness::start().await;
    h.put_rate_limit("rl", "cart", 1).await;
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS {
        let client = Client::connect(format!("http://{}", h.addr)).await.expect("connect");
        for _ in 0..STREAMS {
            let (tx, rx) = mpsc::channel(16);
            let responses =
                client.clone().subscribe_config(ReceiverStream::new(rx)).await.expect("stream").into_inner();
            let conn = Conn { tx, responses };
            conn.subscribe("s", "shop", "cart", &[RLS]).await;
            conns.push(conn);
        }
    }
    for c in &mut conns {
        assert_eq!(code(&c.recv().await), CODE_OK);
    }
    let started = std::time::Instant::now();
    h.put_rate_limit("rl", "cart", 2).await;
    let receivers = conns.into_iter().map(|mut c| {
        tokio::spawn(async move {
            let push = c.recv().await;
            assert_eq!(rate_limits(&push).1[0].threshold, 2);
            c
        })
    });
    let conns: Vec<Conn> =
        futures::future::join_all(receivers).await.into_iter().map(|r| r.expect("receiver")).collect();
    let elapsed = started.elapsed();
    println!("one change reached {} subscribers in {elapsed:?}", conns.len());
    assert_eq!(h.server.status().clients.len(), CONNECTIONS * STREAMS);
    drop(conns);
    h.stop().await;
}
