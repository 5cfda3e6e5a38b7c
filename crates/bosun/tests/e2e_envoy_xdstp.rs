//! xdstp:// glob collections with a real Envoy over Delta ADS: Envoy's listeners and clusters
//! come from the collections `xdstp://bosun.test/<type>/edge/*` (its `lds_resources_locator` and
//! `cds_resources_locator`); traffic flows, a cluster added to the collection is used, one
//! deleted is removed, and resources outside the collection are not sent.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::envoy::{
    AdsApi, Scene, envoy_bootstrap, envoy_stat, expect_body, listener, route, start_envoy_with_bootstrap,
};
use common::{Bosun, free_port, write_atomic};

const LISTENERS: &str = "xdstp://bosun.test/envoy.config.listener.v3.Listener/edge";
const CLUSTERS: &str = "xdstp://bosun.test/envoy.config.cluster.v3.Cluster/edge";

/// An EDS cluster named `name` whose endpoints are `endpoints` (a plain name), and those.
fn cluster(name: &str, endpoints: &str, backend_port: u16) -> String {
    format!(
        r#"
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: "{name}"
  type: EDS
  connect_timeout: 1s
  eds_cluster_config:
    service_name: {endpoints}
    eds_config: {{ ads: {{}}, resource_api_version: V3 }}
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: {endpoints}
  endpoints:
  - lb_endpoints:
    - endpoint:
        address:
          socket_address: {{ address: 127.0.0.1, port_value: {backend_port} }}
"#
    )
}

#[test]
fn envoy_follows_glob_collections() {
    let Scene { work, dir, one, two, port, ingress } = Scene::new();
    let alpha = format!("{CLUSTERS}/alpha");
    let beta = format!("{CLUSTERS}/beta");
    std::fs::write(dir.join("listener.yaml"), listener(&format!("\"{LISTENERS}/ingress\""), port)).expect("write");
    std::fs::write(dir.join("route.yaml"), route(&format!("\"{alpha}\""))).expect("write");
    std::fs::write(dir.join("alpha.yaml"), cluster(&alpha, "alpha", one.port)).expect("write");
    // Outside the collections: never sent to this Envoy.
    std::fs::write(dir.join("other.yaml"), cluster(&format!("{CLUSTERS}/other/gamma"), "gamma", one.port))
        .expect("write");
    std::fs::write(dir.join("plain.yaml"), cluster("plain", "plain", one.port)).expect("write");

    let bosun = Bosun::start(work.path(), &["--resources", dir.to_str().expect("utf-8 path")]);
    let admin_port = free_port();
    let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
    let bootstrap = envoy_bootstrap(bosun.xds_port, admin_port, AdsApi::Delta).replace(
        "  cds_config:",
        &format!(
            "  lds_resources_locator: \"{LISTENERS}/*\"\n  cds_resources_locator: \"{CLUSTERS}/*\"\n  cds_config:"
        ),
    );
    let envoy = start_envoy_with_bootstrap(work.path(), &bootstrap);
    expect_body(&envoy, &bosun, ingress, "one", Duration::from_secs(30));
    // Only the collection's cluster (and the static xds one) is in Envoy.
    assert_eq!(envoy_stat(admin, "cluster_manager.active_clusters"), Some(2), "{}", envoy.output());

    // A cluster added to the collection is sent and used.
    write_atomic(&dir.join("beta.yaml"), &cluster(&beta, "beta", two.port));
    write_atomic(&dir.join("route.yaml"), &route(&format!("\"{beta}\"")));
    expect_body(&envoy, &bosun, ingress, "two", Duration::from_secs(10));
    assert_eq!(envoy_stat(admin, "cluster_manager.active_clusters"), Some(3), "{}", envoy.output());

    // A cluster deleted from the collection is removed from Envoy.
    std::fs::remove_file(dir.join("alpha.yaml")).expect("rm");
    let removed = common::eventually(Duration::from_secs(10), || {
        (envoy_stat(admin, "cluster_manager.active_clusters")? == 2).then_some(())
    });
    assert!(removed.is_some(), "alpha was not removed:\n{}", envoy.output());
    expect_body(&envoy, &bosun, ingress, "two", Duration::from_secs(2));
}
