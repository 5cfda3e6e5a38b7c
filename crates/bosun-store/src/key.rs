//! Keys (`kind/namespace/name`) and key prefixes, validated on construction.

use std::fmt;

use crate::error::{Result, StoreError};

/// Longest kind, in bytes.
pub const MAX_KIND_BYTES: usize = 63;
/// Longest namespace, in bytes.
pub const MAX_NAMESPACE_BYTES: usize = 253;
/// Longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;

/// A key: `kind/namespace/name`. Kinds and namespaces contain no `/`; names may (xdstp names do),
/// so the string form parses back unambiguously. Keys order as their string form.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    full: String,
    kind_end: usize,
    namespace_end: usize,
}

impl Key {
    /// A key from its parts, each validated.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Result<Self> {
        check_kind(kind)?;
        check_namespace(namespace)?;
        check_name(name)?;
        Ok(Self {
            full: format!("{kind}/{namespace}/{name}"),
            kind_end: kind.len(),
            namespace_end: kind.len() + 1 + namespace.len(),
        })
    }

    /// Parses `kind/namespace/name`.
    pub fn parse(key: &str) -> Result<Self> {
        let mut parts = key.splitn(3, '/');
        let (Some(kind), Some(namespace), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(StoreError::invalid("key", format!("{key:?} is not kind/namespace/name")));
        };
        Self::new(kind, namespace, name)
    }

    /// `kind/namespace/name`.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    pub fn kind(&self) -> &str {
        &self.full[..self.kind_end]
    }

    pub fn namespace(&self) -> &str {
        &self.full[self.kind_end + 1..self.namespace_end]
    }

    pub fn name(&self) -> &str {
        &self.full[self.namespace_end + 1..]
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.full)
    }
}

/// A prefix of keys: everything, one kind, one kind in one namespace, or names starting with a
/// string within one kind and namespace.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Prefix(String);

impl Prefix {
    /// Every key.
    pub fn all() -> Self {
        Self(String::new())
    }

    /// Every key of `kind`.
    pub fn kind(kind: &str) -> Result<Self> {
        check_kind(kind)?;
        Ok(Self(format!("{kind}/")))
    }

    /// Every key of `kind` in `namespace`.
    pub fn namespace(kind: &str, namespace: &str) -> Result<Self> {
        check_kind(kind)?;
        check_namespace(namespace)?;
        Ok(Self(format!("{kind}/{namespace}/")))
    }

    /// Keys of `kind` in `namespace` whose name starts with `name_prefix` (may be empty).
    pub fn name(kind: &str, namespace: &str, name_prefix: &str) -> Result<Self> {
        check_kind(kind)?;
        check_namespace(namespace)?;
        if name_prefix.len() > MAX_NAME_BYTES || name_prefix.chars().any(char::is_control) {
            return Err(StoreError::invalid("prefix.name", "must be at most 1024 bytes without control characters"));
        }
        Ok(Self(format!("{kind}/{namespace}/{name_prefix}")))
    }

    /// Parses the string form: `""`, `kind/`, `kind/namespace/` or `kind/namespace/name-prefix`.
    /// A bare `kind` or `kind/namespace` means the same as with the trailing `/`.
    pub fn parse(prefix: &str) -> Result<Self> {
        if prefix.is_empty() {
            return Ok(Self::all());
        }
        let mut parts = prefix.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(kind), None | Some(""), None) => Self::kind(kind),
            (Some(kind), Some(ns), None) | (Some(kind), Some(ns), Some("")) => Self::namespace(kind, ns),
            (Some(kind), Some(ns), Some(name)) => Self::name(kind, ns, name),
            _ => Err(StoreError::invalid("prefix", format!("{prefix:?} is not kind/namespace/name-prefix"))),
        }
    }

    /// The string form; keys under the prefix start with it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `key` is under this prefix.
    pub fn contains(&self, key: &Key) -> bool {
        key.as_str().starts_with(&self.0)
    }

    /// The smallest string greater than every key under the prefix (`None`: no bound), for range
    /// scans: the prefix with its last byte incremented (`/` + 1 is `0`).
    pub fn range_end(&self) -> Option<String> {
        let mut bytes = self.0.clone().into_bytes();
        while let Some(last) = bytes.pop() {
            if last < 0x7f {
                bytes.push(last + 1);
                // Only ASCII bytes are incremented, so this stays UTF-8.
                return String::from_utf8(bytes).ok();
            }
        }
        None
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prefix({:?})", self.0)
    }
}

