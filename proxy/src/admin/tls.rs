//! TLS: server configurations from PEM files (the client port's `[tls]` and the admin port's
//! `[admin_tls]`), the admin port's TLS listener, and the identity members show each other.
//!
//! Contract: a listener hands axum only connections whose TLS handshake finished (within
//! [`HANDSHAKE_TIMEOUT`]); handshakes run concurrently, so a slow or hostile peer delays no
//! one else. With `require_client_cert`, only clients whose certificate `ca` signed get in
//! (mutual TLS between members and for slotctl).

use crate::config::AdminTlsConfig;
use slotgate_meta::PeerTls;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a client may take for its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn read(p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
}

/// A server configuration with the certificate chain and key of these files; with
/// `client_ca`, clients must show a certificate that CA signed.
pub fn server_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<rustls::ServerConfig, String> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs = rustls_pemfile::certs(&mut &cert_pem[..]).collect::<Result<Vec<_>, _>>().map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let key_der = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| format!("{}: {e}", key.display()))?
        .ok_or_else(|| format!("{}: no private key found", key.display()))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut &read(ca)?[..]) {
                let c = c.map_err(|e| format!("{}: {e}", ca.display()))?;
                roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(certs, key_der).map_err(|e| format!("{}: {e}", cert.display()))
}

/// The admin port's acceptor.
pub fn admin_acceptor(cfg: &AdminTlsConfig) -> Result<TlsAcceptor, String> {
    let ca = cfg.require_client_cert.then_some(cfg.ca.as_deref()).flatten();
    Ok(TlsAcceptor::from(Arc::new(server_config(&cfg.cert, &cfg.key, ca)?)))
}

/// What this node shows the other members: their CA, and its own certificate when they
/// require one.
pub fn peer_tls(cfg: &AdminTlsConfig) -> Result<PeerTls, String> {
    let ca = cfg.ca.as_deref().ok_or("admin_tls.ca is needed to check the other members' certificates")?;
    let identity_pem = if cfg.require_client_cert {
        let mut id = read(&cfg.cert)?;
        id.push(b'\n');
        id.extend(read(&cfg.key)?);
        Some(id)
    } else {
        None
    };
    Ok(PeerTls { ca_pem: read(ca)?, identity_pem })
}

/// The admin port over TLS, as axum listens.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener` until `cancel`; handshakes run on `tracker`.
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor, cancel: CancellationToken, tracker: &TaskTracker) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let handshakes = tracker.clone();
        tracker.spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = listener.accept() => match r {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(error = %e, "admin port: accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                handshakes.spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "admin port: TLS handshake refused"),
                        Err(_) => tracing::debug!(%peer, "admin port: TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The accept loop ended (shutdown): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
