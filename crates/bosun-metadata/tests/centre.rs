//! The metadata centre over the in-memory store, through its gRPC services on a real port.

use std::sync::Arc;
use std::time::Duration;

use bosun_metadata::proto::bosun::metadata::v1 as bosun;
use bosun_metadata::proto::dubbo::networking::v1alpha1 as dubbo;
use bosun_metadata::{MetadataCentre, MetadataConfig};
use bosun_store::LocalStore;
use tonic::Code;
use tonic::transport::Channel;

const TTL: Duration = Duration::from_secs(2);

async fn serve(config: MetadataConfig) -> (Channel, Arc<MetadataCentre>) {
    let store: Arc<dyn bosun_store::Store> = Arc::new(LocalStore::memory().unwrap());
    let centre = Arc::new(MetadataCentre::new(store, config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = bosun_metadata::grpc::add_services(tonic::service::Routes::default(), centre.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    (channel, centre)
}

fn short() -> MetadataConfig {
    MetadataConfig { ttl: TTL, max_value_bytes: 64 }
}

async fn next_event(stream: &mut tonic::Streaming<bosun::ServiceMetadataEvent>) -> bosun::ServiceMetadataEvent {
    tokio::time::timeout(TTL * 4, stream.message()).await.expect("an event in time").unwrap().expect("open stream")
}

#[tokio::test]
async fn publish_get_watch_and_expire() {
    let (channel, _) = serve(short()).await;
    let mut pixiu = dubbo::service_metadata_service_client::ServiceMetadataServiceClient::new(channel.clone());
    let mut client = bosun::service_metadata_service_client::ServiceMetadataServiceClient::new(channel);
    let publish = |revision: &str, info: &str| dubbo::PublishServiceMetadataRequest {
        namespace: "dev".into(),
        application_name: "shop".into(),
        revision: revision.into(),
        metadata_info: info.into(),
    };
    pixiu.publish(publish("r1", "{\"app\":\"shop\"}")).await.unwrap();
    let get = dubbo::GetServiceMetadataRequest {
        namespace: "dev".into(),
        application_name: "shop".into(),
        revision: "r1".into(),
    };
    assert_eq!(pixiu.get(get.clone()).await.unwrap().into_inner().metadata_info, "{\"app\":\"shop\"}");

    let watch = bosun::WatchServiceMetadataRequest {
        namespace: "dev".into(),
        application_name: "shop".into(),
        revision: String::new(),
    };
    let mut events = client.watch(watch).await.unwrap().into_inner();
    let first = next_event(&mut events).await;
    assert_eq!((first.r#type(), first.revision.as_str()), (bosun::EventType::Put, "r1"));
    pixiu.publish(publish("r1", "v2")).await.unwrap();
    let update = next_event(&mut events).await;
    assert_eq!((update.r#type(), update.metadata_info.as_str()), (bosun::EventType::Put, "v2"));

    // Heartbeats keep it past its TTL.
    for _ in 0..4 {
        tokio::time::sleep(TTL / 2).await;
        let beat = bosun::HeartbeatRequest { namespace: "dev".into(), application_name: "shop".into() };
        assert_eq!(client.heartbeat(beat).await.unwrap().into_inner().ttl_seconds, 2);
    }
    assert_eq!(pixiu.get(get.clone()).await.unwrap().into_inner().metadata_info, "v2");

    // Without them it lapses and the watch is told.
    let started = tokio::time::Instant::now();
    let expired = next_event(&mut events).await;
    assert_eq!((expired.r#type(), expired.revision.as_str()), (bosun::EventType::Deleted, "r1"));
    assert!(started.elapsed() <= TTL + Duration::from_secs(5), "expired after {:?}", started.elapsed());
    assert_eq!(pixiu.get(get).await.unwrap_err().code(), Code::NotFound);
    let beat = bosun::HeartbeatRequest { namespace: "dev".into(), application_name: "shop".into() };
    assert_eq!(client.heartbeat(beat).await.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn bad_requests_get_invalid_argument_naming_the_field() {
    let (channel, _) = serve(short()).await;
    let mut pixiu = dubbo::service_metadata_service_client::ServiceMetadataServiceClient::new(channel.clone());
    let mut definitions =
        bosun::service_definition_service_client::ServiceDefinitionServiceClient::new(channel.clone());
    let mut mappings = dubbo::service_name_mapping_service_client::ServiceNameMappingServiceClient::new(channel);
    let publish = |ns: &str, app: &str, revision: &str, info: &str| dubbo::PublishServiceMetadataRequest {
        namespace: ns.into(),
        application_name: app.into(),
        revision: revision.into(),
        metadata_info: info.into(),
    };
    let cases = [
        (publish("", "shop", "r", "x"), "namespace"),
        (publish("dev", "", "r", "x"), "application_name"),
        (publish("dev", "shop", "", "x"), "revision"),
        (publish("dev", "shop", "r", ""), "metadata_info"),
        (publish("dev", "shop", "r", &"x".repeat(65)), "metadata_info: is 65 bytes, over the limit of 64"),
    ];
    for (request, field) in cases {
        let status = pixiu.publish(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(status.message().starts_with(field), "{} does not name {field}", status.message());
    }
    let status = definitions
        .get(bosun::GetServiceDefinitionRequest { identifier: "org.example.Absent".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let request = dubbo::ServiceMappingRequest {
        namespace: "dev".into(),
        application_name: "shop".into(),
        interface_names: vec!["a.B".into(), String::new()],
    };
    let status = mappings.register_service_app_mapping(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("interfaceNames[1]: must not be empty"), "{}", status.message());
}

#[tokio::test]
async fn mappings_and_definitions_share_the_application_lease() {
    let (channel, centre) = serve(short()).await;
    let mut mappings =
        bosun::service_name_mapping_service_client::ServiceNameMappingServiceClient::new(channel.clone());
    let mut definitions = bosun::service_definition_service_client::ServiceDefinitionServiceClient::new(channel);
    for app in ["shop", "cart"] {
        let request = bosun::RegisterServiceAppMappingRequest {
            namespace: "dev".into(),
            application_name: app.into(),
            interface_names: vec!["org.example.Greeter".into()],
        };
        mappings.register_service_app_mapping(request).await.unwrap();
    }
    let get =
        bosun::GetServiceAppMappingRequest { namespace: "dev".into(), interface_name: "org.example.Greeter".into() };
    assert_eq!(mappings.get(get.clone()).await.unwrap().into_inner().application_names, ["cart", "shop"]);
    let listed = bosun_metadata::listing::list_mappings(centre.store().as_ref(), None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].application_names, ["cart", "shop"]);

    let definition = bosun::PublishServiceDefinitionRequest {
        identifier: "org.example.Greeter".into(),
        service_definition: "{\"canonicalName\":\"org.example.Greeter\"}".into(),
        namespace: "dev".into(),
        application_name: "shop".into(),
    };
    definitions.publish(definition).await.unwrap();
    let watch = bosun::WatchServiceDefinitionRequest { identifier: "org.example.".into(), prefix: true };
    let mut events = definitions.watch(watch).await.unwrap().into_inner();
    let first = events.message().await.unwrap().unwrap();
    assert_eq!(first.identifier, "org.example.Greeter");

    // Only shop heartbeats: cart's mapping lapses, shop's mapping and definition stay.
    for _ in 0..5 {
        tokio::time::sleep(TTL / 2).await;
        centre.heartbeat("dev", "shop").await.unwrap();
    }
    assert_eq!(mappings.get(get).await.unwrap().into_inner().application_names, ["shop"]);
    let get = bosun::GetServiceDefinitionRequest { identifier: "org.example.Greeter".into() };
    assert!(definitions.get(get).await.unwrap().into_inner().service_definition.contains("canonicalName"));
    assert_eq!(bosun_metadata::listing::list_definitions(centre.store().as_ref()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_mapping_request_fits_one_transaction() {
    let (_, centre) = serve(short()).await;
    let most = bosun_store::validate::MAX_TXN_OPS;
    let interfaces: Vec<String> = (0..most).map(|i| format!("org.example.I{i}")).collect();
    centre.register_mapping("dev", "shop", &interfaces, "interface_names").await.expect("the most allowed");
    assert_eq!(centre.get_mapping("dev", "org.example.I7").await.unwrap(), ["shop"]);
    let too_many: Vec<String> = (0..=most).map(|i| format!("org.example.I{i}")).collect();
    let err = centre.register_mapping("dev", "shop", &too_many, "interface_names").await.unwrap_err().to_string();
    assert!(err.starts_with(&format!("interface_names: names {} interfaces; at most {most}", most + 1)), "{err}");
}
