//! The connections to etcd's members: one client per endpoint, one of them current. A request
//! that cannot reach the current member moves the store to the next one; requests that are safe
//! to repeat are retried there (bounded, with backoff).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bosun_store::StoreError;
use etcd_client::{Client, ConnectOptions, KvClient, LeaseClient, WatchClient};
use tonic::Code;

/// Largest message the store accepts from etcd: a list chunk or a watch response.
const MAX_DECODING_MESSAGE_BYTES: usize = 1 << 30;

/// One member's clients.
#[derive(Clone)]
pub struct Member {
    pub url: String,
    pub kv: KvClient,
    pub lease: LeaseClient,
    pub watch: WatchClient,
}

/// Whether a failed request may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Reads, and writes whose repetition is harmless.
    Always,
    /// Writes: only when the request surely never reached etcd (the connection was refused, or
    /// etcd refused it for want of a leader).
    IfNotSent,
}

/// How a request failed.
#[derive(Debug)]
pub enum Failure {
    /// No member could be reached, or none answered in time: [`StoreError::Unavailable`].
    Unavailable(String),
    /// etcd answered with an error.
    Etcd(etcd_client::Error),
}

impl Failure {
    /// The etcd status, when etcd answered with one.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            Self::Etcd(etcd_client::Error::GRpcStatus(status)) => Some(status),
            _ => None,
        }
    }

    /// Whether etcd's answer says `text` (etcd's errors are known by their messages).
    pub fn says(&self, text: &str) -> bool {
        self.status().is_some_and(|s| s.message().contains(text))
    }

    /// The store error for a failure nothing more specific applies to; `what` is the operation.
    pub fn into_store_error(self, what: &str) -> StoreError {
        match self {
            Self::Unavailable(message) => StoreError::Unavailable(message),
            Self::Etcd(etcd_client::Error::GRpcStatus(status)) if status.code() == Code::InvalidArgument => {
                StoreError::invalid("ops", format!("etcd refused the {what}: {}", status.message()))
            }
            Self::Etcd(e) => StoreError::Internal(format!("etcd {what}: {e}")),
        }
    }
}

/// Whether an error is the transport's or a member's passing trouble (another member, or the same
/// later, may answer), as opposed to etcd's answer to the request.
pub fn is_transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Aborted
        ),
        etcd_client::Error::TransportError(_)
        | etcd_client::Error::IoError(_)
        | etcd_client::Error::WatchError(_)
        | etcd_client::Error::EndpointError(_) => true,
        _ => false,
    }
}

/// Whether a transient error shows that the request never reached etcd's state machine.
fn surely_not_sent(e: &etcd_client::Error) -> bool {
    let text = e.to_string();
    text.contains("tcp connect error")
        || text.contains("error trying to connect")
        || text.contains("Connection refused")
        || text.contains("etcdserver: no leader")
        || text.contains("etcdserver: not capable")
}

/// The members and which one is current.
pub struct Members {
    members: Vec<Member>,
    current: AtomicUsize,
    request_timeout: Duration,
}

impl Members {
    /// Clients for `endpoints` (not connected yet: connections are made on first use).
    pub async fn new(
        endpoints: &[String],
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, StoreError> {
        if endpoints.is_empty() {
            return Err(StoreError::invalid("endpoints", "at least one etcd endpoint is needed"));
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            // A member cut off from the others refuses requests and ends watches instead of
            // serving stale data.
            .with_require_leader(true);
        let mut members = Vec::with_capacity(endpoints.len());
        for url in endpoints {
            let client = Client::connect([url.as_str()], Some(options.clone()))
                .await
                .map_err(|e| StoreError::invalid("endpoints", format!("etcd endpoint {url:?}: {e}")))?;
            members.push(Member {
                url: url.clone(),
                kv: client.kv_client().max_decoding_message_size(MAX_DECODING_MESSAGE_BYTES),
                lease: client.lease_client(),
                watch: client.watch_client().max_decoding_message_size(MAX_DECODING_MESSAGE_BYTES),
            });
        }
        Ok(Self { members, current: AtomicUsize::new(0), request_timeout })
    }

    /// The current member and its index.
    pub fn current(&self) -> (usize, &Member) {
        let i = self.current.load(Ordering::Acquire) % self.members.len();
        (i, &self.members[i])
    }

    /// Moves on from member `failed` (if it is still the current one) to the next.
    pub fn failed(&self, failed: usize) {
        let next = (failed + 1) % self.members.len();
        if self.current.compare_exchange(failed, next, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            tracing::warn!(failed = %self.members[failed].url, next = %self.members[next].url, "etcd member unreachable; switching");
        }
    }

    /// Runs `request` against the current member, moving to the next member on transient errors
    /// and retrying as `retry` allows, with backoff: at most twice round the members (and three
    /// times at least), each try bounded by the request timeout.
    pub async fn call<T, F, Fut>(&self, what: &str, retry: Retry, mut request: F) -> Result<T, Failure>
    where
        F: FnMut(Member) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let tries = (2 * self.members.len()).max(3);
        let mut backoff = Duration::from_millis(50);
        let mut last = String::new();
        for attempt in 1..=tries {
            let (i, member) = self.current();
            let url = member.url.clone();
            let error = match tokio::time::timeout(self.request_timeout, request(member.clone())).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) if !is_transient(&e) => return Err(Failure::Etcd(e)),
                Ok(Err(e)) => {
                    let again = retry == Retry::Always || surely_not_sent(&e);
                    last = format!("{what} via {url}: {e}");
                    again
                }
                Err(_) => {
                    last = format!("{what} via {url}: no answer within {:?}", self.request_timeout);
                    retry == Retry::Always
                }
            };
            self.failed(i);
            if !error || attempt == tries {
                break;
            }
            tracing::debug!(attempt, error = %last, "retrying on the next etcd member");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        Err(Failure::Unavailable(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code, message: &str) -> etcd_client::Error {
        etcd_client::Error::GRpcStatus(tonic::Status::new(code, message))
    }

    #[test]
    fn errors_are_told_apart() {
        let refused = status(Code::Unavailable, "error trying to connect: tcp connect error: Connection refused");
        assert!(is_transient(&refused) && surely_not_sent(&refused));
        let no_leader = status(Code::Unavailable, "etcdserver: no leader");
        assert!(is_transient(&no_leader) && surely_not_sent(&no_leader));
        let cut = status(Code::Unknown, "h2 protocol error: error reading a body from connection");
        assert!(is_transient(&cut) && !surely_not_sent(&cut), "a write cut off mid-way may have been applied");
        let lease = status(Code::NotFound, "etcdserver: requested lease not found");
        assert!(!is_transient(&lease));
        let failure = Failure::Etcd(lease);
        assert!(failure.says("lease not found"));
        let error = Failure::Etcd(status(Code::InvalidArgument, "etcdserver: too many operations in txn request"))
            .into_store_error("transaction");
        assert!(matches!(error, StoreError::InvalidArgument { ref field, .. } if field == "ops"), "{error:?}");
    }
}
