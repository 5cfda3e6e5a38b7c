//! Mapping database errors to [`StoreError`]s.

use bosun_store::StoreError;

/// A database error as a [`StoreError`], with `context` saying what was being done:
/// [`StoreError::Unavailable`] when the database cannot be reached or asks to retry, else
/// [`StoreError::Internal`].
pub(crate) fn db(context: &str, error: sqlx::Error) -> StoreError {
    let retryable = match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| retryable_sqlstate(&code)),
        _ => false,
    };
    if retryable {
        StoreError::Unavailable(format!("postgres: {context}: {error}"))
    } else {
        StoreError::Internal(format!("postgres: {context}: {error}"))
    }
}

/// SQLSTATEs worth retrying: connection exceptions (08), insufficient resources (53), operator
/// intervention such as a shutdown (57P0x), serialization failures and deadlocks (40001, 40P01),
/// a read-only standby (25006).
fn retryable_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57P")
        || matches!(code, "40001" | "40P01" | "25006")
}

/// Data read from the database that does not make sense.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("postgres: unexpected data in the database: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_unavailable() {
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"));
        assert!(matches!(db("connecting", io), StoreError::Unavailable(m) if m.contains("connecting")));
        assert!(matches!(db("x", sqlx::Error::RowNotFound), StoreError::Internal(_)));
        assert!(retryable_sqlstate("08006") && retryable_sqlstate("57P01") && !retryable_sqlstate("23505"));
    }
}
