//! Store errors across the process boundary: a gRPC code for the class, and a
//! `StoreErrorDetail` in the status details (a `google.rpc.Status`, as Go's `status.WithDetails`
//! writes it) for the exact variant and its fields.

use bosun_store::StoreError;
use prost::Message as _;
use tonic::{Code, Status};

use crate::proto::{self, store_error_detail::Error as Detail};

/// The type URL of the detail inside `google.rpc.Status.details`.
const DETAIL_TYPE_URL: &str = "type.googleapis.com/bosun.plugin.v1.StoreErrorDetail";

/// `google.rpc.Status`: what gRPC carries in the `grpc-status-details-bin` trailer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// The status a plugin answers a failed call with.
pub(crate) fn to_status(error: StoreError) -> Status {
    let message = error.to_string();
    let (code, detail) = match error {
        StoreError::InvalidArgument { field, reason } => {
            (Code::InvalidArgument, Detail::InvalidArgument(proto::InvalidArgument { field, reason }))
        }
        StoreError::Conflict { key, expected, actual } => {
            (Code::Aborted, Detail::Conflict(proto::Conflict { key, expected, actual }))
        }
        StoreError::LeaseNotFound(id) => (Code::NotFound, Detail::LeaseNotFound(id)),
        StoreError::Compacted { requested, compacted } => {
            (Code::OutOfRange, Detail::Compacted(proto::Compacted { requested, compacted }))
        }
        StoreError::FutureRevision { requested, current } => {
            (Code::OutOfRange, Detail::FutureRevision(proto::FutureRevision { requested, current }))
        }
        StoreError::Unavailable(reason) => (Code::Unavailable, Detail::Unavailable(reason)),
        StoreError::Internal(reason) => (Code::Internal, Detail::Internal(reason)),
    };
    with_detail(code, message, detail)
}

/// The status of a call to a plugin that has not been configured yet.
pub(crate) fn not_configured() -> Status {
    with_detail(
        Code::FailedPrecondition,
        "the storage plugin is not configured: call Configure first".to_owned(),
        Detail::NotConfigured(true),
    )
}

fn with_detail(code: Code, message: String, detail: Detail) -> Status {
    let detail = proto::StoreErrorDetail { error: Some(detail) };
    let any = prost_types::Any { type_url: DETAIL_TYPE_URL.to_owned(), value: detail.encode_to_vec() };
    let rpc = RpcStatus { code: code as i32, message: message.clone(), details: vec![any] };
    Status::with_details(code, message, rpc.encode_to_vec().into())
}

/// What a failed call to a plugin means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The plugin process has not been configured (it was just started): configure, call again.
    NotConfigured,
    /// A store error.
    Store(StoreError),
}

/// Reads a failed call's status. A status without the detail did not come from the plugin's
/// store: the process or the connection failed, which is [`StoreError::Unavailable`] (except
/// for the two codes that say the request itself was wrong).
pub(crate) fn from_status(status: &Status) -> Failure {
    let detail = RpcStatus::decode(status.details())
        .ok()
        .and_then(|rpc| rpc.details.into_iter().find(|any| any.type_url == DETAIL_TYPE_URL))
        .and_then(|any| proto::StoreErrorDetail::decode(any.value.as_slice()).ok())
        .and_then(|detail| detail.error);
    let error = match detail {
        Some(Detail::NotConfigured(_)) => return Failure::NotConfigured,
        Some(Detail::InvalidArgument(e)) => StoreError::InvalidArgument { field: e.field, reason: e.reason },
        Some(Detail::Conflict(e)) => StoreError::Conflict { key: e.key, expected: e.expected, actual: e.actual },
        Some(Detail::LeaseNotFound(id)) => StoreError::LeaseNotFound(id),
        Some(Detail::Compacted(e)) => StoreError::Compacted { requested: e.requested, compacted: e.compacted },
        Some(Detail::FutureRevision(e)) => StoreError::FutureRevision { requested: e.requested, current: e.current },
        Some(Detail::Unavailable(reason)) => StoreError::Unavailable(reason),
        Some(Detail::Internal(reason)) => StoreError::Internal(reason),
        None => match status.code() {
            Code::InvalidArgument => StoreError::invalid("request", status.message()),
            Code::Unimplemented => {
                StoreError::Internal(format!("the plugin does not implement the storage service: {}", status.message()))
            }
            code => StoreError::Unavailable(format!("storage plugin call failed ({code:?}): {}", status.message())),
        },
    };
    Failure::Store(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_error_survives_the_trip() {
        let errors = [
            StoreError::invalid("ops[2].labels[\"app\"]", "label value \"a b\": must be ..."),
            StoreError::Conflict { key: "Cluster/ns/a".into(), expected: "absent".into(), actual: 7 },
            StoreError::LeaseNotFound(0x7fff_0000_1234),
            StoreError::Compacted { requested: 3, compacted: 9 },
            StoreError::FutureRevision { requested: 30, current: 9 },
            StoreError::Unavailable("disk gone".into()),
            StoreError::Internal("corrupt page".into()),
        ];
        for error in errors {
            let status = to_status(error.clone());
            assert_eq!(status.message(), error.to_string());
            assert_eq!(from_status(&status), Failure::Store(error));
        }
        assert_eq!(from_status(&not_configured()), Failure::NotConfigured);
    }

    #[test]
    fn statuses_without_the_detail_are_the_plugin_failing() {
        let failure = from_status(&Status::unavailable("connection reset"));
        assert!(matches!(failure, Failure::Store(StoreError::Unavailable(ref m)) if m.contains("connection reset")));
        let failure = from_status(&Status::internal("h2 protocol error"));
        assert!(matches!(failure, Failure::Store(StoreError::Unavailable(_))), "{failure:?}");
        let failure = from_status(&Status::invalid_argument("bad"));
        assert_eq!(failure, Failure::Store(StoreError::invalid("request", "bad")));
        // Garbage in the details is no detail.
        let garbage = Status::with_details(Code::Aborted, "x", bytes::Bytes::from_static(b"\xff\xff\xff"));
        assert!(matches!(from_status(&garbage), Failure::Store(StoreError::Unavailable(_))));
    }
}
