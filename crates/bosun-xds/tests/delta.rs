//! Delta (incremental) xDS over TCP with a tonic client: subscriptions, removals, reconnects
//! with `initial_resource_versions`, per-resource updates, NACKs and ADS ordering.

mod common;

use bosun_xds::type_url::{CLUSTER, ENDPOINT, LISTENER, ROUTE, VIRTUAL_HOST};
use bosun_xds::{Resource, Snapshot};
use common::delta::*;
use common::*;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::VirtualHost;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};
use prost::Message;

/// Sets clusters `cs` (EDS, with endpoints on port `port`) for node `n1`.
fn set_clusters(server: &TestServer, cs: &[(&str, u32)]) {
    let mut rs = Vec::new();
    for (c, port) in cs {
        rs.push(Resource::new(&eds_cluster(c)));
        rs.push(Resource::new(&cla(c, *port)));
    }
    server.cache.set_snapshot("n1", Snapshot::new(rs)).expect("consistent");
}

#[tokio::test]
async fn wildcard_then_one_change_out_of_many_sends_that_one() {
    let server = TestServer::start().await;
    let clusters: Vec<String> = (0..50).map(|i| format!("c{i:02}")).collect();
    let mut cs: Vec<(&str, u32)> = clusters.iter().map(|c| (c.as_str(), 9000)).collect();
    set_clusters(&server, &cs);
    let mut cds = DeltaStream::open(&server, "n1", Kind::Cds).await;
    cds.request(CLUSTER, &[], &[], "").await;
    let first = cds.recv().await;
    assert_eq!(sent(&first), clusters, "an empty first CDS request is a wildcard");
    assert!(first.removed_resources.is_empty());
    cds.ack(&first).await;
    cds.expect_quiet().await;

    // Change one cluster's content (endpoints stay): only that cluster is sent.
    let mut rs: Vec<Resource> = Vec::new();
    for (c, port) in &cs {
        let mut cluster = eds_cluster(c);
        if *c == "c07" {
            cluster.alt_stat_name = "changed".into();
        }
        rs.push(Resource::new(&cluster));
        rs.push(Resource::new(&cla(c, *port)));
    }
    server.cache.set_snapshot("n1", Snapshot::new(rs)).expect("consistent");
    let update = cds.recv().await;
    assert_eq!(sent(&update), ["c07"]);
    assert_ne!(versions(&update)["c07"], versions(&first)["c07"]);
    let c07 = Cluster::decode(update.resources[0].resource.as_ref().expect("any").value.as_slice()).expect("cluster");
    assert_eq!(c07.alt_stat_name, "changed");
    cds.ack(&update).await;

    // Delete one: only its removal is sent.
    cs.retain(|(c, _)| *c != "c03");
    set_clusters(&server, &cs);
    let deletion = cds.recv().await;
    assert!(deletion.resources.iter().all(|r| r.name != "c03"));
    assert_eq!(removed(&deletion), ["c03"]);
    drop(cds);
    server.shutdown().await;
}

#[tokio::test]
async fn subscribe_unsubscribe_and_unknown_names_are_removed() {
    let server = TestServer::start().await;
    set_clusters(&server, &[("a", 9000), ("b", 9001)]);
    let mut eds = DeltaStream::open(&server, "n1", Kind::Eds).await;
    eds.request(ENDPOINT, &["a", "ghost"], &[], "").await;
    let r1 = eds.recv().await;
    assert_eq!(sent(&r1), ["a"]);
    assert_eq!(removed(&r1), ["ghost"], "a subscribed name that does not exist is reported removed");
    eds.ack(&r1).await;
    eds.expect_quiet().await;

    // Subscribe to b: only b comes.
    eds.request(ENDPOINT, &["b"], &[], &r1.nonce).await;
    let r2 = eds.recv().await;
    assert_eq!(sent(&r2), ["b"]);
    assert!(r2.removed_resources.is_empty(), "ghost was already reported: {:?}", r2.removed_resources);
    eds.ack(&r2).await;

    // Unsubscribe from a; a change to a is then not sent, a change to b is.
    eds.request(ENDPOINT, &[], &["a"], &r2.nonce).await;
    eds.expect_quiet().await;
    set_clusters(&server, &[("a", 9100), ("b", 9101)]);
    let r3 = eds.recv().await;
    assert_eq!(sent(&r3), ["b"]);
    eds.ack(&r3).await;

    // ghost appears: it is sent, as it is still subscribed.
    set_clusters(&server, &[("a", 9100), ("b", 9101), ("ghost", 9102)]);
    let r4 = eds.recv().await;
    assert_eq!(sent(&r4), ["ghost"]);
    drop(eds);
    server.shutdown().await;
}

