//! attrsync looks Genesys Cloud callers up in a CRM and writes what it finds into the live
//! conversation as participant attributes, so the IVR can route on it and the agent sees it.
//!
//! The modules, top to bottom; a module imports only from its own layer and the layers below
//! (`tests/architecture.rs` checks it, ARCHITECTURE.md explains it):
//!
//! - `cli` (the commands), `demo`, `app` (the composition root);
//! - `http`: the HTTP edge (router, middleware, authentication, errors, handlers, OpenAPI);
//! - `queue`: the durable queue (intake, workers and the retry decision, SQLite/PostgreSQL);
//! - `pipeline`: the use cases (enrich a conversation; answer a lookup);
//! - `genesys` (the Genesys Cloud client), `crm` (adapters, cache, breaker), `ingest` (parsing
//!   what senders POST), `server` (the listener: plain HTTP or TLS with reloaded certificates),
//!   `telemetry` (logging set-up);
//! - `config`: settings as data, loaded, layered and validated once;
//! - `domain` (ids, customer keys, the job), `phone` (caller numbers), `merge` (the merge
//!   policy, a pure function);
//! - leaves: `genesys::region`, `metrics`, `retry`, `budget`, `redact`, and `simulator`
//!   (faithful Genesys Cloud and CRM simulators for the tests, the demo and the benchmark).

#![forbid(unsafe_code)]

pub mod app;
pub mod budget;
pub mod cli;
pub mod config;
pub mod crm;
pub mod demo;
pub mod domain;
pub mod genesys;
pub mod http;
pub mod ingest;
pub mod merge;
pub mod metrics;
pub mod phone;
pub mod pipeline;
pub mod queue;
pub mod redact;
pub mod retry;
pub mod server;
pub mod simulator;
pub mod telemetry;
