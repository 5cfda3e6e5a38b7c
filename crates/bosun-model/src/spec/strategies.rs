//! The strategies a FaultToleranceRule applies: rate limit, throttling, concurrency limit, circuit
//! breaker.

use std::time::Duration;

use serde::Serialize;

use crate::FieldError;
use crate::fields::{Errors, Obj};
use crate::units::{Percentage, serialize_duration};

/// What a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MetricType {
    /// Requests.
    RequestAmount,
}

/// Where a limit is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LimitMode {
    /// Per instance.
    Local,
    /// Across all instances of the application.
    Global,
}

fn limit_mode(obj: &mut Obj, errors: &mut Errors) -> Option<LimitMode> {
    obj.one_of(
        "limitMode",
        true,
        &["Local", "Global"],
        |s| match s {
            "Local" => Some(LimitMode::Local),
            "Global" => Some(LimitMode::Global),
            _ => None,
        },
        errors,
    )
}

/// At most `threshold` requests per `statDurationSeconds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitStrategy {
    /// What is counted.
    pub metric_type: MetricType,
    /// Where it is counted.
    pub limit_mode: LimitMode,
    /// Requests allowed per window (0 refuses every request).
    pub threshold: u64,
    /// The window, in seconds (at least 1).
    pub stat_duration_seconds: u32,
}

impl RateLimitStrategy {
    pub(crate) fn read(spec: &mut Obj, errors: &mut Errors) -> Option<Self> {
        let metric_type = spec.one_of(
            "metricType",
            true,
            &["RequestAmount"],
            |s| (s == "RequestAmount").then_some(MetricType::RequestAmount),
            errors,
        );
        let limit_mode = limit_mode(spec, errors);
        let threshold = spec.int("threshold", true, 0, errors);
        let stat_duration_seconds = spec.int_in("statDurationSeconds", true, (1, i64::from(u32::MAX)), errors);
        Some(Self {
            metric_type: metric_type?,
            limit_mode: limit_mode?,
            threshold: u64::try_from(threshold?).ok()?,
            stat_duration_seconds: u32::try_from(stat_duration_seconds?).ok()?,
        })
    }
}

/// Requests let through at most one per `minIntervalOfRequests`; the others wait in a queue for at
/// most `queueTimeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottlingStrategy {
    /// The least time between two requests (more than zero).
    #[serde(serialize_with = "serialize_duration")]
    pub min_interval_of_requests: Duration,
    /// The longest a request waits.
    #[serde(serialize_with = "serialize_duration")]
    pub queue_timeout: Duration,
}

fn positive(obj: &Obj, field: &'static str, d: Option<Duration>, errors: &mut Errors) -> Option<Duration> {
    let d = d?;
    if d.is_zero() {
        errors.push(FieldError::new(obj.at(field), "must be longer than 0"));
        return None;
    }
    Some(d)
}

impl ThrottlingStrategy {
    pub(crate) fn read(spec: &mut Obj, errors: &mut Errors) -> Option<Self> {
        let interval = spec.duration("minIntervalOfRequests", true, errors);
        let interval = positive(spec, "minIntervalOfRequests", interval, errors);
        let queue_timeout = spec.duration("queueTimeout", true, errors);
        Some(Self { min_interval_of_requests: interval?, queue_timeout: queue_timeout? })
    }
}

/// At most `maxConcurrency` requests at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConcurrencyLimitStrategy {
    /// Requests allowed at once.
    pub max_concurrency: u64,
    /// Where they are counted.
    pub limit_mode: LimitMode,
}

impl ConcurrencyLimitStrategy {
    pub(crate) fn read(spec: &mut Obj, errors: &mut Errors) -> Option<Self> {
        let max_concurrency = spec.int("maxConcurrency", true, 1, errors);
        let limit_mode = limit_mode(spec, errors);
        Some(Self { max_concurrency: u64::try_from(max_concurrency?).ok()?, limit_mode: limit_mode? })
    }
}

/// What trips a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TripStrategy {
    /// Too many requests slower than `slowConditions.maxAllowedRt`.
    SlowRequestRatio,
    /// Too many failed requests.
    ErrorRequestRatio,
}

/// Stops calling a resource for `recoveryTimeout` when, over `statDuration` and at least
/// `minRequestAmount` requests, `triggerRatio` of them were slow or failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerStrategy {
    /// What is counted.
    pub strategy: TripStrategy,
    /// The share of slow or failed requests that trips the breaker.
    pub trigger_ratio: Percentage,
    /// The window requests are counted over.
    #[serde(serialize_with = "serialize_duration")]
    pub stat_duration: Duration,
    /// How long the breaker stays open.
    #[serde(serialize_with = "serialize_duration")]
    pub recovery_timeout: Duration,
    /// The fewest requests in a window for the breaker to trip (at least 1).
    pub min_request_amount: u64,
    /// What a slow request is (only and always with `SlowRequestRatio`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_conditions: Option<SlowConditions>,
}

/// What a slow request is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlowConditions {
    /// Requests taking longer are slow.
    #[serde(serialize_with = "serialize_duration")]
    pub max_allowed_rt: Duration,
}

impl CircuitBreakerStrategy {
    pub(crate) fn read(spec: &mut Obj, errors: &mut Errors) -> Option<Self> {
        let strategy = spec.one_of(
            "strategy",
            true,
            &["SlowRequestRatio", "ErrorRequestRatio"],
            |s| match s {
                "SlowRequestRatio" => Some(TripStrategy::SlowRequestRatio),
                "ErrorRequestRatio" => Some(TripStrategy::ErrorRequestRatio),
                _ => None,
            },
            errors,
        );
        let trigger_ratio = spec.percentage("triggerRatio", true, errors);
        let stat_duration = spec.duration("statDuration", true, errors);
        let stat_duration = positive(spec, "statDuration", stat_duration, errors);
        let recovery_timeout = spec.duration("recoveryTimeout", true, errors);
        let recovery_timeout = positive(spec, "recoveryTimeout", recovery_timeout, errors);
        let min_request_amount = spec.int("minRequestAmount", true, 1, errors);
        let slow = spec.object("slowConditions", false, errors, |obj, errors| {
            obj.duration("maxAllowedRt", true, errors).map(|max_allowed_rt| SlowConditions { max_allowed_rt })
        });
        let slow_given = slow.is_some();
        let slow_conditions = slow.flatten();
        match strategy {
            Some(TripStrategy::SlowRequestRatio) if !slow_given => {
                errors.push(FieldError::new(spec.at("slowConditions"), "missing (strategy is SlowRequestRatio)"));
            }
            Some(TripStrategy::ErrorRequestRatio) if slow_given => {
                errors.push(FieldError::new(spec.at("slowConditions"), "only for strategy SlowRequestRatio"));
            }
            _ => {}
        }
        Some(Self {
            strategy: strategy?,
            trigger_ratio: trigger_ratio?,
            stat_duration: stat_duration?,
            recovery_timeout: recovery_timeout?,
            min_request_amount: u64::try_from(min_request_amount?).ok()?,
            slow_conditions,
        })
    }
}
