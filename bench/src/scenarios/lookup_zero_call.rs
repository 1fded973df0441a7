//! `lookup-zero-call`: the data action's zero-call mode. `/v1/lookup` requests that name the
//! conversation (as a call flow's data action does, without a participant id), first with
//! `lookup.write_attributes = false` (the flow writes the outputs itself with Set Participant
//! Data), then with the default `true`: the Genesys calls attrsync makes per lookup, counted by
//! the simulator (token requests, conversation reads, PATCHes) over the timed phase.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use attrsync::simulator::NewConversation;
use serde_json::json;

use crate::load::{self, phone};
use crate::report::ScenarioResult;
use crate::upstream::{CrmFront, GenesysFront};

use super::{Bench, Scenario};

const ZERO_CALL_CALLERS: u64 = 9_000_000;

impl Bench {
    pub(super) async fn lookup_zero_call(&self) -> anyhow::Result<ScenarioResult> {
        let name = Scenario::LookupZeroCall.name();
        let mut r = ScenarioResult::new(name);
        let n: u64 = if self.sizes.quick { 200 } else { 1_000 };
        let mut modes = Vec::new();
        let mut zero_call = f64::NAN;
        for write in [false, true] {
            let (calls, per_op, lookups) = self.zero_call_run(write, n).await?;
            let per_lookup = calls as f64 / lookups.max(1) as f64;
            if !write {
                zero_call = per_lookup;
            }
            modes.push(json!({
                "lookup.write_attributes": write,
                "lookups": lookups,
                "genesys_calls": calls,
                "genesys_calls_per_lookup": per_lookup,
                "by_operation": per_op,
            }));
        }
        r.genesys_calls_per_event = Some(zero_call);
        r.detail("modes", serde_json::Value::Array(modes));
        r.target(
            "Genesys calls per lookup, write_attributes = false",
            "0",
            format!("{zero_call}"),
            zero_call == 0.0,
        );
        Ok(r)
    }

    async fn zero_call_run(
        &self,
        write: bool,
        n: u64,
    ) -> anyhow::Result<(u64, serde_json::Value, u64)> {
        let name = format!("{}-{write}", Scenario::LookupZeroCall.name());
        let genesys = GenesysFront::start().await?;
        let crm = CrmFront::start(self.crm).await?;
        let mut calls = Vec::new();
        for k in 0..n {
            let p = phone(ZERO_CALL_CALLERS + k);
            let call = genesys.sim.create_conversation(NewConversation {
                ani: Some(format!("tel:{p}")),
                dnis: Some("tel:+18005550100".to_owned()),
                attributes: BTreeMap::new(),
                ..NewConversation::default()
            });
            calls.push((call.conversation_id, p));
        }
        let extra = vec![
            (
                "ATTRSYNC_LOOKUP__WRITE_ATTRIBUTES".to_owned(),
                write.to_string(),
            ),
            // No client-side Genesys budget (the simulator has no limit either), so the control
            // run's writes all finish within the wait below rather than at 300 a minute.
            (
                "ATTRSYNC_GENESYS__RATE_LIMIT_PER_MINUTE".to_owned(),
                "0".to_owned(),
            ),
        ];
        let running = self
            .start_attrsync(&name, &genesys, &crm, extra, 32)
            .await?;
        let outcome = async {
            let url = format!("{}/v1/lookup", running.child.base);
            let auth = load::basic_auth("attrsync", &running.secrets.lookup_password)?;
            // Readiness has fetched the token; count from here.
            let before = genesys.sim.stats();
            let mut answered = 0u64;
            for (conversation_id, p) in &calls {
                let response = running
                    .http
                    .post(&url)
                    .header(reqwest::header::AUTHORIZATION, auth.clone())
                    .json(&json!({"conversationId": conversation_id, "ani": format!("tel:{p}")}))
                    .send()
                    .await?;
                if response.status().as_u16() == 200 {
                    answered += 1;
                }
            }
            // The writes (with write_attributes) run in the background: let them finish.
            let deadline = Instant::now() + Duration::from_secs(30);
            while write
                && genesys.sim.stats().patches_accepted < before.patches_accepted + n
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after = genesys.sim.stats();
            let token = after.token_requests - before.token_requests;
            let get = after.get_conversation - before.get_conversation;
            let patch = after.patch_attributes - before.patch_attributes;
            anyhow::Ok((
                token + get + patch,
                json!({"token": token, "get_conversation": get, "patch_attributes": patch}),
                answered,
            ))
        }
        .await;
        let mut scratch = ScenarioResult::new(&name);
        self.stop(running, &mut scratch).await;
        outcome
    }
}
