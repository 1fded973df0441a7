//! Native TLS against a real attrsync on 127.0.0.1: handshakes over HTTP/1.1 and HTTP/2 (ALPN),
//! TLS 1.2 and 1.3 only, certificates swapped on disk while a connection stays open, a bad
//! replacement refused, and client certificates (mTLS) per endpoint group. Every certificate is
//! made here, at test time.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{json_body, spawn_app_with, with_credentials, TestApp};
use crate::pki::{https_client, install, tls_config, use_client_ca, use_tls, Ca, OpenConnection};

const ADA_ANI: &str = "tel:+13175550125";

/// The name Genesys gives its data-action client certificate in us-east-1 (Resource Center,
/// "MTLS support for data actions").
const DATA_ACTIONS: &str = "dataactions.prod.us-east-1.mypurecloud.com";

/// Waits (at most 10 s) until a new connection is served `expected`.
async fn wait_for_certificate(
    app: &TestApp,
    ca: &Ca,
    expected: &rustls::pki_types::CertificateDer<'_>,
) {
    let addr = addr(app);
    for _ in 0..100 {
        let connection = OpenConnection::open(addr, tls_config(ca, rustls::ALL_VERSIONS))
            .await
            .expect("a TLS connection");
        if &connection.server_cert == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the new certificate was not served within 10 s");
}

/// The address an HTTPS app listens on.
fn addr(app: &TestApp) -> std::net::SocketAddr {
    app.address
        .trim_start_matches("https://")
        .parse()
        .expect("the app's address")
}

fn counter(app: &TestApp, name: &str, labels: &str) -> f64 {
    let text = app.state.metrics.render();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn attrsync_serves_https_over_http2_and_http1_with_the_configured_certificate() {
    let ca = Ca::new("attrsync test CA");
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &ca.server("attrsync.test"));
    let app = spawn_app_with(|s, _| use_tls(s, dir.path())).await;
    assert!(app.address.starts_with("https://"), "{}", app.address);

    let h2 = https_client(&ca, None)
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("an HTTPS answer");
    assert_eq!(h2.status(), 200);
    assert_eq!(
        h2.version(),
        reqwest::Version::HTTP_2,
        "h2 is offered by ALPN"
    );

    let h1 = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .build()
        .unwrap()
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("an HTTPS answer");
    assert_eq!(h1.status(), 200);
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);

    let plain = app
        .client
        .get(app.url("/healthz").replace("https://", "http://"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP on the TLS port gets no answer");
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_accepted_and_tls_1_1_is_refused() {
    let ca = Ca::new("attrsync test CA");
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &ca.server("attrsync.test"));
    let app = spawn_app_with(|s, _| use_tls(s, dir.path())).await;
    let addr = addr(&app);

    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut connection = OpenConnection::open(addr, tls_config(&ca, &[version]))
            .await
            .expect("a handshake");
        assert_eq!(connection.protocol, Some(version.version));
        assert_eq!(connection.get("/healthz").await, 200);
    }

    // rustls cannot speak TLS 1.1, so the ClientHello is written by hand (RFC 4346 §7.4.1.2):
    // version 3.2, two TLS 1.1 cipher suites, no supported_versions extension; it does carry
    // signature_algorithms (ecdsa_secp256r1_sha256, rsa_pkcs1_sha256), which rustls reads before
    // the version, so that the version is what it refuses.
    let mut hello = vec![0x03, 0x02];
    hello.extend([0x5a; 32]);
    hello.extend([0x00, 0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f, 0x01, 0x00]);
    hello.extend([
        0x00, 0x0a, 0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x04, 0x01,
    ]);
    let mut handshake = vec![0x01, 0x00, 0x00, hello.len() as u8];
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x02, 0x00, handshake.len() as u8];
    record.extend(handshake);
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&record).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    assert_eq!(
        answer.first(),
        Some(&0x15),
        "an alert, not a ServerHello: {answer:02x?}"
    );
    assert_eq!(answer.last(), Some(&70), "protocol_version: {answer:02x?}");
}

#[tokio::test]
async fn a_certificate_swapped_on_disk_is_served_to_new_connections_while_an_open_one_keeps_answering(
) {
    let ca = Ca::new("attrsync test CA");
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (
        ca.server("old.attrsync.test"),
        ca.server("new.attrsync.test"),
    );
    install(dir.path(), &old);
    let app = spawn_app_with(|s, _| use_tls(s, dir.path())).await;
    let reloads = counter(&app, "attrsync_tls_reloads_total", "result=\"ok\"");

    let mut kept = OpenConnection::open(addr(&app), tls_config(&ca, rustls::ALL_VERSIONS))
        .await
        .unwrap();
    assert_eq!(kept.server_cert, old.der);
    assert_eq!(kept.get("/healthz").await, 200);

    install(dir.path(), &new);
    wait_for_certificate(&app, &ca, &new.der).await;

    assert_eq!(
        kept.get("/healthz").await,
        200,
        "the open connection still answers"
    );
    assert_eq!(
        kept.server_cert, old.der,
        "on the certificate it was opened with"
    );
    assert!(counter(&app, "attrsync_tls_reloads_total", "result=\"ok\"") > reloads);
}

