//! `AppState`: everything a handler needs, cheap to clone. The handlers reach the store only
//! through the queue's interface, and readiness asks the Genesys client and the CRM directly.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Settings;
use crate::crm::CrmSources;
use crate::genesys::ranges::GenesysRanges;
use crate::genesys::GenesysClient;
use crate::pipeline::Pipeline;
use crate::queue::JobQueue;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pipeline: Arc<Pipeline>,
    pub queue: JobQueue,
    pub genesys: GenesysClient,
    pub crm: CrmSources,
    pub metrics: PrometheusHandle,
    /// Genesys's published address ranges, when an endpoint group follows them.
    pub ranges: Option<GenesysRanges>,
}
