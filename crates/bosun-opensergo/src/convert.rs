//! Governance documents as OpenSergo puts them on the wire: each one an `Any` holding a message of
//! `io.opensergo.proto.fault_tolerance.v1` (or, for a TrafficRouter, an Envoy
//! `RouteConfiguration`, see [`crate::route`]).
//!
//! Enums take their proto values (`RequestAmount` is `TYPE_REQUEST_AMOUNT` = 1, `Local` is
//! `MODE_LOCAL` = 1, `Global` 2), never 0, which means unknown. Durations are whole milliseconds,
//! rounded up so that a duration longer than zero never becomes 0; a RateLimitStrategy's window
//! is sent in seconds with the unit `SECOND`, as written. A number the wire's field cannot hold
//! is an error naming the field, and the document is not served.

use std::fmt::Display;
use std::time::Duration;

use bosun_model::spec::{
    CircuitBreakerStrategy, ConcurrencyLimitStrategy, FaultToleranceRule, HttpRequestFallbackAction, LimitMode,
    MetricType, RateLimitStrategy, ThrottlingStrategy, TripStrategy,
};
use bosun_model::{Document, FieldError, Kind, Spec};
use prost::Message;
use prost_types::Any;

use crate::proto::common::TimeUnit;
use crate::proto::fault_tolerance as ft;

/// The prefix of every type URL.
const TYPE_URL_PREFIX: &str = "type.googleapis.com/";
/// The package of the fault-tolerance messages.
const FAULT_TOLERANCE_PACKAGE: &str = "io.opensergo.proto.fault_tolerance.v1";

/// Whether documents of `kind` are served to OpenSergo SDKs: every governance kind but
/// TrafficLane, which has no wire format (a `Service` is Bosun's own, not a rule).
pub fn served(kind: Kind) -> bool {
    !matches!(kind, Kind::TrafficLane | Kind::Service)
}

/// The type URL of the `Any`s that carry documents of `kind`.
pub fn type_url(kind: Kind) -> String {
    match kind {
        Kind::TrafficRouter => format!("{TYPE_URL_PREFIX}{}", crate::route::ROUTE_CONFIGURATION),
        kind => format!("{TYPE_URL_PREFIX}{FAULT_TOLERANCE_PACKAGE}.{}", kind.name()),
    }
}

/// The document as it goes on the wire.
pub fn to_any(doc: &Document) -> Result<Any, FieldError> {
    let kind = doc.kind();
    let name = doc.metadata.name.clone();
    let value = match &doc.spec {
        Spec::FaultToleranceRule(rule) => fault_tolerance_rule(rule).encode_to_vec(),
        Spec::RateLimitStrategy(s) => rate_limit(name, s)?.encode_to_vec(),
        Spec::ThrottlingStrategy(s) => throttling(name, s)?.encode_to_vec(),
        Spec::ConcurrencyLimitStrategy(s) => concurrency_limit(name, s)?.encode_to_vec(),
        Spec::CircuitBreakerStrategy(s) => circuit_breaker(name, s)?.encode_to_vec(),
        Spec::HttpRequestFallbackAction(a) => fallback_action(name, a).encode_to_vec(),
        Spec::TrafficRouter(router) => crate::route::route_configuration(&name, router)?.encode_to_vec(),
        Spec::TrafficLane(_) => {
            return Err(FieldError::new("kind", "TrafficLane has no OpenSergo wire format; it is not served"));
        }
        Spec::Service(_) => {
            return Err(FieldError::new("kind", "a Service is not a governance rule; it is not served"));
        }
    };
    Ok(Any { type_url: type_url(kind), value })
}

/// A FaultToleranceRule: its targets, strategies and fallback action, by name and kind.
pub fn fault_tolerance_rule(rule: &FaultToleranceRule) -> ft::FaultToleranceRule {
    use ft::fault_tolerance_rule::{FaultToleranceActionRef, FaultToleranceRuleTargetRef, FaultToleranceStrategyRef};
    ft::FaultToleranceRule {
        targets: rule
            .targets
            .iter()
            .map(|t| FaultToleranceRuleTargetRef { target_resource_name: t.target_resource_name.clone() })
            .collect(),
        strategies: rule
            .strategies
            .iter()
            .map(|s| FaultToleranceStrategyRef { name: s.name.clone(), kind: s.kind.name().to_owned() })
            .collect(),
        action: rule
            .fallback_action
            .as_ref()
            .map(|a| FaultToleranceActionRef { name: a.name.clone(), kind: a.kind.name().to_owned() }),
    }
}

