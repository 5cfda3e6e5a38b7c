//! Structured resource names that Delta streams interpret: `xdstp://` URNs and glob collections
//! (xDS TP1), and VHDS virtual-host aliases (`<route configuration>/<host>`).

use std::borrow::Cow;

use envoy_types::pb::envoy::config::route::v3::VirtualHost;

use crate::resource::Resource;
use crate::snapshot::TypeResources;

const XDSTP: &str = "xdstp://";

/// An `xdstp://` name split into its path (`xdstp://authority/type/id`) and its context
/// parameters in canonical order. The fragment (processing directives) is dropped: it tells the
/// client how to locate a resource, and is not part of the resource's identity.
struct Urn<'a> {
    path: &'a str,
    params: Cow<'a, str>,
}

impl<'a> Urn<'a> {
    fn parse(name: &'a str) -> Option<Self> {
        if !name.starts_with(XDSTP) {
            return None;
        }
        let name = name.split_once('#').map_or(name, |(n, _)| n);
        let (path, query) = name.split_once('?').unwrap_or((name, ""));
        Some(Self { path, params: canonical_params(query) })
    }
}

/// Context parameters sorted by key then value: two URNs that differ only in the order of their
/// parameters name the same resource.
fn canonical_params(query: &str) -> Cow<'_, str> {
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if params.is_sorted() && params.len() == query.split('&').count() {
        return Cow::Borrowed(query);
    }
    params.sort_unstable();
    Cow::Owned(params.join("&"))
}

/// The canonical form of a resource name: an `xdstp://` URN with its context parameters sorted
/// and without a fragment; any other name as it is.
pub(crate) fn canonical_name(name: &str) -> Cow<'_, str> {
    let Some(urn) = Urn::parse(name) else { return Cow::Borrowed(name) };
    if urn.params.is_empty() {
        return Cow::Borrowed(urn.path);
    }
    let already = matches!(urn.params, Cow::Borrowed(_)) && name.len() == urn.path.len() + 1 + urn.params.len();
    if already { Cow::Borrowed(name) } else { Cow::Owned(format!("{}?{}", urn.path, urn.params)) }
}

/// An `xdstp://` glob collection, `xdstp://authority/type/some/path/*?params`: every resource
/// whose URN is `xdstp://authority/type/some/path/<id>?params` (one more path segment, the same
/// context parameters in any order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    /// `xdstp://authority/type/some/path/`.
    prefix: String,
    /// The context parameters, canonical.
    params: String,
}

impl Glob {
    /// The glob collection `name` names, if it is one.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        let urn = Urn::parse(name)?;
        let prefix = urn.path.strip_suffix('*')?;
        if !prefix.ends_with('/') || prefix.len() <= XDSTP.len() + 1 {
            return None;
        }
        Some(Self { prefix: prefix.to_owned(), params: urn.params.into_owned() })
    }

    /// Whether the resource named `name` is in this collection.
    pub(crate) fn contains(&self, name: &str) -> bool {
        let Some(urn) = Urn::parse(name) else { return false };
        let Some(id) = urn.path.strip_prefix(self.prefix.as_str()) else { return false };
        !id.is_empty() && !id.contains('/') && urn.params == self.params
    }

    /// The resources of `set` in this collection. Names sharing the collection's path prefix
    /// are contiguous in the set's order, so this reads only those.
    pub(crate) fn members<'s>(&'s self, set: &'s TypeResources) -> impl Iterator<Item = &'s Resource> + 's {
        set.with_prefix(&self.prefix).filter(|r| self.contains(r.name()))
    }
}

/// A VHDS name `<route configuration>/<host>` split at its last `/` (a host has no `/`; a route
/// configuration name may).
pub(crate) fn split_vhds_alias(name: &str) -> Option<(&str, &str)> {
    let (route_config, host) = name.rsplit_once('/')?;
    (!route_config.is_empty() && !host.is_empty()).then_some((route_config, host))
}

/// The virtual host of `route_config` that serves `host`: among the virtual hosts of `set` named
/// `<route_config>/<name>`, the one whose `domains` match `host` best, in Envoy's order (exact,
/// then the longest `*suffix`, then the longest `prefix*`, then `*`). A host with a port that
/// matches nothing is tried again without it.
pub(crate) fn resolve_vhds_alias<'s>(set: &'s TypeResources, route_config: &str, host: &str) -> Option<&'s Resource> {
    let prefix = format!("{route_config}/");
    let candidates: Vec<(&Resource, VirtualHost)> = set
        .with_prefix(&prefix)
        .filter(|r| !r.name()[prefix.len()..].contains('/'))
        .filter_map(|r| Some((r, r.decode::<VirtualHost>().ok()?)))
        .collect();
    let best = |host: &str| {
        candidates
            .iter()
            .filter_map(|(r, vh)| vh.domains.iter().filter_map(|d| domain_rank(d, host)).max().map(|rank| (rank, *r)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, r)| r)
    };
    let host = host.to_ascii_lowercase();
    best(&host).or_else(|| {
        let (without_port, port) = host.rsplit_once(':')?;
        (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !without_port.ends_with(']'))
            .then(|| best(without_port))
            .flatten()
    })
}

