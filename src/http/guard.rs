//! Who may call an endpoint group, checked before its credentials and before its body is read:
//! the client address against `auth.<group>.allow_from` (and, with `allow_genesys_ranges`,
//! Genesys's published data-action ranges), then the connection's client certificate against
//! `require_client_cert` / `client_cert_subjects`. A refusal is a 403 with the one `ErrorBody`,
//! logged and counted in `attrsync_http_refusals_total{group,reason}`.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use super::client::ClientAddr;
use super::error::{ApiError, SourceRefusal};
use crate::config::{AuthGroup, EndpointAuth};
use crate::genesys::ranges::GenesysRanges;
use crate::metrics;
use crate::server::{ClientCertificate, Connection};

/// One endpoint group's source checks, shared by its routes' middleware.
pub struct SourceGuard {
    group: AuthGroup,
    allow_from: Vec<IpNet>,
    /// Set when the group follows Genesys's published ranges.
    ranges: Option<GenesysRanges>,
    require_client_cert: bool,
    subjects: Vec<String>,
}

impl SourceGuard {
    /// The guard `settings` describe (one that lets everyone through when the group checks
    /// nothing of the kind); `ranges` is the shared list, for a group with
    /// `allow_genesys_ranges`.
    pub fn new(
        group: AuthGroup,
        settings: &EndpointAuth,
        ranges: Option<&GenesysRanges>,
    ) -> anyhow::Result<Arc<Self>> {
        let ranges = if settings.allow_genesys_ranges {
            Some(ranges.cloned().ok_or_else(|| {
                anyhow::anyhow!(
                    "auth.{}.allow_genesys_ranges is set but no Genesys range list was started",
                    group.as_str()
                )
            })?)
        } else {
            None
        };
        Ok(Arc::new(Self {
            group,
            allow_from: settings.allow_from.clone(),
            ranges,
            require_client_cert: settings.require_client_cert,
            subjects: settings.client_cert_subjects.clone(),
        }))
    }

    /// Whether the group checks anything (if not, its routes go without this middleware).
    pub fn checks_anything(&self) -> bool {
        !self.allow_from.is_empty() || self.ranges.is_some() || self.require_client_cert
    }

    /// The decision for a client at `client` (unknown: `None`) that presented `cert`.
    pub fn check(
        &self,
        client: Option<IpAddr>,
        cert: Option<&ClientCertificate>,
    ) -> Result<(), SourceRefusal> {
        self.check_address(client)?;
        if self.require_client_cert {
            let cert = cert.ok_or(SourceRefusal::ClientCertificateRequired)?;
            if !self.subjects.is_empty() && !cert.is_named_one_of(&self.subjects) {
                return Err(SourceRefusal::ClientCertificateNotAllowed);
            }
        }
        Ok(())
    }

    fn check_address(&self, client: Option<IpAddr>) -> Result<(), SourceRefusal> {
        let restricted = !self.allow_from.is_empty() || self.ranges.is_some();
        if !restricted {
            return Ok(());
        }
        let client = client.ok_or(SourceRefusal::ForbiddenSource)?;
        if crate::config::contains(&self.allow_from, client) {
            return Ok(());
        }
        match self.ranges.as_ref().map(|r| r.contains(client)) {
            Some(Some(true)) => Ok(()),
            Some(None) => Err(SourceRefusal::RangesUnavailable),
            Some(Some(false)) | None => Err(SourceRefusal::ForbiddenSource),
        }
    }
}

