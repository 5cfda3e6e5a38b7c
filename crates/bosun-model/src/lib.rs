//! Bosun's governance model: the OpenSergo kinds as typed, validated documents.
//!
//! A document has the Kubernetes shape the OpenSergo CRDs have —
//!
//! ```yaml
//! apiVersion: fault-tolerance.opensergo.io/v1alpha1
//! kind: RateLimitStrategy
//! metadata: { name: rate-limit-foo, namespace: default, labels: { app: foo } }
//! spec: { metricType: RequestAmount, limitMode: Local, threshold: 10, statDurationSeconds: 1 }
//! ```
//!
//! [`Document::parse`] reads one from JSON (YAML is read as JSON first) and checks it completely:
//! unknown fields, wrong types, out-of-range numbers, bad enums, durations (`20ms`, `1s`, `1m`) and
//! percentages (`"60%"`) are all reported at once, each as a [`FieldError`] with its field path
//! (`spec.http[0].route[1].weight: must be between 0 and 100`). Nothing panics on bad input.
//!
//! `metadata.namespace` defaults to `default`; `metadata.labels.app` binds a rule to an application.
//!
//! # Choices
//!
//! - `apiVersion` may be left out; when given it must be the kind's (`traffic.opensergo.io/v1alpha1`
//!   for a TrafficRouter). `kind` accepts the CLI's names too (`rls`, `ratelimitstrategies`), see
//!   [`Kind::resolve`]; references inside a spec (`strategies[].kind`) take the exact kind name.
//! - `metadata.resourceVersion`, `metadata.generation` and `status` (what `bosun get` shows) are
//!   accepted, and ignored, so that its output can be applied again; names, namespaces and labels follow the store's rules.
//! - Enums are exact: `metricType: RequestAmount`, `limitMode: Local|Global`,
//!   `strategy: SlowRequestRatio|ErrorRequestRatio`. All of RateLimitStrategy's fields are required.
//! - `threshold >= 0` (0 refuses everything), `statDurationSeconds >= 1`, `maxConcurrency >= 1`,
//!   `minRequestAmount >= 1`; `minIntervalOfRequests`, `statDuration` and `recoveryTimeout` longer
//!   than 0; `slowConditions` required with `SlowRequestRatio` and refused with `ErrorRequestRatio`.
//! - A TrafficRouter route with several destinations needs a weight on each, adding up to 100; one
//!   destination needs none. String matches take exactly one of `exact`, `prefix`, `regex`; regular
//!   expressions are checked when translated (RE2 is Envoy's dialect, not Rust's).
//! - A TrafficLane is `selector.app`, `rules.traffic.http[]` (matches as a TrafficRouter's) and
//!   `lane.name`.
//! - `Service` (`bosun.io/v1alpha1`, Bosun's own kind) is what rules route to: `ports[]{name,
//!   port, protocol: HTTP|HTTP2|GRPC|TCP}`, `endpoints[]{address (an IP), port, labels}` and
//!   `subsets[]{name, labels}` (see [`spec::Service`]).
//! - A `null` field counts as absent. Sizes are limited where documents come in, not here.
//!
//! # References between documents
//!
//! A FaultToleranceRule names its strategies (`spec.strategies[]{name, kind}`) and its fallback
//! action (`spec.fallbackAction{name, kind}`), which are other documents of the same namespace. A
//! reference's *kind* is checked by [`Document::parse`] (a rule naming a `TrafficRouter` as a strategy
//! is an error), but whether the named object *exists* is not an error: a rule and its strategies may
//! be applied in any order (as `kubectl apply -f dir/` does), so a missing target is a **warning**
//! returned next to the accepted document ([`references::check`]), and the rule's status says
//! `waiting for RateLimitStrategy/foo` until it exists ([`references::unresolved`] lists every such
//! reference of a set of stored documents).

#![warn(missing_docs)]

pub mod document;
mod error;
mod fields;
pub mod kind;
pub mod references;
pub mod spec;
pub mod units;

pub use document::{DEFAULT_NAMESPACE, Document, Metadata};
pub use error::{FieldError, Invalid};
pub use kind::Kind;
pub use references::{ObjectRef, UnresolvedReference};
pub use spec::Spec;
