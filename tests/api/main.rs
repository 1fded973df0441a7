//! attrsync's integration tests: one binary, one module per area, every test against a real
//! attrsync instance wired to the Genesys and CRM simulators (see `helpers`).

mod helpers;

mod artefacts;
mod auth;
mod bad_input;
mod docs;
mod durability;
mod events_cti;
mod events_genesys;
mod genesys_client;
mod lookup;
mod merge;
mod ops;
mod properties;
mod queue_store;
