//! `[crm.sql]`: a customer table (or a cache of another CRM) in PostgreSQL, MySQL/MariaDB or
//! SQLite. The settings, the backend named by the URL's scheme, and the one reading of a
//! configured query's named placeholders ([`scan`]) that both validation and the adapter use: a
//! `:name` outside string literals, quoted identifiers and comments is a placeholder; `::` (a
//! PostgreSQL cast) and `:=` are not. The adapter turns each into the backend's bind syntax and
//! binds the value: a value never becomes SQL text.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::crm::SourceSettings;
use super::{invalid, redacted, ConfigError};
use crate::domain::KeyKind;
use crate::phone::Notation;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SqlCrmSettings {
    /// `postgres://`, `mysql://` (MariaDB too) or `sqlite:`: a secret (it may hold a password).
    #[serde(serialize_with = "redacted")]
    pub url: SecretString,
    /// One query per key kind, with named placeholders (`:phone_e164`, `:email`, ...).
    pub queries: BTreeMap<KeyKind, String>,
    /// Attribute name -> column; empty = every column of the row.
    pub fields: BTreeMap<String, String>,
    pub record_id_column: String,
    pub record_type: String,
    pub record_type_column: String,
    pub last_modified_column: String,
    /// The columns a row is graded on for a phone or an email key.
    pub phone_columns: Vec<String>,
    pub email_columns: Vec<String>,
    /// Rows read at most per lookup; the rest are not fetched.
    pub max_rows: usize,
    pub max_connections: u32,
    #[serde(flatten)]
    pub common: SourceSettings,
}

/// The database a `crm.sql.url` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlBackend {
    Postgres,
    MySql,
    Sqlite,
}

impl SqlBackend {
    /// The backend of `url`, by its scheme.
    pub fn of_url(url: &str) -> Option<Self> {
        let scheme = url.trim().split(':').next()?.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(SqlBackend::Postgres),
            "mysql" | "mariadb" => Some(SqlBackend::MySql),
            "sqlite" => Some(SqlBackend::Sqlite),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SqlBackend::Postgres => "postgres",
            SqlBackend::MySql => "mysql",
            SqlBackend::Sqlite => "sqlite",
        }
    }

    /// MySQL's string literals take backslash escapes (unless `NO_BACKSLASH_ESCAPES`);
    /// PostgreSQL's (`standard_conforming_strings`, on since 9.1) and SQLite's do not.
    fn backslash_escapes(self) -> bool {
        self == SqlBackend::MySql
    }
}

/// The placeholders a query for `kind` may use: `:customer_id`, `:external_contact_id`,
/// `:email`; for a phone, one per notation (`:phone_e164`, `:phone_raw`, ...).
pub fn placeholders_of(kind: KeyKind) -> Vec<String> {
    match kind {
        KeyKind::Phone => Notation::ALL
            .iter()
            .map(|n| format!("phone_{}", notation_name(*n)))
            .collect(),
        other => vec![other.as_str().to_owned()],
    }
}

/// The notation a `phone_<notation>` placeholder names.
pub fn notation_of(placeholder: &str) -> Option<Notation> {
    let name = placeholder.strip_prefix("phone_")?;
    Notation::ALL
        .into_iter()
        .find(|n| notation_name(*n) == name)
}

fn notation_name(n: Notation) -> &'static str {
    match n {
        Notation::E164 => "e164",
        Notation::E164Digits => "e164_digits",
        Notation::National => "national",
        Notation::NationalDigits => "national_digits",
        Notation::International => "international",
        Notation::Raw => "raw",
    }
}

/// One piece of a scanned query: SQL text as written, or a placeholder's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    Sql(&'a str),
    Placeholder(&'a str),
}

/// Why a query cannot be scanned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("a string literal, quoted identifier or comment is not closed")]
    Unterminated,
    #[error("other parameter forms (`?`, `$1`, `@name`) are not allowed: use named placeholders such as :email")]
    Positional,
}

