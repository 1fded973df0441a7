//! A configured query made ready for its backend: each `:name` placeholder (read by
//! [`crate::config::sql::scan`]) becomes the backend's bind marker (`$1`, `$2`, ... for
//! PostgreSQL, one number per name; `?` per occurrence for MySQL and SQLite), and the list of
//! names says which value goes to which marker. The values come from the customer key and are
//! only ever bound: nothing here pastes a value into SQL text.

use crate::config::sql::{notation_of, scan, Piece, ScanError};
use crate::config::SqlBackend;
use crate::domain::CustomerKey;

/// A query in the backend's bind syntax and the placeholder bound to each marker, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub sql: String,
    pub params: Vec<String>,
}

impl Prepared {
    pub fn new(query: &str, backend: SqlBackend) -> Result<Self, ScanError> {
        let mut sql = String::with_capacity(query.len());
        let mut params: Vec<String> = Vec::new();
        for piece in scan(query, backend)? {
            match piece {
                Piece::Sql(text) => sql.push_str(text),
                Piece::Placeholder(name) if backend == SqlBackend::Postgres => {
                    let n = match params.iter().position(|p| p == name) {
                        Some(i) => i + 1,
                        None => {
                            params.push(name.to_owned());
                            params.len()
                        }
                    };
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
                Piece::Placeholder(name) => {
                    params.push(name.to_owned());
                    sql.push('?');
                }
            }
        }
        Ok(Self { sql, params })
    }

    /// The value of each marker for `key`, in order; a placeholder of another key kind (which
    /// validation refuses) binds NULL.
    pub fn binds(&self, key: &CustomerKey) -> Vec<Option<String>> {
        self.params.iter().map(|p| value_of(key, p)).collect()
    }
}

/// What the placeholder `name` stands for when looking up `key`.
pub fn value_of(key: &CustomerKey, name: &str) -> Option<String> {
    match key {
        CustomerKey::Phone(number) => notation_of(name).map(|n| number.notation(n)),
        CustomerKey::Email(v) if name == "email" => Some(v.trim().to_owned()),
        CustomerKey::CustomerId(v) if name == "customer_id" => Some(v.trim().to_owned()),
        CustomerKey::ExternalContactId(v) if name == "external_contact_id" => {
            Some(v.trim().to_owned())
        }
        CustomerKey::MessagingId(v) if name == "messaging_id" => Some(v.trim().to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::CallerNumber;
    use phonenumber::country;

    const QUERY: &str =
        "SELECT * FROM c WHERE phone = :phone_e164 OR phone = :phone_raw OR mobile = :phone_e164";

    #[test]
    fn postgresql_numbers_each_name_once_and_reuses_the_number() {
        let p = Prepared::new(QUERY, SqlBackend::Postgres).unwrap();
        assert_eq!(
            p.sql,
            "SELECT * FROM c WHERE phone = $1 OR phone = $2 OR mobile = $1"
        );
        assert_eq!(p.params, ["phone_e164", "phone_raw"]);
    }

    #[test]
    fn mysql_and_sqlite_bind_each_occurrence() {
        for backend in [SqlBackend::MySql, SqlBackend::Sqlite] {
            let p = Prepared::new(QUERY, backend).unwrap();
            assert_eq!(
                p.sql,
                "SELECT * FROM c WHERE phone = ? OR phone = ? OR mobile = ?"
            );
            assert_eq!(p.params, ["phone_e164", "phone_raw", "phone_e164"]);
        }
    }

    #[test]
    fn casts_and_quoted_colons_survive_translation() {
        let p = Prepared::new(
            "SELECT ':x' AS a FROM c WHERE id::text = :customer_id::text",
            SqlBackend::Postgres,
        )
        .unwrap();
        assert_eq!(p.sql, "SELECT ':x' AS a FROM c WHERE id::text = $1::text");
    }

    #[test]
    fn a_phone_key_offers_every_notation_and_the_raw_number() {
        let key = CustomerKey::Phone(
            CallerNumber::parse("tel:+1-317-555-0125", country::Id::US).unwrap(),
        );
        let p = Prepared::new(
            "SELECT 1 WHERE a IN (:phone_e164, :phone_national, :phone_raw)",
            SqlBackend::Sqlite,
        )
        .unwrap();
        let binds = p.binds(&key);
        assert_eq!(binds[0].as_deref(), Some("+13175550125"));
        assert_eq!(binds[1].as_deref(), Some("(317) 555-0125"));
        assert_eq!(
            binds[2].as_deref(),
            Some(
                CallerNumber::parse("tel:+1-317-555-0125", country::Id::US)
                    .unwrap()
                    .raw()
            )
        );
    }

    #[test]
    fn injection_classics_are_bound_values_and_never_sql_text() {
        let p = Prepared::new("SELECT * FROM c WHERE e = :email", SqlBackend::MySql).unwrap();
        for classic in [
            "'",
            "\\",
            "}",
            "' OR 1=1 --",
            "--",
            "%",
            "*",
            "'; DROP TABLE c; --",
        ] {
            let key = CustomerKey::Email(classic.to_owned());
            assert_eq!(p.sql, "SELECT * FROM c WHERE e = ?");
            assert_eq!(p.binds(&key), [Some(classic.trim().to_owned())]);
        }
        let other = CustomerKey::CustomerId("C-1".to_owned());
        assert_eq!(
            p.binds(&other),
            [None],
            "another kind's placeholder is NULL"
        );
    }
}
