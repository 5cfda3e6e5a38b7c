//! FaultToleranceRule and HttpRequestFallbackAction.

use serde::Serialize;

use super::traffic::AppSelector;
use crate::fields::{Errors, Need, Obj, header_name};
use crate::{FieldError, Kind};

/// Binds strategies (and a fallback action) to targets of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultToleranceRule {
    /// The application the rule is for, if given here rather than by `metadata.labels.app`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<AppSelector>,
    /// The resources the rule guards (at least one).
    pub targets: Vec<Target>,
    /// The strategies applied, by name and kind (at least one).
    pub strategies: Vec<ActionRef>,
    /// What is answered instead when a strategy refuses a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_action: Option<ActionRef>,
}

/// A resource a FaultToleranceRule guards: a route, an interface, a method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// The resource's name, as the application's SDK or Envoy's routes name it.
    pub target_resource_name: String,
}

/// A reference to another document of the same namespace: `{name, kind}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRef {
    /// The document's `metadata.name`.
    pub name: String,
    /// The document's kind.
    pub kind: Kind,
}

impl FaultToleranceRule {
    pub(crate) fn read(spec: &mut Obj, errors: &mut Errors) -> Option<Self> {
        let selector = spec.object("selector", false, errors, AppSelector::read).flatten();
        let targets =
            spec.objects("targets", Need::NonEmpty("must name at least one target"), errors, |obj, errors| {
                obj.string("targetResourceName", true, errors).map(|name| Target { target_resource_name: name })
            });
        let strategies =
            spec.objects("strategies", Need::NonEmpty("must name at least one strategy"), errors, |obj, errors| {
                ActionRef::read(obj, &Kind::STRATEGIES, errors)
            });
        if let Some(strategies) = &strategies {
            let mut seen = Vec::new();
            for (i, strategy) in strategies.iter().enumerate() {
                let Some(strategy) = strategy else { continue };
                if seen.contains(&strategy) {
                    errors.push(FieldError::new(
                        format!("{}[{i}]", spec.at("strategies")),
                        format!("names {}/{} again", strategy.kind, strategy.name),
                    ));
                }
                seen.push(strategy);
            }
        }
        let fallback_action = spec.object("fallbackAction", false, errors, |obj, errors| {
            ActionRef::read(obj, &[Kind::HttpRequestFallbackAction], errors)
        });
        Some(Self {
            selector,
            targets: targets?.into_iter().flatten().collect(),
            strategies: strategies?.into_iter().flatten().collect(),
            fallback_action: fallback_action.flatten(),
        })
    }
}

impl ActionRef {
    /// Reads `{name, kind}`, the kind one of `allowed`.
    fn read(obj: &mut Obj, allowed: &[Kind], errors: &mut Errors) -> Option<Self> {
        let name = obj.string("name", true, errors);
        let kind = obj.string("kind", true, errors).and_then(|kind| {
            let found = Kind::from_name(&kind).filter(|k| allowed.contains(k));
            if found.is_none() {
                let expected = allowed.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ");
                errors.push(FieldError::new(obj.at("kind"), format!("must be one of {expected}, not {kind:?}")));
            }
            found
        });
        Some(Self { name: name?, kind: kind? })
    }
}

/// The HTTP response given instead of calling the guarded resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestFallbackAction {
    /// The response.
    pub behavior_desc: ResponseBehavior,
}

/// The response of an [`HttpRequestFallbackAction`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseBehavior {
    /// The HTTP status, 100 to 599.
    pub response_status_code: u16,
    /// The body.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub response_content_body: String,
    /// Headers added to the response.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub response_additional_headers: Vec<Header>,
}

/// An HTTP header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    /// The header's name.
    pub key: String,
    /// Its value.
    pub value: String,
}

impl HttpRequestFallbackAction {
    pub(crate) fn read(spec: &mut Obj, errors: &mut Errors) -> Option<Self> {
        let behavior = spec.object("behaviorDesc", true, errors, |obj, errors| {
            let status = obj.int_in("responseStatusCode", true, (100, 599), errors);
            let body = obj.string("responseContentBody", false, errors);
            let headers = obj.objects("responseAdditionalHeaders", Need::Optional, errors, |obj, errors| {
                let key = obj.string("key", true, errors);
                let value = obj.string("value", false, errors);
                if let Some(Err(reason)) = key.as_deref().map(header_name) {
                    errors.push(FieldError::new(obj.at("key"), reason));
                    return None;
                }
                Some(Header { key: key?, value: value.unwrap_or_default() })
            });
            Some(ResponseBehavior {
                // Checked to be within 100..=599 above.
                response_status_code: u16::try_from(status?).ok()?,
                response_content_body: body.unwrap_or_default(),
                response_additional_headers: headers.unwrap_or_default().into_iter().flatten().collect(),
            })
        });
        Some(Self { behavior_desc: behavior.flatten()? })
    }
}
