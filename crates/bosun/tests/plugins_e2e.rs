//! Plugins through `bosun serve`: a transform plugin declared in `bosun.toml` (configured,
//! called on writes, listed with its state), restarted after kill -9, reloaded when its binary
//! changes, refused when its configuration is, discovered in a plugin directory, and never
//! left behind when Bosun is killed.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Bosun, alive, eventually, http_get, workspace_binary};
use serde_json::Value;

fn strategy(namespace: &str, name: &str, threshold: i64, mode: &str) -> String {
    format!(
        "apiVersion: fault-tolerance.opensergo.io/v1alpha1\nkind: RateLimitStrategy\n\
         metadata: {{ name: {name}, namespace: {namespace}, labels: {{ app: cart }} }}\n\
         spec: {{ metricType: RequestAmount, limitMode: {mode}, threshold: {threshold}, statDurationSeconds: 1 }}\n"
    )
}

/// A copy of the example plugin in `dir`, so the test can replace it.
fn plugin_copy(dir: &Path, file: &str) -> std::path::PathBuf {
    let path = dir.join(file);
    std::fs::copy(workspace_binary("bosun-plugin", "ratelimit-cap"), &path).expect("copy the plugin");
    path
}

fn plugins(bosun: &Bosun) -> Vec<Value> {
    let (code, body) = http_get(bosun.admin, "/api/v1/plugins").expect("GET /api/v1/plugins");
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body).expect("JSON");
    list["plugins"].as_array().cloned().unwrap_or_default()
}

fn running_pid(bosun: &Bosun, name: &str) -> Option<u32> {
    plugins(bosun)
        .into_iter()
        .find(|p| p["name"] == name && p["state"] == "running")
        .and_then(|p| p["pid"].as_u64())
        .map(|p| p as u32)
}

fn stored_threshold(bosun: &Bosun, namespace: &str, name: &str) -> Option<i64> {
    let (ok, out, _) = bosun.cli(&["get", "rls", name, "-n", namespace, "-o", "json"], None);
    let doc: Value = serde_json::from_str(&out).ok().filter(|_| ok)?;
    doc["spec"]["threshold"].as_i64()
}

#[test]
fn a_transform_plugin_caps_refuses_restarts_and_reloads() {
    let work = tempfile::tempdir().expect("tempdir");
    let plugin = plugin_copy(work.path(), "ratelimit-cap");
    let config = work.path().join("bosun.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"ratelimit-cap@1.2.0\"\nkind = \"transform\"\npath = {:?}\n\
             kinds = [\"RateLimitStrategy\"]\n\
             config = {{ max_threshold = 10, namespaces = {{ shop = 3 }}, reject_global = true }}\n",
            plugin.display().to_string()
        ),
    )
    .expect("bosun.toml");
    let bosun = Bosun::start(work.path(), &["--config", config.to_str().expect("utf-8")]);
    let pid = eventually(Duration::from_secs(20), || running_pid(&bosun, "ratelimit-cap"))
        .unwrap_or_else(|| panic!("the plugin did not run: {:?}\n{}", plugins(&bosun), bosun.proc.output()));

    // Listed with its version, kind and state.
    let (ok, table, err) = bosun.cli(&["plugins"], None);
    assert!(ok, "{err}");
    let row = table.lines().find(|l| l.starts_with("ratelimit-cap")).unwrap_or_else(|| panic!("{table}"));
    for cell in ["1.2.0", "transform", "running", &pid.to_string()] {
        assert!(row.split_whitespace().any(|c| c == cell), "{cell} missing in {row:?}");
    }

    // Writes pass through the plugin: capped globally, per namespace, or refused.
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&strategy("default", "wide", 50, "Local")));
    assert!(ok, "{err}");
    assert_eq!(stored_threshold(&bosun, "default", "wide"), Some(10));
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&strategy("shop", "narrow", 50, "Local")));
    assert!(ok, "{err}");
    assert_eq!(stored_threshold(&bosun, "shop", "narrow"), Some(3));
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&strategy("shop", "global", 2, "Global")));
    assert!(!ok);
    assert!(err.contains("rejected by plugin ratelimit-cap@1.2.0") && err.contains("limitMode Global"), "{err}");
    assert_eq!(stored_threshold(&bosun, "shop", "global"), None, "nothing was written");

    // kill -9: restarted, and the next write goes through the new process.
    // SAFETY: kills the plugin's process group.
    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&strategy("default", "after-kill", 40, "Local")));
    assert!(ok, "{err}");
    assert_eq!(stored_threshold(&bosun, "default", "after-kill"), Some(10));
    let restarted = running_pid(&bosun, "ratelimit-cap").expect("running again");
    assert_ne!(restarted, pid);
    let info = plugins(&bosun).into_iter().find(|p| p["name"] == "ratelimit-cap").expect("listed");
    assert_eq!(info["restarts"], 1, "{info}");

    // A new binary on disk (renamed over the old one): reloaded; writes keep working.
    let staged = work.path().join(".ratelimit-cap.new");
    std::fs::copy(&plugin, &staged).expect("stage");
    std::fs::rename(&staged, &plugin).expect("replace");
    let reloaded = eventually(Duration::from_secs(20), || {
        plugins(&bosun).into_iter().find(|p| p["name"] == "ratelimit-cap" && p["reloads"] == 1)
    })
    .expect("the plugin was reloaded");
    assert_ne!(reloaded["pid"].as_u64(), Some(u64::from(restarted)));
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&strategy("shop", "after-reload", 9, "Local")));
    assert!(ok, "{err}");
    assert_eq!(stored_threshold(&bosun, "shop", "after-reload"), Some(3));
}

