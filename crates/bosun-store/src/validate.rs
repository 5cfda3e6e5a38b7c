//! The checks every backend applies before writing, so that every backend refuses the same input
//! with the same error, and nothing is written when one op of a transaction is bad.

use crate::error::{Result, StoreError};
use crate::types::{Op, Value};

/// Largest value (data), in bytes: 1 MiB.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Largest transaction (keys, data and labels of all its ops), in bytes. etcd refuses requests
/// over 1.5 MiB by default; this leaves room for the encoding.
pub const MAX_TXN_BYTES: usize = 1_400_000;
/// Most ops in one transaction (etcd's default `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;
/// Most labels on one value.
pub const MAX_LABELS: usize = 64;

/// Checks a label key: an optional DNS prefix and `/`, then a name of at most 63 characters of
/// letters, digits, `-`, `_` and `.`, beginning and ending with a letter or digit (Kubernetes' rules).
pub fn label_key(key: &str) -> std::result::Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && (prefix.is_empty()
            || prefix.len() > 253
            || !prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'))
    {
        return Err(format!("label key {key:?}: the prefix must be a DNS subdomain"));
    }
    if name.is_empty() || !is_label_word(name) {
        return Err(format!(
            "label key {key:?}: must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks a label value: empty, or at most 63 characters as a label key's name.
pub fn label_value(value: &str) -> std::result::Result<(), String> {
    if value.is_empty() || is_label_word(value) {
        Ok(())
    } else {
        Err(format!(
            "label value {value:?}: must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

fn is_label_word(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// Checks a value's size and labels.
pub fn value(value: &Value) -> Result<()> {
    if value.data.len() > MAX_VALUE_BYTES {
        return Err(StoreError::invalid(
            "value",
            format!("{} bytes is larger than the limit of {MAX_VALUE_BYTES} bytes", value.data.len()),
        ));
    }
    if value.labels.len() > MAX_LABELS {
        return Err(StoreError::invalid("labels", format!("{} labels; at most {MAX_LABELS}", value.labels.len())));
    }
    for (k, v) in &value.labels {
        label_key(k).map_err(|reason| StoreError::invalid(format!("labels[{k:?}]"), reason))?;
        label_value(v).map_err(|reason| StoreError::invalid(format!("labels[{k:?}]"), reason))?;
    }
    Ok(())
}

/// Checks a transaction: at least one op, at most [`MAX_TXN_OPS`], each key at most once, each
/// value valid, [`MAX_TXN_BYTES`] in all. Errors name the op (`ops[2].value`).
pub fn txn(ops: &[Op]) -> Result<()> {
    if ops.is_empty() {
        return Err(StoreError::invalid("ops", "a transaction needs at least one op"));
    }
    if ops.len() > MAX_TXN_OPS {
        return Err(StoreError::invalid("ops", format!("{} ops; at most {MAX_TXN_OPS} per transaction", ops.len())));
    }
    let mut total = 0usize;
    let mut seen = std::collections::HashSet::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let key = op.key();
        if !seen.insert(key) {
            return Err(StoreError::invalid(
                format!("ops[{i}].key"),
                format!("{key} appears twice in one transaction"),
            ));
        }
        total += key.as_str().len();
        if let Op::Put { value: v, .. } = op {
            value(v).map_err(|e| e.in_field(&format!("ops[{i}]")))?;
            total += v.data.len() + v.labels.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        }
    }
    if total > MAX_TXN_BYTES {
        return Err(StoreError::invalid("ops", format!("{total} bytes in one transaction; at most {MAX_TXN_BYTES}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;

    fn key(name: &str) -> Key {
        Key::new("Kind", "ns", name).unwrap()
    }

    #[test]
    fn oversize_values_and_bad_labels_name_the_op() {
        let big = Op::put(key("b"), Value::new(vec![0u8; MAX_VALUE_BYTES + 1]));
        let err = txn(&[Op::put(key("a"), Value::new("x")), big]).unwrap_err().to_string();
        assert!(err.starts_with("ops[1].value: 1048577 bytes is larger"), "{err}");
        let err = txn(&[Op::put(key("a"), Value::new("x").label("app", "a b"))]).unwrap_err().to_string();
        assert!(err.starts_with("ops[0].labels[\"app\"]: label value"), "{err}");
        let err = txn(&[Op::put(key("a"), Value::new("x")), Op::delete(key("a"))]).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
        assert!(txn(&[]).is_err());
        assert!(txn(&[Op::put(key("a"), Value::new(vec![0u8; MAX_VALUE_BYTES]).label("app", "x"))]).is_ok());
    }

    #[test]
    fn label_keys_follow_kubernetes() {
        assert!(label_key("app").is_ok());
        assert!(label_key("app.kubernetes.io/name").is_ok());
        assert!(label_key("").is_err());
        assert!(label_key("-app").is_err());
        assert!(label_key("Upper.Case/x").is_err());
        assert!(label_key(&"a".repeat(64)).is_err());
        assert!(label_value("").is_ok());
    }
}
