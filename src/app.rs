//! The composition root: `App::build(settings)` (used by `main`, the demo and the tests) wires
//! the components, each built from its own settings, and binds the listener (plain or TLS);
//! `run_until_stopped` serves until a shutdown signal, then drains the queue; `shutdown_signal`
//! is that signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinHandle;

use crate::config::{AuthGroup, Settings};
use crate::crm;
use crate::genesys::ranges::GenesysRanges;
use crate::genesys::GenesysClient;
use crate::http::AppState;
use crate::metrics::LabelValues;
use crate::pipeline::Pipeline;
use crate::queue::{JobQueue, WorkerPool};
use crate::server::Server;

pub struct App {
    server: Server,
    addr: SocketAddr,
    router: axum::Router,
    workers: WorkerPool,
    grace: Duration,
    state: AppState,
    /// Keeps Genesys's published ranges fresh, when a group follows them.
    ranges_refresh: Option<JoinHandle<()>>,
}

impl App {
    /// Builds every component from `settings` and binds the listener (port 0 picks a free one).
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let metrics = crate::metrics::install(&label_values());
        let genesys = GenesysClient::from_settings(&settings.genesys)
            .context("building the Genesys client")?;
        let queue = JobQueue::from_settings(&settings.queue)
            .await?
            .with_journal(&settings.journal);
        // What replicas share about the CRM lives in the queue's database (`crm.shared`).
        let crm = crm::from_settings_shared(&settings, queue.postgres_pool())
            .await
            .context("building the CRM sources")?;
        let pipeline = Arc::new(Pipeline::from_settings(
            &settings,
            genesys.clone(),
            crm.clone(),
        ));
        let workers = WorkerPool::start(
            pipeline.clone(),
            queue.clone(),
            &settings.queue,
            settings.phone.default_region,
        );

        let follows_ranges = AuthGroup::ALL
            .into_iter()
            .any(|g| settings.auth.group(g).allow_genesys_ranges);
        let ranges = follows_ranges.then(|| GenesysRanges::from_settings(&settings.genesys));
        let ranges_refresh = ranges.clone().map(|r| {
            tokio::spawn(r.keep_fresh(genesys.clone(), settings.genesys.ip_ranges_refresh()))
        });

        let server = Server::bind(&settings.server).await?;
        let addr = server.local_addr();
        let grace = settings.server.shutdown_grace();
        let state = AppState {
            settings: Arc::new(settings),
            pipeline,
            queue,
            genesys,
            crm,
            metrics,
            ranges,
        };
        let router = crate::http::router(state.clone())?;
        Ok(App {
            server,
            addr,
            router,
            workers,
            grace,
            state,
            ranges_refresh,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` or, with native TLS, `https://ADDR`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.server.scheme(), self.addr)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops taking events and drains the queue within
    /// `server.shutdown_grace_secs`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(address = %self.addr, scheme = self.server.scheme(), "attrsync listening");
        let queue = self.state.queue.clone();
        let stop_intake = async move {
            shutdown.await;
            tracing::info!(queued = queue.depth(), "shutdown requested; draining");
        };
        let served = self
            .server
            .serve(self.router, stop_intake)
            .await
            .context("serving HTTP");
        if let Some(refresh) = self.ranges_refresh {
            refresh.abort();
        }
        served?;
        self.workers.shutdown(self.grace).await;
        tracing::info!("attrsync stopped");
        Ok(())
    }
}

/// The closed label sets of attrsync's metrics, from the enums that own them: the HELP text on
/// `/metrics` lists them and a test holds the README to them.
pub fn label_values() -> Vec<LabelValues> {
    use crate::config::CrmAdapterKind;
    use crate::domain::Source;
    use crate::http::error::{Refusal, SourceRefusal};
    use crate::http::events::IngestOutcome;
    use crate::metrics as m;
    use crate::pipeline::{LookupReason, Outcome};
    use crate::queue::JobOutcome;

    let sources: Vec<&str> = Source::ALL.into_iter().map(Source::as_str).collect();
    let outcomes = Outcome::ALL
        .into_iter()
        .map(Outcome::as_str)
        .chain(JobOutcome::QUEUE_LABELS)
        .chain(IngestOutcome::ALL.into_iter().map(IngestOutcome::as_str))
        .collect();
    let set = |metric, label, values| LabelValues {
        metric,
        label,
        values,
    };
    let crm_sources: Vec<&str> = CrmAdapterKind::ALL
        .into_iter()
        .map(CrmAdapterKind::as_str)
        .collect();
    let upstream_sources: Vec<&str> = std::iter::once("genesys")
        .chain(crm_sources.iter().copied())
        .collect();
    vec![
        set(m::EVENTS, "source", sources.clone()),
        set(m::EVENTS, "outcome", outcomes),
        set(m::PIPELINE_DURATION, "source", sources.clone()),
        set(m::DEDUP_HITS, "source", sources),
        set(
            m::LOOKUP_RESULTS,
            "result",
            std::iter::once(LookupReason::FOUND)
                .chain(LookupReason::ALL.into_iter().map(LookupReason::as_str))
                .collect(),
        ),
        set(
            m::AUTH_FAILURES,
            "endpoint",
            AuthGroup::ALL.into_iter().map(AuthGroup::as_str).collect(),
        ),
        set(
            m::AUTH_FAILURES,
            "reason",
            Refusal::ALL.into_iter().map(Refusal::as_str).collect(),
        ),
        set(
            m::HTTP_REFUSALS,
            "group",
            AuthGroup::ALL.into_iter().map(AuthGroup::as_str).collect(),
        ),
        set(
            m::HTTP_REFUSALS,
            "reason",
            SourceRefusal::ALL
                .into_iter()
                .map(SourceRefusal::as_str)
                .collect(),
        ),
        set(m::TLS_RELOADS, "result", vec!["ok", "error"]),
        set(
            m::IP_RANGE_REFRESHES,
            "result",
            vec!["ok", "error", "empty"],
        ),
        set(m::UPSTREAM_REQUESTS, "source", upstream_sources.clone()),
        set(m::UPSTREAM_DURATION, "source", upstream_sources.clone()),
        set(m::UPSTREAM_RATE_LIMITED, "source", upstream_sources.clone()),
        set(m::UPSTREAM_RETRIES, "source", upstream_sources.clone()),
        set(m::LIMITER_WAITS, "source", upstream_sources.clone()),
        set(m::LIMITER_WAIT_SECONDS, "source", upstream_sources),
        set(m::CACHE_LOOKUPS, "source", crm_sources.clone()),
        set(m::SHARED_CACHE_LOOKUPS, "source", crm_sources.clone()),
        set(
            m::SHARED_CACHE_LOOKUPS,
            "result",
            crate::crm::shared::cache::SharedUse::ALL
                .into_iter()
                .map(|u| u.as_str())
                .collect(),
        ),
        set(m::SHARED_BUDGET_REFUSALS, "source", crm_sources.clone()),
        set(
            m::SHARED_BUDGET_REFUSALS,
            "reason",
            crate::crm::shared::budget::REFUSAL_REASONS.to_vec(),
        ),
        set(m::BREAKER_STATE, "source", crm_sources.clone()),
        set(m::CRM_TOKEN_FETCHES, "source", crm_sources.clone()),
        set(m::CANDIDATES_DROPPED, "source", crm_sources),
        set(
            m::CANDIDATES_DROPPED,
            "reason",
            crate::crm::grade::DROP_REASONS.to_vec(),
        ),
    ]
}

/// Completes on Ctrl-C or SIGTERM (what `docker stop` and Kubernetes send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