#[test]
fn a_refused_configuration_is_shown_and_the_plugin_is_not_used() {
    let work = tempfile::tempdir().expect("tempdir");
    let plugin = plugin_copy(work.path(), "ratelimit-cap");
    let config = work.path().join("bosun.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"cap\"\nkind = \"transform\"\npath = {:?}\ncall_wait_seconds = 0\n\
             config = {{ max_threshold = \"many\" }}\n",
            plugin.display().to_string()
        ),
    )
    .expect("bosun.toml");
    let bosun = Bosun::start(work.path(), &["--config", config.to_str().expect("utf-8")]);
    let info = eventually(Duration::from_secs(20), || {
        plugins(&bosun).into_iter().find(|p| p["lastError"].as_str().is_some_and(|e| e.contains("max_threshold")))
    })
    .unwrap_or_else(|| panic!("no refusal shown: {:?}", plugins(&bosun)));
    assert_ne!(info["state"], "running", "{info}");
    let (ok, table, _) = bosun.cli(&["plugins"], None);
    assert!(ok && table.contains("refused its config"), "{table}");
    // Writes of the kinds it transforms fail at once, naming the plugin; nothing is written.
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&strategy("default", "x", 1, "Local")));
    assert!(!ok);
    assert!(err.contains("plugin cap") && err.contains("max_threshold"), "{err}");
    assert_eq!(stored_threshold(&bosun, "default", "x"), None);
}

#[test]
fn plugins_are_discovered_in_the_plugin_directory_and_die_with_bosun() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("plugins");
    std::fs::create_dir(&dir).expect("plugin dir");
    plugin_copy(&dir, "cap-transform");
    std::fs::write(dir.join("README"), "not a plugin").expect("README");
    let mut bosun = Bosun::start(work.path(), &["--plugin-dir", dir.to_str().expect("utf-8")]);
    let pid = eventually(Duration::from_secs(20), || running_pid(&bosun, "cap"))
        .unwrap_or_else(|| panic!("not discovered: {:?}", plugins(&bosun)));
    assert_eq!(plugins(&bosun).len(), 1, "only names like <name>-<kind> are plugins");
    // Without configuration the example caps at its default of 100.
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&strategy("default", "big", 500, "Local")));
    assert!(ok, "{err}");
    assert_eq!(stored_threshold(&bosun, "default", "big"), Some(100));

    // SIGKILL: Bosun cannot clean up, and still no plugin outlives it.
    let _ = bosun.proc.child.kill();
    let _ = bosun.proc.child.wait();
    let gone = eventually(Duration::from_secs(10), || (!alive(pid)).then_some(()));
    assert!(gone.is_some(), "plugin {pid} outlived bosun");
}

