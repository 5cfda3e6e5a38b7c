//! The kinds of Envoy resource Bosun stores, their names on the CLI and API, and their types.

use prost_reflect::MessageDescriptor;

use crate::resources;

/// A kind of Envoy resource: its store kind (`Cluster`) and its message type.
#[derive(Debug, Clone)]
pub struct EnvoyKind {
    /// The kind in store keys and documents.
    pub name: String,
    pub descriptor: MessageDescriptor,
}

/// (kind, message, other names accepted on the CLI and API, lowercase).
const KNOWN: &[(&str, &str, &[&str])] = &[
    ("Cluster", "envoy.config.cluster.v3.Cluster", &["clusters", "cds"]),
    (
        "ClusterLoadAssignment",
        "envoy.config.endpoint.v3.ClusterLoadAssignment",
        &["clusterloadassignments", "endpoints", "endpoint", "cla", "eds"],
    ),
    ("Listener", "envoy.config.listener.v3.Listener", &["listeners", "lds"]),
    (
        "RouteConfiguration",
        "envoy.config.route.v3.RouteConfiguration",
        &["routeconfigurations", "routes", "route", "rds"],
    ),
    ("ScopedRouteConfiguration", "envoy.config.route.v3.ScopedRouteConfiguration", &["scopedroutes", "srds"]),
    ("VirtualHost", "envoy.config.route.v3.VirtualHost", &["virtualhosts", "vhds"]),
    ("Secret", "envoy.extensions.transport_sockets.tls.v3.Secret", &["secrets", "sds"]),
    ("Runtime", "envoy.service.runtime.v3.Runtime", &["runtimes", "rtds"]),
    ("ExtensionConfig", "envoy.config.core.v3.TypedExtensionConfig", &["extensionconfigs", "ecds"]),
];

impl EnvoyKind {
    /// The kind named `name`: a kind (`Cluster`), one of its other names (`clusters`, `cds`), in
    /// any case, its message name (`envoy.config.cluster.v3.Cluster`) or its type URL.
    pub fn resolve(name: &str) -> Result<Self, String> {
        let lower = name.to_ascii_lowercase();
        let message = name.rsplit('/').next().unwrap_or(name);
        let known = KNOWN.iter().find(|(kind, full, aliases)| {
            kind.eq_ignore_ascii_case(name) || *full == message || aliases.contains(&lower.as_str())
        });
        match known {
            Some((kind, full, _)) => Ok(Self { name: (*kind).to_owned(), descriptor: resources::descriptor(full)? }),
            None => Err(format!("unknown kind {name:?} (Bosun serves: {})", Self::known_names().join(", "))),
        }
    }

    /// The kind of a stored key's kind, if it is an Envoy kind.
    pub fn of_store_kind(kind: &str) -> Option<Self> {
        KNOWN.iter().any(|(k, ..)| *k == kind).then(|| Self::resolve(kind).ok()).flatten()
    }

    /// The kinds with names of their own.
    pub fn known_names() -> Vec<&'static str> {
        KNOWN.iter().map(|(kind, ..)| *kind).collect()
    }

    /// The kinds with names of their own, resolved.
    pub fn known() -> Vec<Self> {
        KNOWN.iter().filter_map(|(kind, ..)| Self::resolve(kind).ok()).collect()
    }

    /// `type.googleapis.com/<message>`.
    pub fn type_url(&self) -> String {
        format!("type.googleapis.com/{}", self.descriptor.full_name())
    }

    /// The field that holds the resource's name.
    pub fn name_field(&self) -> &'static str {
        resources::name_field(&self.descriptor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_resolve_by_any_of_their_names() {
        for name in [
            "Cluster",
            "clusters",
            "CDS",
            "envoy.config.cluster.v3.Cluster",
            "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        ] {
            assert_eq!(EnvoyKind::resolve(name).unwrap().name, "Cluster", "{name}");
        }
        assert_eq!(EnvoyKind::resolve("endpoints").unwrap().name_field(), "cluster_name");
        assert!(EnvoyKind::resolve("envoy.config.listener.v3.ListenerCollection").is_err());
        let err = EnvoyKind::resolve("widgets").unwrap_err();
        assert!(err.contains("unknown kind \"widgets\"") && err.contains("Cluster"), "{err}");
        assert!(EnvoyKind::of_store_kind("RateLimitStrategy").is_none());
        assert_eq!(EnvoyKind::known().len(), KNOWN.len(), "every known kind resolves");
    }
}
