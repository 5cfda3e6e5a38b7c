//! The OpenSergo universal transport server (DESIGN.md §3): OpenSergo SDKs subscribe to the
//! governance rules of an application over `SubscribeConfig` and receive them as they change.
//!
//! - [`OpenSergoServer`] is the tonic service. It is usable alone: give it an `Arc<dyn Store>`
//!   and run [`OpenSergoServer::follow`]; it lists and then watches the store's governance kinds
//!   (listing again when the watch is compacted) and keeps the rules per namespace, application
//!   (the `app` label, else `spec.selector.app`) and kind.
//! - A `SUBSCRIBE` with a namespace, an application and kinds (`<group>/v1alpha1/<Kind>`) is
//!   answered at once with the current rules of each kind (status code 1, `response_id` = the
//!   request's `request_id`), then with every change (status code 200, a new `response_id`), each
//!   with a version that only grows per (namespace, application, kind): the store revision of
//!   the change. A subscription without namespace, application or kinds, or naming a kind that
//!   is not served, is answered with status code 4002 and `ack` `NACK`.
//! - The client's `ACK`/`NACK` of a push (`response_ack`, `request_id` = the push's
//!   `response_id`, `status`: code 1 accepts, any other code rejects) is recorded per client and
//!   subscription, and shown by [`OpenSergoServer::status`]. `UNSUBSCRIBE` stops the pushes of
//!   the kinds it names (of every kind of the application if it names none).
//! - Each client has one task and a bounded outgoing queue; the rules follower only marks what
//!   changed for the client and wakes it, so a slow client delays nobody else, and a client that
//!   falls behind gets the latest rules of each kind once rather than every step.
//!
//! Rules go on the wire `Any`-packed: the fault-tolerance kinds as the messages of package
//! `io.opensergo.proto.fault_tolerance.v1` ([`convert`]), TrafficRouter as
//! `envoy.config.route.v3.RouteConfiguration` ([`route`]). TrafficLane has no wire format and is
//! not served.

#![warn(missing_docs)]

pub mod convert;
mod follow;
pub mod route;
mod rules;
mod server;
mod status;

pub use rules::RuleKey;
pub use server::OpenSergoServer;
pub use status::{AckRecord, ClientStatus, NackRecord, OpenSergoStatus, SubscriptionStatus};

/// Status code of a success, in responses and in the clients' ACKs.
pub const CODE_OK: i32 = 1;
/// Status code of a push of changed rules.
pub const CODE_PUSH: i32 = 200;
/// Status code of a malformed subscription.
pub const CODE_INVALID_REQUEST: i32 = 4002;
/// `ack` / `response_ack` of an accepted message.
pub const FLAG_ACK: &str = "ACK";
/// `ack` / `response_ack` of a rejected message.
pub const FLAG_NACK: &str = "NACK";

/// The generated protobuf and tonic code.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/opensergo.rs"));

    pub use self::io::opensergo::proto::common::v1 as common;
    pub use self::io::opensergo::proto::fault_tolerance::v1 as fault_tolerance;
    pub use self::io::opensergo::proto::transport::v1 as transport;
}
