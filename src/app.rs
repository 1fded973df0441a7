//! The composition root: `App::build(settings)` (used by `main`, the demo and the tests) wires
//! the components, each built from its own settings; `run_until_stopped` serves until a
//! shutdown signal, then drains the queue; `shutdown_signal` is that signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::crm::{self, cache::CachedCrm};
use crate::genesys::GenesysClient;
use crate::http::AppState;
use crate::metrics::LabelValues;
use crate::pipeline::Pipeline;
use crate::queue::{JobQueue, WorkerPool};

pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    router: axum::Router,
    workers: WorkerPool,
    grace: Duration,
    state: AppState,
}

impl App {
    /// Builds every component from `settings` and binds the listener (port 0 picks a free one).
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let metrics = crate::metrics::install(&label_values());
        let genesys = GenesysClient::from_settings(&settings.genesys)
            .context("building the Genesys client")?;
        let adapter = crm::from_settings(&settings).context("building the CRM adapter")?;
        let crm = CachedCrm::from_settings(&settings.crm, &settings.cache, adapter);
        let pipeline = Arc::new(Pipeline::from_settings(
            &settings,
            genesys.clone(),
            crm.clone(),
        ));
        let queue = JobQueue::from_settings(&settings.queue).await?;
        let workers = WorkerPool::start(
            pipeline.clone(),
            queue.clone(),
            &settings.queue,
            settings.phone.default_region,
        );

        let address = settings.server.address();
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("binding {address} (server.host, server.port)"))?;
        let addr = listener.local_addr()?;
        let grace = settings.server.shutdown_grace();
        let state = AppState {
            settings: Arc::new(settings),
            pipeline,
            queue,
            genesys,
            crm,
            metrics,
        };
        let router = crate::http::router(state.clone())?;
        Ok(App {
            listener,
            addr,
            router,
            workers,
            grace,
            state,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
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
        tracing::info!(address = %self.addr, "attrsync listening");
        let queue = self.state.queue.clone();
        let stop_intake = async move {
            shutdown.await;
            tracing::info!(queued = queue.depth(), "shutdown requested; draining");
        };
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(stop_intake)
            .await
            .context("serving HTTP")?;
        self.workers.shutdown(self.grace).await;
        tracing::info!("attrsync stopped");
        Ok(())
    }
}

/// The closed label sets of attrsync's metrics, from the enums that own them: the HELP text on
/// `/metrics` lists them and a test holds the README to them.
pub fn label_values() -> Vec<LabelValues> {
    use crate::config::AuthGroup;
    use crate::domain::Source;
    use crate::http::error::Refusal;
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
