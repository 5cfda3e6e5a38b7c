//! TrafficRouter (the shape of Istio's VirtualService) and TrafficLane.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::FieldError;
use crate::fields::{Errors, Need, Obj, header_name};
use crate::units::{serialize_duration, serialize_opt_duration};

/// `selector: {app: NAME}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppSelector {
    /// The application.
    pub app: String,
}

impl AppSelector {
    pub(crate) fn read(obj: &mut Obj, errors: &mut Errors) -> Option<Self> {
        obj.string("app", true, errors).map(|app| Self { app })
    }
}

/// Routes for requests to some hosts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficRouter {
    /// The hosts (authorities) the routes are for; at least one.
    pub hosts: Vec<String>,
    /// The routes, first match wins; at least one.
    pub http: Vec<HttpRoute>,
}

/// One route: which requests, where they go, and how.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// The route's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The requests it takes: any of these (all requests if empty).
    #[serde(rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatch>,
    /// Where they go; with several destinations, their weights add up to 100.
    pub route: Vec<RouteDestination>,
    /// How long a request may take, retries included.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "serialize_opt_duration")]
    pub timeout: Option<Duration>,
    /// Retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// Faults injected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Rewrites before forwarding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
}

/// Conditions on a request, all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatch {
    /// The match's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Headers, by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// The path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// Query parameters, by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
    /// The method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
}

/// How a string is matched: `{exact: ...}`, `{prefix: ...}` or `{regex: ...}` (RE2 syntax, checked
/// when translated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StringMatch {
    /// Equal to.
    Exact(String),
    /// Starting with.
    Prefix(String),
    /// Matching the regular expression entirely.
    Regex(String),
}

/// A destination and its share of the traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteDestination {
    /// Where.
    pub destination: Destination,
    /// The share, 0 to 100; required with several destinations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// A service (and subset, port) requests are sent to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    /// The service.
    pub host: String,
    /// A subset of its instances (a version, a lane).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// The port, if the service has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    /// Where requests go when this destination has no healthy instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

/// `port: {number: 8080}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortSelector {
    /// 1 to 65535.
    pub number: u16,
}

/// The destination used when the first one has no healthy instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fallback {
    /// The service.
    pub host: String,
    /// A subset of its instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
}

/// Retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    /// Retries after the first try.
    pub attempts: u32,
    /// How long each try may take.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "serialize_opt_duration")]
    pub per_try_timeout: Option<Duration>,
    /// When to retry, as Envoy's `x-envoy-retry-on` (`5xx,connect-failure`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
}

/// Faults injected into some requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    /// Delay requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    /// Answer requests with an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
}

/// Requests delayed by `fixedDelay`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delay {
    /// The delay.
    #[serde(serialize_with = "serialize_duration")]
    pub fixed_delay: Duration,
    /// The share of requests delayed, 0 to 100 (all if absent).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "serialize_percent")]
    pub percentage: Option<f64>,
}

/// Requests answered with `httpStatus`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Abort {
    /// The status, 200 to 599.
    pub http_status: u16,
    /// The share of requests aborted, 0 to 100 (all if absent).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "serialize_percent")]
    pub percentage: Option<f64>,
}

fn serialize_percent<S: serde::Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Percent {
        value: f64,
    }
    match value {
        Some(value) => Percent { value: *value }.serialize(serializer),
        None => serializer.serialize_none(),
    }
}

/// Rewrites before forwarding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    /// Replaces the matched part of the path (the prefix, or the whole path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replaces the Host / `:authority` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
}

impl TrafficRouter {
    pub(crate) fn read(spec: &mut Obj, errors: &mut Errors) -> Option<Self> {
        let hosts = spec.strings("hosts", Need::NonEmpty("must name at least one host"), errors);
        let http = spec.objects("http", Need::NonEmpty("must have at least one route"), errors, HttpRoute::read);
        Some(Self { hosts: hosts?, http: http?.into_iter().collect::<Option<_>>()? })
    }
}

impl HttpRoute {
    fn read(obj: &mut Obj, errors: &mut Errors) -> Option<Self> {
        let name = obj.string("name", false, errors);
        let matches = obj.objects("match", Need::Optional, errors, HttpMatch::read);
        let route =
            obj.objects("route", Need::NonEmpty("must have at least one destination"), errors, |obj, errors| {
                let destination = obj.object("destination", true, errors, Destination::read).flatten();
                let weight = obj.int_in("weight", false, (0, 100), errors);
                Some(RouteDestination { destination: destination?, weight: weight.and_then(|w| u32::try_from(w).ok()) })
            });
        if let Some(route) = &route {
            check_weights(obj, route, errors);
        }
        let timeout = obj.duration("timeout", false, errors);
        let retries = obj.object("retries", false, errors, |obj, errors| {
            let attempts = obj.int_in("attempts", true, (0, i64::from(u32::MAX)), errors);
            let per_try_timeout = obj.duration("perTryTimeout", false, errors);
            let retry_on = obj.string("retryOn", false, errors);
            Some(Retries { attempts: u32::try_from(attempts?).ok()?, per_try_timeout, retry_on })
        });
        let fault = obj.object("fault", false, errors, Fault::read);
        let rewrite = obj.object("rewrite", false, errors, |obj, errors| Rewrite {
            uri: obj.string("uri", false, errors),
            authority: obj.string("authority", false, errors),
        });
        Some(Self {
            name,
            matches: matches.unwrap_or_default(),
            route: route?.into_iter().collect::<Option<_>>()?,
            timeout,
            retries: retries.flatten(),
            fault: fault.flatten(),
            rewrite,
        })
    }
}