/// `bosun plugin new --lang go` writes a go-plugin project; given as source it is built,
/// configured and called; a change of its source rebuilds and reloads it; a broken source is
/// reported with the compiler's message while the last good build keeps serving.
#[test]
fn a_go_plugin_from_the_template_is_built_from_source_and_reloaded_when_it_changes() {
    let work = tempfile::tempdir().expect("tempdir");
    let source = work.path().join("labeler");
    let bosun_bin = env!("CARGO_BIN_EXE_bosun");
    let out = std::process::Command::new(bosun_bin)
        .args(["plugin", "new", "labeler", "--kind", "transform", "--lang", "go", "--dir"])
        .arg(&source)
        .output()
        .expect("bosun plugin new");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}{}", String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("generated transform.pb.go"), "{printed}");

    let config = work.path().join("bosun.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"labeler\"\nkind = \"transform\"\npath = {src:?}\nkinds = [\"RateLimitStrategy\"]\n\
             config = {{ require_app_label = true, add_labels = {{ team = \"core\" }} }}\n\
             [[plugin]]\nname = \"plain\"\nkind = \"transform\"\npath = {src:?}\nauto_mtls = false\n\
             kinds = [\"ConcurrencyLimitStrategy\"]\nconfig = {{ add_labels = {{ tls = \"off\" }} }}\n",
            src = source.display().to_string()
        ),
    )
    .expect("bosun.toml");
    let bosun = Bosun::start(work.path(), &["--config", config.to_str().expect("utf-8")]);
    let first = eventually(Duration::from_secs(120), || running_pid(&bosun, "labeler"))
        .unwrap_or_else(|| panic!("the Go plugin did not run: {:?}\n{}", plugins(&bosun), bosun.proc.output()));
    let labels = |name: &str| -> Value {
        let (_, out, _) = bosun.cli(&["get", "rls", name, "-o", "json"], None);
        serde_json::from_str::<Value>(&out).map(|d| d["metadata"]["labels"].clone()).unwrap_or(Value::Null)
    };

    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&strategy("default", "labelled", 5, "Local")));
    assert!(ok, "{err}");
    assert_eq!(labels("labelled"), serde_json::json!({"app": "cart", "team": "core"}));
    let no_app = strategy("default", "no-app", 5, "Local").replace("labels: { app: cart }", "labels: {}");
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&no_app));
    assert!(!ok && err.contains("has no app label"), "{err}");
    // The same source as a second plugin, with AutoMTLS off.
    assert!(eventually(Duration::from_secs(120), || running_pid(&bosun, "plain")).is_some(), "{:?}", plugins(&bosun));
    let limit = "apiVersion: fault-tolerance.opensergo.io/v1alpha1\nkind: ConcurrencyLimitStrategy\n\
                 metadata: { name: two, namespace: default }\nspec: { maxConcurrency: 2, limitMode: Local }\n";
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(limit));
    assert!(ok, "{err}");
    let (_, out, _) = bosun.cli(&["get", "concurrencylimitstrategies", "two", "-o", "json"], None);
    assert!(out.contains(r#""tls": "off""#), "{out}");

    // A change of the source: rebuilt and reloaded.
    let main_go = source.join("main.go");
    let text = std::fs::read_to_string(&main_go).expect("main.go");
    let changed = text.replace("labels[k] = v", "labels[k] = v + \"-v2\"");
    assert_ne!(changed, text);
    std::fs::write(&main_go, &changed).expect("main.go");
    let reloaded = eventually(Duration::from_secs(120), || {
        plugins(&bosun).into_iter().find(|p| p["name"] == "labeler" && p["reloads"] == 1 && p["state"] == "running")
    })
    .unwrap_or_else(|| panic!("not reloaded: {:?}", plugins(&bosun)));
    assert_ne!(reloaded["pid"].as_u64(), Some(u64::from(first)));
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&strategy("default", "v2", 5, "Local")));
    assert!(ok, "{err}");
    assert_eq!(labels("v2")["team"], "core-v2");

    // A broken source: the compiler's message is shown; the last good build keeps serving.
    std::fs::write(&main_go, changed.replace("changed := false", "changed := undefinedName")).expect("main.go");
    let failed = eventually(Duration::from_secs(120), || {
        plugins(&bosun)
            .into_iter()
            .find(|p| p["lastError"].as_str().is_some_and(|e| e.contains("undefined: undefinedName")))
    })
    .unwrap_or_else(|| panic!("no build error shown: {:?}", plugins(&bosun)));
    assert_eq!(failed["state"], "running", "{failed}");
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&strategy("default", "still", 5, "Local")));
    assert!(ok, "{err}");
    assert_eq!(labels("still")["team"], "core-v2");
}

