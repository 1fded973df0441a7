//! Freshdesk's contact lookups: pure functions building the list-filter, by-id and search
//! requests for phone, mobile, email and external id (`query`) and reading contacts, error
//! bodies and rate-limit headers (`response`), and the `adapter` that adds auth, transport,
//! budgets and the adapter contract.
//!
//! Sources: the per-minute limits by plan and the Contacts List caps are Freshdesk's own
//! (support.freshdesk.com, *What are the rate limits for the API calls to Freshdesk?*, article
//! 225439). The v2 API reference (developers.freshdesk.com/api: list filters, the search
//! syntax and its 512-character limit, the Basic API-key authentication, the `X-RateLimit-*`
//! headers) could only be read through third-party transcriptions: unverified. The setup guide
//! is `config/examples/freshdesk.md`.

pub mod adapter;
pub mod query;
pub mod response;

pub use adapter::FreshdeskCrm;
pub use query::{
    contact_by_id, list_lookup, quote, search_lookup, ContactField, FreshdeskRequest, QueryError,
};
pub use response::{
    parse_contact, parse_error, parse_list, parse_search, record_matches, ErrorKind, FieldError,
    FreshdeskError, RateLimitHeaders, ResponseError,
};

#[cfg(test)]
mod sim_tests;
