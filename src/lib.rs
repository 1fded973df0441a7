//! attrsync looks Genesys Cloud callers up in a CRM and writes what it finds into the live
//! conversation as participant attributes, so the IVR can route on it and the agent sees it.
//!
//! Layout, following the data:
//!
//! - `routes`: the HTTP surface. `events` takes Genesys events (EventBridge, notification, bare)
//!   and CTI events; `lookup` answers Architect data actions synchronously; `health` serves
//!   `/healthz`, `/readyz`, `/metrics`.
//! - `auth`: per-endpoint inbound authentication (Standard Webhooks signatures, keys, Basic).
//! - `ingest`: parses and validates what senders POST into `domain` types.
//! - `queue`: accepting jobs (deduplicated) and the worker pool that runs and retries them.
//! - `store`: the durable queue (SQLite or PostgreSQL): jobs, dedup keys, dead letters.
//! - `pipeline`: the use case: resolve participant, look up, merge, patch.
//! - `genesys`: the Genesys Cloud client (token, conversation read, attributes PATCH).
//! - `crm`: the CRM adapter trait, the `file` and `http` adapters and the answer cache.
//! - `merge`: the merge policy, a pure function producing the minimal patch.
//! - `phone`: caller-number normalisation (libphonenumber), `redact`: PII in logs.
//! - `openapi`: attrsync's own API description, served at `/openapi.json`.
//! - `budget`: client-side rate budgets for Genesys and the CRM.
//! - `config`, `telemetry`, `metrics`, `retry`, `error`, `app`, `cli`: plumbing.
//! - `demo`: the one-command demo on the embedded defaults.
//! - `simulator`: faithful Genesys Cloud and CRM simulators for tests, demo and benchmarks.

#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod budget;
pub mod cli;
pub mod config;
pub mod crm;
pub mod demo;
pub mod domain;
pub mod error;
pub mod genesys;
pub mod ingest;
pub mod merge;
pub mod metrics;
pub mod openapi;
pub mod phone;
pub mod pipeline;
pub mod queue;
pub mod redact;
pub mod retry;
pub mod routes;
pub mod simulator;
pub mod store;
pub mod telemetry;
