//! HubSpot CRM contacts as a CRM, the contract-independent half: CRM search bodies over phone
//! properties, email and record id, the direct reads, and the parsing of answers and errors
//! (incl. the 429's `policyName`). No HTTP, configuration or tokens here: the adapter adds
//! those, and its search budget (HubSpot's search limit is 5 requests per second per account).
//!
//! Facts and their sources: HubSpot's CRM search guide (developers.hubspot.com/docs/
//! api-reference/latest/crm/search-the-crm), the contacts API reference, the API usage
//! guidelines (developers.hubspot.com/docs/api/usage-details), and the comments
//! next to each rule.

pub mod adapter;
mod limiter;
pub mod request;
pub mod response;

pub use adapter::HubSpotCrm;
pub use request::{
    contact_by_email, contact_by_id, email_search, id_search, national_significant_number,
    phone_search, property_search, FilterLimits, GetRequest, PhoneProperties, RequestError,
    SearchRequest, CONTACTS_PATH, MAX_BODY_CHARS, MAX_LIMIT, SEARCH_PATH,
};
pub use response::{
    parse_contact, parse_error, parse_search, ErrorKind, HubSpotError, SearchPage, ShapeError,
};

#[cfg(test)]
mod sim_tests;
