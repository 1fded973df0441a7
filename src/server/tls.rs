//! Native TLS: the rustls server configuration (TLS 1.3 and 1.2 only, ALPN `h2` then
//! `http/1.1`, optional client certificates) and [`CertificatePair`], the certificate and key
//! from `server.tls.cert_path` / `key_path`, which rustls asks for on every handshake and which
//! a watcher replaces when the files change.
//!
//! The watcher compares the files' content (a SHA-256 of both), not their modification times:
//! a Kubernetes secret update swaps a symlink, and `cp -p` or an unpacked archive keep old
//! times, while the content always tells. A changed pair is parsed and checked (the key must
//! match the leaf) before it replaces the old one; until then, and if it fails, handshakes get
//! the old pair. Open connections never change certificate: TLS does not renegotiate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use sha2::{Digest as _, Sha256};

use crate::config::TlsSettings;
use crate::metrics;

/// Why a certificate pair (or the client CA) could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: String },
    #[error("{path}: not a PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}")]
    BadKey { path: String, reason: String },
    #[error("the private key does not fit the certificate chain: {0}")]
    Mismatch(String),
    #[error("{0}")]
    Config(String),
}

impl crate::retry::Retryable for TlsError {
    /// A file being written may read well a moment later; the watcher tries again when the
    /// content changes, never the same content twice.
    fn is_retryable(&self) -> bool {
        matches!(self, TlsError::Read { .. })
    }
}

fn read_error(path: &Path, e: std::io::Error) -> TlsError {
    TlsError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// The ring provider (the one reqwest builds too), restricted to what `ServerConfig` needs.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate pair in use, swapped atomically when the files change.
#[derive(Debug)]
pub struct CertificatePair {
    current: ArcSwap<CertifiedKey>,
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    /// The digest of the content last looked at (loaded or refused), so a refused pair is
    /// reported once, not at every poll.
    seen: Mutex<[u8; 32]>,
}

impl CertificatePair {
    /// Loads the pair named by `settings`: a failure stops start-up.
    pub async fn load(settings: &TlsSettings) -> Result<Self, TlsError> {
        let provider = provider();
        let (cert, key) = read_pair(&settings.cert_path, &settings.key_path).await?;
        let certified = parse_pair(
            &settings.cert_path,
            &cert,
            &settings.key_path,
            &key,
            &provider,
        )?;
        log_loaded("TLS certificate loaded", &certified);
        Ok(Self {
            current: ArcSwap::from_pointee(certified),
            cert_path: settings.cert_path.clone(),
            key_path: settings.key_path.clone(),
            provider,
            seen: Mutex::new(digest(&cert, &key)),
        })
    }

    /// The leaf certificate served to new connections now.
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.current.load().cert.first().cloned()
    }

    /// Looks at the files once: `Ok(true)` if a new pair was loaded, `Ok(false)` if the content
    /// did not change (or is the one already refused), `Err` if it changed and was refused (the
    /// old pair stays). Logs and counts the outcome of every real attempt.
    pub async fn reload(&self) -> Result<bool, TlsError> {
        let (cert, key) = match read_pair(&self.cert_path, &self.key_path).await {
            Ok(pair) => pair,
            Err(e) => {
                // The same unreadable state is reported once.
                let marker = Sha256::digest(format!("unreadable: {e}").as_bytes()).into();
                return self.refused(marker, e);
            }
        };
        let fingerprint = digest(&cert, &key);
        if *lock(&self.seen) == fingerprint {
            return Ok(false);
        }
        match parse_pair(&self.cert_path, &cert, &self.key_path, &key, &self.provider) {
            Ok(certified) => {
                *lock(&self.seen) = fingerprint;
                log_loaded("TLS certificate reloaded", &certified);
                self.current.store(Arc::new(certified));
                ::metrics::counter!(metrics::TLS_RELOADS, "result" => "ok").increment(1);
                Ok(true)
            }
            Err(e) => self.refused(fingerprint, e),
        }
    }

    fn refused(&self, fingerprint: [u8; 32], error: TlsError) -> Result<bool, TlsError> {
        let mut seen = lock(&self.seen);
        if *seen == fingerprint {
            return Ok(false);
        }
        *seen = fingerprint;
        drop(seen);
        tracing::error!(error = %error, "TLS certificate files changed but do not load; keeping the certificate in use");
        ::metrics::counter!(metrics::TLS_RELOADS, "result" => "error").increment(1);
        Err(error)
    }

    /// Checks the files every `every`, for ever (the server aborts the task at shutdown).
    pub async fn watch(self: Arc<Self>, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            // The outcome is logged and counted by `reload`.
            let _ = self.reload().await;
        }
    }
}