/// The example stream plugin: gets the Cluster documents as events, resolves the ones
/// labelled with a DNS name, and writes their endpoints back through the broker; after a
/// kill -9 it is fed again from the current documents; a deleted cluster loses its endpoints.
#[test]
fn a_stream_plugin_writes_documents_back_through_the_broker() {
    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("bosun.toml");
    let plugin = workspace_binary("bosun-plugin", "dns-endpoints");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"dns\"\nkind = \"stream\"\npath = {:?}\nconfig = {{ refresh_seconds = 1 }}\n",
            plugin.display().to_string()
        ),
    )
    .expect("bosun.toml");
    let bosun = Bosun::start(work.path(), &["--config", config.to_str().expect("utf-8")]);
    let pid = eventually(Duration::from_secs(20), || running_pid(&bosun, "dns"))
        .unwrap_or_else(|| panic!("the plugin did not run: {:?}\n{}", plugins(&bosun), bosun.proc.output()));
    let cluster = |name: &str, port: u16| {
        format!(
            "kind: Cluster\nmetadata: {{ name: {name}, namespace: default, labels: \
             {{ bosun.io/dns-host: localhost, bosun.io/dns-port: \"{port}\" }} }}\n\
             spec: {{ type: EDS, connect_timeout: 1s, eds_cluster_config: {{ eds_config: {{ ads: {{}} }} }} }}\n"
        )
    };
    let endpoints = |name: &str| -> Option<Value> {
        let (ok, out, _) = bosun.cli(&["get", "endpoints", name, "-o", "json"], None);
        serde_json::from_str(&out).ok().filter(|_| ok)
    };
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&cluster("web", 8080)));
    assert!(ok, "{err}");
    let cla = eventually(Duration::from_secs(20), || endpoints("web"))
        .unwrap_or_else(|| panic!("no endpoints written back\n{}", bosun.proc.output()));
    let socket = &cla["spec"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
    assert_eq!((socket["address"].as_str(), socket["port_value"].as_u64()), (Some("127.0.0.1"), Some(8080)), "{cla}");
    assert_eq!(cla["metadata"]["labels"]["bosun.io/generated-by"], "dns-endpoints");

    // A change of the label: new endpoints.
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&cluster("web", 9090)));
    assert!(ok, "{err}");
    let moved = eventually(Duration::from_secs(20), || {
        endpoints("web").filter(|c| {
            c["spec"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] == 9090
        })
    });
    assert!(moved.is_some(), "the endpoints did not follow the label");

    // kill -9: the new process is fed the current documents, then changes.
    // SAFETY: kills the plugin's process group.
    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
    let restarted = eventually(Duration::from_secs(20), || running_pid(&bosun, "dns").filter(|p| *p != pid));
    assert!(restarted.is_some(), "not restarted: {:?}", plugins(&bosun));
    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&cluster("api", 7070)));
    assert!(ok, "{err}");
    assert!(eventually(Duration::from_secs(20), || endpoints("api")).is_some(), "no endpoints after the restart");
    let (ok, _, err) = bosun.cli(&["delete", "cluster", "web"], None);
    assert!(ok, "{err}");
    let gone = eventually(Duration::from_secs(20), || endpoints("web").is_none().then_some(()));
    assert!(gone.is_some(), "the endpoints of a deleted cluster stayed");
}

/// `--store plugin:NAME`: Bosun's whole state in a storage plugin process (the example that
/// serves the embedded store), listed with the other plugins; what was written is there after
/// Bosun is killed and started again, and after the plugin is killed.
#[test]
fn bosun_runs_on_a_storage_plugin() {
    let work = tempfile::tempdir().expect("tempdir");
    let plugin = workspace_binary("bosun-store-plugin", "bosun-embedded-storage-plugin");
    let data = work.path().join("plugin-data");
    let config = work.path().join("bosun.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"plugin:redb\"\n[[plugin]]\nname = \"redb@0.1.0\"\nkind = \"storage\"\npath = {:?}\n\
             config = {{ path = {:?} }}\n",
            plugin.display().to_string(),
            data.display().to_string()
        ),
    )
    .expect("bosun.toml");
    let mut bosun = Bosun::start(work.path(), &["--config", config.to_str().expect("utf-8"), "--store", "plugin:redb"]);
    let info = plugins(&bosun).into_iter().find(|p| p["name"] == "redb").expect("the storage plugin is listed");
    assert_eq!(
        (info["kind"].as_str(), info["state"].as_str(), info["version"].as_str()),
        (Some("storage"), Some("running"), Some("0.1.0"))
    );
    let status = bosun.status();
    assert_eq!(status["store"]["backend"], "plugin:redb@0.1.0", "{status}");

    let (ok, _, err) = bosun.cli(&["apply", "-f", "-"], Some(&strategy("shop", "kept", 7, "Local")));
    assert!(ok, "{err}");
    assert_eq!(stored_threshold(&bosun, "shop", "kept"), Some(7));

    // The plugin killed: restarted, configured again, and the data is there.
    let pid = info["pid"].as_u64().expect("pid") as libc::pid_t;
    // SAFETY: kills the plugin's process group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let back = eventually(Duration::from_secs(20), || stored_threshold(&bosun, "shop", "kept"));
    assert_eq!(back, Some(7), "{:?}", plugins(&bosun));

    // Bosun killed and started again on the same plugin and data.
    bosun.kill_and_restart();
    assert_eq!(stored_threshold(&bosun, "shop", "kept"), Some(7));
    assert!(data.join("bosun.redb").is_file() || data.read_dir().map(|mut d| d.next().is_some()).unwrap_or(false));
}

#[test]
fn a_store_plugin_that_is_not_declared_is_refused_at_start() {
    let work = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bosun"))
        .args(["serve", "--store", "plugin:nothing", "--data-dir"])
        .arg(work.path())
        .output()
        .expect("bosun serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--store plugin:nothing: no plugin \"nothing\""), "{err}");
}
