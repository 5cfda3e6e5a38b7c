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

/// A kind Bosun stores: an Envoy resource, or a governance kind of `bosun_model` (OpenSergo's).
#[derive(Debug, Clone)]
pub enum DocKind {
    /// Served to Envoy as it is.
    Envoy(EnvoyKind),
    /// Validated by `bosun_model`, translated and served to OpenSergo SDKs.
    Governance(bosun_model::Kind),
}

impl DocKind {
    /// The kind named `name`, by any of its names (see [`EnvoyKind::resolve`] and
    /// [`bosun_model::Kind::resolve`]).
    pub fn resolve(name: &str) -> Result<Self, String> {
        if let Ok(kind) = EnvoyKind::resolve(name) {
            return Ok(Self::Envoy(kind));
        }
        match bosun_model::Kind::resolve(name) {
            Some(kind) => Ok(Self::Governance(kind)),
            None => Err(format!("unknown kind {name:?} (Bosun stores: {})", Self::known_names().join(", "))),
        }
    }

    /// The kind of a stored key's kind.
    pub fn of_store_kind(kind: &str) -> Option<Self> {
        if let Some(envoy) = EnvoyKind::of_store_kind(kind) {
            return Some(Self::Envoy(envoy));
        }
        bosun_model::Kind::ALL.into_iter().find(|k| k.name() == kind).map(Self::Governance)
    }

    /// Every kind.
    pub fn known() -> Vec<Self> {
        let envoy = EnvoyKind::known().into_iter().map(Self::Envoy);
        envoy.chain(bosun_model::Kind::ALL.into_iter().map(Self::Governance)).collect()
    }

    /// Every kind's name.
    pub fn known_names() -> Vec<&'static str> {
        let mut names = EnvoyKind::known_names();
        names.extend(bosun_model::Kind::ALL.map(bosun_model::Kind::name));
        names
    }

    /// The kind in store keys and documents.
    pub fn name(&self) -> &str {
        match self {
            Self::Envoy(kind) => &kind.name,
            Self::Governance(kind) => kind.name(),
        }
    }

    /// The `apiVersion` its documents carry.
    pub fn api_version(&self) -> String {
        match self {
            Self::Envoy(_) => super::API_VERSION.to_owned(),
            Self::Governance(kind) => kind.api_version(),
        }
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

    #[test]
    fn envoy_and_governance_names_do_not_collide() {
        for kind in bosun_model::Kind::ALL {
            for name in [kind.name(), kind.plural()].into_iter().chain(kind.aliases().iter().copied()) {
                assert!(EnvoyKind::resolve(name).is_err(), "{name} names an Envoy kind too");
                assert!(matches!(DocKind::resolve(name), Ok(DocKind::Governance(k)) if k == kind), "{name}");
            }
        }
        for (kind, _, aliases) in KNOWN {
            for name in std::iter::once(kind).chain(aliases.iter()) {
                assert!(bosun_model::Kind::resolve(name).is_none(), "{name} names a governance kind too");
            }
        }
        assert_eq!(DocKind::of_store_kind("RateLimitStrategy").unwrap().name(), "RateLimitStrategy");
        assert_eq!(DocKind::of_store_kind("Cluster").unwrap().api_version(), "bosun.io/v1alpha1");
        let err = DocKind::resolve("widgets").unwrap_err();
        assert!(err.contains("Cluster") && err.contains("TrafficRouter"), "{err}");
    }
}
