//! The kinds this crate knows: their names, API groups, and the names the CLI accepts for them.

use serde::Serialize;

/// The API group of the fault-tolerance kinds.
pub const FAULT_TOLERANCE_GROUP: &str = "fault-tolerance.opensergo.io";
/// The API group of the traffic kinds.
pub const TRAFFIC_GROUP: &str = "traffic.opensergo.io";
/// The API group of Bosun's own kinds (`Service`).
pub const BOSUN_GROUP: &str = "bosun.io";
/// The version of every kind.
pub const VERSION: &str = "v1alpha1";

/// An OpenSergo kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    /// Binds strategies and a fallback action to targets of an application.
    FaultToleranceRule,
    /// So many requests per so many seconds.
    RateLimitStrategy,
    /// Requests spaced out, queued for at most a while.
    ThrottlingStrategy,
    /// At most so many requests at once.
    ConcurrencyLimitStrategy,
    /// Stop calling when too many requests are slow or fail.
    CircuitBreakerStrategy,
    /// The HTTP response given instead.
    HttpRequestFallbackAction,
    /// Routes (Istio VirtualService shape).
    TrafficRouter,
    /// A lane of tagged traffic.
    TrafficLane,
    /// A service: its ports and the instances that serve it (Bosun's own kind).
    Service,
}

struct Names {
    name: &'static str,
    group: &'static str,
    plural: &'static str,
    aliases: &'static [&'static str],
}

const NAMES: [Names; 9] = [
    Names {
        name: "FaultToleranceRule",
        group: FAULT_TOLERANCE_GROUP,
        plural: "faulttolerancerules",
        aliases: &["ftr"],
    },
    Names { name: "RateLimitStrategy", group: FAULT_TOLERANCE_GROUP, plural: "ratelimitstrategies", aliases: &["rls"] },
    Names {
        name: "ThrottlingStrategy",
        group: FAULT_TOLERANCE_GROUP,
        plural: "throttlingstrategies",
        aliases: &["ts"],
    },
    Names {
        name: "ConcurrencyLimitStrategy",
        group: FAULT_TOLERANCE_GROUP,
        plural: "concurrencylimitstrategies",
        aliases: &["cls"],
    },
    Names {
        name: "CircuitBreakerStrategy",
        group: FAULT_TOLERANCE_GROUP,
        plural: "circuitbreakerstrategies",
        aliases: &["cbs"],
    },
    Names {
        name: "HttpRequestFallbackAction",
        group: FAULT_TOLERANCE_GROUP,
        plural: "httprequestfallbackactions",
        aliases: &["fallbacks", "hfa"],
    },
    Names { name: "TrafficRouter", group: TRAFFIC_GROUP, plural: "trafficrouters", aliases: &["tr"] },
    Names { name: "TrafficLane", group: TRAFFIC_GROUP, plural: "trafficlanes", aliases: &["tl"] },
    Names { name: "Service", group: BOSUN_GROUP, plural: "services", aliases: &["svc"] },
];

impl Kind {
    /// Every kind: fault-tolerance, then traffic, then Bosun's own.
    pub const ALL: [Kind; 9] = [
        Kind::FaultToleranceRule,
        Kind::RateLimitStrategy,
        Kind::ThrottlingStrategy,
        Kind::ConcurrencyLimitStrategy,
        Kind::CircuitBreakerStrategy,
        Kind::HttpRequestFallbackAction,
        Kind::TrafficRouter,
        Kind::TrafficLane,
        Kind::Service,
    ];

    /// The kinds a FaultToleranceRule may name in `strategies[]`.
    pub const STRATEGIES: [Kind; 4] = [
        Kind::RateLimitStrategy,
        Kind::ThrottlingStrategy,
        Kind::ConcurrencyLimitStrategy,
        Kind::CircuitBreakerStrategy,
    ];

    fn names(self) -> &'static Names {
        // NAMES is in the order of the enum.
        &NAMES[self as usize]
    }

    /// The kind's name, as `kind:` writes it: `RateLimitStrategy`.
    pub fn name(self) -> &'static str {
        self.names().name
    }

    /// The API group: `fault-tolerance.opensergo.io`.
    pub fn group(self) -> &'static str {
        self.names().group
    }

    /// The `apiVersion` documents of this kind carry: `fault-tolerance.opensergo.io/v1alpha1`.
    pub fn api_version(self) -> String {
        format!("{}/{VERSION}", self.group())
    }

    /// The kind's name on the OpenSergo wire: `fault-tolerance.opensergo.io/v1alpha1/RateLimitStrategy`.
    pub fn wire_name(self) -> String {
        format!("{}/{VERSION}/{}", self.group(), self.name())
    }

    /// The plural, as Kubernetes names the resource: `ratelimitstrategies`.
    pub fn plural(self) -> &'static str {
        self.names().plural
    }

    /// Short names for the CLI: `rls`.
    pub fn aliases(self) -> &'static [&'static str] {
        self.names().aliases
    }

    /// Whether a FaultToleranceRule may name this kind in `strategies[]`.
    pub fn is_strategy(self) -> bool {
        Self::STRATEGIES.contains(&self)
    }

    /// The kind a name stands for: its name (any case), its plural, an alias, `<name>.<group>`, or
    /// its wire name. `None` if none.
    pub fn resolve(name: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|kind| {
            let n = kind.names();
            name.eq_ignore_ascii_case(n.name)
                || name == n.plural
                || n.aliases.contains(&name)
                || name.strip_suffix(n.group).and_then(|s| s.strip_suffix('.')).is_some_and(|s| s == n.name)
                || name == kind.wire_name()
        })
    }

    /// The kind named exactly as `kind:` writes it (`RateLimitStrategy`).
    pub fn from_name(name: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_in_enum_order_and_resolve() {
        for kind in Kind::ALL {
            assert_eq!(kind.names().name, format!("{kind:?}"));
            assert_eq!(Kind::resolve(kind.name()), Some(kind));
            assert_eq!(Kind::resolve(&kind.name().to_lowercase()), Some(kind));
            assert_eq!(Kind::resolve(kind.plural()), Some(kind));
            assert_eq!(Kind::resolve(&kind.wire_name()), Some(kind));
            assert_eq!(Kind::resolve(&format!("{}.{}", kind.name(), kind.group())), Some(kind));
            for alias in kind.aliases() {
                assert_eq!(Kind::resolve(alias), Some(kind));
            }
        }
        assert_eq!(Kind::resolve("rls"), Some(Kind::RateLimitStrategy));
        assert_eq!(Kind::resolve("Cluster"), None);
        assert_eq!(Kind::RateLimitStrategy.api_version(), "fault-tolerance.opensergo.io/v1alpha1");
        assert_eq!(Kind::TrafficRouter.wire_name(), "traffic.opensergo.io/v1alpha1/TrafficRouter");
        assert_eq!(Kind::resolve("svc"), Some(Kind::Service));
        assert_eq!(Kind::Service.api_version(), "bosun.io/v1alpha1");
        assert!(Kind::ThrottlingStrategy.is_strategy() && !Kind::HttpRequestFallbackAction.is_strategy());
    }
}
