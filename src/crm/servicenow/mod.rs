//! ServiceNow's Table API: pure functions building the encoded query and request for a phone,
//! email or id lookup over configurable tables and fields (`query`) and reading records, error
//! envelopes and rate-limit headers (`response`), and the `adapter` that adds auth, transport,
//! budgets and the adapter contract.
//!
//! Sources (ServiceNow/ServiceNowDocs, `markdown/`): the Table API reference
//! (`api-reference/rest-apis/c_TableAPI.md`: `sysparm_*` parameters, case-sensitive values,
//! invalid query parts ignored, v1's 404 for no rows), *Inbound REST API rate limiting*
//! (`api-reference/rest-api-explorer/inbound-REST-API-rate-limiting.md`: hourly rules,
//! `X-RateLimit-*`, `Retry-After`, the 429 body), the REST API overview (`c_RESTAPI.md`) and
//! `GlideStringUtil.escapeQueryTermSeparator` (`^^`). The setup guide is
//! `config/examples/servicenow.md`.

pub mod adapter;
pub mod query;
pub mod response;

pub use adapter::ServiceNowCrm;
pub use query::{
    email_lookup, emails_lookup, escape_value, field_lookup, or_query, phone_lookup, sys_id_lookup,
    CaretPolicy, QueryError, TableLookup, TableRequest,
};
pub use response::{
    parse_error, parse_records, record_matches, token_error_description, Compare, ErrorKind,
    RateLimitHeaders, ResponseError, ServiceNowError,
};

#[cfg(test)]
mod sim_tests;
