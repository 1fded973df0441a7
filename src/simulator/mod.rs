//! In-process simulators of the two external systems attrsync talks to: Genesys Cloud (login host
//! and Platform API) and a REST CRM.
//!
//! They are part of the product, not test scaffolding. `attrsync simulate-genesys`, the
//! integration tests, the demo and the benchmarks all run against this one implementation, so
//! whatever we learn about the real APIs (the normalized 429, the 202-with-empty-body PATCH,
//! per-token rate limits, CRMs matching phone numbers by exact notation) is encoded once and
//! exercised everywhere. Facts and their sources are in `shared/reference/genesys-api.md`.
//!
//! Both simulators are stateful and expose three equivalent control surfaces: the HTTP API a
//! client sees, a `/sim/...` admin API (for the CLI and the demo) and a Rust handle (for tests
//! and benchmarks).

pub mod crm;
pub mod dynamics;
pub mod freshdesk;
pub mod genesys;
pub mod hubspot;
pub mod salesforce;
pub mod servicenow;
pub mod traffic;
pub mod zendesk;

pub use crm::{CrmSim, CrmSimConfig};
pub use dynamics::{DynamicsSim, DynamicsSimConfig};
pub use freshdesk::{FreshdeskSim, FreshdeskSimConfig};
pub use genesys::{
    eventbridge_customer_start, eventbridge_envelope, CreatedConversation, Direction, EmptyPatch,
    EndedPatch, Fault, GenesysSim, GenesysSimConfig, MediaType, NewConversation, Op,
    PublishedRange, RemotePurpose, SimStats, TokenErrors, Unsettled,
};
pub use hubspot::{HubSpotSim, HubSpotSimConfig};
pub use salesforce::{SalesforceSim, SalesforceSimConfig};
pub use servicenow::{ServiceNowSim, ServiceNowSimConfig};
pub use traffic::Traffic;
pub use zendesk::{ZendeskSim, ZendeskSimConfig};

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard};

use axum::http::{header, HeaderMap};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Locks `mutex`, recovering from poisoning.
///
/// Every critical section in the simulators is a plain map/queue update that cannot leave the
/// data half-written, so a panic elsewhere (typically a failed assertion in a test thread) must
/// not turn every later request into a panic as well.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// because Genesys itself hands out `token_type: "bearer"` in lower case.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A router served on a spawned task, stoppable through [`ServerHandle::shutdown`].
#[derive(Debug)]
pub(crate) struct ServerHandle {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
}

impl ServerHandle {
    /// Serves `router` on `listener` in a background task.
    ///
    /// Dropping the handle deliberately does not stop the server: callers such as
    /// `let url = GenesysSim::start(..).await?.base_url();` expect it to keep running until
    /// an explicit shutdown or the end of the process.
    pub(crate) fn spawn(
        name: &'static str,
        router: Router,
        listener: TcpListener,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (shutdown, mut stop) = watch::channel(false);
        tokio::spawn(async move {
            let signal = async move {
                if stop.wait_for(|stopped| *stopped).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::error!(simulator = name, %error, "simulator server stopped");
            }
        });
        tracing::debug!(simulator = name, %addr, "simulator listening");
        Ok(Self { addr, shutdown })
    }

    /// `http://host:port` a client on this machine can reach; a wildcard bind address is
    /// replaced by loopback because `0.0.0.0` is not a connectable destination everywhere.
    pub(crate) fn base_url(&self) -> String {
        let ip = match self.addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(a) if a.ip().is_unspecified() => Ipv6Addr::LOCALHOST.into(),
            other => other.ip(),
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    pub(crate) fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_authorization(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn bearer_scheme_is_matched_case_insensitively() {
        assert_eq!(bearer_token(&with_authorization("bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&with_authorization("BEARER abc")), Some("abc"));
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_not_bearer_tokens() {
        assert_eq!(bearer_token(&with_authorization("Basic abc")), None);
        assert_eq!(bearer_token(&with_authorization("Bearer  ")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
