//! The broker: the host serves a service through it, and the example `broker-relay` plugin,
//! when called, dials that service and calls it; with AutoMTLS on and off.

mod support;

use std::time::{Duration, Instant};

use bosun_plugin::proto::bosun::transform_server::TransformServer;
use bosun_plugin::{DIAL_WAIT, LaunchConfig, Plugin, PluginHost, RestartPolicy, TransformClient, TransformOutcome};
use support::{Recorder, bounded};

const PLUGIN: &str = env!("CARGO_BIN_EXE_broker-relay");

#[tokio::test]
async fn plugin_calls_the_host_through_the_broker() {
    for auto_mtls in [true, false] {
        let mut config = LaunchConfig::new("broker-relay", PLUGIN);
        config.auto_mtls = auto_mtls;
        let plugin = bounded(Plugin::launch(&config)).await.unwrap();
        let recorder = Recorder::default();
        let id = plugin.broker().next_id();
        assert_eq!(id, 1);
        let routes = tonic::service::Routes::new(TransformServer::new(recorder.clone()));
        bounded(plugin.broker().accept_and_serve(id, routes)).await.unwrap();

        let mut client = TransformClient::new(plugin.channel());
        for round in 0..2 {
            let out = bounded(client.transform("RateLimitStrategy", "ns", "rl", br#"{"spec":{}}"#)).await.unwrap();
            assert_eq!(out, TransformOutcome::Changed(br#"{"from":"host"}"#.to_vec()), "mtls {auto_mtls}");
            let seen = recorder.seen.lock().unwrap().clone();
            assert_eq!(seen.len(), round + 1, "mtls {auto_mtls}");
            assert_eq!(seen[round].name, "relayed:rl");
            assert_eq!(seen[round].document_json, br#"{"spec":{}}"#);
        }
        let status = bounded(plugin.shutdown()).await;
        assert!(status.contains("exit status: 0"), "{status}");
    }
}

#[tokio::test]
async fn dialing_a_service_never_offered_fails_in_bounded_time() {
    let plugin = bounded(Plugin::launch(&LaunchConfig::new("broker-relay", PLUGIN))).await.unwrap();
    let mut client = TransformClient::new(plugin.channel());
    bounded(client.configure(r#"{"service_id": 7}"#)).await.unwrap();
    let started = Instant::now();
    let err = bounded(client.transform("RateLimitStrategy", "ns", "rl", b"{}")).await.unwrap_err();
    assert!(err.to_string().contains("no offer of service 7 within"), "{err}");
    assert!(started.elapsed() >= DIAL_WAIT && started.elapsed() < DIAL_WAIT + Duration::from_secs(5));
    // The host's broker, too, gives up on a service the plugin never offers.
    let err = bounded(plugin.broker().dial(3)).await.unwrap_err();
    assert!(err.to_string().contains("no offer of service 3 within"), "{err}");
    bounded(plugin.shutdown()).await;
}

#[tokio::test]
async fn supervised_plugin_calls_the_host_through_the_broker() {
    let host = PluginHost::start(LaunchConfig::new("broker-relay", PLUGIN), RestartPolicy::default());
    let broker = bounded(host.broker(Duration::from_secs(20))).await.unwrap();
    let recorder = Recorder::default();
    let routes = tonic::service::Routes::new(TransformServer::new(recorder.clone()));
    bounded(broker.accept_and_serve(1, routes)).await.unwrap();
    let mut client = TransformClient::new(bounded(host.channel(Duration::from_secs(20))).await.unwrap());
    let out = bounded(client.transform("RateLimitStrategy", "ns", "sup", b"{}")).await.unwrap();
    assert_eq!(out, TransformOutcome::Changed(br#"{"from":"host"}"#.to_vec()));
    assert_eq!(recorder.seen.lock().unwrap()[0].name, "relayed:sup");
    bounded(host.shutdown()).await;
    assert!(host.broker(Duration::from_millis(10)).await.is_err());
}
