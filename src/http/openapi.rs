//! attrsync's own API description, generated from the handlers' annotations (utoipa) and served
//! at `/openapi.json`, so that what is documented is what is routed. It reads the handlers;
//! they never read it.

use utoipa::OpenApi;

use super::error::{ErrorBody, ErrorCode, Refusal};
use super::events::{Accepted, Ignored};
use super::health::{Checks, Health, Readiness};
use super::lookup::{LookupAnswer, WireKeyKind, WireQuality, WireReason};
use crate::ingest::{CtiEvent, LookupRequest};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "attrsync",
        description = "Looks Genesys Cloud callers up in a CRM and writes the result into the live conversation as participant attributes."
    ),
    paths(
        super::events::genesys,
        super::events::cti,
        super::lookup::lookup,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        super::admin::list,
        super::admin::show,
        super::admin::replay,
        super::journal::conversation,
        super::journal::event,
        super::journal::recent,
        super::journal::explain,
        openapi_json,
    ),
    components(schemas(
        CtiEvent,
        LookupRequest,
        LookupAnswer,
        WireReason,
        WireKeyKind,
        WireQuality,
        Accepted,
        Ignored,
        ErrorBody,
        ErrorCode,
        Refusal,
        Health,
        Readiness,
        Checks,
        super::health::SourceCheck,
        super::admin::Replayed
    )),
    tags(
        (name = "ingest", description = "Events that make attrsync enrich a conversation"),
        (name = "lookup", description = "Synchronous lookup for Architect data actions"),
        (name = "ops", description = "Health, readiness, metrics")
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "The OpenAPI 3.1 description of attrsync", content_type = "application/json")))]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The routes anyone may call: probes and this document.
    const OPEN: [&str; 3] = ["/healthz", "/readyz", "/openapi.json"];

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
            "/admin/conversations/{id}",
            "/admin/events/{eventId}",
            "/admin/journal",
            "/admin/explain",
        ] {
            assert!(
                doc.paths.paths.contains_key(path),
                "{path} is not documented"
            );
        }
    }

    #[test]
    fn every_guarded_route_documents_401() {
        let doc = ApiDoc::openapi();
        for (path, item) in &doc.paths.paths {
            if OPEN.contains(&path.as_str()) {
                continue;
            }
            for operation in [&item.get, &item.post].into_iter().flatten() {
                assert!(
                    operation.responses.responses.contains_key("401"),
                    "{path} does not document 401"
                );
            }
        }
    }

    #[test]
    fn every_guarded_route_documents_403() {
        let doc = ApiDoc::openapi();
        for (path, item) in &doc.paths.paths {
            if OPEN.contains(&path.as_str()) {
                continue;
            }
            for operation in [&item.get, &item.post].into_iter().flatten() {
                assert!(
                    operation.responses.responses.contains_key("403"),
                    "{path} does not document 403"
                );
            }
        }
    }

    #[test]
    fn the_error_codes_and_refusal_reasons_are_listed_from_their_enums() {
        let json = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let listed = |name: &str| -> Vec<String> {
            json["components"]["schemas"][name]["enum"]
                .as_array()
                .unwrap_or_else(|| {
                    panic!(
                        "{name} has no enum: {}",
                        json["components"]["schemas"][name]
                    )
                })
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        };
        let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed("ErrorCode"), codes);
        let reasons: Vec<&str> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(listed("Refusal"), reasons);
        let lookup: Vec<String> = std::iter::once(String::new())
            .chain(
                crate::pipeline::LookupReason::ALL
                    .iter()
                    .map(|r| r.as_str().to_owned()),
            )
            .collect();
        assert_eq!(listed("WireReason"), lookup);
    }
}