/// How well `domain` matches `host`: higher is better, `None` for no match. Exact beats every
/// suffix wildcard, a longer suffix beats a shorter one, suffixes beat prefixes, and `*` is last.
fn domain_rank(domain: &str, host: &str) -> Option<(u8, usize)> {
    let domain = domain.to_ascii_lowercase();
    if domain == host {
        return Some((4, domain.len()));
    }
    if domain == "*" {
        return Some((1, 0));
    }
    if let Some(suffix) = domain.strip_prefix('*') {
        return (host.len() > suffix.len() && host.ends_with(suffix)).then_some((3, suffix.len()));
    }
    if let Some(prefix) = domain.strip_suffix('*') {
        return (host.len() > prefix.len() && host.starts_with(prefix)).then_some((2, prefix.len()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;

    #[test]
    fn context_parameters_are_order_free() {
        assert_eq!(canonical_name("xdstp://a/t/x?b=2&a=1"), "xdstp://a/t/x?a=1&b=2");
        assert_eq!(canonical_name("xdstp://a/t/x?a=1&b=2"), "xdstp://a/t/x?a=1&b=2");
        assert_eq!(canonical_name("xdstp://a/t/x#alt=xdstp://b/t/x"), "xdstp://a/t/x");
        assert_eq!(canonical_name("plain?b&a"), "plain?b&a", "only xdstp names are structured");
    }

    #[test]
    fn a_glob_holds_direct_children_with_the_same_parameters() {
        let glob = Glob::parse("xdstp://auth/envoy.config.cluster.v3.Cluster/team/*?b=2&a=1").expect("glob");
        assert!(glob.contains("xdstp://auth/envoy.config.cluster.v3.Cluster/team/one?a=1&b=2"));
        assert!(glob.contains("xdstp://auth/envoy.config.cluster.v3.Cluster/team/one?b=2&a=1"));
        assert!(!glob.contains("xdstp://auth/envoy.config.cluster.v3.Cluster/team/one"), "parameters must match");
        assert!(!glob.contains("xdstp://auth/envoy.config.cluster.v3.Cluster/team/sub/one?a=1&b=2"), "one level");
        assert!(!glob.contains("xdstp://other/envoy.config.cluster.v3.Cluster/team/one?a=1&b=2"), "authority");
        assert!(!glob.contains("team/one"));
        assert!(Glob::parse("xdstp://auth/envoy.config.cluster.v3.Cluster/team/one").is_none());
        assert!(Glob::parse("xdstp://auth/envoy.config.cluster.v3.Cluster/team*").is_none());
        assert!(Glob::parse("team/*").is_none(), "globs are xdstp:// only");
    }

    #[test]
    fn glob_members_are_read_from_the_prefix_range() {
        let cluster = |name: &str| Resource::new(&Cluster { name: name.into(), ..Default::default() });
        let set = TypeResources::new(
            crate::type_url::CLUSTER,
            [
                cluster("xdstp://a/envoy.config.cluster.v3.Cluster/t/1"),
                cluster("xdstp://a/envoy.config.cluster.v3.Cluster/t/2?x=1"),
                cluster("xdstp://a/envoy.config.cluster.v3.Cluster/t/sub/3"),
                cluster("xdstp://a/envoy.config.cluster.v3.Cluster/u/4"),
                cluster("plain"),
            ],
        );
        let glob = Glob::parse("xdstp://a/envoy.config.cluster.v3.Cluster/t/*").expect("glob");
        let names: Vec<&str> = glob.members(&set).map(Resource::name).collect();
        assert_eq!(names, ["xdstp://a/envoy.config.cluster.v3.Cluster/t/1"]);
    }

    #[test]
    fn vhds_aliases_follow_envoys_domain_order() {
        let vh = |name: &str, domains: &[&str]| {
            Resource::new(&VirtualHost {
                name: name.into(),
                domains: domains.iter().map(|d| d.to_string()).collect(),
                ..Default::default()
            })
        };
        let set = TypeResources::new(
            crate::type_url::VIRTUAL_HOST,
            [
                vh("rc/exact", &["app.example.com"]),
                vh("rc/suffix", &["*.example.com"]),
                vh("rc/longer-suffix", &["*.app2.example.com"]),
                vh("rc/prefix", &["api.*"]),
                vh("rc/any", &["*"]),
                vh("other/exact", &["only.other"]),
            ],
        );
        let resolve = |host| resolve_vhds_alias(&set, "rc", host).map(Resource::name);
        assert_eq!(resolve("app.example.com"), Some("rc/exact"));
        assert_eq!(resolve("APP.example.com"), Some("rc/exact"), "hosts are case-insensitive");
        assert_eq!(resolve("x.app2.example.com"), Some("rc/longer-suffix"));
        assert_eq!(resolve("b.example.com"), Some("rc/suffix"));
        assert_eq!(resolve("api.internal"), Some("rc/prefix"));
        assert_eq!(resolve("app.example.com:8080"), Some("rc/any"), "`*` matches the host with its port");
        assert_eq!(resolve_vhds_alias(&set, "other", "only.other:80").map(Resource::name), Some("other/exact"));
        assert_eq!(resolve_vhds_alias(&set, "other", "nowhere"), None);
        assert_eq!(split_vhds_alias("ns/rc/host:80"), Some(("ns/rc", "host:80")));
        assert_eq!(split_vhds_alias("rc"), None);
    }
}
