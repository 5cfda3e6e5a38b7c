//! Decoding rows into the store's types, refusing data that does not make sense.

use bosun_store::{Event, Key, KeyValue, Labels, LeaseId, Revision, StoreError, Value};
use bytes::Bytes;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::error::{corrupt, db};

/// Labels as stored: a JSON object of strings.
pub(crate) fn encode_labels(labels: &Labels) -> String {
    // A map of strings always serializes.
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_owned())
}

fn decode_labels(key: &str, text: &str) -> Result<Labels, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(format_args!("labels of {key}: {e}")))
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
    row: &'r PgRow,
    column: &str,
) -> Result<T, StoreError> {
    row.try_get(column).map_err(|e| db("decoding a row", e))
}

/// A `kv` row (`key, data, labels, lease, create_revision, mod_revision, version`), or a
/// `history` row with `revision` for `mod_revision`.
pub(crate) fn key_value(row: &PgRow, mod_column: &str) -> Result<KeyValue, StoreError> {
    let key: String = get(row, "key")?;
    let parsed = Key::parse(&key).map_err(|e| corrupt(format_args!("key {key:?}: {e}")))?;
    let data: Vec<u8> = get(row, "data")?;
    let labels: String = get(row, "labels")?;
    let lease: Option<i64> = get(row, "lease")?;
    Ok(KeyValue {
        value: Value { data: Bytes::from(data), labels: decode_labels(&key, &labels)?, lease: lease.map(LeaseId) },
        key: parsed,
        create_revision: get(row, "create_revision")?,
        mod_revision: get(row, mod_column)?,
        version: get(row, "version")?,
    })
}

/// A `history` row as an event.
pub(crate) fn event(row: &PgRow) -> Result<Event, StoreError> {
    if get::<bool>(row, "deleted")? {
        let key: String = get(row, "key")?;
        let key = Key::parse(&key).map_err(|e| corrupt(format_args!("key {key:?}: {e}")))?;
        Ok(Event::Delete { key, revision: get(row, "revision")? })
    } else {
        Ok(Event::Put(key_value(row, "revision")?))
    }
}

/// One change to write to `history` (and `kv`).
pub(crate) struct Change {
    pub key: String,
    /// `None`: a delete.
    pub value: Option<(Value, Revision, i64)>,
}
