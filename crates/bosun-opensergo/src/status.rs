//! What [`crate::OpenSergoServer::status`] shows: the rules followed, and every connected client
//! with its subscriptions, what was pushed to it and what it accepted or rejected.

use std::collections::BTreeMap;

use bosun_store::Revision;
use serde::Serialize;

/// The OpenSergo server's state.
#[derive(Debug, Clone, Serialize)]
pub struct OpenSergoStatus {
    /// The store revision followed so far (`None` until the store was read once).
    pub revision: Option<Revision>,
    /// Governance documents served.
    pub rules: usize,
    /// Stored governance documents not served (by store key), with why.
    pub errors: BTreeMap<String, String>,
    /// Why following the store failed last, while it is retried.
    pub store_error: Option<String>,
    /// The connected clients, oldest first.
    pub clients: Vec<ClientStatus>,
}

/// One connected `SubscribeConfig` stream.
#[derive(Debug, Clone, Serialize)]
pub struct ClientStatus {
    /// The server's id of the stream.
    pub id: u64,
    /// The `identifier` the client gave, if any.
    pub identifier: Option<String>,
    /// The client's address.
    pub peer: Option<String>,
    /// When it connected (seconds since the Unix epoch).
    pub connected_at: u64,
    /// ACKs received.
    pub acks: u64,
    /// NACKs received.
    pub nacks: u64,
    /// ACKs and NACKs naming no push still current for the client.
    pub unmatched_acks: u64,
    /// Its subscriptions.
    pub subscriptions: Vec<SubscriptionStatus>,
}

/// One subscription of a client: a kind for an application of a namespace.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionStatus {
    /// The namespace.
    pub namespace: String,
    /// The application.
    pub app: String,
    /// The kind, as the wire names it (`fault-tolerance.opensergo.io/v1alpha1/RateLimitStrategy`).
    pub kind: String,
    /// The version last sent.
    pub sent_version: Option<i64>,
    /// The `response_id` of the last send.
    pub sent_response_id: Option<String>,
    /// The last version the client accepted.
    pub acked: Option<AckRecord>,
    /// The last rejection, until a later version is accepted.
    pub last_nack: Option<NackRecord>,
}

/// An accepted version.
#[derive(Debug, Clone, Serialize)]
pub struct AckRecord {
    /// The version.
    pub version: i64,
    /// When (seconds since the Unix epoch).
    pub at: u64,
}

/// A rejected version.
#[derive(Debug, Clone, Serialize)]
pub struct NackRecord {
    /// The version.
    pub version: i64,
    /// The status code the client gave (4000 unknown, 4007 subscriber error, 4010 outdated, ...).
    pub code: i32,
    /// Its message.
    pub message: String,
    /// When (seconds since the Unix epoch).
    pub at: u64,
}
