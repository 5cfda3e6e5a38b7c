//! Generates the tonic service glue for the xDS discovery services with Bosun's own codec.
//!
//! The generated servers decode requests with prost, but encode responses with
//! `crate::codec::XdsCodec`, which writes pre-encoded, shared resource bytes instead of
//! re-encoding a `DiscoveryResponse` (or `DeltaDiscoveryResponse`) per stream (DESIGN.md §2
//! item 10). Every service has its State-of-the-World and its Delta method; VHDS is Delta only.

use tonic_build::manual::{Builder, Method, Service};

/// (proto package, service name, [(rust method, route method, request, response)])
type Spec = (&'static str, &'static str, &'static [(&'static str, &'static str, &'static str)]);

const SOTW_REQ: &str = "envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest";
const DELTA_REQ: &str = "envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest";

const SERVICES: &[Spec] = &[
    (
        "envoy.service.discovery.v3",
        "AggregatedDiscoveryService",
        &[
            ("stream_aggregated_resources", "StreamAggregatedResources", SOTW_REQ),
            ("delta_aggregated_resources", "DeltaAggregatedResources", DELTA_REQ),
        ],
    ),
    (
        "envoy.service.cluster.v3",
        "ClusterDiscoveryService",
        &[("stream_clusters", "StreamClusters", SOTW_REQ), ("delta_clusters", "DeltaClusters", DELTA_REQ)],
    ),
    (
        "envoy.service.endpoint.v3",
        "EndpointDiscoveryService",
        &[("stream_endpoints", "StreamEndpoints", SOTW_REQ), ("delta_endpoints", "DeltaEndpoints", DELTA_REQ)],
    ),
    (
        "envoy.service.listener.v3",
        "ListenerDiscoveryService",
        &[("stream_listeners", "StreamListeners", SOTW_REQ), ("delta_listeners", "DeltaListeners", DELTA_REQ)],
    ),
    (
        "envoy.service.route.v3",
        "RouteDiscoveryService",
        &[("stream_routes", "StreamRoutes", SOTW_REQ), ("delta_routes", "DeltaRoutes", DELTA_REQ)],
    ),
    (
        "envoy.service.secret.v3",
        "SecretDiscoveryService",
        &[("stream_secrets", "StreamSecrets", SOTW_REQ), ("delta_secrets", "DeltaSecrets", DELTA_REQ)],
    ),
    (
        "envoy.service.runtime.v3",
        "RuntimeDiscoveryService",
        &[("stream_runtime", "StreamRuntime", SOTW_REQ), ("delta_runtime", "DeltaRuntime", DELTA_REQ)],
    ),
    (
        "envoy.service.extension.v3",
        "ExtensionConfigDiscoveryService",
        &[
            ("stream_extension_configs", "StreamExtensionConfigs", SOTW_REQ),
            ("delta_extension_configs", "DeltaExtensionConfigs", DELTA_REQ),
        ],
    ),
    (
        "envoy.service.route.v3",
        "VirtualHostDiscoveryService",
        &[("delta_virtual_hosts", "DeltaVirtualHosts", DELTA_REQ)],
    ),
];

fn main() {
    let services: Vec<Service> = SERVICES
        .iter()
        .map(|(package, name, methods)| {
            methods
                .iter()
                .fold(Service::builder().name(*name).package(*package), |svc, (method, route, req)| {
                    svc.method(
                        Method::builder()
                            .name(*method)
                            .route_name(*route)
                            .input_type(*req)
                            .output_type("crate::codec::EncodedMessage")
                            .codec_path("crate::codec::XdsCodec")
                            .client_streaming()
                            .server_streaming()
                            .build(),
                    )
                })
                .build()
        })
        .collect();
    Builder::new().build_client(false).build_transport(false).compile(&services);
    println!("cargo:rerun-if-changed=build.rs");
}
