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
