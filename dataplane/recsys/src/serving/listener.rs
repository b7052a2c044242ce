//! One accept loop for the gRPC and HTTP fronts: at most `max_connections` open at once (the
//! rest wait in the kernel's backlog), a backoff when accepting fails (EMFILE would otherwise
//! spin a core), TCP_NODELAY, and the TLS handshake — with a deadline — off the loop, so a
//! client that never finishes one holds only its own slot.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Connections either front keeps open at once, by default.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long a client has to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct ListenerOptions {
    pub max_connections: usize,
    /// TLS for every connection when set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            tls: None,
        }
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// An accepted connection; its slot is given back when it is dropped.
pub struct Conn {
    io: Io,
    peer: Option<SocketAddr>,
    _slot: OwnedSemaphorePermit,
}

/// Binds `addr` and starts accepting; connections arrive on the receiver. The loop stops
/// when the receiver is dropped.
pub async fn bind(
    addr: SocketAddr,
    options: ListenerOptions,
) -> io::Result<(SocketAddr, mpsc::Receiver<Conn>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, options, tx));
    Ok((local, rx))
}

async fn accept_loop(listener: TcpListener, options: ListenerOptions, tx: mpsc::Sender<Conn>) {
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let acceptor = options.tls.map(tokio_rustls::TlsAcceptor::from);
    let mut backoff = BACKOFF_MIN;
    loop {
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => s.expect("the slots are never closed"),
            _ = tx.closed() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = tx.closed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = BACKOFF_MIN;
                a
            }
            Err(e) => {
                // Out of descriptors or memory: wait for some to be freed, not spin.
                tracing::warn!(error = %e, wait_ms = backoff.as_millis() as u64, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let tx = tx.clone();
        match &acceptor {
            None => {
                let _ = tx
                    .send(Conn {
                        io: Io::Plain(stream),
                        peer: Some(peer),
                        _slot: slot,
                    })
                    .await;
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx
                                .send(Conn {
                                    io: Io::Tls(Box::new(tls)),
                                    peer: Some(peer),
                                    _slot: slot,
                                })
                                .await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Option<SocketAddr>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_free_slot() {
        let (addr, mut rx) = bind(
            "127.0.0.1:0".parse().unwrap(),
            ListenerOptions {
                max_connections: 2,
                tls: None,
            },
        )
        .await
        .unwrap();
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        let first = rx.recv().await.unwrap();
        let _second = rx.recv().await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
        assert!(
            third.is_err(),
            "a third connection was handed out over the cap"
        );
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(third, Ok(Some(_))), "a freed slot was not reused");
    }
}
