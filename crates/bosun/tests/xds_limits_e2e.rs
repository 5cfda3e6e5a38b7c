//! The xDS port's limits against a running `bosun serve`: extra connections are closed and
//! counted, garbage and oversized messages end only their own connection or stream, streams per
//! connection are bounded, and HTTP/2 keepalive notices a peer that went silent.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::envoy::eds_cluster;
use common::pki::{H2_PREFACE, is_h2_settings, raw_exchange};
use common::{Bosun, eventually, write_atomic};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const WAIT: Duration = Duration::from_secs(10);

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A Bosun serving the cluster `alpha` from a resources directory, with `flags`.
fn bosun_with_a_cluster(work: &Path, flags: &[&str]) -> Bosun {
    let dir = work.join("resources");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("alpha.yaml"), eds_cluster("alpha", 1)).expect("write");
    let mut args = vec!["--resources", path(&dir)];
    args.extend_from_slice(flags);
    Bosun::start(work, &args)
}

async fn channel(addr: SocketAddr) -> Channel {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
    tokio::time::timeout(WAIT, endpoint.connect()).await.expect("connect: timed out").expect("connect")
}

/// An ADS stream of one node, asking for every cluster.
struct Ads {
    tx: mpsc::Sender<DiscoveryRequest>,
    responses: tonic::Streaming<DiscoveryResponse>,
}

fn cds_request(node_id: &str, last: Option<&DiscoveryResponse>) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(Node { id: node_id.to_owned(), cluster: "limits".to_owned(), ..Default::default() }),
        type_url: CLUSTER_TYPE.to_owned(),
        version_info: last.map(|r| r.version_info.clone()).unwrap_or_default(),
        response_nonce: last.map(|r| r.nonce.clone()).unwrap_or_default(),
        ..Default::default()
    }
}

impl Ads {
    async fn open(channel: Channel, node_id: &str) -> Ads {
        let (tx, rx) = mpsc::channel(8);
        tx.send(cds_request(node_id, None)).await.expect("queue the request");
        let mut client = AggregatedDiscoveryServiceClient::new(channel);
        let responses = client.stream_aggregated_resources(ReceiverStream::new(rx)).await.expect("ADS").into_inner();
        Ads { tx, responses }
    }

