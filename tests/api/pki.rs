//! Certificates made at test time (rcgen): a CA, server certificates for 127.0.0.1 and ::1,
//! client certificates, written as PEM files where attrsync's settings can name them, and the
//! clients that trust them (reqwest, and a raw rustls + hyper connection that can be kept open).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use attrsync::config::Settings;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// A certificate authority that signs server and client certificates.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub pem: String,
}

/// A certificate and its key, as PEM.
#[derive(Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
    pub der: CertificateDer<'static>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let pem = params.self_signed(&key).expect("the CA certificate").pem();
        Ca { params, key, pem }
    }

    fn issue(&self, names: &[&str], common_name: &str, usage: ExtendedKeyUsagePurpose) -> Pair {
        let key = KeyPair::generate().expect("a key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params
            .signed_by(&key, &issuer)
            .expect("a signed certificate");
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// A server certificate for the loopback addresses.
    pub fn server(&self, common_name: &str) -> Pair {
        self.issue(
            &["127.0.0.1", "::1", "localhost"],
            common_name,
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate whose subject CN is `common_name`.
    pub fn client(&self, common_name: &str) -> Pair {
        self.issue(&[], common_name, ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// Writes `pair` as `cert.pem` / `key.pem` in `dir`, atomically each (a rename), as certbot's
/// symlink switch or a Kubernetes secret update would make them appear.
pub fn install(dir: &Path, pair: &Pair) {
    for (name, text) in [("key.pem", &pair.key), ("cert.pem", &pair.cert)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write a PEM file");
        std::fs::rename(&tmp, dir.join(name)).expect("move it into place");
    }
}

/// Points `settings` at `dir`'s `cert.pem` / `key.pem`, checked every second.
pub fn use_tls(settings: &mut Settings, dir: &Path) {
    settings.server.tls.cert_path = dir.join("cert.pem");
    settings.server.tls.key_path = dir.join("key.pem");
    settings.server.tls.reload_interval_secs = 1;
}

/// Writes the client CA and asks for client certificates verified against it.
pub fn use_client_ca(settings: &mut Settings, dir: &Path, ca: &Ca) -> PathBuf {
    let path = dir.join("client-ca.pem");
    std::fs::write(&path, &ca.pem).expect("write the client CA");
    settings.server.tls.client_ca_path = path.clone();
    path
}

/// A reqwest client that trusts only `ca`, presenting `identity` if given.
pub fn https_client(ca: &Ca, identity: Option<&Pair>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).expect("CA PEM"));
    if let Some(pair) = identity {
        let pem = format!("{}{}", pair.cert, pair.key);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    builder.build().expect("an HTTPS client")
}

fn roots(ca: &Ca) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("a root");
    }
    roots
}

use rustls::pki_types::pem::PemObject as _;

/// A rustls client configuration trusting `ca`, for `versions`.
pub fn tls_config(
    ca: &Ca,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots(ca))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// One TLS connection, kept open: its server certificate and an HTTP/1.1 sender on it.
pub struct OpenConnection {
    pub server_cert: CertificateDer<'static>,
    pub protocol: Option<rustls::ProtocolVersion>,
    sender: hyper::client::conn::http1::SendRequest<axum::body::Body>,
}

impl OpenConnection {
    pub async fn open(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        let (_, session) = tls.get_ref();
        let server_cert = session
            .peer_certificates()
            .and_then(|c| c.first().cloned())
            .expect("the server sent a certificate");
        let protocol = session.protocol_version();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(Self {
            server_cert,
            protocol,
            sender,
        })
    }

    /// `GET path` on this connection; the status.
    pub async fn get(&mut self, path: &str) -> u16 {
        self.sender
            .ready()
            .await
            .expect("the connection is still open");
        let request = axum::http::Request::get(path)
            .header("host", "127.0.0.1")
            .body(axum::body::Body::empty())
            .expect("a request");
        let response = self
            .sender
            .send_request(request)
            .await
            .expect("an answer on the open connection");
        response.status().as_u16()
    }
}