#[tokio::test]
async fn subscription_with_a_stale_nonce_is_honoured() {
    let server = TestServer::start().await;
    set_clusters(&server, &[("a", 9000), ("b", 9001)]);
    let mut eds = DeltaStream::open(&server, "n1", Kind::Eds).await;
    eds.request(ENDPOINT, &["a"], &[], "").await;
    let r1 = eds.recv().await;
    eds.ack(&r1).await;
    set_clusters(&server, &[("a", 9100), ("b", 9001)]);
    let r2 = eds.recv().await;
    assert_eq!(sent(&r2), ["a"]);
    // The client has not seen r2 yet: it subscribes to b answering r1's (stale) nonce.
    eds.request(ENDPOINT, &["b"], &[], &r1.nonce).await;
    eds.ack(&r2).await;
    let r3 = eds.recv().await;
    assert_eq!(sent(&r3), ["b"], "the subscription of a stale-nonce request counts");
    drop(eds);
    server.shutdown().await;
}

#[tokio::test]
async fn reconnect_with_initial_versions_sends_only_the_difference() {
    let server = TestServer::start().await;
    set_clusters(&server, &[("a", 9000), ("b", 9001), ("c", 9002)]);
    let mut cds = DeltaStream::open(&server, "n1", Kind::Cds).await;
    cds.request(CLUSTER, &["*"], &[], "").await;
    let first = cds.recv().await;
    assert_eq!(sent(&first), ["a", "b", "c"]);
    let held = versions(&first);
    drop(cds);

    // While disconnected: b changes, c is deleted, d appears.
    let mut rs = vec![Resource::new(&eds_cluster("a")), Resource::new(&cla("a", 9000))];
    let mut b = eds_cluster("b");
    b.alt_stat_name = "b2".into();
    rs.extend([Resource::new(&b), Resource::new(&cla("b", 9001))]);
    rs.extend([Resource::new(&eds_cluster("d")), Resource::new(&cla("d", 9003))]);
    server.cache.set_snapshot("n1", Snapshot::new(rs)).expect("consistent");

    let mut again = DeltaStream::open(&server, "n1", Kind::Cds).await;
    again
        .send(DeltaDiscoveryRequest {
            type_url: CLUSTER.into(),
            resource_names_subscribe: strings(&["*"]),
            initial_resource_versions: held,
            ..Default::default()
        })
        .await;
    let resp = again.recv().await;
    assert_eq!(sent(&resp), ["b", "d"], "a is held at its current version");
    assert_eq!(removed(&resp), ["c"]);
    drop(again);
    server.shutdown().await;
}

#[tokio::test]
async fn wildcard_and_explicit_names_mix() {
    let server = TestServer::start().await;
    set_clusters(&server, &[("a", 9000), ("b", 9001)]);
    let mut cds = DeltaStream::open(&server, "n1", Kind::Cds).await;
    cds.request(CLUSTER, &["*", "a", "later"], &[], "").await;
    let r1 = cds.recv().await;
    assert_eq!(sent(&r1), ["a", "b"]);
    assert_eq!(removed(&r1), ["later"]);
    cds.ack(&r1).await;
    // Leaving the wildcard keeps the explicit names: b is dropped by the client, a stays.
    cds.request(CLUSTER, &[], &["*"], &r1.nonce).await;
    cds.expect_quiet().await;
    set_clusters(&server, &[("a", 9000), ("b", 9001), ("later", 9002)]);
    let r2 = cds.recv().await;
    assert_eq!(sent(&r2), ["later"], "b is not subscribed any more");
    drop(cds);
    server.shutdown().await;
}

