//! `/console`, the operator's console (protected by `[auth.ops]`): server-rendered HTML over
//! the same queue interface as the admin API, with no script, no build step and nothing loaded
//! from another host. Recent runs (filtered by outcome and source), a search by conversation
//! id, one event's journey as a timeline, the dead letters with a replay button, and the
//! explain form. Its forms post to the console itself; a post another site's page makes the
//! browser send is refused (`Origin` / `Sec-Fetch-Site`), since `basic` credentials would ride
//! along.

mod page;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::error::ApiError;
use super::journal::{entries, explain_keys, recent_filter, RecentParams};
use super::state::AppState;
use crate::domain::ConversationId;
use crate::ingest::LookupRequest;
use crate::queue::JournalFilter;

fn html(title: &str, body: &str) -> Response {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(page::layout(title, body)),
    )
        .into_response()
}

/// Recent events, newest first, with the search and filter forms.
pub async fn home(
    State(state): State<AppState>,
    Query(params): Query<RecentParams>,
) -> Result<Response, ApiError> {
    let found = entries(&state, recent_filter(&params)).await?;
    let body = format!(
        "{}<h2>Recent events</h2>{}",
        page::filters(
            "",
            params.outcome.as_deref().unwrap_or(""),
            params.source.as_deref().unwrap_or("")
        ),
        page::entries_table(&found)
    );
    Ok(html("Recent events", &body))
}

#[derive(Debug, Deserialize)]
pub struct Search {
    #[serde(default)]
    pub id: String,
}

/// Every run of one conversation's events.
pub async fn conversation(
    State(state): State<AppState>,
    Query(search): Query<Search>,
) -> Result<Response, ApiError> {
    let Ok(id) = ConversationId::parse(search.id.trim()) else {
        // Shown back (escaped, and no longer than a search box needs) so it can be corrected.
        let typed: String = search.id.trim().chars().take(100).collect();
        let body = format!(
            "{}<p id=\"not-found\">Not a conversation id.</p>",
            page::filters(&typed, "", "")
        );
        return Ok(html("Conversation", &body));
    };
    let found = entries(
        &state,
        JournalFilter {
            conversation_id: Some(id.to_string()),
            limit: 1000,
            ..JournalFilter::default()
        },
    )
    .await?;
    let body = format!(
        "{}<p>Conversation <code id=\"conversation\">{}</code></p>{}",
        page::filters(id.as_str(), "", ""),
        page::esc(id.as_str()),
        page::entries_table(&found)
    );
    Ok(html("Conversation", &body))
}

/// One event's runs, each as a timeline.
pub async fn event(
    State(state): State<AppState>,
    Path(event_id): Path<String>,
) -> Result<Response, ApiError> {
    let event_id: String = event_id.trim().chars().take(256).collect();
    let mut runs = entries(
        &state,
        JournalFilter {
            event_id: Some(event_id.clone()),
            limit: 100,
            ..JournalFilter::default()
        },
    )
    .await?;
    runs.reverse();
    let body = if runs.is_empty() {
        "<p id=\"not-found\">Nothing journaled for this event.</p>".to_owned()
    } else {
        runs.iter().map(page::timeline).collect::<String>()
    };
    Ok(html(&format!("Event {event_id}"), &body))
}

#[derive(Debug, Default, Deserialize)]
pub struct Replayed {
    pub replayed: Option<i64>,
}

/// The dead letters, each with a replay button.
pub async fn dead_letters(
    State(state): State<AppState>,
    Query(notice): Query<Replayed>,
) -> Result<Response, ApiError> {
    let letters = state
        .queue
        .dead_letters(200)
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?;
    let notice = notice
        .replayed
        .map(|id| format!("<p class=\"notice\" id=\"notice\">Dead letter {id} queued again.</p>"))
        .unwrap_or_default();
    Ok(html(
        "Dead letters",
        &format!("{notice}{}", page::dead_letters(&letters)),
    ))
}

/// Whether a form post came from the console's own page (not from another site's).
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (text("origin"), text("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        (Some(_), None) => false,
    }
}

fn cross_site() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(page::layout(
            "Refused",
            "<p>This form can only be sent from the console itself.</p>",
        )),
    )
        .into_response()
}

/// Queues a dead letter again, then shows the dead letters.
pub async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        return Ok(cross_site());
    }
    if !state
        .queue
        .replay(id)
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?
    {
        return Err(ApiError::NotFound(format!("no dead letter {id}")));
    }
    tracing::info!(job_id = id, "dead letter replayed from the console");
    Ok(Redirect::to(&format!("/console/dead-letters?replayed={id}")).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct ExplainForm {
    #[serde(default)]
    pub ani: String,
    #[serde(default)]
    pub email: String,
    #[serde(default, rename = "customerId")]
    pub customer_id: String,
}

/// The explain form.
pub async fn explain_form() -> Response {
    html("Explain", &page::explain_form("", "", ""))
}

/// The explain form's answer: the dry run, below the form.
pub async fn explain(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ExplainForm>,
) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        return Ok(cross_site());
    }
    let request = LookupRequest {
        ani: Some(form.ani.clone()),
        email: Some(form.email.clone()),
        customer_id: Some(form.customer_id.clone()),
        ..LookupRequest::default()
    };
    let answer = match explain_keys(&state, request).await {
        Ok(explanation) => page::explanation(&explanation),
        Err(ApiError::InvalidField(e)) => format!(
            "<p id=\"invalid\">{}: {}</p>",
            page::esc(&e.field),
            page::esc(&e.reason)
        ),
        Err(e) => return Err(e),
    };
    let body = format!(
        "{}{answer}",
        page::explain_form(&form.ani, &form.email, &form.customer_id)
    );
    Ok(html("Explain", &body))
}
