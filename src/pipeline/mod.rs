//! The use cases. `process`: resolve the participant, find the customer in the CRM, plan the
//! minimal patch, write it; every ingest path ends here, through the queue's workers.
//! `answer_lookup` (in `lookup`): the synchronous lookup a data action waits for.

pub mod explain;
pub mod journey;
mod lookup;
mod matching;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use phonenumber::country;
use tracing::Instrument as _;

use crate::config::Settings;
use crate::crm::{CrmError, CrmSources, Verdict};
use crate::domain::{customer_keys, ConversationId, EnrichmentJob, ParticipantId};
use crate::genesys::{GenesysClient, GenesysError};
use crate::merge::{self, Attributes, MergePolicy};
use crate::redact::Redacted;
use crate::retry::Retryable;

pub use journey::{Journey, Step, StepKind};
pub use lookup::{LookupAnswer, LookupReason};

/// How an event ended; a metrics label, so the set is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Attributes were written and the CRM knew the caller.
    Patched,
    /// The CRM did not know the caller (the `found` attribute may still have been written).
    CrmMiss,
    /// Several records matched and `crm.match_policy = "refuse"`: only `found=false` and the
    /// match count were written.
    CrmAmbiguous,
    /// Everything the patch would hold was already on the participant: no PATCH sent.
    Unchanged,
    /// Neither the event nor the participant gave anything to look the customer up by.
    NoCustomerKey,
    /// The conversation is over: attributes written now would not reach analytics.
    ConversationEnded,
    ConversationNotFound,
    /// No participant matched the configured purposes (or the given participant id).
    NoParticipant,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Patched,
        Outcome::CrmMiss,
        Outcome::CrmAmbiguous,
        Outcome::Unchanged,
        Outcome::NoCustomerKey,
        Outcome::ConversationEnded,
        Outcome::ConversationNotFound,
        Outcome::NoParticipant,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Patched => "patched",
            Outcome::CrmMiss => "crm_miss",
            Outcome::CrmAmbiguous => "crm_ambiguous",
            Outcome::Unchanged => "unchanged",
            Outcome::NoCustomerKey => "no_customer_key",
            Outcome::ConversationEnded => "conversation_ended",
            Outcome::ConversationNotFound => "conversation_not_found",
            Outcome::NoParticipant => "no_participant",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Genesys(#[from] GenesysError),
    #[error(transparent)]
    Crm(#[from] CrmError),
    #[error("Genesys returned a participant id attrsync cannot use")]
    BadParticipantId,
}

impl Retryable for PipelineError {
    fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Genesys(e) => e.is_retryable(),
            PipelineError::Crm(e) => e.is_retryable(),
            PipelineError::BadParticipantId => false,
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            PipelineError::Genesys(e) => e.retry_after(),
            PipelineError::Crm(e) => e.retry_after(),
            PipelineError::BadParticipantId => None,
        }
    }
}

pub struct Pipeline {
    genesys: GenesysClient,
    crm: CrmSources,
    policy: MergePolicy,
    /// `merge.match_details`.
    match_details: bool,
    purposes: Vec<String>,
    /// `genesys.outbound_participant_purposes`.
    outbound_purposes: Vec<String>,
    region: country::Id,
    /// What attrsync last wrote per participant. With `crm_wins` the participant's attributes are
    /// not read, so this is what makes a repeated event cost no PATCH.
    written: Cache<(ConversationId, ParticipantId), Arc<Attributes>>,
    /// One job per conversation at a time in this process: two events for one caller (an
    /// EventBridge event and a data-action lookup, say) processed side by side would both see
    /// nothing written yet and both PATCH.
    in_progress: Cache<ConversationId, Arc<tokio::sync::Mutex<()>>>,
}

impl Pipeline {
    /// The pipeline over `genesys` and `crm`, with the merge policy, participant purposes and
    /// default phone region `settings` give.
    pub fn from_settings(settings: &Settings, genesys: GenesysClient, crm: CrmSources) -> Self {
        let mut pipeline = Self::new(
            genesys,
            crm,
            settings.merge.policy(),
            settings.genesys.participant_purposes.clone(),
            settings.phone.default_region,
        );
        pipeline.match_details = settings.merge.match_details;
        pipeline.outbound_purposes = settings.genesys.outbound_participant_purposes.clone();
        pipeline
    }

