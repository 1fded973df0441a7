//! Property tests for the pure functions that take untrusted input: the Genesys event parser,
//! CTI and data-action validation, caller-number parsing, the merge planner and the CRM URL
//! template, which party is the customer (`party`), and the JSON body extractor in front of them, one file per target (matching the
//! cargo-fuzz targets in `fuzz/`, plus the extractor and the URL template). No attrsync instance
//! is started; each property runs `CASES` generated cases, the whole binary a few seconds.
//!
//! The tests at the end pin bugs these properties found. The same inputs are fuzzed without a
//! case limit by the cargo-fuzz crate in `fuzz/` (see `fuzz/README.md`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use attrsync::crm::http::HttpCrm;
use attrsync::domain::KeyKind;
use attrsync::http::{ApiError, StrictJson};
use attrsync::ingest::{parse_genesys_event, CtiEvent, GenesysEvent, LookupRequest};
use attrsync::merge::{plan, Attributes, MergePolicy, Overwrite};
use attrsync::phone::{parse_region, CallerNumber, Notation};
use axum::extract::FromRequest as _;
use chrono::{DateTime, TimeZone, Utc};
use phonenumber::country;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value};

/// Cases per property: enough to find shallow bugs on every CI run while the whole module stays
/// within a few seconds.
pub(crate) const CASES: u32 = 256;

/// No failure files: a failing case is printed minimised, and whoever fixes it turns it into a
/// named regression test (as below), rather than proptest writing `proptest-regressions/` into
/// the tree of whoever ran the tests.
pub(crate) fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

pub(crate) const ALL_NOTATIONS: [Notation; 6] = Notation::ALL;

mod caller_number;
mod crm_template;
mod cti_event;
mod generators;
mod genesys_event;
mod lookup_request;
mod merge_plan;
mod party;
mod strategies;
mod strict_json;

use strategies::*;
