//! Envoy resources from a directory of YAML/JSON files, in Envoy's own formats.
//!
//! A document is one resource (a mapping with `@type`, as in Envoy's `config_dump`) or a mapping
//! with a `resources:` list of them (Envoy's file-based xDS format). Files directly in the
//! directory are common to every node; files in `DIR/<name>/` belong to the node cluster
//! `<name>`, where a resource with the same type and name as a common one replaces it.

mod transcode;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use bosun_xds::Resource;
use serde::Deserialize;

pub use transcode::{canonical_json, descriptor, name_field, transcode, transcode_as};

/// Files larger than this are refused.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The resources of a directory.
#[derive(Debug, Default)]
pub struct LoadedResources {
    /// For every node.
    pub common: Vec<Resource>,
    /// Per node cluster, from `DIR/<cluster>/`.
    pub groups: BTreeMap<String, Vec<Resource>>,
}

impl LoadedResources {
    /// The node clusters that have resources of their own.
    pub fn group_names(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// What nodes of `group` receive: the common resources, with the group's own on top.
    pub fn for_group(&self, group: &str) -> Vec<Resource> {
        let Some(own) = self.groups.get(group) else { return self.common.clone() };
        let mut merged: BTreeMap<(&str, &str), &Resource> =
            self.common.iter().map(|r| ((r.type_url(), r.name()), r)).collect();
        merged.extend(own.iter().map(|r| ((r.type_url(), r.name()), r)));
        merged.into_values().cloned().collect()
    }
}

/// Where in the directory an error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based document number in the file.
    pub document: Option<usize>,
    /// 1-based position in the document's `resources:` list.
    pub resource: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(d) = self.document {
            write!(f, ", document {d}")?;
        }
        if let Some(r) = self.resource {
            write!(f, ", resources[{}]", r - 1)?;
        }
        Ok(())
    }
}

/// Every problem found in a directory, each with its location.
#[derive(Debug, Default, thiserror::Error)]
pub struct LoadError {
    pub errors: Vec<(Location, String)>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (location, reason)) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{location}: {reason}")?;
        }
        Ok(())
    }
}

/// Loads every resource of `dir`. Any error fails the whole load, and every error is reported.
pub fn load_dir(dir: &Path) -> Result<LoadedResources, LoadError> {
    let mut errors = LoadError::default();
    let mut loaded = LoadedResources::default();
    let mut common = Scope::default();
    let mut groups: BTreeMap<String, Scope> = BTreeMap::new();
    for entry in sorted_entries(dir, &mut errors) {
        if entry.is_dir() {
            let Some(group) = entry.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                errors.errors.push((location(&entry), "directory name is not UTF-8".into()));
                continue;
            };
            let scope = groups.entry(group).or_default();
            for file in sorted_entries(&entry, &mut errors).into_iter().filter(|p| is_resource_file(p)) {
                scope.add_file(&file, &mut errors);
            }
        } else if is_resource_file(&entry) {
            common.add_file(&entry, &mut errors);
        }
    }
    if !errors.errors.is_empty() {
        return Err(errors);
    }
    loaded.common = common.into_resources();
    loaded.groups = groups.into_iter().map(|(g, s)| (g, s.into_resources())).collect();
    Ok(loaded)
}

/// The resources of one scope (common, or one node cluster), with where each came from.
#[derive(Default)]
struct Scope {
    resources: BTreeMap<(String, String), (Resource, Location)>,
}

impl Scope {
    fn add_file(&mut self, path: &Path, errors: &mut LoadError) {
        match read_file(path).and_then(|text| parse_file(path, &text)) {
            Ok(parsed) => {
                for (resource, loc) in parsed {
                    let key = (resource.type_url().to_owned(), resource.name().to_owned());
                    if let Some((_, first)) = self.resources.get(&key) {
                        errors.errors.push((
                            loc,
                            format!("duplicate {} {:?}: already defined in {first}", short_type(&key.0), key.1),
                        ));
                    } else {
                        self.resources.insert(key, (resource, loc));
                    }
                }
            }
            Err(mut e) => errors.errors.append(&mut e.errors),
        }
    }

    fn into_resources(self) -> Vec<Resource> {
        self.resources.into_values().map(|(r, _)| r).collect()
    }
}

fn short_type(type_url: &str) -> &str {
    type_url.rsplit('.').next().unwrap_or(type_url)
}

fn location(path: &Path) -> Location {
    Location { file: path.to_owned(), document: None, resource: None }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'))
}

fn is_resource_file(path: &Path) -> bool {
    path.is_file() && matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
}