/// Middleware for a route group: refuses with 403 before authentication sees anything.
pub async fn require(State(guard): State<Arc<SourceGuard>>, req: Request, next: Next) -> Response {
    let client = req.extensions().get::<ClientAddr>().map(|c| c.0);
    let cert = req
        .extensions()
        .get::<ConnectInfo<Connection>>()
        .and_then(|ConnectInfo(c)| c.client_cert.clone());
    match guard.check(client, cert.as_deref()) {
        Ok(()) => next.run(req).await,
        Err(refusal) => {
            let group = guard.group.as_str();
            ::metrics::counter!(metrics::HTTP_REFUSALS, "group" => group, "reason" => refusal.as_str())
                .increment(1);
            tracing::warn!(
                endpoint = group,
                reason = refusal.as_str(),
                "request refused before authentication"
            );
            ApiError::Forbidden(refusal).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthMode;

    fn settings(allow_from: &[&str]) -> EndpointAuth {
        EndpointAuth {
            mode: AuthMode::None,
            secrets: Vec::new(),
            api_key_header: "X-API-Key".into(),
            basic_username: "attrsync".into(),
            allow_from: allow_from
                .iter()
                .map(|n| crate::config::parse_cidr(n).unwrap())
                .collect(),
            allow_genesys_ranges: false,
            require_client_cert: false,
            client_cert_subjects: Vec::new(),
        }
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn guard(settings: &EndpointAuth) -> Arc<SourceGuard> {
        SourceGuard::new(AuthGroup::Cti, settings, None).unwrap()
    }

    #[test]
    fn a_group_that_checks_nothing_lets_everyone_through() {
        let g = guard(&settings(&[]));
        assert!(!g.checks_anything());
        assert!(guard(&settings(&["::1"])).checks_anything());
        assert_eq!(g.check(None, None), Ok(()));
        assert_eq!(g.check(ip("198.51.100.1"), None), Ok(()));
    }

    #[test]
    fn only_addresses_in_the_allow_list_pass_ipv4_and_ipv6() {
        let g = guard(&settings(&["192.0.2.0/24", "2001:db8::/32"]));
        assert_eq!(g.check(ip("192.0.2.7"), None), Ok(()));
        assert_eq!(g.check(ip("2001:db8::7"), None), Ok(()));
        assert_eq!(g.check(ip("::ffff:192.0.2.7"), None), Ok(()));
        assert_eq!(
            g.check(ip("198.51.100.1"), None),
            Err(SourceRefusal::ForbiddenSource)
        );
        assert_eq!(
            g.check(ip("2001:db9::1"), None),
            Err(SourceRefusal::ForbiddenSource)
        );
        assert_eq!(g.check(None, None), Err(SourceRefusal::ForbiddenSource));
    }

    #[test]
    fn following_genesys_ranges_refuses_everyone_else_until_they_are_loaded() {
        let ranges = GenesysRanges::new(vec!["data-actions".to_owned()], Vec::new());
        let mut s = settings(&["10.0.0.0/8"]);
        s.allow_genesys_ranges = true;
        assert!(SourceGuard::new(AuthGroup::Lookup, &s, None).is_err());
        let g = SourceGuard::new(AuthGroup::Lookup, &s, Some(&ranges)).unwrap();
        assert_eq!(
            g.check(ip("10.1.1.1"), None),
            Ok(()),
            "allow_from still counts"
        );
        assert_eq!(
            g.check(ip("192.0.2.7"), None),
            Err(SourceRefusal::RangesUnavailable)
        );
    }

    #[test]
    fn a_required_certificate_must_be_present_and_named_as_allowed() {
        let mut s = settings(&[]);
        s.require_client_cert = true;
        let any = guard(&s);
        s.client_cert_subjects = vec!["cti.example.com".to_owned()];
        let named = guard(&s);
        let key = rcgen::KeyPair::generate().unwrap();
        let make = |name: &str| {
            let der = rcgen::CertificateParams::new(vec![name.to_owned()])
                .unwrap()
                .self_signed(&key)
                .unwrap()
                .der()
                .to_vec();
            ClientCertificate::from_der(&der).unwrap()
        };
        let (good, other) = (make("cti.example.com"), make("other.example.com"));
        assert_eq!(
            any.check(None, None),
            Err(SourceRefusal::ClientCertificateRequired)
        );
        assert_eq!(any.check(None, Some(&other)), Ok(()));
        assert_eq!(named.check(None, Some(&good)), Ok(()));
        assert_eq!(
            named.check(None, Some(&other)),
            Err(SourceRefusal::ClientCertificateNotAllowed)
        );
    }
}