#[tokio::test]
async fn a_nacked_version_is_not_resent_and_is_recorded() {
    let server = TestServer::start().await;
    set_clusters(&server, &[("a", 9000)]);
    let mut eds = DeltaStream::open(&server, "n1", Kind::Eds).await;
    eds.request(ENDPOINT, &["a"], &[], "").await;
    let r1 = eds.recv().await;
    eds.ack(&r1).await;
    set_clusters(&server, &[("a", 9100)]);
    let bad = eds.recv().await;
    eds.nack(&bad, "port 9100 refused").await;
    server
        .observer
        .wait_for("the NACK", |events| {
            events.iter().any(|e| matches!(e, Event::Nack { message, .. } if message == "port 9100 refused"))
        })
        .await;
    assert_eq!(server.observer.nacks(ENDPOINT), [(bad.system_version_info.clone(), "port 9100 refused".into())]);
    // A re-subscription of something else must not bring the NACKed version back.
    eds.request(ENDPOINT, &["z"], &[], &bad.nonce).await;
    let r3 = eds.recv().await;
    assert!(r3.resources.is_empty(), "the NACKed version was resent: {:?}", sent(&r3));
    assert_eq!(removed(&r3), ["z"]);
    eds.ack(&r3).await;
    eds.expect_quiet().await;
    // The next version is sent.
    set_clusters(&server, &[("a", 9200)]);
    let fixed = eds.recv().await;
    assert_eq!(sent(&fixed), ["a"]);
    let cla_sent = ClusterLoadAssignment::decode(fixed.resources[0].resource.as_ref().expect("any").value.as_slice())
        .expect("cla");
    assert_eq!(cla_sent, cla("a", 9200));
    drop(eds);
    server.shutdown().await;
}

#[tokio::test]
async fn delta_ads_pushes_cds_eds_lds_rds_in_order() {
    let server = TestServer::start().await;
    server.cache.set_snapshot("n1", snapshot(&["c1"], &["l1"])).expect("consistent");
    let mut ads = DeltaStream::open(&server, "n1", Kind::Ads).await;
    ads.request(CLUSTER, &[], &[], "").await;
    ads.request(ENDPOINT, &["c1"], &[], "").await;
    ads.request(LISTENER, &[], &[], "").await;
    ads.request(ROUTE, &["l1-route"], &[], "").await;
    let mut firsts = Vec::new();
    for _ in 0..4 {
        firsts.push(ads.recv().await);
    }
    for r in &firsts {
        ads.ack(r).await;
    }
    ads.expect_quiet().await;
    // Everything changes at once: the pushes come as CDS, EDS, LDS, RDS.
    let mut rs = vec![Resource::new(&eds_cluster_with_timeout("c1", 9)), Resource::new(&cla("c1", 9500))];
    rs.push(Resource::new(&listener("l1", "l1-route", 10500)));
    rs.push(Resource::new(&route_config("l1-route", "changed.example", "c1")));
    server.cache.set_snapshot("n1", Snapshot::new(rs)).expect("consistent");
    let mut types = Vec::new();
    for _ in 0..4 {
        let r = ads.recv().await;
        assert_eq!(r.resources.len(), 1, "{}", r.type_url);
        types.push(r.type_url.clone());
        ads.ack(&r).await;
    }
    assert_eq!(types, [CLUSTER, ENDPOINT, LISTENER, ROUTE]);
    ads.expect_quiet().await;
    drop(ads);
    server.shutdown().await;
}

#[tokio::test]
async fn delta_entries_are_shared_between_streams() {
    let server = TestServer::start().await;
    set_clusters(&server, &[("a", 9000)]);
    let mut one = DeltaStream::open(&server, "n1", Kind::Cds).await;
    let mut two = DeltaStream::open(&server, "n1", Kind::Cds).await;
    one.request(CLUSTER, &[], &[], "").await;
    two.request(CLUSTER, &[], &[], "").await;
    let (r1, r2) = (one.recv().await, two.recv().await);
    assert_eq!(r1.resources, r2.resources, "the same encoded entry");
    assert_eq!(r1.system_version_info, r2.system_version_info);
    drop((one, two));
    server.shutdown().await;
}

