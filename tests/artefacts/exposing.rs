//! The README's "Exposing attrsync to Genesys and AWS" examples: every TOML snippet is a valid
//! configuration (its files made real here, with certificates generated at test time, so that
//! the pair loads too), and every variable the Kubernetes snippet sets is a setting attrsync reads.
//! And the Dockerfile's health check, run as Docker runs it, against plain HTTP and native TLS.

use super::*;

const SECTION: &str = "## Exposing attrsync to Genesys and AWS";

fn section() -> String {
    let readme = read("README.md");
    let start = readme.find(SECTION).expect("the README has the section");
    let rest = &readme[start + SECTION.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// The fenced blocks of `lang` in `text`.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let end = body.find("```").expect("a closed block");
        out.push(body[..end].to_owned());
        rest = &body[end..];
    }
    out
}

/// Replaces every quoted `/etc/...` path of `snippet` with a file in `dir` holding what the
/// name suggests: the key, a CA, or the certificate chain.
fn with_real_files(snippet: &str, dir: &Path) -> String {
    let ca = {
        let key = rcgen::KeyPair::generate().expect("a key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).expect("a CA").pem()
    };
    let key = rcgen::KeyPair::generate().expect("a key");
    let cert = rcgen::CertificateParams::new(vec!["attrsync.example.com".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("a certificate")
        .pem();
    let mut out = String::new();
    for (i, part) in snippet.split('"').enumerate() {
        if i % 2 == 1 && part.starts_with("/etc/") {
            let name = Path::new(part).file_name().expect("a file name");
            let path = dir.join(name);
            let content = if part.contains("key") {
                key.serialize_pem()
            } else if part.contains("ca") {
                ca.clone()
            } else {
                cert.clone()
            };
            std::fs::write(&path, content).expect("write a file");
            out.push_str(&path.display().to_string());
        } else {
            out.push_str(part);
        }
        out.push('"');
    }
    out.pop();
    out
}

#[tokio::test]
async fn every_toml_example_in_the_exposing_section_is_a_valid_configuration() {
    let examples = blocks(&section(), "toml");
    assert!(
        examples.len() >= 3,
        "found {} TOML examples",
        examples.len()
    );
    let env: Vec<(String, String)> = [
        ("GENESYS_CLIENT_ID", "id"),
        ("GENESYS_CLIENT_SECRET", "secret"),
        ("ATTRSYNC_AUTH__GENESYS__SECRETS", "key"),
        (
            "ATTRSYNC_AUTH__CTI__SECRETS",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        ("ATTRSYNC_AUTH__LOOKUP__SECRETS", "password"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for example in examples {
        let dir = tempfile::tempdir().expect("a directory");
        let file = dir.path().join("attrsync.toml");
        std::fs::write(&file, with_real_files(&example, dir.path())).expect("write the example");
        let settings = Settings::load_from(Some(&file), &env)
            .unwrap_or_else(|e| panic!("this README example does not load: {e}\n{example}"));
        if settings.server.tls.enabled() {
            attrsync::server::CertificatePair::load(&settings.server.tls)
                .await
                .unwrap_or_else(|e| panic!("its certificate pair does not load: {e}\n{example}"));
        }
    }
}

#[test]
fn every_variable_of_the_kubernetes_example_is_a_setting() {
    let yaml = blocks(&section(), "yaml");
    assert_eq!(yaml.len(), 1, "one Kubernetes example");
    let names: Vec<&str> = yaml[0]
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("ATTRSYNC_"))
        .collect();
    assert!(names.len() >= 3, "{names:?}");
    for name in names {
        assert_is_a_setting(name, "the README's Kubernetes example");
    }
}

/// The Dockerfile's HEALTHCHECK command, as Docker would run it.
fn healthcheck() -> Vec<String> {
    let healthcheck = dockerfile()
        .into_iter()
        .rev()
        .find(|(i, _)| i == "HEALTHCHECK")
        .map(|(_, args)| args)
        .expect("a HEALTHCHECK");
    let command = healthcheck
        .split_once("CMD ")
        .map(|(_, c)| c.trim().to_owned())
        .expect("HEALTHCHECK ... CMD [...]");
    serde_json::from_str(&command).expect("exec-form HEALTHCHECK CMD")
}

/// Whether the check passes within the Dockerfile's `--retries=3`, as Docker judges it: a
/// container is unhealthy only after three failures in a row. (Against the TLS port a single
/// check failed now and then on a loaded machine; most likely, not proven, the server's alert is
/// lost to a reset when it closes with the rest of the plain HTTP request unread.)
async fn healthcheck_passes(port: u16) -> bool {
    let argv = healthcheck();
    for _ in 0..3 {
        let passed = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .env("ATTRSYNC_SERVER__PORT", port.to_string())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .expect("run the health check")
            .success();
        if passed {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn the_dockerfile_healthcheck_passes_on_plain_http_and_on_native_tls() {
    let plain = spawn_app().await;
    let port = |app: &TestApp| {
        app.address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .expect("a port")
    };
    assert!(healthcheck_passes(port(&plain)).await, "plain HTTP");

    let dir = tempfile::tempdir().expect("a directory");
    let key = rcgen::KeyPair::generate().expect("a key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("a certificate");
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let tls = crate::helpers::spawn_app_with(|s, _| {
        s.server.tls.cert_path = dir.path().join("cert.pem");
        s.server.tls.key_path = dir.path().join("key.pem");
    })
    .await;
    assert!(tls.address.starts_with("https://"));
    assert!(healthcheck_passes(port(&tls)).await, "native TLS");

    // Nothing listening: unhealthy.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    assert!(!healthcheck_passes(free).await, "nothing listening");
}
