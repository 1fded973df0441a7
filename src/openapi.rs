//! attrsync's own API description, generated from the handlers' annotations (utoipa) and served
//! at `/openapi.json`, so that what is documented is what is routed.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::OpenApi;

use crate::error::ErrorBody;
use crate::ingest::{CtiEvent, LookupRequest};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "attrsync",
        description = "Looks Genesys Cloud callers up in a CRM and writes the result into the live conversation as participant attributes."
    ),
    paths(
        crate::routes::events::genesys,
        crate::routes::events::cti,
        crate::routes::lookup::lookup,
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::routes::health::metrics,
        crate::routes::admin::list,
        crate::routes::admin::show,
        crate::routes::admin::replay,
        openapi_json,
    ),
    components(schemas(CtiEvent, LookupRequest, LookupAnswer, Accepted, Ignored, ErrorBody)),
    tags(
        (name = "ingest", description = "Events that make attrsync enrich a conversation"),
        (name = "lookup", description = "Synchronous lookup for Architect data actions"),
        (name = "ops", description = "Health, readiness, metrics")
    )
)]
pub struct ApiDoc;

/// 202 answer of the event endpoints.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    #[schema(example = "queued")]
    pub status: String,
    /// The sender's event id (or one derived from the conversation and participant).
    pub event_id: String,
}

/// 200 answer for an event attrsync will not process: a topic it ignores, or a duplicate.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Ignored {
    /// "ignored" or "duplicate".
    #[schema(example = "ignored")]
    pub status: String,
}

/// `/v1/lookup` answer: flat, every value a string, so a data action's output contract can
/// describe it. Besides the fixed fields it holds the CRM fields as mapped by `[merge]`
/// (without the attribute prefix).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"found": "true", "reason": "", "matchedBy": "phone", "id": "C-1001", "firstName": "Ada", "tier": "gold"}))]
pub struct LookupAnswer {
    /// "true" or "false".
    pub found: String,
    /// Empty when found; else not_found, timeout, crm_error or no_key.
    pub reason: String,
    /// The key kind that found the customer: customer_id, external_contact_id, phone, email.
    pub matched_by: String,
    #[serde(flatten)]
    pub fields: BTreeMap<String, String>,
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "The OpenAPI 3.1 description of attrsync", content_type = "application/json")))]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let doc = ApiDoc::openapi();
        for path in [
            "/v1/events/genesys",
            "/v1/events/cti",
            "/v1/lookup",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/admin/dead-letters",
            "/admin/dead-letters/{id}",
            "/admin/dead-letters/{id}/replay",
        ] {
            assert!(
                doc.paths.paths.contains_key(path),
                "{path} is not documented"
            );
        }
    }
}
