//! The server's own HTTPS (feature `server`, `[tls]`): a client trusting the test CA gets
//! the API over TLS; one that does not, or one speaking plain HTTP, gets nothing; a silent
//! client is dropped after the handshake timeout without holding up others; bad or missing
//! files are start-up errors naming the field; keys as PKCS#8, RSA and SEC1, made with the
//! README's openssl commands; a warning when plain HTTP listens beyond loopback.

mod common;

use common::server::{Setup, TestServer, process_log_dir};
use file_orbit::server::{HANDSHAKE_TIMEOUT, Server, TlsConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A throwaway CA and a server certificate it signed for 127.0.0.1, as PEM files.
struct Pki {
    ca_pem: String,
    cert_path: PathBuf,
    key_path: PathBuf,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "File Orbit test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert_path = dir.path().join("server.crt");
        let key_path = dir.path().join("server.key");
        // The chain: the server's certificate, then the CA's.
        std::fs::write(&cert_path, format!("{}{}", cert.pem(), ca.pem())).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Pki {
            ca_pem: ca.pem(),
            cert_path,
            key_path,
            dir,
        }
    }

    fn tls(&self) -> TlsConfig {
        TlsConfig {
            cert_path: Some(self.cert_path.clone()),
            key_path: Some(self.key_path.clone()),
        }
    }
}

fn tls_setup(tls: TlsConfig) -> Setup {
    let mut setup = TestServer::setup(0);
    setup.config.tls = tls;
    setup
}

