//! Behaviour no public source settles, each simulator switch under both of its settings: a
//! PATCH after the conversation ended (404, or 202 and not kept), the token endpoint's error
//! body (Platform `ErrorBody` or OAuth `error`/`error_description`), and an empty `{}` PATCH.
//! attrsync must behave correctly whichever way the real platform goes.

use attrsync::simulator::{EmptyPatch, EndedPatch, TokenErrors, Unsettled};
use secrecy::SecretString;

use crate::helpers::{as_voice_call_from, eventbridge_start, json_body, spawn_app_with, TestApp};

const ADA: &str = "tel:+13175550125";

async fn app_with(unsettled: Unsettled) -> TestApp {
    spawn_app_with(|_, sims| sims.genesys.set_unsettled(unsettled)).await
}

#[tokio::test]
async fn a_write_after_the_conversation_ended_is_neither_retried_nor_dead_lettered_either_way() {
    for ended_patch in [EndedPatch::NotFound, EndedPatch::AcceptedNotKept] {
        let app = app_with(Unsettled {
            ended_patch,
            ..Unsettled::default()
        })
        .await;
        let call = app.new_voice_call(ADA);
        assert!(app.genesys.end_conversation(&call.conversation_id));
        // The event names the participant and carries the key: attrsync PATCHes without
        // reading the conversation first.
        let event = as_voice_call_from(eventbridge_start(&call), ADA);
        assert_eq!(app.post_genesys_event(&event).await.status(), 202);
        app.settle().await;

        let stats = app.genesys.stats();
        assert_eq!(
            stats.patch_attributes, 1,
            "one attempt, no retry ({ended_patch:?}): {stats:?}"
        );
        assert_eq!(stats.patches_accepted, 0, "{ended_patch:?}: nothing kept");
        assert!(app.customer_patches(&call).is_empty());
        let dead = app.state.queue.dead_letters(10).await.unwrap_or_default();
        assert!(dead.is_empty(), "{ended_patch:?}: {dead:?}");
        assert_eq!(app.genesys.unsettled().ended_patch, ended_patch);
    }
}

#[tokio::test]
async fn a_refused_token_is_reported_with_its_reason_whatever_the_error_body() {
    for (token_errors, code, reason) in [
        (
            TokenErrors::Platform,
            "bad.credentials",
            "Invalid login credentials.",
        ),
        (
            TokenErrors::Oauth,
            "invalid_client",
            "Invalid login credentials.",
        ),
    ] {
        let app = spawn_app_with(|settings, sims| {
            sims.genesys.set_unsettled(Unsettled {
                token_errors,
                ..Unsettled::default()
            });
            settings.genesys.client_secret = SecretString::from("not-the-secret".to_owned());
        })
        .await;
        let response = app.get("/readyz").await;
        assert_eq!(response.status(), 503);
        let body = json_body(response).await;
        let check = body["checks"]["genesys_token"].as_str().unwrap_or_default();
        assert!(check.contains("401"), "{token_errors:?}: {check}");
        assert!(check.contains(code), "{token_errors:?}: {check}");
        // OAuth's error_description is kept: it is what says why.
        assert!(check.contains(reason), "{token_errors:?}: {check}");
        assert!(!body.to_string().contains("not-the-secret"));
    }
}

#[tokio::test]
async fn attrsync_never_sends_an_empty_patch_whatever_genesys_would_answer_to_one() {
    for empty_patch in [EmptyPatch::BadRequest, EmptyPatch::Accepted] {
        let app = app_with(Unsettled {
            empty_patch,
            ..Unsettled::default()
        })
        .await;
        let call = app.new_voice_call(ADA);
        let event = as_voice_call_from(eventbridge_start(&call), ADA);
        assert_eq!(app.post_genesys_event(&event).await.status(), 202);
        app.settle().await;
        // The same customer by another key (so not a duplicate event): nothing changes.
        let again = serde_json::json!({
            "eventId": "cti-again", "conversationId": call.conversation_id,
            "participantId": call.customer_participant_id, "customerId": "C-1001"
        });
        assert_eq!(app.post_cti_event(&again).await.status(), 202);
        app.settle().await;
        // The second event changes nothing: no PATCH at all, not an empty one.
        let stats = app.genesys.stats();
        assert_eq!(stats.patch_attributes, 1, "{empty_patch:?}: {stats:?}");
        assert_eq!(app.customer_patches(&call).len(), 1);

        // And the switch does what it says, for whoever else sends `{}`.
        let token: serde_json::Value = app
            .client
            .post(format!("{}/oauth/token", app.genesys.base_url()))
            .basic_auth("attrsync-sim", Some("sim-secret"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token body");
        let status = app
            .client
            .patch(format!(
                "{}/api/v2/conversations/{}/participants/{}/attributes",
                app.genesys.base_url(),
                call.conversation_id,
                call.customer_participant_id
            ))
            .bearer_auth(token["access_token"].as_str().unwrap_or_default())
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("patch")
            .status();
        let expected = match empty_patch {
            EmptyPatch::BadRequest => 400,
            EmptyPatch::Accepted => 202,
        };
        assert_eq!(status, expected, "{empty_patch:?}");
    }
}
