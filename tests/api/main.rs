//! attrsync's API tests: one binary, one module per area, every test against a real attrsync
//! instance wired to the Genesys and CRM simulators (see `helpers`). The property tests, the
//! artefact checks, the queue store's contract, the log capture and the dependency rule are
//! binaries of their own (`tests/properties/`, `tests/artefacts/`, `tests/queue_store.rs`,
//! `tests/logs.rs`, `tests/architecture.rs`).

mod helpers;
#[path = "../support/stores.rs"]
mod stores;

mod auth;
mod bad_input;
mod console;
mod crm_dynamics;
mod crm_freshdesk;
mod crm_hubspot;
mod crm_salesforce;
mod crm_servicenow;
mod crm_sources;
mod crm_sql;
mod crm_sql_chain;
mod crm_zendesk;
mod docs;
mod durability;
mod edge;
mod events_cti;
mod events_genesys;
mod genesys_client;
mod journal;
mod lookup;
mod merge;
mod ops;
mod parties;
mod pki;
mod replicas;
mod sql_db;
mod tls;
mod token_pool;
mod unsettled;
