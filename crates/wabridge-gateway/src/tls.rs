//! HTTPS with rustls (Meta only calls HTTPS webhook URLs), and the plain-HTTP alternative for local use
//! or behind a proxy. Both serve the same router and stop gracefully: no new connections after shutdown
//! begins, and requests in flight finish (and with them the commits they wait for).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} holds no certificate in PEM form")]
    NoCertificate { path: String },
    #[error("{path} holds no private key in PEM form (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: String },
    #[error("the certificate and key do not form a valid TLS configuration: {0}")]
    Config(#[from] tokio_rustls::rustls::Error),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.display().to_string(), source })
}

/// Builds a TLS acceptor from a PEM certificate chain and private key (HTTP/1.1).
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let cert_pem = read(cert)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read { path: cert.display().to_string(), source })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: cert.display().to_string() });
    }
    let key_pem = read(key)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|source| TlsError::Read { path: key.display().to_string(), source })?
        .ok_or_else(|| TlsError::NoKey { path: key.display().to_string() })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    // HTTP/1.1 only: WebSocket upgrades need it, and Meta's webhooks use it.
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The TLS acceptor in use, replaced when the certificate is reloaded. Cheap to clone.
#[derive(Clone)]
pub struct TlsSlot(Arc<std::sync::RwLock<TlsAcceptor>>);

impl std::fmt::Debug for TlsSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsSlot")
    }
}

impl TlsSlot {
    /// A slot holding `acceptor`.
    #[must_use]
    pub fn new(acceptor: TlsAcceptor) -> Self {
        Self(Arc::new(std::sync::RwLock::new(acceptor)))
    }

    /// The acceptor for a new connection.
    #[must_use]
    pub fn current(&self) -> TlsAcceptor {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Uses `acceptor` for new connections.
    pub fn replace(&self, acceptor: TlsAcceptor) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = acceptor;
    }
}

/// How long a client may take to send a request's head (request line and headers), counted from the
/// moment the connection waits for one — also between requests of a kept-alive connection. A client that
/// trickles its headers (or holds an idle connection open) is disconnected after this, so slow clients
/// cannot hold connections open without limit. Webhook bodies are small and sent at once by Meta; 30 s
/// also matches the keep-alive time of common proxies.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What the listener allows a client.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// See [`HEADER_READ_TIMEOUT`] (tests use a short one).
    pub header_read_timeout: Duration,
    /// Connections served at once. Past it the listener stops accepting: new connections wait in the
    /// kernel's backlog until one closes, instead of failing `accept` for lack of file descriptors, which
    /// would also starve the database and the callbacks.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { header_read_timeout: HEADER_READ_TIMEOUT, max_connections: 4096 }
    }
}

/// A connection's place among `max_connections`, released when the last holder drops it: the connection's
/// task, and for a WebSocket subscriber the upgraded socket's task (see `events::ws`).
#[derive(Clone)]
pub struct ConnectionSlot {
    _permit: Arc<tokio::sync::OwnedSemaphorePermit>,
}

impl std::fmt::Debug for ConnectionSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionSlot")
    }
}

/// Serves `router` on `listener` until `shutdown` fires, then lets connections in flight finish (at
/// most `drain` long). With an acceptor, every connection is TLS. Every connection is HTTP/1.1 with
/// upgrades (WebSocket subscribers connect through the same listener), within `limits`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    acceptor: Option<TlsSlot>,
    shutdown: CancellationToken,
    drain: Duration,
    limits: Limits,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let connections = TaskTracker::new();
    let mut warned_full: Option<std::time::Instant> = None;
    loop {
        if slots.available_permits() == 0
            && warned_full.is_none_or(|at| at.elapsed() > Duration::from_secs(60))
        {
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection limit reached: new connections wait until one closes (http.max_connections)"
            );
            warned_full = Some(std::time::Instant::now());
        }
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.map_err(std::io::Error::other)?,
        };
        let (tcp, peer): (tokio::net::TcpStream, _) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Running out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // No Nagle: a WebSocket subscriber's small frames (and small responses) go out at once instead of
        // waiting for the peer's delayed acknowledgement of the previous write (up to 40 ms on Linux).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set");
        }
        // Every request carries the connection's slot: a WebSocket upgrade keeps it for as long as the
        // subscriber stays (hyper is done with an upgraded connection; the socket lives on in its task).
        let slot = ConnectionSlot { _permit: Arc::new(slot) };
        let tagged = slot.clone();
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(tagged.clone());
                // The client's address, for `axum::extract::ConnectInfo` (the login's failure budget).
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        let shutdown = shutdown.clone();
        let http = http.clone();
        match &acceptor {
            None => {
                connections.spawn(async move {
                    serve_connection(http, TokioIo::new(tcp), service, shutdown, peer).await;
                    drop(slot);
                });
            }
            Some(acceptor) => {
                // The certificate in use now (a reload replaces it for new connections).
                let acceptor = acceptor.current();
                connections.spawn(async move {
                    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    serve_connection(http, TokioIo::new(tls), service, shutdown, peer).await;
                    drop(slot);
                });
            }
        }
    }
    connections.close();
    if tokio::time::timeout(drain, connections.wait()).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
    Ok(())
}

/// One connection until it ends, or until shutdown lets its request in flight finish.
async fn serve_connection<I, S>(
    http: http1::Builder,
    io: I,
    service: S,
    shutdown: CancellationToken,
    peer: std::net::SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = axum::body::Body> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = http.serve_connection(io, service).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = shutdown.cancelled() => {
            // Finish the request in flight, then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
