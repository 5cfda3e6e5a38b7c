//! Service: Bosun's own kind for what the governance rules route to — a service's ports and the
//! instances that serve it.
//!
//! ```yaml
//! apiVersion: bosun.io/v1alpha1
//! kind: Service
//! metadata: { name: cart, namespace: shop, labels: { app: cart } }
//! spec:
//!   ports: [ { name: http, port: 8080, protocol: HTTP } ]
//!   endpoints:
//!     - { address: 10.0.0.1, port: 9001, labels: { version: v1 } }
//!     - { address: 10.0.0.2, port: 9001, labels: { version: v2 } }
//!   subsets: [ { name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } } ]
//! ```
//!
//! `ports[].port` is the port clients call the service on; an endpoint's `port` is the port the
//! instance listens on (the service port if not given; only a service with one port may give
//! it, since the instance port of each of several service ports would be ambiguous). A subset
//! is the endpoints whose labels include all of the subset's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::FieldError;
use crate::fields::{Errors, Need, Obj};

/// A service: ports, instances, subsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// The ports clients call it on (at least one; names and numbers unique).
    pub ports: Vec<ServicePort>,
    /// The instances (may be empty: the service exists but nothing serves it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// Named groups of instances, by labels (names unique).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
}

/// A port of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicePort {
    /// The port's name.
    pub name: String,
    /// Its number, 1 to 65535.
    pub port: u16,
    /// What is spoken on it (`HTTP` if not given).
    pub protocol: Protocol,
}

/// What a service port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// HTTP/1.1.
    Http,
    /// HTTP/2 (cleartext).
    Http2,
    /// gRPC (HTTP/2).
    Grpc,
    /// Plain TCP.
    Tcp,
}

impl Protocol {
    /// Whether requests on it are HTTP (and so can be routed).
    pub fn is_http(self) -> bool {
        !matches!(self, Protocol::Tcp)
    }

    /// Whether it needs HTTP/2 to the instances.
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }
}

/// An instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Its IP address (v4 or v6).
    pub address: String,
    /// The port it listens on, if not the service port (only for a service with one port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Its labels, which subsets select on.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A named group of instances: those whose labels include all of `labels`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subset {
    /// The subset's name, as a TrafficRouter's `destination.subset` names it.
    pub name: String,
    /// The labels its instances carry.
    pub labels: BTreeMap<String, String>,
}

impl Subset {
    /// Whether `endpoint` belongs to this subset.
    pub fn selects(&self, endpoint: &Endpoint) -> bool {
        self.labels.iter().all(|(k, v)| endpoint.labels.get(k) == Some(v))
    }
}

impl Service {
    /// The subset named `name`.
    pub fn subset(&self, name: &str) -> Option<&Subset> {
        self.subsets.iter().find(|s| s.name == name)
    }

    /// The port numbered `number`.
    pub fn port(&self, number: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.port == number)
    }

    pub(crate) fn read(spec: &mut Obj, errors: &mut Errors) -> Option<Self> {
        let ports = spec.objects("ports", Need::NonEmpty("must have at least one port"), errors, |obj, errors| {
            let name = obj.string("name", true, errors);
            let port = obj.int_in("port", true, (1, 65535), errors);
            let protocol = obj.one_of(
                "protocol",
                false,
                &["HTTP", "HTTP2", "GRPC", "TCP"],
                |s| match s {
                    "HTTP" => Some(Protocol::Http),
                    "HTTP2" => Some(Protocol::Http2),
                    "GRPC" => Some(Protocol::Grpc),
                    "TCP" => Some(Protocol::Tcp),
                    _ => None,
                },
                errors,
            );
            if protocol.is_none() && has_error(errors, &obj.at("protocol")) {
                return None;
            }
            Some(ServicePort {
                name: name?,
                port: u16::try_from(port?).ok()?,
                protocol: protocol.unwrap_or(Protocol::Http),
            })
        });
        if let Some(ports) = &ports {
            let numbered = || ports.iter().enumerate().filter_map(|(i, p)| Some((i, p.as_ref()?)));
            unique(spec, "ports", numbered().map(|(i, p)| (i, p.name.clone())), "name", errors);
            unique(spec, "ports", numbered().map(|(i, p)| (i, p.port.to_string())), "port", errors);
        }
        let single_port = ports.as_ref().is_some_and(|p| p.len() == 1);
        let endpoints = spec.objects("endpoints", Need::Optional, errors, |obj, errors| {
            let address = obj.string("address", true, errors).and_then(|a| match a.parse::<IpAddr>() {
                Ok(ip) => Some(ip.to_string()),
                Err(_) => {
                    errors.push(FieldError::new(obj.at("address"), format!("{a:?} is not an IP address")));
                    None
                }
            });
            let port = obj.int_in("port", false, (1, 65535), errors);
            if port.is_some() && !single_port {
                errors.push(FieldError::new(
                    obj.at("port"),
                    "only for a service with one port (with several, instances listen on the service ports)",
                ));
            }
            let labels = obj.string_map("labels", errors);
            Some(Endpoint { address: address?, port: port.and_then(|p| u16::try_from(p).ok()), labels })
        });
        let subsets = spec.objects("subsets", Need::Optional, errors, |obj, errors| {
            let name = obj.string("name", true, errors);
            let labels = obj.string_map("labels", errors);
            if labels.is_empty() && !has_error(errors, &obj.at("labels")) {
                errors.push(FieldError::new(obj.at("labels"), "must select on at least one label"));
            }
            Some(Subset { name: name?, labels })
        });
        let subsets = subsets.unwrap_or_default();
        let named = subsets.iter().enumerate().filter_map(|(i, s)| Some((i, s.as_ref()?.name.clone())));
        unique(spec, "subsets", named, "name", errors);
        Some(Self {
            ports: ports?.into_iter().collect::<Option<_>>()?,
            endpoints: endpoints.unwrap_or_default().into_iter().collect::<Option<_>>()?,
            subsets: subsets.into_iter().collect::<Option<_>>()?,
        })
    }
}

/// Whether an error about `field` (or inside it) was reported.
fn has_error(errors: &Errors, field: &str) -> bool {
    errors.iter().any(|e| e.field == field || e.field.starts_with(&format!("{field}.")))
}

/// Reports each item of `list` whose `what` repeats an earlier one's.
fn unique(spec: &Obj, list: &str, values: impl Iterator<Item = (usize, String)>, what: &str, errors: &mut Errors) {
    let mut seen = BTreeSet::new();
    for (i, value) in values {
        if !seen.insert(value.clone()) {
            errors.push(FieldError::new(
                format!("{}[{i}].{what}", spec.at(list)),
                format!("{value:?} repeats an earlier one's"),
            ));
        }
    }
}