    async fn next(&mut self) -> DiscoveryResponse {
        match tokio::time::timeout(WAIT, self.responses.message()).await {
            Ok(Ok(Some(response))) => response,
            other => panic!("no response: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_connections_are_closed_and_counted() {
    let work = tempfile::tempdir().expect("tempdir");
    let bosun = bosun_with_a_cluster(work.path(), &["--xds-max-connections", "2"]);
    let xds: SocketAddr = ([127, 0, 0, 1], bosun.xds_port).into();
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut tcp = TcpStream::connect(xds).expect("connect");
        tcp.set_read_timeout(Some(WAIT)).expect("timeout");
        tcp.write_all(H2_PREFACE).expect("preface");
        let mut buf = [0u8; 64];
        let n = tcp.read(&mut buf).expect("SETTINGS");
        assert!(is_h2_settings(&buf[..n]), "{:?}", &buf[..n]);
        open.push(tcp);
    }
    let third = raw_exchange(xds, H2_PREFACE, Duration::from_secs(3)).expect("connect");
    assert!(third.closed && third.bytes.is_empty(), "a third connection was served: {third:?}");
    assert_eq!(bosun.metric("bosun_connections_refused_total{port=\"xds\"}"), 1.0);
    assert_eq!(bosun.metric("bosun_connections_open{port=\"xds\"}"), 2.0);
    assert!(
        bosun.proc.output().contains("connection refused: the port has its maximum open"),
        "{}",
        bosun.proc.output()
    );

    // A place frees up when a connection closes.
    drop(open.pop());
    let served = eventually(WAIT, || {
        let reply = raw_exchange(xds, H2_PREFACE, Duration::from_millis(500)).ok()?;
        is_h2_settings(&reply.bytes).then_some(())
    });
    assert!(served.is_some(), "no connection was accepted after one closed");
}

/// A message that is not a `DiscoveryRequest`: field 1 (`version_info`, a string) as a varint.
#[derive(Clone, PartialEq, prost::Message)]
struct NotADiscoveryRequest {
    #[prost(uint64, tag = "1")]
    version_info_as_a_number: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_messages_end_only_their_own_connection_or_stream() {
    let work = tempfile::tempdir().expect("tempdir");
    let bosun = bosun_with_a_cluster(work.path(), &["--xds-max-message-bytes", "65536"]);
    let xds: SocketAddr = ([127, 0, 0, 1], bosun.xds_port).into();
    let channel = channel(xds).await;
    let mut steady = Ads::open(channel.clone(), "steady").await;
    let first = steady.next().await;
    assert_eq!(first.resources.len(), 1);
    steady.tx.send(cds_request("steady", Some(&first))).await.expect("ACK");

    // Not HTTP/2 at all: the connection is closed.
    for garbage in [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[0xffu8; 64][..]] {
        let reply = raw_exchange(xds, garbage, Duration::from_secs(5)).expect("connect");
        assert!(reply.closed, "a connection sending {garbage:?} was kept open: {reply:?}");
    }

    // A malformed protobuf on a stream of the same connection: that stream gets an error.
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("ready");
    let bogus = futures::stream::iter([NotADiscoveryRequest { version_info_as_a_number: 7 }]);
    let ads_path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources",
    );
    let codec = tonic_prost::ProstCodec::<NotADiscoveryRequest, DiscoveryResponse>::default();
    let outcome = tokio::time::timeout(WAIT, async {
        let mut responses = grpc.streaming(tonic::Request::new(bogus), ads_path, codec).await?.into_inner();
        responses.message().await
    })
    .await
    .expect("no answer to a malformed request");
    let status = outcome.expect_err("a malformed request was answered");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
    assert!(status.message().contains("version_info"), "the field is named: {status}");

    // A request larger than --xds-max-message-bytes: that stream gets OUT_OF_RANGE.
    let (tx, rx) = mpsc::channel(1);
    let mut big = cds_request("big", None);
    big.resource_names = (0..10_000).map(|i| format!("cluster-with-a-long-name-{i}")).collect();
    tx.send(big).await.expect("queue");
    let mut client = AggregatedDiscoveryServiceClient::new(channel.clone());
    let outcome = tokio::time::timeout(WAIT, async {
        client.stream_aggregated_resources(ReceiverStream::new(rx)).await?.into_inner().message().await
    })
    .await
    .expect("no answer to an oversized request");
    let status = outcome.expect_err("an oversized request was answered");
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status}");

    // The first stream is unaffected: it gets the next change.
    write_atomic(&work.path().join("resources/beta.yaml"), &eds_cluster("beta", 2));
    let update = steady.next().await;
    assert_eq!(update.resources.len(), 2, "{update:?}");
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_per_connection_are_bounded() {
    let work = tempfile::tempdir().expect("tempdir");
    let bosun = bosun_with_a_cluster(work.path(), &["--xds-max-streams-per-connection", "2"]);
    let channel = channel(([127, 0, 0, 1], bosun.xds_port).into()).await;
    let mut one = Ads::open(channel.clone(), "one").await;
    one.next().await;
    let mut two = Ads::open(channel.clone(), "two").await;
    two.next().await;
    let third = tokio::spawn({
        let channel = channel.clone();
        async move {
            let mut three = Ads::open(channel, "three").await;
            three.next().await
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!third.is_finished(), "a third stream was served on a connection allowing two");
    drop(one);
    let response = tokio::time::timeout(WAIT, third).await.expect("the third stream never started").expect("task");
    assert_eq!(response.resources.len(), 1);
    drop(two);
}

/// A TCP proxy to `target` that, once `frozen`, drops everything in both directions while
/// keeping the connection open, like a peer whose host died.
fn freezable_proxy(target: SocketAddr, frozen: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else { return };
        let Ok(server) = TcpStream::connect(target) else { return };
        let pipe = |mut from: TcpStream, mut to: TcpStream, frozen: Arc<AtomicBool>| {
            std::thread::spawn(move || {
                let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
                let mut buf = [0u8; 16384];
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                while std::time::Instant::now() < deadline {
                    match from.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) if !frozen.load(Ordering::Relaxed) => {
                            if to.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        }
                        Err(_) => return,
                    }
                }
            })
        };
        let up = pipe(client.try_clone().expect("clone"), server.try_clone().expect("clone"), frozen.clone());
        let down = pipe(server, client, frozen);
        let _ = (up.join(), down.join());
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_notices_a_silent_peer() {
    let work = tempfile::tempdir().expect("tempdir");
    let bosun = bosun_with_a_cluster(work.path(), &["--xds-keepalive-interval", "1", "--xds-keepalive-timeout", "1"]);
    let frozen = Arc::new(AtomicBool::new(false));
    let proxy = freezable_proxy(([127, 0, 0, 1], bosun.xds_port).into(), frozen.clone());
    let mut ads = Ads::open(channel(proxy).await, "silent").await;
    ads.next().await;
    let has_node = |bosun: &Bosun| {
        bosun.status()["nodes"].as_array().is_some_and(|nodes| nodes.iter().any(|n| n["node_id"] == "silent"))
    };
    assert!(has_node(&bosun), "{}", bosun.status());
    // Still there after a few keepalive rounds while the peer answers pings.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(has_node(&bosun), "a live peer was dropped:\n{}", bosun.proc.output());

    frozen.store(true, Ordering::Relaxed);
    let started = std::time::Instant::now();
    let gone = eventually(WAIT, || (!has_node(&bosun)).then_some(()));
    assert!(gone.is_some(), "the silent peer's stream is still open:\n{}", bosun.status());
    assert!(started.elapsed() >= Duration::from_millis(500), "dropped before a keepalive round");
    drop(ads);
}