#[tokio::test]
async fn delta_ads_resends_the_endpoints_of_an_updated_cluster() {
    let server = TestServer::start().await;
    set_clusters(&server, &[("a", 9000), ("b", 9001)]);
    let mut ads = DeltaStream::open(&server, "n1", Kind::Ads).await;
    ads.request(CLUSTER, &[], &[], "").await;
    ads.request(ENDPOINT, &["a", "b"], &[], "").await;
    for _ in 0..2 {
        let r = ads.recv().await;
        ads.ack(&r).await;
    }
    ads.expect_quiet().await;
    // Cluster a changes, its endpoints do not: Envoy warms a until it gets them, so they follow.
    let mut changed = eds_cluster("a");
    changed.alt_stat_name = "a2".into();
    let rs = vec![
        Resource::new(&changed),
        Resource::new(&cla("a", 9000)),
        Resource::new(&eds_cluster("b")),
        Resource::new(&cla("b", 9001)),
    ];
    server.cache.set_snapshot("n1", Snapshot::new(rs)).expect("consistent");
    let cds = ads.recv().await;
    assert_eq!((cds.type_url.as_str(), sent(&cds)), (CLUSTER, strings(&["a"])));
    let eds = ads.recv().await;
    assert_eq!((eds.type_url.as_str(), sent(&eds)), (ENDPOINT, strings(&["a"])), "only the updated cluster's");
    ads.ack(&cds).await;
    ads.ack(&eds).await;
    ads.expect_quiet().await;
    drop(ads);
    server.shutdown().await;
}

const XDSTP_CLUSTERS: &str = "xdstp://bosun.test/envoy.config.cluster.v3.Cluster";

/// Sets plain (STATIC) clusters named `names` for node `n1`.
fn set_plain_clusters(server: &TestServer, names: &[String]) {
    let rs = names.iter().map(|n| Resource::new(&Cluster { name: n.clone(), ..Default::default() }));
    server.cache.set_snapshot("n1", Snapshot::new(rs)).expect("consistent");
}

#[tokio::test]
async fn xdstp_glob_collections_follow_their_members() {
    let server = TestServer::start().await;
    let team = |id: &str| format!("{XDSTP_CLUSTERS}/team/{id}");
    let mut names = vec![
        team("a"),
        team("b"),
        team("c?shard=2&zone=z1"),
        format!("{XDSTP_CLUSTERS}/team/nested/d"),
        format!("{XDSTP_CLUSTERS}/other/e"),
        "plain".to_owned(),
    ];
    set_plain_clusters(&server, &names);
    let mut cds = DeltaStream::open(&server, "n1", Kind::Cds).await;
    let glob = format!("{XDSTP_CLUSTERS}/team/*");
    cds.request(CLUSTER, &[&glob], &[], "").await;
    let first = cds.recv().await;
    assert_eq!(sent(&first), [team("a"), team("b")], "direct members without context parameters");
    assert!(first.removed_resources.is_empty(), "a glob is not a resource: never reported removed");
    cds.ack(&first).await;

    // The same collection with context parameters, given in another order.
    let with_params = format!("{XDSTP_CLUSTERS}/team/*?zone=z1&shard=2");
    cds.request(CLUSTER, &[&with_params], &[], "").await;
    let params = cds.recv().await;
    assert_eq!(sent(&params), [team("c?shard=2&zone=z1")]);
    cds.ack(&params).await;

    // A member added: only it is sent. A member deleted: only its removal.
    names.push(team("f"));
    set_plain_clusters(&server, &names);
    let added = cds.recv().await;
    assert_eq!(sent(&added), [team("f")]);
    assert!(added.removed_resources.is_empty());
    cds.ack(&added).await;
    names.retain(|n| *n != team("a"));
    set_plain_clusters(&server, &names);
    let deleted = cds.recv().await;
    assert!(deleted.resources.is_empty());
    assert_eq!(removed(&deleted), [team("a")]);
    cds.ack(&deleted).await;

    // A change outside the collections sends nothing; after unsubscribing, members are not sent.
    names.push(format!("{XDSTP_CLUSTERS}/other/g"));
    set_plain_clusters(&server, &names);
    cds.expect_quiet().await;
    cds.request(CLUSTER, &[], &[&glob, &with_params], "").await;
    cds.expect_quiet().await;
    names.push(team("h"));
    set_plain_clusters(&server, &names);
    cds.expect_quiet().await;
    drop(cds);
    server.shutdown().await;
}

