//! Behaviour no public source settles, as switches: the simulator must not turn an assumption
//! into a fact attrsync's tests then rely on. Each switch has the settings a real org might
//! show; attrsync is tested under every one (`tests/api/unsettled.rs`).
//!
//! - `endedPatch`: what a PATCH of attributes answers once the conversation has ended. The
//!   Resource Center only says "Analytics does not save attributes that are set after the
//!   conversation completes" (help.mypurecloud.com/articles/set-participant-data-action/), which
//!   reads like `202` and not kept; `404 not.found` is what the simulator did before.
//! - `tokenErrors`: the body of the login host's error answers. Platform `ErrorBody`
//!   (`{"code", "message", ...}`) or the OAuth form of RFC 6749 section 5.2
//!   (`{"error", "error_description"}`); neither is documented for `POST /oauth/token`.
//! - `emptyPatch`: what `{}` (no `attributes` map) answers. `ParticipantAttributes` has no
//!   required field (SDK `ParticipantAttributes.md`), so a `202` no-op is plausible; `400
//!   bad.request` is what the simulator did before.
//!
//! On the admin API: `GET /sim/unsettled`, and `PATCH /sim/unsettled` with any of
//! `{"endedPatch": "acceptedNotKept" | "notFound", "tokenErrors": "platform" | "oauth",
//! "emptyPatch": "badRequest" | "accepted"}`.

use serde::{Deserialize, Serialize};

/// What a PATCH after the conversation's end answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EndedPatch {
    /// `404 not.found`.
    #[default]
    NotFound,
    /// `202`, and the attributes are not kept.
    AcceptedNotKept,
}

/// The body of the token endpoint's errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TokenErrors {
    /// A Platform `ErrorBody`: `401 bad.credentials`, `400 bad.request`.
    #[default]
    Platform,
    /// OAuth: `401 {"error": "invalid_client", ...}`, `400 {"error": "unsupported_grant_type"}`.
    Oauth,
}

/// What a PATCH body without an `attributes` map answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EmptyPatch {
    /// `400 bad.request`.
    #[default]
    BadRequest,
    /// `202`, nothing changed.
    Accepted,
}

/// The switches, all at their former behaviour by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Unsettled {
    pub ended_patch: EndedPatch,
    pub token_errors: TokenErrors,
    pub empty_patch: EmptyPatch,
}

/// `PATCH /sim/unsettled`: only the switches named change.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct UnsettledPatch {
    pub(super) ended_patch: Option<EndedPatch>,
    pub(super) token_errors: Option<TokenErrors>,
    pub(super) empty_patch: Option<EmptyPatch>,
}

impl Unsettled {
    pub(super) fn apply(&mut self, patch: UnsettledPatch) {
        if let Some(v) = patch.ended_patch {
            self.ended_patch = v;
        }
        if let Some(v) = patch.token_errors {
            self.token_errors = v;
        }
        if let Some(v) = patch.empty_patch {
            self.empty_patch = v;
        }
    }
}