/// The query as SQL text and placeholders, in order.
pub fn scan(query: &str, backend: SqlBackend) -> Result<Vec<Piece<'_>>, ScanError> {
    let bytes = query.as_bytes();
    let mut pieces = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => i = skip_quoted(bytes, i, quote, backend)?,
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = skip_line(bytes, i),
            b'#' if backend == SqlBackend::MySql => i = skip_line(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = query[i + 2..].find("*/").ok_or(ScanError::Unterminated)?;
                i += 2 + end + 2;
            }
            b'?' if backend != SqlBackend::Postgres => return Err(ScanError::Positional),
            b'$' if backend == SqlBackend::Postgres => {
                if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    return Err(ScanError::Positional);
                }
                i = skip_dollar_quoted(query, i)?;
            }
            // SQLite's own parameter forms: `$name`, `@name`.
            b'$' | b'@'
                if backend == SqlBackend::Sqlite
                    && bytes
                        .get(i + 1)
                        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_') =>
            {
                return Err(ScanError::Positional)
            }
            b':' if bytes.get(i + 1) == Some(&b':') => i += 2,
            b':' if bytes
                .get(i + 1)
                .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') =>
            {
                let end = bytes[i + 1..]
                    .iter()
                    .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                    .map_or(bytes.len(), |p| i + 1 + p);
                if start < i {
                    pieces.push(Piece::Sql(&query[start..i]));
                }
                pieces.push(Piece::Placeholder(&query[i + 1..end]));
                start = end;
                i = end;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        pieces.push(Piece::Sql(&query[start..]));
    }
    Ok(pieces)
}

/// The index after the literal or identifier opened at `at` (a doubled quote stays inside).
fn skip_quoted(
    bytes: &[u8],
    at: usize,
    quote: u8,
    backend: SqlBackend,
) -> Result<usize, ScanError> {
    let mut i = at + 1;
    while i < bytes.len() {
        if bytes[i] == b'\\' && quote != b'`' && backend.backslash_escapes() {
            i += 2;
        } else if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return Ok(i + 1);
            }
        } else {
            i += 1;
        }
    }
    Err(ScanError::Unterminated)
}

fn skip_line(bytes: &[u8], at: usize) -> usize {
    bytes[at..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |p| at + p + 1)
}

/// PostgreSQL's dollar quoting (`$$...$$`, `$tag$...$tag$`); a `$` that opens none is text.
fn skip_dollar_quoted(query: &str, at: usize) -> Result<usize, ScanError> {
    let rest = &query[at + 1..];
    let tag_len = rest
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'_'))
        .unwrap_or(rest.len());
    if rest.as_bytes().get(tag_len) != Some(&b'$') {
        return Ok(at + 1);
    }
    let delimiter = &query[at..at + tag_len + 2];
    let body = at + delimiter.len();
    let end = query[body..]
        .find(delimiter)
        .ok_or(ScanError::Unterminated)?;
    Ok(body + end + delimiter.len())
}

impl SqlCrmSettings {
    pub fn backend(&self) -> Option<SqlBackend> {
        SqlBackend::of_url(self.url.expose_secret())
    }

    /// Every error names its key under `crm.sql`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let Some(backend) = self.backend() else {
            return Err(invalid(
                "crm.sql.url",
                "required for the sql adapter: a postgres://, mysql:// or sqlite: URL",
            ));
        };
        if self.queries.is_empty() {
            return Err(invalid(
                "crm.sql.queries",
                "the sql adapter needs at least one query, e.g. email = \"SELECT * FROM customers WHERE email = :email\"",
            ));
        }
        for (kind, query) in &self.queries {
            let key = format!("crm.sql.queries.{}", kind.as_str());
            let pieces = scan(query, backend).map_err(|e| invalid(&key, e.to_string()))?;
            let allowed = placeholders_of(*kind);
            let mut used = 0;
            for piece in pieces {
                if let Piece::Placeholder(name) = piece {
                    if !allowed.iter().any(|a| a == name) {
                        return Err(invalid(
                            &key,
                            format!(
                                "unknown placeholder :{name}; a {} query may use :{}",
                                kind.as_str(),
                                allowed.join(", :")
                            ),
                        ));
                    }
                    used += 1;
                }
            }
            if used == 0 {
                return Err(invalid(
                    &key,
                    format!(
                        "must use the key: a placeholder such as :{} (a query without one would find every row)",
                        allowed[0]
                    ),
                ));
            }
        }
        let grading = [
            (KeyKind::Phone, "crm.sql.phone_columns", &self.phone_columns),
            (KeyKind::Email, "crm.sql.email_columns", &self.email_columns),
        ];
        for (kind, key, columns) in grading {
            if self.queries.contains_key(&kind) && columns.iter().all(|c| c.trim().is_empty()) {
                return Err(invalid(
                    key,
                    format!(
                        "required with a {} query: the columns each row is graded on",
                        kind.as_str()
                    ),
                ));
            }
        }
        if self.max_rows == 0 {
            return Err(invalid("crm.sql.max_rows", "must be at least 1"));
        }
        if self.max_connections == 0 {
            return Err(invalid("crm.sql.max_connections", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