/// The non-hidden entries of `dir`, sorted by path.
fn sorted_entries(dir: &Path, errors: &mut LoadError) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> =
                entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| !is_hidden(p)).collect();
            paths.sort();
            paths
        }
        Err(e) => {
            errors.errors.push((location(dir), format!("cannot read directory: {e}")));
            Vec::new()
        }
    }
}

pub fn read_file(path: &Path) -> Result<String, LoadError> {
    let fail = |reason: String| LoadError { errors: vec![(location(path), reason)] };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(format!("{} bytes: larger than the limit of {MAX_FILE_BYTES}", meta.len())));
    }
    std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))
}

/// Parses the resources of one file (`path` names it in errors and selects JSON or YAML).
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<(Resource, Location)>, LoadError> {
    let mut errors = LoadError::default();
    let mut out = Vec::new();
    for (item, loc) in split_documents(path, text, &mut errors) {
        match transcode(item) {
            Ok(resource) => out.push((resource, loc)),
            Err(e) => errors.errors.push((loc, e)),
        }
    }
    if errors.errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// The documents of one file as JSON values, each with its location: a JSON file is one
/// document; a YAML file has one per `---`; a document with a `resources:` list (Envoy's file
/// format) counts each item. Problems go to `errors`.
pub fn split_documents(path: &Path, text: &str, errors: &mut LoadError) -> Vec<(serde_json::Value, Location)> {
    let mut out = Vec::new();
    let documents: Vec<Result<serde_json::Value, String>> = if path.extension().and_then(|e| e.to_str()) == Some("json")
    {
        vec![serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))]
    } else {
        let mut docs = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(text) {
            let parsed = serde_yaml::Value::deserialize(doc).map_err(|e| e.to_string()).and_then(yaml_to_json);
            let failed = parsed.is_err();
            docs.push(parsed.map_err(|e| format!("invalid YAML: {e}")));
            if failed {
                // The parser does not recover from a syntax error: it would repeat it forever.
                break;
            }
        }
        docs
    };
    for (i, doc) in documents.into_iter().enumerate() {
        let mut loc = Location { file: path.to_owned(), document: Some(i + 1), resource: None };
        let doc = match doc {
            Ok(serde_json::Value::Null) => continue,
            Ok(doc) => doc,
            Err(e) => {
                errors.errors.push((loc, e));
                continue;
            }
        };
        match doc {
            serde_json::Value::Object(mut map)
                if !map.contains_key("@type") && !map.contains_key("kind") && map.contains_key("resources") =>
            {
                match map.remove("resources") {
                    Some(serde_json::Value::Array(items)) => {
                        for (j, item) in items.into_iter().enumerate() {
                            loc.resource = Some(j + 1);
                            out.push((item, loc.clone()));
                        }
                    }
                    _ => errors.errors.push((loc, "resources: must be a list".into())),
                }
            }
            other => out.push((other, loc)),
        }
    }
    out
}

/// YAML → JSON values: keys must be strings (or scalars, which become strings); numbers and
/// booleans stay numbers and booleans.
fn yaml_to_json(value: serde_yaml::Value) -> Result<serde_json::Value, String> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => serde_json::Value::Null,
        Y::Bool(b) => serde_json::Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into()
            } else if let Some(u) = n.as_u64() {
                u.into()
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f).map(serde_json::Value::Number).ok_or("numbers must be finite")?
            }
        }
        Y::String(s) => serde_json::Value::String(s),
        Y::Sequence(items) => serde_json::Value::Array(items.into_iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Y::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => return Err(format!("mapping keys must be scalars, found {other:?}")),
                };
                out.insert(key, yaml_to_json(v)?);
            }
            serde_json::Value::Object(out)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
    use prost::Message;

    const CLUSTER: &str = r#"
"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: web
type: EDS
connect_timeout: 2.5s
eds_cluster_config: { eds_config: { ads: {} } }
"#;

    const LISTENER_AND_ROUTE: &str = r#"
resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: ingress
  address: { socket_address: { address: 0.0.0.0, port_value: 8080 } }
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: ingress
        rds: { route_config_name: main, config_source: { ads: {} } }
        http_filters:
        - name: envoy.filters.http.router
          typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: main
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes: [ { match: { prefix: "/" }, route: { cluster: web } } ]
"#;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }

    fn find<'a>(rs: &'a [Resource], name: &str) -> &'a Resource {
        rs.iter().find(|r| r.name() == name).unwrap_or_else(|| panic!("{name} missing from {rs:?}"))
    }

    #[test]
    fn loads_documents_lists_json_and_nested_any() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "cluster.yaml", CLUSTER);
        write(dir.path(), "lds.yml", LISTENER_AND_ROUTE);
        write(
            dir.path(),
            "cla.json",
            r#"{"@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", "cluster_name": "web",
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9000}}}}]}]}"#,
        );
        write(dir.path(), "README.md", "not a resource");
        write(dir.path(), ".hidden.yaml", "garbage: [");
        let loaded = load_dir(dir.path()).expect("loads");
        assert_eq!(loaded.common.len(), 4);
        let cluster: Cluster = find(&loaded.common, "web").decode().expect("cluster");
        assert_eq!(cluster.connect_timeout.map(|d| (d.seconds, d.nanos)), Some((2, 500_000_000)));
        let cla: ClusterLoadAssignment = loaded
            .common
            .iter()
            .find(|r| r.type_url().ends_with("ClusterLoadAssignment"))
            .expect("cla")
            .decode()
            .expect("decodes");
        assert_eq!(cla.cluster_name, "web");
        let listener: Listener = find(&loaded.common, "ingress").decode().expect("listener");
        let Some(ConfigType::TypedConfig(any)) = &listener.filter_chains[0].filters[0].config_type else {
            panic!("typed_config missing")
        };
        let hcm = HttpConnectionManager::decode(any.value.as_slice()).expect("nested Any decodes");
        assert!(matches!(hcm.route_specifier, Some(RouteSpecifier::Rds(ref rds)) if rds.route_config_name == "main"));
        let route: RouteConfiguration = find(&loaded.common, "main").decode().expect("route");
        assert_eq!(route.virtual_hosts[0].domains, vec!["*".to_string()]);
    }

    #[test]
    fn groups_add_to_and_override_common() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "cluster.yaml", CLUSTER);
        write(dir.path(), "edge/cluster.yaml", &CLUSTER.replace("2.5s", "7s"));
        write(dir.path(), "edge/extra.yaml", &CLUSTER.replace("name: web", "name: extra"));
        let loaded = load_dir(dir.path()).expect("loads");
        assert_eq!(loaded.group_names().collect::<Vec<_>>(), vec!["edge"]);
        let edge = loaded.for_group("edge");
        assert_eq!(edge.len(), 2);
        let web: Cluster = find(&edge, "web").decode().expect("cluster");
        assert_eq!(web.connect_timeout.map(|d| d.seconds), Some(7));
        assert_eq!(loaded.for_group("other").len(), 1);
    }

    #[test]
    fn versions_are_stable_with_map_fields() {
        let text = r#"
"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: web
metadata:
  filter_metadata:
    a: { x: 1, y: "two", z: [true, false] }
    b: { k: v }
    c: { k: v }
    d: { k: v }
"#;
        let path = Path::new("c.yaml");
        let first = parse_file(path, text).expect("parses");
        for _ in 0..20 {
            let again = parse_file(path, text).expect("parses");
            assert_eq!(again[0].0.version(), first[0].0.version());
        }
        let changed = parse_file(path, &text.replace("k: v }\n    d", "k: w }\n    d")).expect("parses");
        assert_ne!(changed[0].0.version(), first[0].0.version());
    }

    #[test]
    fn errors_name_file_document_and_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.yaml", "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Nope\nname: x\n");
        write(
            dir.path(),
            "b.yaml",
            &format!(
                "{CLUSTER}---\n\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: y\nconect_timeout: 1s\n"
            ),
        );
        write(dir.path(), "c.yaml", "name: no-type\n");
        write(dir.path(), "d.yaml", "key: [unclosed\n");
        write(
            dir.path(),
            "e.yaml",
            "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nconnect_timeout: 1s\n",
        );
        write(dir.path(), "f.yaml", CLUSTER);
        write(dir.path(), "h.yaml", CLUSTER);
        write(dir.path(), "g.json", "{\"resources\": 3}");
        let err = load_dir(dir.path()).expect_err("fails").to_string();
        let lines: Vec<&str> = err.lines().collect();
        let line =
            |file: &str| lines.iter().find(|l| l.contains(file)).copied().unwrap_or_else(|| panic!("{file}: {err}"));
        assert!(line("a.yaml").contains("unknown type"), "{err}");
        assert!(line("b.yaml").contains("document 2") && line("b.yaml").contains("conect_timeout"), "{err}");
        assert!(line("c.yaml").contains("@type"), "{err}");
        assert!(line("d.yaml").contains("invalid YAML"), "{err}");
        assert!(line("e.yaml").contains("name"), "{err}");
        assert!(line("h.yaml").contains("duplicate") && line("h.yaml").contains("f.yaml"), "{err}");
        assert!(line("g.json").contains("resources: must be a list"), "{err}");
    }

    #[test]
    fn oversize_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = std::fs::File::create(dir.path().join("big.yaml")).expect("create");
        file.set_len(MAX_FILE_BYTES + 1).expect("grow");
        let err = load_dir(dir.path()).expect_err("refused").to_string();
        assert!(err.contains("big.yaml") && err.contains("limit"), "{err}");
    }
}
