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

pub use transcode::transcode;

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

fn read_file(path: &Path) -> Result<String, LoadError> {
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
    let documents: Vec<Result<serde_json::Value, String>> = if path.extension().and_then(|e| e.to_str()) == Some("json")
    {
        vec![serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))]
    } else {
        serde_yaml::Deserializer::from_str(text)
            .map(|doc| {
                serde_yaml::Value::deserialize(doc)
                    .map_err(|e| format!("invalid YAML: {e}"))
                    .and_then(|v| yaml_to_json(v).map_err(|e| format!("invalid YAML: {e}")))
            })
            .collect()
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
        let (items, listed) = match doc {
            serde_json::Value::Object(mut map) if !map.contains_key("@type") && map.contains_key("resources") => {
                match map.remove("resources") {
                    Some(serde_json::Value::Array(items)) => (items, true),
                    _ => {
                        errors.errors.push((loc, "resources: must be a list".into()));
                        continue;
                    }
                }
            }
            other => (vec![other], false),
        };
        for (j, item) in items.into_iter().enumerate() {
            if listed {
                loc.resource = Some(j + 1);
            }
            match transcode(item) {
                Ok(resource) => out.push((resource, loc.clone())),
                Err(e) => errors.errors.push((loc.clone(), e)),
            }
        }
    }
    if errors.errors.is_empty() { Ok(out) } else { Err(errors) }
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