#[tokio::test]
async fn xdstp_names_match_whatever_the_order_of_their_context_parameters() {
    let server = TestServer::start().await;
    let canonical = format!("{XDSTP_CLUSTERS}/one?a=1&b=2");
    set_plain_clusters(&server, std::slice::from_ref(&canonical));
    let mut cds = DeltaStream::open(&server, "n1", Kind::Cds).await;
    cds.request(CLUSTER, &[&format!("{XDSTP_CLUSTERS}/one?b=2&a=1")], &[], "").await;
    let first = cds.recv().await;
    assert_eq!(sent(&first), [canonical]);
    drop(cds);
    server.shutdown().await;
}

fn virtual_host(name: &str, domains: &[&str], cluster: &str) -> Resource {
    let mut vh = route_config("unused", "unused", cluster).virtual_hosts.remove(0);
    vh.name = name.into();
    vh.domains = strings(domains);
    Resource::new(&vh)
}

/// Entries of a VHDS response as (name, aliases, has a body).
fn vhds_entries(resp: &DeltaDiscoveryResponse) -> Vec<(String, Vec<String>, bool)> {
    let mut entries: Vec<_> = resp
        .resources
        .iter()
        .map(|r| {
            if let Some(any) = &r.resource {
                assert_eq!(any.type_url, VIRTUAL_HOST);
                let vh = VirtualHost::decode(any.value.as_slice()).expect("virtual host");
                assert_eq!(vh.name, r.name);
            }
            (r.name.clone(), r.aliases.clone(), r.resource.is_some())
        })
        .collect();
    entries.sort();
    entries
}

#[tokio::test]
async fn vhds_resolves_aliases_on_demand() {
    let server = TestServer::start().await;
    let set = |vhs: Vec<Resource>| server.cache.set_snapshot("n1", Snapshot::new(vhs)).expect("consistent");
    let app = virtual_host("local/app", &["app.test", "app.test:8080"], "c1");
    let wild = virtual_host("local/wild", &["*.wild.test"], "c1");
    set(vec![app.clone(), wild.clone(), virtual_host("elsewhere/app", &["app.test"], "c1")]);
    let mut vhds = DeltaStream::open(&server, "n1", Kind::Vhds).await;

    // Envoy first subscribes to its route configuration's name: no virtual host is sent by
    // itself; the name is answered "not found" so that Envoy's initial fetch completes.
    vhds.request(VIRTUAL_HOST, &["local"], &[], "").await;
    let first = vhds.recv().await;
    assert_eq!(vhds_entries(&first), [("local".into(), vec!["local".into()], false)]);
    assert!(first.removed_resources.is_empty(), "{first:?}");
    vhds.ack(&first).await;

    // A host it cannot route: the virtual host that serves it, with the alias asked for.
    vhds.request(VIRTUAL_HOST, &["local/app.test:8080"], &[], "").await;
    let found = vhds.recv().await;
    assert_eq!(vhds_entries(&found), [("local/app".into(), vec!["local/app.test:8080".into()], true)]);
    vhds.ack(&found).await;
    vhds.request(VIRTUAL_HOST, &["local/x.wild.test"], &[], "").await;
    let wildcard = vhds.recv().await;
    assert_eq!(vhds_entries(&wildcard), [("local/wild".into(), vec!["local/x.wild.test".into()], true)]);
    vhds.ack(&wildcard).await;

    // A host nobody serves: an empty resource named after the alias, once.
    vhds.request(VIRTUAL_HOST, &["local/late.test"], &[], "").await;
    let missing = vhds.recv().await;
    assert_eq!(vhds_entries(&missing), [("local/late.test".into(), vec!["local/late.test".into()], false)]);
    vhds.ack(&missing).await;
    vhds.expect_quiet().await;

    // It arrives when a virtual host serves it; a resolved virtual host follows by name.
    let late = virtual_host("local/late", &["late.test"], "c1");
    let app2 = virtual_host("local/app", &["app.test", "app.test:8080", "app2.test"], "c1");
    set(vec![app2.clone(), wild.clone(), late.clone()]);
    let update = vhds.recv().await;
    assert_eq!(
        vhds_entries(&update),
        [("local/app".into(), vec![], true), ("local/late".into(), vec!["local/late.test".into()], true)]
    );
    vhds.ack(&update).await;

    // Deleting a resolved virtual host removes it by name.
    set(vec![app2, late]);
    let deletion = vhds.recv().await;
    assert!(deletion.resources.is_empty());
    assert_eq!(removed(&deletion), ["local/wild"]);
    vhds.ack(&deletion).await;

    // Asked again (Envoy re-requests on every miss): answered again even though it is held.
    vhds.request(VIRTUAL_HOST, &["local/app.test:8080"], &[], "").await;
    let again = vhds.recv().await;
    assert_eq!(vhds_entries(&again), [("local/app".into(), vec!["local/app.test:8080".into()], true)]);
    drop(vhds);
    server.shutdown().await;
}

