//! `bosun serve` on its store: documents written with the CLI and the REST API, served to a real
//! Envoy, and kept across a SIGKILL.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::envoy::{eds_cluster, expect_body, listener, route, start_envoy};
use common::{Backend, Bosun, eventually, free_port, http_get, http_request};
use serde_json::{Value, json};

fn cluster_doc(name: &str, namespace: &str, timeout: &str) -> String {
    format!(
        "kind: Cluster\nmetadata: {{ name: {name}, namespace: {namespace}, labels: {{ app: web }} }}\n\
         spec: {{ type: STATIC, connect_timeout: {timeout} }}\n"
    )
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn cli_applies_gets_and_deletes() {
    let work = tempfile::tempdir().expect("tempdir");
    let bosun = Bosun::start(work.path(), &[]);
    let file = work.path().join("docs.yaml");
    std::fs::write(&file, format!("{}---\n{}", cluster_doc("a", "default", "1s"), cluster_doc("b", "edge", "2s")))
        .expect("write");

    let (ok, out, err) = bosun.cli(&["apply", "-f", file.to_str().expect("utf-8")], None);
    assert!(ok, "{err}");
    assert_eq!(out, "Cluster/default/a created\nCluster/edge/b created\n");
    let (ok, out, _) = bosun.cli(&["apply", "-f", file.to_str().expect("utf-8")], None);
    assert!(ok);
    assert_eq!(out, "Cluster/default/a unchanged\nCluster/edge/b unchanged\n");
    // Standard input, in the raw Envoy shape.
    let raw =
        "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: a\ntype: STATIC\nconnect_timeout: 3s\n";
    let (ok, out, err) = bosun.cli(&["apply", "-f", "-"], Some(raw));
    assert!(ok, "{err}");
    assert_eq!(out, "Cluster/default/a configured\n");

    let (ok, table, _) = bosun.cli(&["get", "clusters"], None);
    assert!(ok);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("NAMESPACE") && lines[1].starts_with("default") && lines[2].starts_with("edge"),
        "{table}"
    );
    assert!(lines[2].contains("app=web"), "{table}");
    let (ok, yaml, _) = bosun.cli(&["get", "cluster", "a", "-o", "yaml"], None);
    assert!(ok);
    assert!(yaml.contains("connect_timeout: 3s") && yaml.contains("resourceVersion"), "{yaml}");
    let (ok, json, _) = bosun.cli(&["get", "cds", "-n", "edge", "-l", "app=web", "-o", "json"], None);
    assert!(ok);
    let list = json_of(&json);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(list["items"][0]["spec"]["connect_timeout"], "2s");

    // `get -o yaml` output applies back unchanged.
    let (ok, out, err) = bosun.cli(&["apply", "-f", "-"], Some(&yaml));
    assert!(ok, "{err}");
    assert_eq!(out, "Cluster/default/a unchanged\n");

    let (ok, out, _) = bosun.cli(&["delete", "cluster", "b", "-n", "edge"], None);
    assert!(ok);
    assert_eq!(out, "Cluster/edge/b deleted\n");
    let (ok, _, err) = bosun.cli(&["get", "cluster", "b", "-n", "edge"], None);
    assert!(!ok && err.contains("404"), "{err}");
}

#[test]
fn bad_documents_are_refused_whole_with_every_field_named() {
    let work = tempfile::tempdir().expect("tempdir");
    let bosun = Bosun::start(work.path(), &[]);
    let file = work.path().join("bad.yaml");
    std::fs::write(
        &file,
        format!(
            "{}---\nkind: Cluster\nmetadata: {{ name: c, labels: {{ app: 'not valid' }} }}\nspec: {{ conect_timeout: 1s }}\n",
            cluster_doc("good", "default", "1s")
        ),
    )
    .expect("write");
    let (ok, out, err) = bosun.cli(&["apply", "-f", file.to_str().expect("utf-8")], None);
    assert!(!ok, "{out}");
    assert!(err.contains("422"), "{err}");
    assert!(err.contains("bad.yaml, document 2.metadata.labels.app"), "the file, the document and the field: {err}");
    assert!(err.contains("conect_timeout"), "{err}");
    let (ok, table, _) = bosun.cli(&["get", "clusters"], None);
    assert!(ok);
    assert_eq!(table.lines().count(), 1, "nothing was written, not even the good document: {table}");

    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some("kind: Cluster\nmetadata: [\n"));
    assert!(!ok && err.contains("invalid YAML"), "{err}");
}

