//! sqlx errors as [`CrmError`]s. A database that cannot be reached (refused, reset, no
//! connection within the pool's wait, too many connections, shutting down, a lock or
//! serialization conflict) is `Connect`, retryable; a statement the server cancelled at the
//! statement timeout is `Timeout`; refused credentials or privileges are `Auth`; a statement
//! the database refuses (a syntax error, a missing table or column, a bound value its column
//! type cannot take) is `Unavailable`, not retryable: an operator must fix the query.
//!
//! Messages carry the SQLSTATE or error number and never the server's text: servers echo
//! values in their messages (`invalid input syntax for type bigint: "…"`), and a value is the
//! caller's key.
//!
//! Codes: PostgreSQL Appendix A "PostgreSQL Error Codes" (class 08 connection exception, 28
//! invalid authorization, 42 syntax error or access rule violation, 53 insufficient
//! resources, 57014 query_canceled, 57P01–57P03 shutdown/cannot connect now, 40001/40P01);
//! MySQL server error reference (1040 too many connections, 1044/1045/1142/1143 access
//! denied, 1205 lock wait timeout, 1213 deadlock, 1053 shutdown, 3024 max_execution_time
//! exceeded, 1317 query interrupted); MariaDB 1969 (max_statement_time exceeded, observed
//! against MariaDB 10.11); SQLite result codes (5 BUSY, 6 LOCKED, 14 CANTOPEN, 23 AUTH, 9
//! INTERRUPT; an extended code's low byte is its primary code).

use sqlx::error::DatabaseError;

use super::super::CrmError;
use crate::config::SqlBackend;

/// The [`CrmError`] for a failed statement or connection on `backend`.
pub fn crm_error(backend: SqlBackend, e: &sqlx::Error) -> CrmError {
    match e {
        sqlx::Error::Database(db) => database(backend, db.as_ref()),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => CrmError::Connect(describe(e)),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => CrmError::InvalidResponse(describe(e)),
        _ => CrmError::Unavailable(describe(e)),
    }
}

fn database(backend: SqlBackend, db: &dyn DatabaseError) -> CrmError {
    let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
    let refused = |what: &str| format!("the database {what} (code {code})");
    match backend {
        SqlBackend::Postgres => match code.as_str() {
            "57014" => CrmError::Timeout,
            c if c.starts_with("08")
                || c.starts_with("53")
                || c.starts_with("57P")
                || c == "40001"
                || c == "40P01" =>
            {
                CrmError::Connect(refused("is unavailable"))
            }
            c if c.starts_with("28") || c == "42501" => {
                CrmError::Auth(refused("refused the credentials or privileges"))
            }
            _ => CrmError::Unavailable(refused("refused the statement")),
        },
        SqlBackend::MySql => {
            let number = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|e| e.number())
                .unwrap_or_default();
            let refused = |what: &str| format!("the database {what} (error {number})");
            match number {
                3024 | 1969 | 1317 | 1907 => CrmError::Timeout,
                1040 | 1053 | 1205 | 1213 | 1152 | 1158..=1161 => {
                    CrmError::Connect(refused("is unavailable"))
                }
                1044 | 1045 | 1142 | 1143 | 1227 => {
                    CrmError::Auth(refused("refused the credentials or privileges"))
                }
                _ => CrmError::Unavailable(refused("refused the statement")),
            }
        }
        SqlBackend::Sqlite => {
            let primary = code.parse::<u32>().map(|c| c & 0xff).unwrap_or_default();
            match primary {
                9 => CrmError::Timeout,
                5 | 6 | 14 => CrmError::Connect(refused("is unavailable")),
                23 => CrmError::Auth(refused("refused access")),
                _ => CrmError::Unavailable(refused("refused the statement")),
            }
        }
    }
}

/// A description of `e` without the server's message (which may echo a value).
pub fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => format!(
            "database error (code {})",
            db.code().as_deref().unwrap_or("none")
        ),
        sqlx::Error::Io(io) => format!("I/O error: {}", io.kind()),
        sqlx::Error::Tls(_) => "TLS error".to_owned(),
        sqlx::Error::Protocol(_) => "protocol error".to_owned(),
        sqlx::Error::PoolTimedOut => "no connection to the database in time".to_owned(),
        sqlx::Error::PoolClosed => "the connection pool is closed".to_owned(),
        sqlx::Error::WorkerCrashed => "the database worker stopped".to_owned(),
        sqlx::Error::ColumnNotFound(name) => format!("no column {name}"),
        sqlx::Error::ColumnDecode { index, .. } => format!("column {index} could not be read"),
        sqlx::Error::Configuration(_) => "bad connection settings".to_owned(),
        _ => "database client error".to_owned(),
    }
}

/// `status_class` of `attrsync_upstream_requests_total` for a statement: `2xx` it ran, `4xx`
/// the database refused it, `error` no answer (unreachable, timed out).
pub fn status_of(result: &Result<(), &CrmError>) -> Option<u16> {
    match result {
        Ok(()) => Some(200),
        Err(CrmError::Unavailable(_) | CrmError::Auth(_) | CrmError::InvalidResponse(_)) => {
            Some(400)
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::Retryable as _;

    #[test]
    fn an_unreachable_database_is_a_retryable_connect_error() {
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ] {
            let mapped = crm_error(SqlBackend::Postgres, &e);
            assert!(matches!(mapped, CrmError::Connect(_)), "{mapped:?}");
            assert!(mapped.is_retryable());
        }
    }

    #[test]
    fn statuses_name_what_happened_to_the_statement() {
        assert_eq!(status_of(&Ok(())), Some(200));
        assert_eq!(
            status_of(&Err(&CrmError::Unavailable("x".into()))),
            Some(400)
        );
        assert_eq!(status_of(&Err(&CrmError::Timeout)), None);
    }
}
