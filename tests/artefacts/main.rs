//! The deployment and Genesys-side artefacts, checked against the code they configure: the
//! Dockerfile, docker-compose.yml, deploy/ (Prometheus, Grafana, the Kubernetes base), genesys/
//! (the data action, its Terraform twin, the EventBridge rule, the Process Automation trigger and
//! workflow) and config/examples/ (each through check-config). None of them can be exercised here
//! for real (no Docker engine, no Kubernetes cluster, no Genesys org, no AWS account), so each
//! test pins what would break them:
//! a setting attrsync does not read, a path that is not there, a metric that does not exist,
//! a data-action field `/v1/lookup` does not return.
//!
//! A test binary of its own (no attrsync instance for most checks; the few that need one use the
//! API tests' harness), one file per artefact; the helpers that read files, settings and YAML
//! are in `files`, `settings` and `yaml`. The compose and Prometheus YAML is read with a small
//! line-based parser (block style only, which is all those files use); the Kubernetes manifests
//! and the Architect workflow, whose flow style and lists it does not handle, with serde_norway,
//! and the Process Automation Terraform is parsed and evaluated with hcl-rs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use attrsync::config::Settings;
use attrsync::simulator::{Fault, Op};
use serde_json::{json, Value};

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod compose;
mod data_action;
mod docker;
mod eventbridge;
mod examples;
mod exposing;
mod files;
mod grafana;
mod kubernetes;
mod process_automation;
mod settings;
mod terraform;
mod yaml;

use files::*;
use settings::*;
use yaml::*;

use crate::helpers::{as_voice_call_from, eventbridge_start, json_body, spawn_app, TestApp};

/// Ada Lovelace in config/customers.json, stored there as "(317) 555-0125".
pub(crate) const KNOWN_ANI: &str = "tel:+13175550125";
/// Nobody in config/customers.json.
pub(crate) const UNKNOWN_ANI: &str = "tel:+19995550000";

/// The plain Genesys variables attrsync reads besides `ATTRSYNC_*` (config/default.toml, layer 4).
pub(crate) const GENESYS_VARIABLES: &[&str] = &[
    "GENESYS_CLIENT_ID",
    "GENESYS_CLIENT_SECRET",
    "GENESYS_REGION",
    "GENESYS_API_URL",
    "GENESYS_LOGIN_URL",
];

pub(crate) const DATA_ACTION: &str = "genesys/data-action-attrsync-lookup.json";