/// With one destination, a weight is optional; with several, each needs one and they add up to 100.
fn check_weights(obj: &Obj, route: &[Option<RouteDestination>], errors: &mut Errors) {
    if route.len() < 2 || route.iter().any(Option::is_none) {
        return;
    }
    let mut sum = 0;
    let mut complete = true;
    for (i, destination) in route.iter().flatten().enumerate() {
        match destination.weight {
            Some(weight) => sum += weight,
            None => {
                complete = false;
                errors.push(FieldError::new(
                    format!("{}[{i}].weight", obj.at("route")),
                    "missing (required with several destinations)",
                ));
            }
        }
    }
    if complete && sum != 100 {
        errors.push(FieldError::new(obj.at("route"), format!("the weights must add up to 100, not {sum}")));
    }
}

impl HttpMatch {
    pub(crate) fn read(obj: &mut Obj, errors: &mut Errors) -> Self {
        Self {
            name: obj.string("name", false, errors),
            headers: obj.map_of("headers", errors, header_name, StringMatch::read),
            uri: obj.object("uri", false, errors, StringMatch::read).flatten(),
            query_params: obj.map_of("queryParams", errors, |_| Ok(()), StringMatch::read),
            method: obj.object("method", false, errors, StringMatch::read).flatten(),
        }
    }
}

impl StringMatch {
    fn read(obj: &mut Obj, errors: &mut Errors) -> Option<Self> {
        let exact = obj.take("exact", false, errors).map(|v| ("exact", v));
        let prefix = obj.take("prefix", false, errors).map(|v| ("prefix", v));
        let regex = obj.take("regex", false, errors).map(|v| ("regex", v));
        let given: Vec<_> = [exact, prefix, regex].into_iter().flatten().collect();
        let [(which, value)] = given.as_slice() else {
            let reason = if given.is_empty() {
                "needs one of exact, prefix, regex"
            } else {
                "must have only one of exact, prefix, regex"
            };
            errors.push(FieldError::new(obj.path(), reason));
            return None;
        };
        let Some(s) = value.as_str() else {
            errors.push(FieldError::new(obj.at(which), "must be a string"));
            return None;
        };
        let s = s.to_owned();
        Some(match *which {
            "exact" => StringMatch::Exact(s),
            "prefix" => StringMatch::Prefix(s),
            _ => StringMatch::Regex(s),
        })
    }
}

impl Destination {
    fn read(obj: &mut Obj, errors: &mut Errors) -> Option<Self> {
        let host = obj.string("host", true, errors);
        let subset = obj.string("subset", false, errors);
        let port = obj.object("port", false, errors, |obj, errors| {
            let number = obj.int_in("number", true, (1, 65535), errors);
            Some(PortSelector { number: u16::try_from(number?).ok()? })
        });
        let fallback = obj.object("fallback", false, errors, |obj, errors| {
            let host = obj.string("host", true, errors);
            let subset = obj.string("subset", false, errors);
            Some(Fallback { host: host?, subset })
        });
        Some(Self { host: host?, subset, port: port.flatten(), fallback: fallback.flatten() })
    }
}

fn percentage(obj: &mut Obj, errors: &mut Errors) -> Option<f64> {
    obj.object("percentage", false, errors, |obj, errors| obj.number_in("value", true, (0.0, 100.0), errors)).flatten()
}

impl Fault {
    fn read(obj: &mut Obj, errors: &mut Errors) -> Option<Self> {
        let delay = obj.object("delay", false, errors, |obj, errors| {
            let fixed_delay = obj.duration("fixedDelay", true, errors);
            let percentage = percentage(obj, errors);
            Some(Delay { fixed_delay: fixed_delay?, percentage })
        });
        let abort = obj.object("abort", false, errors, |obj, errors| {
            let status = obj.int_in("httpStatus", true, (200, 599), errors);
            let percentage = percentage(obj, errors);
            Some(Abort { http_status: u16::try_from(status?).ok()?, percentage })
        });
        if delay.is_none() && abort.is_none() {
            errors.push(FieldError::new(obj.path(), "needs a delay or an abort"));
        }
        Some(Self { delay: delay.flatten(), abort: abort.flatten() })
    }
}

/// Requests of an application's lane: those matching `rules.traffic.http[]` are tagged with the
/// lane's name and routed to the instances of that lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficLane {
    /// The application whose requests enter the lane.
    pub selector: AppSelector,
    /// Which requests.
    pub rules: LaneRules,
    /// The lane.
    pub lane: LaneName,
}

/// `rules: {traffic: {http: [...]}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneRules {
    /// The requests.
    pub traffic: LaneTraffic,
}

/// The HTTP requests of a lane: any of these matches (at least one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneTraffic {
    /// The matches.
    pub http: Vec<HttpMatch>,
}

/// `lane: {name: gray}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LaneName {
    /// The lane's name (a subset / version tag).
    pub name: String,
}

impl TrafficLane {
    pub(crate) fn read(spec: &mut Obj, errors: &mut Errors) -> Option<Self> {
        let selector = spec.object("selector", true, errors, AppSelector::read).flatten();
        let rules = spec
            .object("rules", true, errors, |obj, errors| {
                obj.object("traffic", true, errors, |obj, errors| {
                    let http =
                        obj.objects("http", Need::NonEmpty("must have at least one match"), errors, HttpMatch::read);
                    http.map(|http| LaneTraffic { http })
                })
                .flatten()
                .map(|traffic| LaneRules { traffic })
            })
            .flatten();
        let lane = spec.object("lane", true, errors, |obj, errors| obj.string("name", true, errors)).flatten();
        Some(Self { selector: selector?, rules: rules?, lane: LaneName { name: lane? } })
    }
}