/// An HTTPS client that trusts only the PEM certificate `root`.
fn trusting(root: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
        .https_only(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn get(client: &reqwest::Client, url: String, key: Option<&str>) -> (u16, String) {
    let mut request = client.get(&url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {url}: {err:?}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_the_ca_gets_the_api_over_https() {
    let pki = Pki::new();
    let mut ts = tls_setup(pki.tls()).start().await;
    let base = format!("https://{}", ts.addr());
    let client = trusting(&pki.ca_pem);

    let (status, body) = get(&client, format!("{base}/health"), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(
        &client,
        format!("{base}/api/v1/jobs"),
        Some(&ts.keys.viewer),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with('['), "{body}");
    // A refused key is counted per client address (`ConnectInfo`): 401, not a 500.
    let (status, body) = get(&client, format!("{base}/api/v1/jobs"), Some("fo_wrong")).await;
    assert_eq!(status, 401, "{body}");
    // The console's cookies are `Secure` over the server's own HTTPS.
    let form = client.get(format!("{base}/ui/login")).send().await.unwrap();
    let cookie = form.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("Secure"), "{cookie}");

    let addr = ts.addr();
    assert!(ts.shutdown().await, "clean shutdown");
    // Once stopped, the port is closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "{addr} still accepts after shutdown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_not_trusting_the_ca_fails_the_handshake() {
    let pki = Pki::new();
    let mut ts = tls_setup(pki.tls()).start().await;
    let url = format!("https://{}/health", ts.addr());
    // The built-in (public) roots, then another throwaway CA.
    let public = reqwest::Client::builder().use_rustls_tls().build().unwrap();
    let other = trusting(&Pki::new().ca_pem);
    for client in [public, other] {
        let err = client.get(&url).send().await.unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        // UnknownIssuer, or BadSignature from the other CA of the same name.
        let chain = format!("{err:?}");
        assert!(chain.contains("InvalidCertificate"), "{chain}");
    }
    // The server still serves the client that trusts it.
    let (status, body) = get(&trusting(&pki.ca_pem), url, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(ts.shutdown().await);
}

/// Writes `request` to `addr` and reads what comes back until the server closes (bounded).
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .ok();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_tls_port_gets_no_api_answer() {
    let pki = Pki::new();
    let mut ts = tls_setup(pki.tls()).start().await;
    let request = format!(
        "GET /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
        ts.keys.viewer
    );
    let answer = raw_exchange(ts.addr(), request.as_bytes()).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(!text.contains("HTTP/"), "{text}");
    // At most a TLS alert record (content type 21), never an HTTP answer.
    assert!(answer.is_empty() || answer[0] == 21, "{answer:?}");
    // A client library gets an error too.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let url = format!("http://{}/health", ts.addr());
    let result = tokio::task::spawn_blocking(move || agent.get(&url).call().map(|r| r.status()))
        .await
        .unwrap();
    assert!(result.is_err(), "{result:?}");
    assert!(ts.shutdown().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_the_handshake_timeout_and_holds_up_no_one() {
    let pki = Pki::new();
    let mut ts = tls_setup(pki.tls()).start().await;
    let opened = Instant::now();
    let mut silent = TcpStream::connect(ts.addr()).await.unwrap();
    // Others are served meanwhile.
    let client = trusting(&pki.ca_pem);
    for _ in 0..3 {
        let (status, body) = get(&client, format!("https://{}/health", ts.addr()), None).await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(opened.elapsed() < HANDSHAKE_TIMEOUT);
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(HANDSHAKE_TIMEOUT * 3, silent.read(&mut buffer))
        .await
        .expect("the server closes a silent connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let waited = opened.elapsed();
    assert!(
        waited >= HANDSHAKE_TIMEOUT - Duration::from_millis(500),
        "closed after {waited:?}, before the handshake timeout"
    );
    assert!(ts.shutdown().await);
}

/// `Server::start` with `tls`: its error.
async fn start_error(tls: TlsConfig) -> file_orbit::Error {
    let mut setup = tls_setup(tls);
    let orbit = setup.orbit().await;
    match Server::start(orbit, setup.config.clone()).await {
        Ok(server) => {
            server.shutdown().await;
            panic!("the server started");
        }
        Err(err) => err,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_files_are_start_up_errors_naming_the_field_and_path() {
    let pki = Pki::new();
    let missing = pki.dir.path().join("missing.key");
    let err = start_error(TlsConfig {
        key_path: Some(missing.clone()),
        ..pki.tls()
    })
    .await;
    assert_eq!(err.field.as_deref(), Some("tls.key_path"), "{err}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );

    let err = start_error(TlsConfig {
        cert_path: Some(pki.dir.path().join("missing.crt")),
        ..pki.tls()
    })
    .await;
    assert_eq!(err.field.as_deref(), Some("tls.cert_path"), "{err}");

    // A key that is not PEM: named, its content never shown.
    let garbage = pki.dir.path().join("garbage.key");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\ncanary-key-9Zq!!\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = start_error(TlsConfig {
        key_path: Some(garbage.clone()),
        ..pki.tls()
    })
    .await;
    assert_eq!(err.field.as_deref(), Some("tls.key_path"), "{err}");
    assert!(!format!("{err} {err:?}").contains("canary"), "{err:?}");
    // The certificate file as the key: no key in it.
    let err = start_error(TlsConfig {
        key_path: pki.tls().cert_path,
        ..pki.tls()
    })
    .await;
    assert_eq!(err.field.as_deref(), Some("tls.key_path"), "{err}");
    assert!(err.to_string().contains("no PEM private key"), "{err}");
    // The key as the certificate.
    let err = start_error(TlsConfig {
        cert_path: pki.tls().key_path,
        ..pki.tls()
    })
    .await;
    assert_eq!(err.field.as_deref(), Some("tls.cert_path"), "{err}");
    // Another pair's key.
    let other = Pki::new();
    let err = start_error(TlsConfig {
        key_path: other.tls().key_path,
        ..pki.tls()
    })
    .await;
    assert_eq!(err.field.as_deref(), Some("tls.key_path"), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");

    // Both or neither.
    let err = start_error(TlsConfig {
        key_path: None,
        ..pki.tls()
    })
    .await;
    assert_eq!(err.field.as_deref(), Some("tls.key_path"), "{err}");
    let err = start_error(TlsConfig {
        cert_path: None,
        ..pki.tls()
    })
    .await;
    assert_eq!(err.field.as_deref(), Some("tls.cert_path"), "{err}");
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_openssl_pair_serves_https_with_pkcs8_rsa_and_sec1_keys() {
    let readme = include_str!("../README.md");
    let command = readme
        .lines()
        .find(|line| line.trim_start().starts_with("openssl req -x509"))
        .expect("the README's openssl command");
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let dir = tempfile::tempdir().unwrap();
    openssl(dir.path(), &args);
    let text = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert!(text("key.pem").contains("BEGIN PRIVATE KEY"), "PKCS#8");
    openssl(
        dir.path(),
        &["rsa", "-in", "key.pem", "-traditional", "-out", "rsa.pem"],
    );
    assert!(text("rsa.pem").contains("BEGIN RSA PRIVATE KEY"));
    openssl(
        dir.path(),
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ec.pem",
        ],
    );
    assert!(text("ec.pem").contains("BEGIN EC PRIVATE KEY"), "SEC1");
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-key",
            "ec.pem",
            "-out",
            "ec-cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ],
    );
    for (cert, key) in [
        ("cert.pem", "key.pem"),
        ("cert.pem", "rsa.pem"),
        ("ec-cert.pem", "ec.pem"),
    ] {
        let mut ts = tls_setup(TlsConfig {
            cert_path: Some(dir.path().join(cert)),
            key_path: Some(dir.path().join(key)),
        })
        .start()
        .await;
        let client = trusting(&text(cert));
        let (status, body) = get(&client, format!("https://{}/health", ts.addr()), None).await;
        assert_eq!(status, 200, "{key}: {body}");
        assert!(ts.shutdown().await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_beyond_loopback_is_warned_about_at_start() {
    let mut setup = TestServer::setup(0).log_to_file();
    setup.config.listen = "0.0.0.0:0".into();
    let mut ts = setup.start().await;
    let needle = format!("0.0.0.0:{}", ts.addr().port());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logged = std::fs::read_dir(process_log_dir())
            .unwrap()
            .filter_map(|entry| std::fs::read_to_string(entry.unwrap().path()).ok())
            .flat_map(|text| text.lines().map(str::to_string).collect::<Vec<_>>())
            .find(|line| line.contains(&needle) && line.contains("travel in clear"));
        if let Some(line) = logged {
            assert!(line.contains("WARN"), "{line}");
            break;
        }
        assert!(Instant::now() < deadline, "no warning for {needle}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ts.shutdown().await);
}