fn check_kind(kind: &str) -> Result<()> {
    let field = "key.kind";
    if kind.is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    if kind.len() > MAX_KIND_BYTES {
        return Err(StoreError::invalid(field, format!("must be at most {MAX_KIND_BYTES} bytes")));
    }
    if !kind.starts_with(|c: char| c.is_ascii_alphabetic())
        || !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    {
        return Err(StoreError::invalid(
            field,
            format!("{kind:?} must start with a letter and contain only letters, digits, '.', '-' and '_'"),
        ));
    }
    Ok(())
}

fn check_namespace(namespace: &str) -> Result<()> {
    let field = "key.namespace";
    if namespace.is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    if namespace.len() > MAX_NAMESPACE_BYTES {
        return Err(StoreError::invalid(field, format!("must be at most {MAX_NAMESPACE_BYTES} bytes")));
    }
    if !namespace.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_') {
        return Err(StoreError::invalid(
            field,
            format!("{namespace:?} must contain only letters, digits, '.', '-' and '_'"),
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    let field = "key.name";
    if name.is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(StoreError::invalid(field, format!("must be at most {MAX_NAME_BYTES} bytes")));
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::invalid(field, "must not contain control characters"));
    }
    if name.trim() != name {
        return Err(StoreError::invalid(field, "must not start or end with white space"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_and_name_their_parts() {
        let key = Key::new("Cluster", "default", "xdstp://auth/envoy.config.cluster.v3.Cluster/a").unwrap();
        assert_eq!(key.kind(), "Cluster");
        assert_eq!(key.namespace(), "default");
        assert_eq!(key.name(), "xdstp://auth/envoy.config.cluster.v3.Cluster/a");
        assert_eq!(Key::parse(key.as_str()).unwrap(), key);
    }

    #[test]
    fn bad_keys_name_the_field() {
        let cases = [
            (Key::new("", "ns", "a"), "key.kind: must not be empty"),
            (Key::new("Clu/ster", "ns", "a"), "key.kind: \"Clu/ster\" must start"),
            (Key::new("9x", "ns", "a"), "key.kind: \"9x\" must start"),
            (Key::new("Cluster", "", "a"), "key.namespace: must not be empty"),
            (Key::new("Cluster", "a/b", "a"), "key.namespace: \"a/b\" must contain"),
            (Key::new("Cluster", "ns", ""), "key.name: must not be empty"),
            (Key::new("Cluster", "ns", "a\nb"), "key.name: must not contain control"),
            (Key::new("Cluster", "ns", " a"), "key.name: must not start or end"),
            (Key::new("Cluster", "ns", &"x".repeat(1025)), "key.name: must be at most 1024"),
            (Key::parse("Cluster/ns"), "key: \"Cluster/ns\" is not"),
        ];
        for (result, want) in cases {
            let err = result.expect_err(want).to_string();
            assert!(err.starts_with(want), "{err} does not start with {want}");
        }
    }

    #[test]
    fn prefixes_bound_their_keys() {
        let p = Prefix::parse("Cluster/default").unwrap();
        assert_eq!(p.as_str(), "Cluster/default/");
        assert_eq!(p.range_end().as_deref(), Some("Cluster/default0"));
        assert!(p.contains(&Key::new("Cluster", "default", "a").unwrap()));
        assert!(!p.contains(&Key::new("Cluster", "defaults", "a").unwrap()));
        assert_eq!(Prefix::all().range_end(), None);
        assert_eq!(Prefix::parse("Cluster/").unwrap(), Prefix::kind("Cluster").unwrap());
        assert_eq!(Prefix::parse("Cluster/ns/ab").unwrap().as_str(), "Cluster/ns/ab");
        assert!(Prefix::parse("/x").is_err());
    }
}