impl ResolvesServerCert for CertificatePair {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Every critical section here is one assignment, so a poisoned lock holds a whole value.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn digest(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update((cert.len() as u64).to_be_bytes());
    hash.update(cert);
    hash.update(key);
    hash.finalize().into()
}

async fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let cert_bytes = tokio::fs::read(cert)
        .await
        .map_err(|e| read_error(cert, e))?;
    let key_bytes = tokio::fs::read(key).await.map_err(|e| read_error(key, e))?;
    Ok((cert_bytes, key_bytes))
}

/// Parses a PEM chain and key and checks that the key belongs to the leaf.
fn parse_pair(
    cert_path: &Path,
    cert: &[u8],
    key_path: &Path,
    key: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(cert_path, cert)?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::BadKey {
        path: key_path.display().to_string(),
        reason: e.to_string(),
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    // `from_der` lets a key whose public half it cannot derive through; insist.
    certified
        .keys_match()
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(certified)
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(chain)
}

/// Logs the leaf's subject and expiry, so a renewal can be seen in the logs.
fn log_loaded(message: &'static str, certified: &CertifiedKey) {
    use x509_cert::der::Decode as _;
    let leaf = certified
        .cert
        .first()
        .and_then(|der| x509_cert::Certificate::from_der(der).ok());
    match leaf {
        Some(leaf) => tracing::info!(
            subject = %leaf.tbs_certificate.subject,
            not_after = %leaf.tbs_certificate.validity.not_after,
            chain = certified.cert.len(),
            "{message}"
        ),
        None => tracing::info!(chain = certified.cert.len(), "{message}"),
    }
}

/// The rustls configuration: TLS 1.3 and 1.2, ALPN h2 and http/1.1, the reloading pair, and
/// client certificates verified against `client_ca_path` when it is set (asked for, never
/// required at the TLS layer: each endpoint group decides).
pub(super) async fn server_config(
    settings: &TlsSettings,
    pair: Arc<CertificatePair>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = pair.provider.clone();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if settings.client_certificates() {
        let path = &settings.client_ca_path;
        let pem = tokio::fs::read(path)
            .await
            .map_err(|e| read_error(path, e))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates(path, &pem)? {
            roots.add(cert).map_err(|e| {
                TlsError::Config(format!("{}: not a CA certificate: {e}", path.display()))
            })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Config(format!("{}: {e}", path.display())))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_cert_resolver(pair);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn settings(dir: &Path) -> TlsSettings {
        TlsSettings {
            cert_path: dir.join("cert.pem"),
            key_path: dir.join("key.pem"),
            client_ca_path: PathBuf::new(),
            reload_interval_secs: 1,
        }
    }

    fn write(dir: &Path, (cert, key): &(String, String)) {
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
    }

    #[tokio::test]
    async fn a_changed_pair_replaces_the_old_one_and_unchanged_files_are_not_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &pem_pair("a.example"));
        let pair = CertificatePair::load(&settings(dir.path())).await.unwrap();
        let first = pair.leaf().unwrap();
        assert!(!pair.reload().await.unwrap(), "nothing changed");
        write(dir.path(), &pem_pair("b.example"));
        assert!(pair.reload().await.unwrap());
        assert_ne!(pair.leaf().unwrap(), first);
    }

    #[tokio::test]
    async fn a_key_of_another_certificate_is_refused_once_and_the_old_pair_kept() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &pem_pair("a.example"));
        let pair = CertificatePair::load(&settings(dir.path())).await.unwrap();
        let first = pair.leaf().unwrap();
        let (cert, _) = pem_pair("b.example");
        let (_, other_key) = pem_pair("c.example");
        write(dir.path(), &(cert, other_key));
        let err = pair.reload().await.unwrap_err();
        assert!(matches!(err, TlsError::Mismatch(_)), "{err}");
        assert_eq!(pair.leaf().unwrap(), first);
        assert!(
            !pair.reload().await.unwrap(),
            "the same refused content is not retried"
        );
    }

    #[tokio::test]
    async fn files_that_are_not_pem_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &pem_pair("a.example"));
        let pair = CertificatePair::load(&settings(dir.path())).await.unwrap();
        std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
        let err = pair.reload().await.unwrap_err().to_string();
        assert!(err.contains("cert.pem"), "{err}");
        std::fs::remove_file(dir.path().join("key.pem")).unwrap();
        let err = pair.reload().await.unwrap_err().to_string();
        assert!(err.contains("key.pem"), "{err}");
        let missing = CertificatePair::load(&settings(dir.path()))
            .await
            .unwrap_err();
        assert!(matches!(missing, TlsError::Read { .. }), "{missing}");
    }
}
