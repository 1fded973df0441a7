//! Microsoft Dynamics 365 / Dataverse as pure functions: OData string literals and names, the
//! `$filter` over configurable phone and email columns of configurable entity sets, Web API URLs
//! and headers, and the parsing of collection, error and Entra ID token answers. No HTTP, no
//! configuration, no tokens: the adapter adds those.
//!
//! The sources (Dataverse Web API docs on learn.microsoft.com, the Microsoft identity platform's
//! client credentials pages) are cited in each submodule's header and in
//! `config/examples/dynamics.md`; the simulator that checks all of this is
//! `crate::simulator::dynamics`.

pub mod adapter;
pub mod entity;
pub mod error;
pub mod odata;
pub mod response;

pub use adapter::DynamicsCrm;
pub use entity::{EntitySpec, MODIFIED_ON};
pub use error::{EntraError, EntraToken, ErrorKind, WebApiError};
pub use odata::{
    any_column_equals, is_guid, string_literal, ODataError, WebApiRequest, REQUEST_HEADERS,
};
pub use response::{parse_collection, Page, ResponseError};

#[cfg(test)]
mod injection_tests;