#[tokio::test]
async fn vhds_over_ads_answers_the_route_configurations_namespace() {
    let server = TestServer::start().await;
    let rs =
        vec![Resource::new(&route_config("local", "base.test", "c1")), virtual_host("local/app", &["app.test"], "c1")];
    server.cache.set_snapshot("n1", Snapshot::new(rs)).expect("consistent");
    let mut ads = DeltaStream::open(&server, "n1", Kind::Ads).await;
    ads.request(ROUTE, &["local"], &[], "").await;
    let routes = ads.recv().await;
    assert_eq!(sent(&routes), ["local"]);
    ads.ack(&routes).await;

    // Envoy's first VHDS request names nothing: the namespace of each route configuration the
    // stream subscribes to is answered, so Envoy's initial fetch completes.
    ads.request(VIRTUAL_HOST, &[], &[], "").await;
    let first = ads.recv().await;
    assert_eq!(vhds_entries(&first), [("local/".into(), vec!["local/".into()], false)]);
    ads.ack(&first).await;
    ads.request(VIRTUAL_HOST, &["local/app.test"], &[], "").await;
    let found = ads.recv().await;
    assert_eq!(vhds_entries(&found), [("local/app".into(), vec!["local/app.test".into()], true)]);
    ads.ack(&found).await;

    // A route configuration subscribed later is answered too.
    ads.request(ROUTE, &["other"], &[], "").await;
    let other_route = ads.recv().await;
    assert_eq!(removed(&other_route), ["other"], "not in the snapshot");
    let other = ads.recv().await;
    assert_eq!(other.type_url, VIRTUAL_HOST);
    assert_eq!(vhds_entries(&other), [("other/".into(), vec!["other/".into()], false)]);
    drop(ads);
    server.shutdown().await;
}

#[tokio::test]
async fn vhds_aliases_of_one_virtual_host_share_its_entry_and_waiting_ones_are_bounded() {
    let server = TestServer::start().await;
    let set = |vhs: Vec<Resource>| server.cache.set_snapshot("n1", Snapshot::new(vhs)).expect("consistent");
    set(vec![virtual_host("local/app", &["app.test", "www.app.test"], "c1")]);
    let mut vhds = DeltaStream::open(&server, "n1", Kind::Vhds).await;

    // Two hosts of one virtual host in one request: one entry naming both (a response may
    // name a resource once).
    vhds.request(VIRTUAL_HOST, &["local/app.test", "local/www.app.test"], &[], "").await;
    let both = vhds.recv().await;
    let mut entries = vhds_entries(&both);
    entries[0].1.sort();
    assert_eq!(entries, [("local/app".into(), vec!["local/app.test".into(), "local/www.app.test".into()], true)]);
    vhds.ack(&both).await;

    // 1,100 hosts nobody serves: each answered "not found"; at most 1,024 keep waiting, and when
    // a virtual host serves them all, they come in its one entry.
    let hosts: Vec<String> = (0..1100).map(|i| format!("local/h{i}.test")).collect();
    let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    vhds.request(VIRTUAL_HOST, &names, &[], "").await;
    let missing = vhds.recv().await;
    assert_eq!(missing.resources.len(), 1100);
    assert!(missing.resources.iter().all(|r| r.resource.is_none() && r.aliases == [r.name.clone()]));
    vhds.ack(&missing).await;
    set(vec![virtual_host("local/app", &["app.test", "www.app.test"], "c1"), virtual_host("local/all", &["*"], "c2")]);
    let served = vhds.recv().await;
    let entries = vhds_entries(&served);
    assert_eq!(entries.len(), 1, "one entry for the virtual host that serves them: {entries:?}");
    let (name, aliases, body) = &entries[0];
    assert_eq!((name.as_str(), *body), ("local/all", true));
    assert!((1..=1024).contains(&aliases.len()), "{} aliases waited", aliases.len());
    drop(vhds);
    server.shutdown().await;
}
