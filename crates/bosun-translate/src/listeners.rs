//! A listener per HTTP port: an HTTP connection manager whose routes come over RDS, with the
//! filters the rules configure per route.

use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType as NetworkConfigType;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::http::custom_response::v3::CustomResponse;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
};
use envoy_types::pb::google::protobuf::Any;

use crate::routes::route_table_name;
use crate::{CUSTOM_RESPONSE_FILTER, FAULT_FILTER, RATE_LIMIT_FILTER, proto};

/// The listener of an HTTP port, on `address`.
///
/// Every listener has the same filters, whether or not a route uses them (each does nothing
/// without a route's configuration), so that a rule change updates routes only: a listener
/// change would make Envoy drain its connections. The custom response filter comes first so that
/// it sees the answers of the fault and rate limit filters after it.
pub(crate) fn http_listener(address: &str, port: u16) -> Listener {
    let name = route_table_name(port);
    let filter = |name: &str, config: Any| HttpFilter {
        name: name.to_owned(),
        config_type: Some(ConfigType::TypedConfig(config)),
        ..Default::default()
    };
    let manager = HttpConnectionManager {
        stat_prefix: name.clone(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(proto::ads()),
            route_config_name: name.clone(),
        })),
        http_filters: vec![
            filter(CUSTOM_RESPONSE_FILTER, proto::any(&CustomResponse::default())),
            filter(FAULT_FILTER, proto::any(&HttpFault::default())),
            filter(
                RATE_LIMIT_FILTER,
                proto::any(&LocalRateLimit { stat_prefix: "bosun_rate_limit".to_owned(), ..Default::default() }),
            ),
            filter("envoy.filters.http.router", proto::any(&Router::default())),
        ],
        ..Default::default()
    };
    Listener {
        name,
        address: Some(Address {
            address: Some(AddressKind::SocketAddress(SocketAddress {
                address: address.to_owned(),
                port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
                ..Default::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_owned(),
                config_type: Some(NetworkConfigType::TypedConfig(proto::any(&manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}
