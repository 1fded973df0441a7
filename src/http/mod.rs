//! The HTTP edge: the router and the middleware stack around it (client address, request ids,
//! trace spans, metrics, body limit, timeout, panic catching, load shedding, per-group source
//! checks and authentication).
//!
//! - `state`: [`AppState`], what handlers get; `error`: [`ApiError`] and the one [`ErrorBody`];
//!   `extract`: [`StrictJson`], [`RequestIdText`]; `client`: the client address (trusted
//!   proxies); `guard`: who may call a group (allow-lists, client certificates); `auth`: the
//!   authentication middleware;
//! - handlers, each with the response types it returns: `events`, `lookup`, `health`, `admin`,
//!   `journal` (the journal and the explain), `console` (the operator's HTML pages);
//! - `openapi`: the API description generated from the handlers.

pub mod admin;
pub mod auth;
pub mod client;
pub mod console;
pub mod error;
pub mod events;
pub mod extract;
pub mod guard;
pub mod health;
pub mod journal;
pub mod lookup;
pub mod openapi;
mod state;

pub use error::{ApiError, ErrorBody};
pub use extract::{RequestIdText, StrictJson};
pub use state::AppState;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse as _;
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::AuthGroup;
use crate::metrics;
use auth::Verifier;
use client::ClientAddr;
use extract::BodyLimit;
use guard::SourceGuard;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> anyhow::Result<Router> {
    let settings = &state.settings;
    let body_limit = settings.server.body_limit_bytes;
    let timeout = settings.server.request_timeout();
    let trusted: std::sync::Arc<[ipnet::IpNet]> = settings.server.trusted_proxies.clone().into();
    // Each group checks who is calling (address, client certificate), then the credentials,
    // both before the handler (or the signature check) reads the body.
    let guard = |group: AuthGroup| -> anyhow::Result<_> {
        let auth = settings.auth.group(group);
        let source = SourceGuard::new(group, auth, state.ranges.as_ref())?;
        let verifier = Verifier::new(group, auth, body_limit)?;
        let checks = source.checks_anything();
        Ok(ServiceBuilder::new()
            .option_layer(checks.then(|| middleware::from_fn_with_state(source, guard::require)))
            .layer(middleware::from_fn_with_state(verifier, auth::require)))
    };

    let api = Router::new()
        .route("/v1/events/genesys", post(events::genesys))
        .route_layer(guard(AuthGroup::Genesys)?)
        .merge(
            Router::new()
                .route("/v1/events/cti", post(events::cti))
                .route_layer(guard(AuthGroup::Cti)?),
        )
        .merge(
            Router::new()
                .route("/v1/lookup", post(lookup::lookup))
                .route_layer(guard(AuthGroup::Lookup)?),
        )
        // Shed load rather than queue without bound: over the limit, answer 503 at once.
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ::metrics::counter!(metrics::LOAD_SHED).increment(1);
                    ApiError::Overloaded
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
        .route("/admin/conversations/{id}", get(journal::conversation))
        .route("/admin/events/{eventId}", get(journal::event))
        .route("/admin/journal", get(journal::recent))
        .route("/admin/explain", post(journal::explain))
        .route("/console", get(console::home))
        .route("/console/conversations", get(console::conversation))
        .route("/console/events/{eventId}", get(console::event))
        .route("/console/dead-letters", get(console::dead_letters))
        .route("/console/dead-letters/{id}/replay", post(console::replay))
        .route(
            "/console/explain",
            get(console::explain_form).post(console::explain),
        )
        .route_layer(guard(AuthGroup::Ops)?)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::openapi_json));

    Ok(api
        .merge(ops)
        .route_layer(middleware::from_fn(metrics::track_http))
        // Outside the routes too, every error answer is an ErrorBody.
        .fallback(|| async { ApiError::NotFound("no such endpoint".to_owned()) })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::MethodNotAllowed(method.to_string())
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(BodyLimit(body_limit)))
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(trusted, client::resolve))
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
                            let client_addr = req
                                .extensions()
                                .get::<ClientAddr>()
                                .map(|c| c.0.to_string())
                                .unwrap_or_default();
                            let span = tracing::info_span!(
                                "request",
                                method = %req.method(),
                                path = %path,
                                request_id = %request_id,
                                client_addr = %client_addr,
                                conversation_id = tracing::field::Empty,
                            );
                            // A sender's W3C traceparent: the event's trace goes on from it.
                            let parent = req
                                .headers()
                                .get("traceparent")
                                .and_then(|v| v.to_str().ok());
                            crate::telemetry::continue_trace(&span, parent);
                            span
                        })
                        .on_request(())
                        .on_response(DefaultOnResponse::new().level(Level::INFO))
                        // ApiError logs failures itself; don't log them twice.
                        .on_failure(()),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(|_| {
                    tracing::error!("request handler panicked");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Json(ErrorBody::internal()),
                    )
                        .into_response()
                }))
                // Over the limit the request is abandoned and answered 408 with an ErrorBody.
                .layer(HandleErrorLayer::new(
                    move |e: tower::BoxError| async move {
                        if e.is::<tower::timeout::error::Elapsed>() {
                            ApiError::Timeout(timeout.as_millis() as u64)
                        } else {
                            ApiError::Internal(anyhow::anyhow!("request failed: {e}"))
                        }
                    },
                ))
                .layer(TimeoutLayer::new(timeout)),
        )
        .with_state(state))
}
