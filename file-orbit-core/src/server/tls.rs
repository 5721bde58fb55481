//! The server's own HTTPS: the `[tls]` configuration (certificate chain and key, both PEM,
//! both or neither), reading them into a rustls acceptor (the `ring` provider, HTTP/1.1),
//! and the listener that hands axum connections whose TLS handshake finished, each
//! handshake in its own task and bounded in time. It never prints or logs the key's bytes.

use crate::error::{Error, ErrorKind, Result};
use axum::serve::Listener;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish its TLS handshake before the connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections whose handshake finished, waiting for axum to take them.
const HANDSHAKEN_QUEUE: usize = 64;

const CONTEXT: &str = "server configuration";

/// `[tls]`: serve HTTPS with this certificate chain and key, read at start. Both or
/// neither; neither serves plain HTTP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The certificate chain (PEM), the server's own certificate first.
    pub cert_path: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, RSA or SEC1).
    pub key_path: Option<PathBuf>,
}

impl TlsConfig {
    /// Whether the server speaks HTTPS (once validated: both paths are set).
    pub fn enabled(&self) -> bool {
        self.cert_path.is_some() && self.key_path.is_some()
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        match self.enabled() {
            true => "https",
            false => "http",
        }
    }

    /// Both paths or neither, and no empty one.
    pub fn validate(&self) -> Result<()> {
        let invalid =
            |field: &str, message: &str| Err(Error::invalid_field(CONTEXT, field, message));
        match (&self.cert_path, &self.key_path) {
            (Some(_), None) => invalid(
                "tls.key_path",
                "must be set with tls.cert_path (both or neither)",
            ),
            (None, Some(_)) => invalid(
                "tls.cert_path",
                "must be set with tls.key_path (both or neither)",
            ),
            (Some(cert), Some(key)) => {
                for (field, path) in [("tls.cert_path", cert), ("tls.key_path", key)] {
                    if path.as_os_str().is_empty() {
                        return invalid(field, "must not be empty");
                    }
                }
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }

    /// The acceptor for these files; None when TLS is off. Errors name the field and
    /// the path, never the key's content.
    pub(super) fn acceptor(&self) -> Result<Option<TlsAcceptor>> {
        self.validate()?;
        let (Some(cert_path), Some(key_path)) = (&self.cert_path, &self.key_path) else {
            return Ok(None);
        };
        let certs = read_certs(cert_path)?;
        let key = read_key(key_path)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| Error::new(ErrorKind::Library, "setting up TLS", err.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|err| match err {
                rustls::Error::InconsistentKeys(_) => field_error(
                    "tls.key_path",
                    key_path,
                    "does not match the certificate of tls.cert_path",
                ),
                rustls::Error::InvalidCertificate(err) => {
                    field_error("tls.cert_path", cert_path, &format!("is refused: {err}"))
                }
                other => field_error("tls.key_path", key_path, &format!("is refused: {other}")),
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(TlsAcceptor::from(Arc::new(config))))
    }
}

fn field_error(field: &str, path: &Path, message: &str) -> Error {
    Error::invalid_field(CONTEXT, field, format!("{} {message}", path.display()))
}

fn read(field: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|err| field_error(field, path, &format!("cannot be read: {err}")))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read("tls.cert_path", path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|err| {
            field_error(
                "tls.cert_path",
                path,
                &format!("is not a PEM certificate chain: {err}"),
            )
        })?;
    if certs.is_empty() {
        return Err(field_error(
            "tls.cert_path",
            path,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = read("tls.key_path", path)?;
    // The PEM parser's own messages may quote the file's bytes: not one of them is shown.
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|err| {
        let message = match err {
            pem::Error::NoItemsFound => "holds no PEM private key (PKCS#8, RSA or SEC1)",
            _ => "is not a valid PEM private key (PKCS#8, RSA or SEC1)",
        };
        field_error("tls.key_path", path, message)
    })
}

/// A TCP listener whose connections reach axum once their TLS handshake finished. Each
/// handshake runs in its own task, bounded by `HANDSHAKE_TIMEOUT`, so a slow or silent
/// client holds neither the accept loop nor a task for longer. Dropping the listener
/// (axum's graceful shutdown does) stops accepting and closes the port.
pub(super) struct TlsListener {
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    pub(super) fn new(tcp: TcpListener, local_addr: SocketAddr, acceptor: TlsAcceptor) -> Self {
        let (sender, handshaken) = mpsc::channel(HANDSHAKEN_QUEUE);
        tokio::spawn(accept_loop(tcp, acceptor, sender));
        TlsListener {
            handshaken,
            local_addr,
        }
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    sender: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            // The listener was dropped: the server stopped serving.
            () = sender.closed() => return,
        };
        let (acceptor, sender) = (acceptor.clone(), sender.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                // Fails only when the server stopped serving: the connection just closes.
                Ok(Ok(tls)) => drop(sender.send((tls, peer)).await),
                Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// As axum's own TCP listener: a connection that went away is skipped; anything else (out
/// of file descriptors) is logged and accepting pauses for a second.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(connection) => connection,
            // The accept loop ended (the runtime is stopping): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}
