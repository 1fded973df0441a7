//! ServiceNow's Table API as pure functions for the (later) ServiceNow adapter: building the
//! encoded query and request for a phone, email or id lookup over configurable tables and fields
//! (`query`), and reading records, error envelopes and rate-limit headers (`response`). No HTTP,
//! no configuration types: the adapter adds auth, transport, budgets and the adapter contract.
//!
//! Error types expose `is_retryable`/`retry_after` with the meaning of `crate::retry::Retryable`
//! so the adapter can implement that trait by delegation. Facts and sources:
//! `notes/crm-servicenow.md`.

pub mod query;
pub mod response;

pub use query::{
    email_lookup, escape_value, field_lookup, or_query, phone_lookup, sys_id_lookup, CaretPolicy,
    QueryError, TableLookup, TableRequest,
};
pub use response::{
    parse_error, parse_records, record_matches, token_error_description, Compare, ErrorKind,
    RateLimitHeaders, ResponseError, ServiceNowError,
};

#[cfg(test)]
mod sim_tests;
