//! Between the store's types and the wire's. Decoding checks what the types promise (a key is
//! `kind/namespace/name`, an op is a put or a delete) and names the field that is wrong; values
//! and labels move without copies.

use std::time::Duration;

use bosun_store::{Event, Expect, Key, KeyValue, Lease, LeaseId, Op, Result, StoreError, Value, WatchBatch};

use crate::proto::{self, expect::Condition, txn_op, watch_event};

/// A key from its string form; errors are named under `field` (`ops[2]` → `ops[2].key.name`).
pub(crate) fn key(text: &str, field: Option<&str>) -> Result<Key> {
    Key::parse(text).map_err(|e| match field {
        Some(field) => e.in_field(field),
        None => e,
    })
}

fn value_to_proto(value: Value) -> proto::StoredValue {
    proto::StoredValue { data: value.data, labels: value.labels, lease: value.lease.map(|l| l.0) }
}

pub(crate) fn value_from_proto(value: Option<proto::StoredValue>) -> Value {
    let value = value.unwrap_or_default();
    Value { data: value.data, labels: value.labels, lease: value.lease.map(LeaseId) }
}

fn expect_to_proto(expect: Expect) -> Option<proto::Expect> {
    let condition = match expect {
        Expect::Any => return None,
        Expect::Absent => Condition::Absent(true),
        Expect::ModRevision(revision) => Condition::ModRevision(revision),
    };
    Some(proto::Expect { condition: Some(condition) })
}

fn expect_from_proto(expect: Option<proto::Expect>) -> Expect {
    match expect.and_then(|e| e.condition) {
        None => Expect::Any,
        Some(Condition::Absent(_)) => Expect::Absent,
        Some(Condition::ModRevision(revision)) => Expect::ModRevision(revision),
    }
}

pub(crate) fn op_to_proto(op: &Op) -> proto::TxnOp {
    let op = match op {
        Op::Put { key, value, expect } => txn_op::Op::Put(proto::PutOp {
            key: key.as_str().to_owned(),
            value: Some(value_to_proto(value.clone())),
            expect: expect_to_proto(*expect),
        }),
        Op::Delete { key, expect } => {
            txn_op::Op::Delete(proto::DeleteOp { key: key.as_str().to_owned(), expect: expect_to_proto(*expect) })
        }
    };
    proto::TxnOp { op: Some(op) }
}

/// The ops of a transaction request; errors name the op (`ops[2].key.kind`).
pub(crate) fn ops_from_proto(ops: Vec<proto::TxnOp>) -> Result<Vec<Op>> {
    ops.into_iter()
        .enumerate()
        .map(|(i, op)| {
            let field = format!("ops[{i}]");
            match op.op {
                Some(txn_op::Op::Put(put)) => Ok(Op::Put {
                    key: key(&put.key, Some(&field))?,
                    value: value_from_proto(put.value),
                    expect: expect_from_proto(put.expect),
                }),
                Some(txn_op::Op::Delete(delete)) => {
                    Ok(Op::Delete { key: key(&delete.key, Some(&field))?, expect: expect_from_proto(delete.expect) })
                }
                None => Err(StoreError::invalid(field, "an op must be a put or a delete")),
            }
        })
        .collect()
}

pub(crate) fn kv_to_proto(kv: KeyValue) -> proto::KeyValue {
    proto::KeyValue {
        key: kv.key.as_str().to_owned(),
        value: Some(value_to_proto(kv.value)),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
    }
}

pub(crate) fn kv_from_proto(kv: proto::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: key(&kv.key, None)?,
        value: value_from_proto(kv.value),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
    })
}

pub(crate) fn batch_to_proto(batch: WatchBatch) -> proto::WatchResponse {
    let events = batch
        .events
        .into_iter()
        .map(|event| {
            let event = match event {
                Event::Put(kv) => watch_event::Event::Put(kv_to_proto(kv)),
                Event::Delete { key, revision } => {
                    watch_event::Event::Delete(proto::DeletedKey { key: key.as_str().to_owned(), revision })
                }
            };
            proto::WatchEvent { event: Some(event) }
        })
        .collect();
    proto::WatchResponse { events }
}

pub(crate) fn batch_from_proto(batch: proto::WatchResponse) -> Result<WatchBatch> {
    let events = batch
        .events
        .into_iter()
        .map(|event| match event.event {
            Some(watch_event::Event::Put(kv)) => kv_from_proto(kv).map(Event::Put),
            Some(watch_event::Event::Delete(d)) => Ok(Event::Delete { key: key(&d.key, None)?, revision: d.revision }),
            None => Err(StoreError::invalid("events", "an event must be a put or a delete")),
        })
        .collect::<Result<_>>()?;
    Ok(WatchBatch { events })
}

/// A TTL in whole milliseconds, rounded up so that a lease never lives shorter than asked.
pub(crate) fn ttl_to_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

pub(crate) fn lease_to_proto(lease: Lease) -> proto::LeaseResponse {
    proto::LeaseResponse { id: lease.id.0, ttl_millis: ttl_to_millis(lease.ttl) }
}

pub(crate) fn lease_from_proto(lease: proto::LeaseResponse) -> Lease {
    Lease { id: LeaseId(lease.id), ttl: Duration::from_millis(lease.ttl_millis) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_and_bad_ones_name_the_op() {
        let a = Key::new("Cluster", "ns", "a/b").unwrap();
        let ops = vec![
            Op::Put {
                key: a.clone(),
                value: Value::new("x").label("app", "web").with_lease(LeaseId(0)),
                expect: Expect::ModRevision(4),
            },
            Op::Delete { key: a.clone(), expect: Expect::Absent },
            Op::put(a.clone(), Value::new("")),
        ];
        let wire: Vec<_> = ops.iter().map(op_to_proto).collect();
        assert_eq!(ops_from_proto(wire).unwrap(), ops);

        let bad = vec![op_to_proto(&ops[0]), proto::TxnOp { op: None }];
        assert_eq!(ops_from_proto(bad).unwrap_err(), StoreError::invalid("ops[1]", "an op must be a put or a delete"));
        let bad_key =
            proto::TxnOp { op: Some(txn_op::Op::Delete(proto::DeleteOp { key: "/ns/a".into(), expect: None })) };
        let err = ops_from_proto(vec![op_to_proto(&ops[0]), bad_key]).unwrap_err();
        assert!(matches!(err, StoreError::InvalidArgument { ref field, .. } if field == "ops[1].key.kind"), "{err:?}");
    }

    #[test]
    fn ttls_round_up_to_the_millisecond() {
        assert_eq!(ttl_to_millis(Duration::from_secs(2)), 2000);
        assert_eq!(ttl_to_millis(Duration::from_micros(1500)), 2);
        assert_eq!(ttl_to_millis(Duration::MAX), u64::MAX);
    }
}
