//! The `spec` of each kind: typed, validated, and serialized back in the CRDs' camelCase.

mod fault_tolerance;
mod service;
mod strategies;
mod traffic;

use serde::Serialize;
use serde_json::Value as Json;

pub use fault_tolerance::{ActionRef, FaultToleranceRule, Header, HttpRequestFallbackAction, ResponseBehavior, Target};
pub use service::{Endpoint, Protocol, Service, ServicePort, Subset};
pub use strategies::{
    CircuitBreakerStrategy, ConcurrencyLimitStrategy, LimitMode, MetricType, RateLimitStrategy, SlowConditions,
    ThrottlingStrategy, TripStrategy,
};
pub use traffic::{
    Abort, AppSelector, Delay, Destination, Fallback, Fault, HttpMatch, HttpRoute, LaneName, LaneRules, LaneTraffic,
    PortSelector, Retries, Rewrite, RouteDestination, StringMatch, TrafficLane, TrafficRouter,
};

use crate::fields::{Errors, Obj};
use crate::{Invalid, Kind};

/// The `spec` of a document, one variant per [`Kind`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Spec {
    /// A FaultToleranceRule's spec.
    FaultToleranceRule(FaultToleranceRule),
    /// A RateLimitStrategy's spec.
    RateLimitStrategy(RateLimitStrategy),
    /// A ThrottlingStrategy's spec.
    ThrottlingStrategy(ThrottlingStrategy),
    /// A ConcurrencyLimitStrategy's spec.
    ConcurrencyLimitStrategy(ConcurrencyLimitStrategy),
    /// A CircuitBreakerStrategy's spec.
    CircuitBreakerStrategy(CircuitBreakerStrategy),
    /// An HttpRequestFallbackAction's spec.
    HttpRequestFallbackAction(HttpRequestFallbackAction),
    /// A TrafficRouter's spec.
    TrafficRouter(TrafficRouter),
    /// A TrafficLane's spec.
    TrafficLane(TrafficLane),
    /// A Service's spec.
    Service(Service),
}

impl Spec {
    /// The kind this spec is of.
    pub fn kind(&self) -> Kind {
        match self {
            Spec::FaultToleranceRule(_) => Kind::FaultToleranceRule,
            Spec::RateLimitStrategy(_) => Kind::RateLimitStrategy,
            Spec::ThrottlingStrategy(_) => Kind::ThrottlingStrategy,
            Spec::ConcurrencyLimitStrategy(_) => Kind::ConcurrencyLimitStrategy,
            Spec::CircuitBreakerStrategy(_) => Kind::CircuitBreakerStrategy,
            Spec::HttpRequestFallbackAction(_) => Kind::HttpRequestFallbackAction,
            Spec::TrafficRouter(_) => Kind::TrafficRouter,
            Spec::TrafficLane(_) => Kind::TrafficLane,
            Spec::Service(_) => Kind::Service,
        }
    }

    /// The application named in the spec's own `selector.app`, if it has one.
    pub fn selector_app(&self) -> Option<&str> {
        match self {
            Spec::FaultToleranceRule(rule) => rule.selector.as_ref().map(|s| s.app.as_str()),
            Spec::TrafficLane(lane) => Some(lane.selector.app.as_str()),
            _ => None,
        }
    }

    /// Reads and checks the `spec` of a `kind` alone (as a store holds it, next to the key and
    /// labels); errors are named `spec.…` as in a whole document.
    pub fn parse(kind: Kind, value: Json) -> Result<Spec, Invalid> {
        let mut errors = Errors::new();
        match Spec::read(kind, value, &mut errors) {
            Some(spec) if errors.is_empty() => Ok(spec),
            _ => Err(Invalid { errors }),
        }
    }

    /// Reads the `spec` of a `kind`; `None` if it has errors (added to `errors`).
    pub(crate) fn read(kind: Kind, value: Json, errors: &mut Errors) -> Option<Spec> {
        let before = errors.len();
        let mut spec = Obj::new("spec", value, errors)?;
        let out = match kind {
            Kind::FaultToleranceRule => FaultToleranceRule::read(&mut spec, errors).map(Spec::FaultToleranceRule),
            Kind::RateLimitStrategy => RateLimitStrategy::read(&mut spec, errors).map(Spec::RateLimitStrategy),
            Kind::ThrottlingStrategy => ThrottlingStrategy::read(&mut spec, errors).map(Spec::ThrottlingStrategy),
            Kind::ConcurrencyLimitStrategy => {
                ConcurrencyLimitStrategy::read(&mut spec, errors).map(Spec::ConcurrencyLimitStrategy)
            }
            Kind::CircuitBreakerStrategy => {
                CircuitBreakerStrategy::read(&mut spec, errors).map(Spec::CircuitBreakerStrategy)
            }
            Kind::HttpRequestFallbackAction => {
                HttpRequestFallbackAction::read(&mut spec, errors).map(Spec::HttpRequestFallbackAction)
            }
            Kind::TrafficRouter => TrafficRouter::read(&mut spec, errors).map(Spec::TrafficRouter),
            Kind::TrafficLane => TrafficLane::read(&mut spec, errors).map(Spec::TrafficLane),
            Kind::Service => Service::read(&mut spec, errors).map(Spec::Service),
        };
        spec.finish(errors);
        out.filter(|_| errors.len() == before)
    }
}
