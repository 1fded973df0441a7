//! The HTTP surface: routes and the middleware stack around them (request ids, trace spans,
//! metrics, body limit, timeout, panic catching).

pub mod admin;
pub mod events;
pub mod health;
pub mod lookup;

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse as _;
use axum::routing::{get, post};
use axum::{middleware, Router};
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::app::AppState;
use crate::auth::Verifier;
use crate::error::BodyLimit;
use crate::metrics;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> anyhow::Result<Router> {
    let settings = &state.settings;
    let body_limit = settings.server.body_limit_bytes;
    let timeout = Duration::from_millis(settings.server.request_timeout_ms);
    let guard = |group: &'static str, auth: &crate::auth::EndpointAuth| {
        Verifier::new(group, auth, body_limit)
            .map(|v| middleware::from_fn_with_state(v, crate::auth::require))
    };

    // Each group gets its own authentication; the layer runs before the handler parses anything.
    let api = Router::new()
        .route("/v1/events/genesys", post(events::genesys))
        .route_layer(guard("genesys", &settings.auth.genesys)?)
        .merge(
            Router::new()
                .route("/v1/events/cti", post(events::cti))
                .route_layer(guard("cti", &settings.auth.cti)?),
        )
        .merge(
            Router::new()
                .route("/v1/lookup", post(lookup::lookup))
                .route_layer(guard("lookup", &settings.auth.lookup)?),
        )
        // Shed load rather than queue without bound: over the limit, answer 503 at once.
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ::metrics::counter!(metrics::LOAD_SHED).increment(1);
                    crate::error::ApiError::Unavailable(crate::queue::QueueError::Full)
                }))
                .layer(LoadShedLayer::new())
                .layer(ConcurrencyLimitLayer::new(
                    settings.server.max_concurrent_requests,
                )),
        );
    let ops = Router::new()
        .route("/metrics", get(health::metrics))
        .route("/admin/dead-letters", get(admin::list))
        .route("/admin/dead-letters/{id}", get(admin::show))
        .route("/admin/dead-letters/{id}/replay", post(admin::replay))
        .route_layer(guard("ops", &settings.auth.ops)?)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(crate::openapi::openapi_json));

    Ok(api
        .merge(ops)
        .route_layer(middleware::from_fn(metrics::track_http))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(BodyLimit(body_limit)))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request| {
                            let path = req
                                .extensions()
                                .get::<MatchedPath>()
                                .map(|p| p.as_str().to_owned())
                                .unwrap_or_else(|| req.uri().path().chars().take(64).collect());
                            let request_id = req
                                .headers()
                                .get(REQUEST_ID)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("");
                            tracing::info_span!(
                                "request",
                                method = %req.method(),
                                path = %path,
                                request_id = %request_id,
                                conversation_id = tracing::field::Empty,
                            )
                        })
                        .on_request(())
                        .on_response(DefaultOnResponse::new().level(Level::INFO))
                        // ApiError logs failures itself; don't log them twice.
                        .on_failure(()),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(|_| {
                    let body = r#"{"code":"internal","message":"internal error"}"#;
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                        .into_response()
                }))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    timeout,
                )),
        )
        .with_state(state))
}