#[test]
fn the_rest_api_answers_in_json_with_conflicts_and_a_token() {
    let work = tempfile::tempdir().expect("tempdir");
    let token_file = work.path().join("token");
    std::fs::write(&token_file, "s3cret\n").expect("write");
    let bosun = Bosun::start(work.path(), &["--admin-token-file", token_file.to_str().expect("utf-8")]);
    let auth = "Authorization: Bearer s3cret";
    let doc =
        json!({"kind": "Cluster", "metadata": {"name": "web"}, "spec": {"type": "STATIC", "connect_timeout": "1s"}})
            .to_string();
    let path = "/api/v1/resources/Cluster/default/web";

    let (code, body) = http_request(bosun.admin, "PUT", path, &[], &doc).expect("PUT");
    assert_eq!(code, 401, "{body}");
    assert_eq!(json_of(&body)["error"]["status"], 401);
    let (code, body) = http_request(bosun.admin, "PUT", path, &["Authorization: Bearer wrong"], &doc).expect("PUT");
    assert_eq!(code, 401, "{body}");
    let (code, body) = http_request(bosun.admin, "PUT", path, &[auth], &doc).expect("PUT");
    assert_eq!(code, 200, "{body}");
    let version = json_of(&body)["metadata"]["resourceVersion"].as_str().expect("resourceVersion").to_owned();

    // Reads need no token.
    let (code, body) = http_get(bosun.admin, path).expect("GET");
    assert_eq!((code, json_of(&body)["spec"]["connect_timeout"].clone()), (200, json!("1s")));

    // Compare-and-swap: a stale resourceVersion is a 409 and changes nothing.
    let stale = json!({"kind": "Cluster", "metadata": {"name": "web", "resourceVersion": "999999"}, "spec": {"type": "STATIC", "connect_timeout": "9s"}});
    let (code, body) = http_request(bosun.admin, "PUT", path, &[auth], &stale.to_string()).expect("PUT");
    assert_eq!(code, 409, "{body}");
    assert!(json_of(&body)["error"]["message"].as_str().expect("message").contains("conflict"), "{body}");
    let current = json!({"kind": "Cluster", "metadata": {"name": "web", "resourceVersion": version}, "spec": {"type": "STATIC", "connect_timeout": "9s"}});
    let (code, body) = http_request(bosun.admin, "PUT", path, &[auth], &current.to_string()).expect("PUT");
    assert_eq!(code, 200, "{body}");

    // Errors name the field and the reason.
    let bad = json!({"kind": "Cluster", "metadata": {"name": "web"}, "spec": {"connect_timeout": "soon"}}).to_string();
    let (code, body) = http_request(bosun.admin, "PUT", path, &[auth], &bad).expect("PUT");
    assert_eq!(code, 422, "{body}");
    assert_eq!(json_of(&body)["error"]["details"][0]["field"], "spec", "{body}");
    let (code, body) = http_request(bosun.admin, "PUT", path, &[auth], "{not json").expect("PUT");
    assert_eq!((code, json_of(&body)["error"]["status"].clone()), (400, json!(400)), "{body}");
    let (code, body) = http_get(bosun.admin, "/api/v1/resources/widgets").expect("GET");
    assert!(code == 404 && body.contains("unknown kind"), "{body}");
    let (code, body) = http_get(bosun.admin, "/api/v1/resources/Cluster/default/missing").expect("GET");
    assert_eq!(code, 404, "{body}");
    let (code, body) = http_get(bosun.admin, "/api/v1/resources/clusters?labelSelector=app%20in%20x").expect("GET");
    assert!(code == 422 && body.contains("selector"), "{body}");
    let (code, body) = http_get(bosun.admin, path).expect("GET");
    assert_eq!(
        (code, json_of(&body)["spec"]["connect_timeout"].clone()),
        (200, json!("9s")),
        "the refused writes changed nothing"
    );

    let (code, body) =
        http_request(bosun.admin, "DELETE", &format!("{path}?resourceVersion=999999"), &[auth], "").expect("DELETE");
    assert_eq!(code, 409, "{body}");
    let (code, body) = http_request(bosun.admin, "DELETE", path, &[auth], "").expect("DELETE");
    assert_eq!(code, 200, "{body}");
    let (code, _) = http_request(bosun.admin, "DELETE", path, &[auth], "").expect("DELETE");
    assert_eq!(code, 404);
}

