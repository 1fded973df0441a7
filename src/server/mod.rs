//! The listener: plain HTTP, or native TLS (`tls`) with certificates reloaded from disk, both
//! served by `axum::serve` (HTTP/1.1 and HTTP/2, graceful shutdown). Every request carries its
//! connection's [`Connection`] (peer address, verified client certificate) as
//! `ConnectInfo<Connection>`, which the HTTP edge reads for the client address, the allow-lists
//! and the client-certificate checks.
//!
//! - `tls`: the rustls configuration, the certificate pair and its reloading;
//! - `listener`: the two `axum::serve::Listener`s (plain and TLS; TLS handshakes run in tasks of
//!   their own, so a slow client never holds up the accept loop).

mod listener;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::ServerSettings;
use listener::{PlainListener, TlsListener};
pub use tls::{CertificatePair, TlsError};

/// What attrsync knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The TCP peer: the client itself, or the nearest proxy.
    pub peer: SocketAddr,
    /// The certificate the client presented, verified against `server.tls.client_ca_path`.
    pub client_cert: Option<Arc<ClientCertificate>>,
}

/// The names a verified client certificate carries: its subject common names and its DNS
/// subject alternative names, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    names: Vec<String>,
}

impl ClientCertificate {
    /// Reads the names of a DER certificate; `None` if it does not parse (it verified, so it
    /// parses, but nothing here panics on it).
    pub fn from_der(der: &[u8]) -> Option<Self> {
        use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
        use x509_cert::der::Decode as _;
        use x509_cert::ext::pkix::{name::GeneralName, SubjectAltName};

        let cert = x509_cert::Certificate::from_der(der).ok()?;
        let tbs = &cert.tbs_certificate;
        let mut names = Vec::new();
        for rdn in &tbs.subject.0 {
            for atv in rdn.0.iter() {
                if atv.oid != x509_cert::der::oid::db::rfc4519::CN {
                    continue;
                }
                let text = atv
                    .value
                    .decode_as::<Utf8StringRef<'_>>()
                    .map(|s| s.as_str().to_owned())
                    .or_else(|_| {
                        atv.value
                            .decode_as::<PrintableStringRef<'_>>()
                            .map(|s| s.as_str().to_owned())
                    })
                    .or_else(|_| {
                        atv.value
                            .decode_as::<Ia5StringRef<'_>>()
                            .map(|s| s.as_str().to_owned())
                    });
                if let Ok(text) = text {
                    names.push(text.to_ascii_lowercase());
                }
            }
        }
        if let Ok(Some((_, SubjectAltName(general)))) = tbs.get::<SubjectAltName>() {
            for name in general {
                if let GeneralName::DnsName(dns) = name {
                    names.push(dns.as_str().to_ascii_lowercase());
                }
            }
        }
        Some(Self { names })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether any of the certificate's names is one of `allowed` (case-insensitive).
    pub fn is_named_one_of(&self, allowed: &[String]) -> bool {
        allowed.iter().any(|a| {
            let a = a.trim();
            self.names.iter().any(|n| n.eq_ignore_ascii_case(a))
        })
    }
}

/// The bound listener, plain or TLS, and the task that reloads the certificate.
pub struct Server {
    listener: Listening,
    addr: SocketAddr,
    reloader: Option<JoinHandle<()>>,
}

enum Listening {
    Plain(PlainListener),
    Tls(TlsListener),
}

impl Server {
    /// Binds `server.host:server.port` (port 0 picks a free one); with `server.tls` set, loads
    /// the certificate pair (and the client CA) first: a pair that does not load stops start-up.
    pub async fn bind(settings: &ServerSettings) -> anyhow::Result<Server> {
        let tls = if settings.tls.enabled() {
            let pair = Arc::new(CertificatePair::load(&settings.tls).await?);
            let config = tls::server_config(&settings.tls, pair.clone())
                .await
                .context("server.tls")?;
            Some((pair, config))
        } else {
            None
        };
        let address = settings.address();
        let tcp = TcpListener::bind(&address)
            .await
            .with_context(|| format!("binding {address} (server.host, server.port)"))?;
        let addr = tcp.local_addr()?;
        let (listener, reloader) = match tls {
            None => (Listening::Plain(PlainListener::new(tcp)), None),
            Some((pair, config)) => {
                let reloader = settings
                    .tls
                    .reload_interval()
                    .map(|every| tokio::spawn(pair.clone().watch(every)));
                (
                    Listening::Tls(TlsListener::new(tcp, addr, config)),
                    reloader,
                )
            }
        };
        Ok(Server {
            listener,
            addr,
            reloader,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https` with native TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        match self.listener {
            Listening::Plain(_) => "http",
            Listening::Tls(_) => "https",
        }
    }

    /// Serves `router` until `shutdown` completes; then stops accepting, lets open connections
    /// finish (HTTP/2 gets a GOAWAY) and stops reloading the certificate.
    pub async fn serve(
        self,
        router: axum::Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let make = router.into_make_service_with_connect_info::<Connection>();
        let served = match self.listener {
            Listening::Plain(l) => axum::serve(l, make).with_graceful_shutdown(shutdown).await,
            Listening::Tls(l) => axum::serve(l, make).with_graceful_shutdown(shutdown).await,
        };
        if let Some(reloader) = self.reloader {
            reloader.abort();
        }
        served
    }
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, PlainListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, PlainListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, TlsListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(params: rcgen::CertificateParams) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_client_certificate_is_known_by_its_common_name_and_dns_names() {
        let mut params = rcgen::CertificateParams::new(vec!["Alt.Example.COM".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "dataactions.prod.us-east-1.mypurecloud.com",
        );
        let cert = ClientCertificate::from_der(&certificate(params)).unwrap();
        assert_eq!(
            cert.names(),
            [
                "dataactions.prod.us-east-1.mypurecloud.com",
                "alt.example.com"
            ]
        );
        assert!(cert.is_named_one_of(&["ALT.example.com".to_owned()]));
        assert!(cert.is_named_one_of(&[
            "other".to_owned(),
            " dataactions.prod.us-east-1.mypurecloud.com ".to_owned()
        ]));
        assert!(!cert.is_named_one_of(&["prod.us-east-1.mypurecloud.com".to_owned()]));
        assert!(!cert.is_named_one_of(&[]));
    }

    #[test]
    fn bytes_that_are_not_a_certificate_have_no_names() {
        assert_eq!(ClientCertificate::from_der(b"not a certificate"), None);
    }
}
