//! Zendesk Support as a CRM, the contract-independent half: the search language (what may go
//! into a query and how it is quoted), the lookup requests per key kind, and the parsing of
//! answers and errors. No HTTP, configuration or credentials here: the adapter adds those.
//!
//! Facts and their sources: the Zendesk search reference (support.zendesk.com/hc/en-us/articles/
//! 4408886879258), the Search and Users API references (developer.zendesk.com/api-reference/
//! ticketing/), the rate-limit page (developer.zendesk.com/api-reference/introduction/
//! rate-limits), the Talk partner guide on callers, and the comments
//! next to each rule.

pub mod adapter;
pub mod query;
pub mod response;

pub use adapter::ZendeskCrm;
pub use query::{
    email_lookup, external_id_lookup, phone_lookup, quote_value, user_field_lookup, FieldValue,
    Lookup, PhoneForm, QueryError, RoleFilter, SEARCH_PATH, USERS_SEARCH_PATH,
};
pub use response::{
    parse_error, parse_user, parse_users, rate_limit_info, ErrorKind, RateLimitInfo, ShapeError,
    ZendeskError,
};

#[cfg(test)]
mod sim_tests;