#[test]
fn sigkill_in_the_middle_of_1000_writes_loses_no_acknowledged_write() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut bosun = Bosun::start(work.path(), &[]);
    let backend = Backend::start("served");
    let port = free_port();
    let ingress: SocketAddr = ([127, 0, 0, 1], port).into();
    // Envoy's config, written with the CLI.
    let config = format!("{}---\n{}---\n{}", listener("ingress", port), route("web"), eds_cluster("web", backend.port));
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&config));
    assert!(ok, "{err}");
    let envoy = start_envoy(work.path(), bosun.xds_port);
    expect_body(&envoy, &bosun, ingress, "served", Duration::from_secs(20));
    let before =
        eventually(Duration::from_secs(10), || bosun.acked_versions("envoy-e2e")).expect("Envoy ACKs every type");

    // 1,000 writes with the CLI into a namespace Envoy does not receive, while Bosun is killed.
    let admin = bosun.admin;
    let acked: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (acked, done, progress) = (acked.clone(), done.clone(), progress.clone());
        std::thread::spawn(move || {
            let bin = env!("CARGO_BIN_EXE_bosun");
            for i in 0..1000 {
                let doc = cluster_doc(&format!("c{i:04}"), "bulk", &format!("{}s", i + 1));
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let mut child = std::process::Command::new(bin)
                        .args(["apply", "-f", "-", "--server", &format!("http://{admin}")])
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .expect("bosun apply");
                    if let Some(mut stdin) = child.stdin.take() {
                        use std::io::Write;
                        let _ = stdin.write_all(doc.as_bytes());
                    }
                    if child.wait().map(|s| s.success()).unwrap_or(false) {
                        acked.lock().expect("lock").push((i, Instant::now()));
                        progress.store(i + 1, Ordering::Relaxed);
                        break;
                    }
                    assert!(Instant::now() < deadline, "write {i} never succeeded");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            done.store(true, Ordering::Relaxed);
        })
    };
    assert!(eventually(Duration::from_secs(120), || (progress.load(Ordering::Relaxed) >= 300).then_some(())).is_some());
    bosun.kill_and_restart();
    let killed_at = Instant::now();

    // Every write acknowledged before the kill is there after the restart.
    let list = |bosun: &Bosun| -> Vec<Value> {
        let (code, body) = http_get(bosun.admin, "/api/v1/resources/clusters/bulk").expect("list");
        assert_eq!(code, 200, "{body}");
        json_of(&body)["items"].as_array().cloned().unwrap_or_default()
    };
    let items = list(&bosun);
    let before_kill: Vec<usize> =
        acked.lock().expect("lock").iter().filter(|(_, at)| *at < killed_at).map(|(i, _)| *i).collect();
    assert!(before_kill.len() >= 300);
    for i in &before_kill {
        let name = format!("c{i:04}");
        let item = items.iter().find(|it| it["metadata"]["name"] == name.as_str());
        let item = item.unwrap_or_else(|| panic!("acknowledged write {name} lost by the SIGKILL"));
        assert_eq!(item["spec"]["connect_timeout"], format!("{}s", i + 1));
    }

    // Envoy reconnects, gets the same versions (nothing it had changed), and traffic flows.
    let after =
        eventually(Duration::from_secs(20), || bosun.acked_versions("envoy-e2e")).expect("Envoy reconnects and ACKs");
    assert_eq!(after, before, "the same content gives the same versions after a restart");
    expect_body(&envoy, &bosun, ingress, "served", Duration::from_secs(10));

    let finished = eventually(Duration::from_secs(180), || done.load(Ordering::Relaxed).then_some(()));
    assert!(finished.is_some(), "the writer did not finish");
    writer.join().expect("writer");
    assert_eq!(list(&bosun).len(), 1000, "every write is there at the end");
}
