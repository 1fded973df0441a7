//! Freshdesk's contact lookups as pure functions for the (later) Freshdesk adapter: building the
//! list-filter, by-id and search requests for phone, mobile, email and external id (`query`),
//! and reading contacts, error bodies and rate-limit headers (`response`). No HTTP, no
//! configuration types.
//!
//! Error types expose `is_retryable`/`retry_after` with the meaning of `crate::retry::Retryable`
//! so the adapter can implement that trait by delegation. Facts and sources:
//! `notes/crm-freshdesk.md`.

pub mod query;
pub mod response;

pub use query::{
    contact_by_id, list_lookup, quote, search_lookup, ContactField, FreshdeskRequest, QueryError,
};
pub use response::{
    parse_contact, parse_error, parse_list, parse_search, record_matches, ErrorKind, FieldError,
    FreshdeskError, RateLimitHeaders, ResponseError,
};

#[cfg(test)]
mod sim_tests;