/// A RateLimitStrategy; the window in seconds (`stat_duration_time_unit` = `SECOND`).
pub fn rate_limit(name: String, s: &RateLimitStrategy) -> Result<ft::RateLimitStrategy, FieldError> {
    use ft::rate_limit_strategy::{LimitMode as Mode, MetricType as Metric};
    let metric_type = match s.metric_type {
        MetricType::RequestAmount => Metric::TypeRequestAmount,
    };
    let limit_mode = match s.limit_mode {
        LimitMode::Local => Mode::ModeLocal,
        LimitMode::Global => Mode::ModeGlobal,
    };
    Ok(ft::RateLimitStrategy {
        name,
        metric_type: metric_type.into(),
        limit_mode: limit_mode.into(),
        threshold: narrow("spec.threshold", s.threshold)?,
        stat_duration: narrow("spec.statDurationSeconds", s.stat_duration_seconds)?,
        stat_duration_time_unit: TimeUnit::Second.into(),
    })
}

/// A ThrottlingStrategy, in milliseconds.
pub fn throttling(name: String, s: &ThrottlingStrategy) -> Result<ft::ThrottlingStrategy, FieldError> {
    Ok(ft::ThrottlingStrategy {
        name,
        min_interval_millis_of_requests: millis("spec.minIntervalOfRequests", s.min_interval_of_requests)?,
        queue_timeout_millis: millis("spec.queueTimeout", s.queue_timeout)?,
    })
}

/// A ConcurrencyLimitStrategy.
pub fn concurrency_limit(
    name: String,
    s: &ConcurrencyLimitStrategy,
) -> Result<ft::ConcurrencyLimitStrategy, FieldError> {
    use ft::concurrency_limit_strategy::LimitMode as Mode;
    let limit_mode = match s.limit_mode {
        LimitMode::Local => Mode::ModeLocal,
        LimitMode::Global => Mode::ModeGlobal,
    };
    Ok(ft::ConcurrencyLimitStrategy {
        name,
        limit_mode: limit_mode.into(),
        max_concurrency: narrow("spec.maxConcurrency", s.max_concurrency)?,
    })
}

/// A CircuitBreakerStrategy: the ratio between 0 and 1, durations in milliseconds.
pub fn circuit_breaker(name: String, s: &CircuitBreakerStrategy) -> Result<ft::CircuitBreakerStrategy, FieldError> {
    use ft::circuit_breaker_strategy::{CircuitBreakerErrorCondition, CircuitBreakerSlowCondition, Strategy};
    let (strategy, slow_condition, error_condition) = match s.strategy {
        TripStrategy::SlowRequestRatio => {
            let max_allowed_rt_millis = match &s.slow_conditions {
                Some(slow) => narrow("spec.slowConditions.maxAllowedRt", millis_u128(slow.max_allowed_rt))?,
                // Validated: a SlowRequestRatio breaker has slowConditions.
                None => return Err(FieldError::new("spec.slowConditions", "missing (strategy is SlowRequestRatio)")),
            };
            (Strategy::SlowRequestRatio, Some(CircuitBreakerSlowCondition { max_allowed_rt_millis }), None)
        }
        TripStrategy::ErrorRequestRatio => (Strategy::ErrorRequestRatio, None, Some(CircuitBreakerErrorCondition {})),
    };
    Ok(ft::CircuitBreakerStrategy {
        name,
        strategy: strategy.into(),
        trigger_ratio: s.trigger_ratio.ratio(),
        stat_duration: millis("spec.statDuration", s.stat_duration)?,
        stat_duration_time_unit: TimeUnit::Millisecond.into(),
        recovery_timeout: narrow("spec.recoveryTimeout", millis_u128(s.recovery_timeout))?,
        recovery_timeout_time_unit: TimeUnit::Millisecond.into(),
        min_request_amount: narrow("spec.minRequestAmount", s.min_request_amount)?,
        slow_condition,
        error_condition,
    })
}

/// An HttpRequestFallbackAction: the response given instead.
pub fn fallback_action(name: String, a: &HttpRequestFallbackAction) -> ft::HttpRequestFallbackAction {
    use ft::http_request_fallback_action::{Header, ResponseBehavior};
    let behavior = &a.behavior_desc;
    ft::HttpRequestFallbackAction {
        name,
        behavior_desc: Some(ResponseBehavior {
            response_status_code: i32::from(behavior.response_status_code),
            response_content_body: behavior.response_content_body.clone(),
            response_additional_headers: behavior
                .response_additional_headers
                .iter()
                .map(|h| Header { key: h.key.clone(), value: h.value.clone() })
                .collect(),
        }),
    }
}

/// Whole milliseconds, rounded up.
fn millis_u128(d: Duration) -> u128 {
    d.as_nanos().div_ceil(1_000_000)
}

/// Whole milliseconds, rounded up, as an `int64` field.
fn millis(field: &str, d: Duration) -> Result<i64, FieldError> {
    narrow(field, millis_u128(d))
}

/// `value` in the wire field's type, or an error naming the field.
pub(crate) fn narrow<T: TryFrom<V>, V: Copy + Display>(field: &str, value: V) -> Result<T, FieldError> {
    T::try_from(value).map_err(|_| FieldError::new(field, format!("{value} is too large for the OpenSergo wire")))
}

#[cfg(test)]
mod tests;
