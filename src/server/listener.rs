//! The two `axum::serve::Listener`s. Both hand axum a [`Connection`] as the address, so every
//! request gets the same `ConnectInfo<Connection>` whether TLS is on or not.
//!
//! The TLS listener accepts TCP connections in a task of its own and runs each handshake in
//! another, bounded by [`HANDSHAKE_TIMEOUT`]; finished handshakes wait in a channel for axum's
//! accept loop. When axum stops accepting (shutdown) it drops the listener, which closes the
//! channel and so the socket.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::{ClientCertificate, Connection};

/// A client that has not finished its handshake by then is dropped (slow or idle clients must
/// not hold sockets open; Genesys and AWS finish within milliseconds).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished handshakes waiting for axum's accept loop.
const HANDSHAKE_BACKLOG: usize = 256;

/// As `axum::serve`'s own TCP listener: a connection error is the client's problem; anything
/// else (out of file descriptors) is logged and the loop waits a second before accepting again.
async fn accept_tcp(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Answers are small: send them at once rather than wait for more to coalesce.
                let _ = stream.set_nodelay(true);
                return (stream, peer);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => {
                tracing::error!(error = %e, "accept error");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Plain HTTP.
pub struct PlainListener {
    tcp: TcpListener,
}

impl PlainListener {
    pub(super) fn new(tcp: TcpListener) -> Self {
        Self { tcp }
    }
}

impl axum::serve::Listener for PlainListener {
    type Io = TcpStream;
    type Addr = Connection;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, peer) = accept_tcp(&self.tcp).await;
        (
            stream,
            Connection {
                peer,
                client_cert: None,
            },
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Connection {
            peer: self.tcp.local_addr()?,
            client_cert: None,
        })
    }
}

/// TLS: connections arrive here with their handshake done.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, Connection)>,
    local: SocketAddr,
}

impl TlsListener {
    pub(super) fn new(
        tcp: TcpListener,
        local: SocketAddr,
        config: Arc<rustls::ServerConfig>,
    ) -> Self {
        let (sender, ready) = mpsc::channel(HANDSHAKE_BACKLOG);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    accepted = accept_tcp(&tcp) => accepted,
                    // The listener was dropped: axum stopped accepting. Close the socket.
                    () = sender.closed() => return,
                };
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    if let Some(done) = handshake(&acceptor, stream, peer).await {
                        // A closed channel means shutdown: the connection is dropped.
                        let _ = sender.send(done).await;
                    }
                });
            }
        });
        Self { ready, local }
    }
}

async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<(TlsStream<TcpStream>, Connection)> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            let client_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| ClientCertificate::from_der(leaf))
                .map(Arc::new);
            Some((tls, Connection { peer, client_cert }))
        }
        // Scanners, old clients and refused client certificates: routine on the internet.
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Connection;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(done) => done,
            // The accept task ended without being asked to, which it never does; wait for the
            // shutdown rather than spin.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(Connection {
            peer: self.local,
            client_cert: None,
        })
    }
}
