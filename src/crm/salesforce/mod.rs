//! Salesforce as pure functions: SOSL and SOQL escaping, the lookup requests for phone, email and
//! record id over configurable objects and fields, and the parsing of search, query, error and
//! token answers. No HTTP, no configuration, no tokens: the adapter adds those.
//!
//! The sources (Salesforce's REST API Developer Guide, SOQL and SOSL Reference, OAuth help
//! pages) are cited in each submodule's header and in `config/examples/salesforce.md`; the
//! adapter is [`adapter`]; the simulator that checks all of this is
//! `crate::simulator::salesforce`.

pub mod adapter;
pub mod error;
pub mod escape;
pub mod query;
pub mod response;

pub use adapter::SalesforceCrm;
pub use error::{ApiError, ApiUsage, ErrorKind, TokenError, TokenResponse};
pub use escape::{soql_string, sosl_phrase, sosl_word, ApiVersion, NameError};
pub use query::{
    id_lookup, is_record_id, phone_search, phrase_search, soql_equals, QueryError, RestRequest,
    SearchGroup, Target,
};
pub use response::{parse_query, parse_search, QueryPage, ResponseError};

#[cfg(test)]
mod injection_tests;