#[tokio::test]
async fn a_replacement_that_does_not_load_is_refused_and_the_old_certificate_kept() {
    let ca = Ca::new("attrsync test CA");
    let dir = tempfile::tempdir().unwrap();
    let old = ca.server("old.attrsync.test");
    install(dir.path(), &old);
    let app = spawn_app_with(|s, _| use_tls(s, dir.path())).await;
    let errors = counter(&app, "attrsync_tls_reloads_total", "result=\"error\"");

    // A renewed certificate written next to the old key: the pair does not match.
    let renewed = ca.server("renewed.attrsync.test");
    std::fs::write(dir.path().join("cert.pem"), &renewed.cert).unwrap();
    let mut refused = false;
    for _ in 0..50 {
        if counter(&app, "attrsync_tls_reloads_total", "result=\"error\"") > errors {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the refusal is counted within 5 s");
    let connection = OpenConnection::open(addr(&app), tls_config(&ca, rustls::ALL_VERSIONS))
        .await
        .expect("new connections still get a certificate");
    assert_eq!(connection.server_cert, old.der);

    // Fixing the pair is picked up as any change is.
    std::fs::write(dir.path().join("key.pem"), &renewed.key).unwrap();
    wait_for_certificate(&app, &ca, &renewed.der).await;
}

#[tokio::test]
async fn a_group_that_requires_a_client_certificate_refuses_requests_without_the_right_one() {
    let ca = Ca::new("attrsync test CA");
    let genesys_ca = Ca::new("Genesys Cloud regional CA (test)");
    let other_ca = Ca::new("someone else's CA");
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &ca.server("attrsync.test"));
    let app = spawn_app_with(|s, _| {
        use_tls(s, dir.path());
        use_client_ca(s, dir.path(), &genesys_ca);
        s.auth.lookup.require_client_cert = true;
        s.auth.lookup.client_cert_subjects = vec![DATA_ACTIONS.to_owned()];
    })
    .await;
    let call = app.new_voice_call(ADA_ANI);
    let body = json!({"conversationId": call.conversation_id, "ani": ADA_ANI}).to_string();
    let lookup = |client: &reqwest::Client, with_password: bool| {
        let request = client
            .post(app.url("/v1/lookup"))
            .header("content-type", "application/json");
        let request = if with_password {
            with_credentials(request, &app.state.settings.auth.lookup, body.as_bytes())
        } else {
            request
        };
        request.body(body.clone()).send()
    };

    let data_action = https_client(&ca, Some(&genesys_ca.client(DATA_ACTIONS)));
    let answer = lookup(&data_action, true).await.expect("an answer");
    assert_eq!(answer.status(), 200);
    assert_eq!(json_body(answer).await["found"], "true");

    let no_password = lookup(&data_action, false).await.unwrap();
    assert_eq!(
        no_password.status(),
        401,
        "the certificate does not replace the credentials"
    );

    let without = lookup(&https_client(&ca, None), true).await.unwrap();
    assert_eq!(without.status(), 403);
    assert_eq!(
        json_body(without).await["code"],
        "client_certificate_required"
    );

    let misnamed = https_client(&ca, Some(&genesys_ca.client("someone.example.com")));
    let answer = lookup(&misnamed, true).await.unwrap();
    assert_eq!(answer.status(), 403);
    assert_eq!(
        json_body(answer).await["code"],
        "client_certificate_not_allowed"
    );

    let stranger = https_client(&ca, Some(&other_ca.client(DATA_ACTIONS)));
    assert!(
        lookup(&stranger, true).await.is_err(),
        "a certificate from another CA fails the handshake"
    );

    // The other groups do not ask for one.
    let metrics = https_client(&ca, None)
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        counter(
            &app,
            "attrsync_http_refusals_total",
            "reason=\"client_certificate_required\""
        ) >= 1.0
    );
}

#[tokio::test]
async fn on_shutdown_a_tls_server_closes_its_idle_connections_stops_accepting_and_returns() {
    let ca = Ca::new("attrsync test CA");
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), &ca.server("attrsync.test"));
    // The harness's instance lends its simulators and settings to one stopped by hand here.
    let lender = spawn_app_with(|s, _| use_tls(s, dir.path())).await;
    let mut settings = (*lender.state.settings).clone();
    let queue = tempfile::tempdir().unwrap();
    settings.queue.sqlite_path = queue.path().join("queue.db");
    let app = attrsync::app::App::build(settings)
        .await
        .expect("attrsync builds");
    let addr = app.addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    let mut idle = OpenConnection::open(addr, tls_config(&ca, rustls::ALL_VERSIONS))
        .await
        .unwrap();
    assert_eq!(idle.get("/healthz").await, 200);
    stop.send(()).unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("run_until_stopped returns with a connection still open")
        .expect("the task did not panic");
    assert!(finished.is_ok(), "{finished:?}");
    assert!(
        OpenConnection::open(addr, tls_config(&ca, rustls::ALL_VERSIONS))
            .await
            .is_err(),
        "no new connection is accepted"
    );
}
