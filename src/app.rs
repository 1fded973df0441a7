//! Wiring: `AppState`, `App::build(settings)` (used by `main` and by the tests), running until a
//! shutdown signal, and the signal itself.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::PrometheusHandle;
use phonenumber::country;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::crm::{self, cache::CachedCrm};
use crate::genesys::{GenesysClient, GenesysConfig};
use crate::pipeline::Pipeline;
use crate::queue::{self, JobQueue, WorkerPool};
use crate::retry::RetryPolicy;
use crate::store::JobStore;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pipeline: Arc<Pipeline>,
    pub queue: JobQueue,
    pub metrics: PrometheusHandle,
    pub region: country::Id,
}

pub struct App {
    listener: TcpListener,
    addr: SocketAddr,
    router: axum::Router,
    workers: WorkerPool,
    grace: Duration,
    state: AppState,
}

impl App {
    /// Builds every dependency from `settings` and binds the listener (port 0 picks a free one).
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let metrics = crate::metrics::handle();
        // The recorder leaves upkeep to us: without it histogram samples pile up between scrapes.
        let upkeep = metrics.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        let region = crate::phone::parse_region(&settings.phone.default_region)
            .map_err(|e| anyhow::anyhow!("phone.default_region: {e}"))?;
        let g = &settings.genesys;
        let genesys = GenesysClient::new(GenesysConfig {
            api_base: settings.genesys_api_url()?,
            login_base: settings.genesys_login_url()?,
            client_id: g.client_id.clone(),
            client_secret: g.client_secret.clone(),
            timeout: g.timeout(),
            connect_timeout: g.connect_timeout(),
            token_refresh_margin: Duration::from_secs(g.token_refresh_margin_secs),
            retry: RetryPolicy {
                max_retries: g.max_retries,
                base_delay: Duration::from_millis(g.retry_base_ms),
                max_delay: Duration::from_millis(g.retry_max_ms),
                max_retry_after: Duration::from_secs(g.max_retry_after_secs),
            },
            budget: crate::budget::RateBudget::per_minute(
                "genesys",
                g.rate_limit_per_minute,
                g.rate_limit_burst,
            ),
        })
        .context("building the Genesys client")?;
        let adapter = crm::from_settings(&settings).context("building the CRM adapter")?;
        let crm = CachedCrm::new(
            adapter,
            &settings.cache,
            settings.crm.key_order.clone(),
            crate::crm::breaker::Breaker::new(
                settings.crm.breaker_failures,
                Duration::from_millis(settings.crm.breaker_cooldown_ms),
            ),
        );
        let pipeline = Arc::new(Pipeline::new(
            genesys,
            crm,
            settings.merge_policy(),
            settings.genesys.participant_purposes.clone(),
            region,
        ));
        let store = Arc::new(
            JobStore::connect(&settings.queue)
                .await
                .context("opening the queue store")?,
        );
        let queue = JobQueue::new(store, &settings.queue);
        let workers = queue::start(pipeline.clone(), queue.clone(), &settings.queue, region);

        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("binding {address} (server.host, server.port)"))?;
        let addr = listener.local_addr()?;
        let grace = Duration::from_secs(settings.server.shutdown_grace_secs);
        let state = AppState {
            settings: Arc::new(settings),
            pipeline,
            queue,
            metrics,
            region,
        };
        let router = crate::routes::router(state.clone())?;
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