    pub fn new(
        genesys: GenesysClient,
        crm: CrmSources,
        policy: MergePolicy,
        purposes: Vec<String>,
        region: country::Id,
    ) -> Self {
        Self {
            genesys,
            crm,
            policy,
            match_details: false,
            purposes,
            outbound_purposes: Vec::new(),
            region,
            written: Cache::builder()
                .max_capacity(100_000)
                // Conversations that matter are live ones; an hour covers long calls.
                .time_to_live(Duration::from_secs(3600))
                .build(),
            in_progress: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }

    pub fn policy(&self) -> &MergePolicy {
        &self.policy
    }

    /// Runs `job`; `attempt` is 1 on the first run. A later run may follow a crash after a
    /// PATCH went out, so it reads the participant's attributes first instead of trusting memory.
    pub async fn process(
        &self,
        job: &EnrichmentJob,
        attempt: u32,
    ) -> Result<Outcome, PipelineError> {
        self.process_recorded(job, attempt, &mut Journey::default())
            .await
    }

    /// [`Pipeline::process`], recording each step into `journey`.
    pub async fn process_recorded(
        &self,
        job: &EnrichmentJob,
        attempt: u32,
        journey: &mut Journey,
    ) -> Result<Outcome, PipelineError> {
        let lock = self
            .in_progress
            .get_with(job.conversation_id.clone(), async { Arc::default() })
            .await;
        let _turn = lock.lock().await;
        self.process_in_turn(job, attempt, journey).await
    }

    async fn process_in_turn(
        &self,
        job: &EnrichmentJob,
        attempt: u32,
        journey: &mut Journey,
    ) -> Result<Outcome, PipelineError> {
        let mut keys = job.keys.clone();
        // A repeated attempt may follow a crash after our PATCH went out: read what is really on
        // the participant, so the minimal patch is empty instead of a second write.
        let need_conversation = job.participant_id.is_none()
            || self.policy.needs_current_attributes()
            || keys.is_empty()
            || attempt > 1;

        let (participant_id, current) = if need_conversation {
            let started = std::time::Instant::now();
            let read = self
                .genesys
                .get_conversation(&job.conversation_id)
                .instrument(tracing::info_span!("genesys.get_conversation"))
                .await;
            journey.upstream(
                "get_conversation",
                upstream_status(read.as_ref().err()),
                started.elapsed().as_millis() as u64,
            );
            let conversation = match read {
                Err(e) if e.is_not_found() => {
                    journey.nothing_written("Genesys does not know the conversation");
                    return Ok(Outcome::ConversationNotFound);
                }
                other => other?,
            };
            if conversation.is_ended() {
                journey.nothing_written("the conversation is over");
                return Ok(Outcome::ConversationEnded);
            }
            let participant = match &job.participant_id {
                Some(id) => conversation.participant(id.as_str()),
                None => conversation
                    .pick_participant(&self.purposes)
                    .or_else(|| conversation.pick_outbound_participant(&self.outbound_purposes)),
            };
            let Some(participant) = participant else {
                journey.nothing_written("no participant matched genesys.participant_purposes");
                return Ok(Outcome::NoParticipant);
            };
            // The same rule as for the event (`domain::party`), on the participant's fields.
            let found = customer_keys(&participant.party_fields(), self.region);
            keys.phone = keys.phone.or(found.phone);
            keys.email = keys.email.or(found.email);
            keys.messaging_id = keys.messaging_id.or(found.messaging_id);
            if keys.external_contact_id.is_none() {
                keys.external_contact_id = participant.external_contact_id.clone();
            }
            let id = ParticipantId::parse(&participant.id)
                .map_err(|_| PipelineError::BadParticipantId)?;
            (id, participant.attributes.clone())
        } else {
            let id = job
                .participant_id
                .clone()
                .ok_or(PipelineError::BadParticipantId)?;
            let known = self
                .written
                .get(&(job.conversation_id.clone(), id.clone()))
                .await
                .map(|a| Attributes::clone(&a))
                .unwrap_or_default();
            (id, known)
        };
        tracing::Span::current().record("participant_id", participant_id.as_str());

        let mut extra = std::borrow::Cow::Borrowed(&job.extra_attributes);
        let (record, policy, found) = if keys.is_empty() && extra.is_empty() {
            // A withheld caller: nothing reaches the CRM, and `found=false` (when configured) tells
            // the flow so.
            (None, std::borrow::Cow::Borrowed(&self.policy), Found::NoKey)
        } else if keys.is_empty() {
            // Only the sender's own attributes to write: saying found=false would be a lie.
            let mut policy = self.policy.clone();
            policy.found_attribute = None;
            (None, std::borrow::Cow::Owned(policy), Found::NotAsked)
        } else {
            let tried = keys.iter().collect::<Vec<_>>();
            journey.keys(&tried);
            let answer = self.crm.lookup(&tried).await;
            journey.crm_answer(&answer);
            if let Some(phone) = &keys.phone {
                tracing::debug!(
                    caller = %Redacted::phone(phone.raw()),
                    found = answer.record.is_some(),
                    "CRM lookup done"
                );
            }
            let found = match &answer.verdict {
                Verdict::Failed(e) => return Err(e.clone().into()),
                Verdict::Found { .. } => Found::Yes,
                Verdict::NotFound => Found::No,
                Verdict::Ambiguous { .. } => Found::Ambiguous,
            };
            let details = matching::match_attributes(&answer, self.match_details);
            if !details.is_empty() {
                // Named under the prefix, like the record's fields; written beside them.
                let named = details
                    .into_iter()
                    .map(|(name, value)| (self.policy.attribute_name(&name), value));
                extra.to_mut().extend(named);
            }
            (
                answer.record,
                std::borrow::Cow::Borrowed(&self.policy),
                found,
            )
        };

        let patch = merge::plan(
            &policy,
            record.as_deref(),
            &extra,
            &current,
            chrono::Utc::now(),
        );
        if !patch.dropped.is_empty() && !patch.is_empty() {
            // Names only: the values are CRM data.
            tracing::warn!(
                dropped = patch.dropped.len(),
                names = %patch.dropped.join(","),
                "attributes left out by the attribute budget (merge.max_attributes, merge.max_patch_bytes)"
            );
            ::metrics::counter!(crate::metrics::ATTRIBUTES_DROPPED)
                .increment(patch.dropped.len() as u64);
        }
        let outcome = match found {
            Found::No => Outcome::CrmMiss,
            Found::Ambiguous => Outcome::CrmAmbiguous,
            Found::NoKey => Outcome::NoCustomerKey,
            Found::Yes | Found::NotAsked => Outcome::Patched,
        };
        if patch.is_empty() {
            journey
                .nothing_written("everything the patch would hold is already on the participant");
            return Ok(if outcome == Outcome::Patched {
                Outcome::Unchanged
            } else {
                outcome
            });
        }
        let started = std::time::Instant::now();
        let written = self
            .genesys
            .patch_participant_attributes(&job.conversation_id, &participant_id, &patch.attributes)
            .instrument(tracing::info_span!(
                "genesys.patch_participant_attributes",
                attributes = patch.attributes.len()
            ))
            .await;
        journey.upstream(
            "patch_participant_attributes",
            upstream_status(written.as_ref().err()),
            started.elapsed().as_millis() as u64,
        );
        match written {
            // A 404 here is taken as a conversation that ended (or vanished) between our read and
            // our write. Unverified: no public source says what a PATCH after the end answers
            // (404, or 202 and not kept); attrsync is tested under both (simulator `endedPatch`).
            Err(e) if e.is_not_found() => {
                journey.nothing_written("the conversation ended before the write");
                return Ok(Outcome::ConversationNotFound);
            }
            other => other?,
        }
        journey.record(StepKind::Written {
            attributes: patch.attributes.keys().cloned().collect(),
        });
        tracing::info!(
            keys = patch.attributes.len(),
            "participant attributes written"
        );
        let mut merged: BTreeMap<String, String> = current;
        merged.extend(patch.attributes);
        self.written
            .insert(
                (job.conversation_id.clone(), participant_id),
                Arc::new(merged),
            )
            .await;
        Ok(outcome)
    }
}

/// How a Genesys call ended, for the journal: `2xx` for a success (the client does not hand back
/// which 2xx), the error's HTTP status, or `no_answer` (timeout, connection).
fn upstream_status(error: Option<&GenesysError>) -> String {
    match error.map(GenesysError::status) {
        None => "2xx".to_owned(),
        Some(Some(status)) => status.to_string(),
        Some(None) => "no_answer".to_owned(),
    }
}

/// What the CRM said, for the outcome.
#[derive(Clone, Copy)]
enum Found {
    Yes,
    No,
    Ambiguous,
    /// No key to ask with: only the sender's attributes were written.
    NotAsked,
    /// No key and nothing of the sender's: only `found=false`, if configured.
    NoKey,
}
