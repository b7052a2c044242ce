//! One accept loop for the gRPC and HTTP fronts. A connection counts against
//! `max_connections` only once its client has spoken (sent its first bytes, or finished the
//! TLS handshake) within a deadline; until then it is pending, and when `max_pending` are
//! pending the oldest is dropped for the newcomer — so a flood of silent connections costs
//! descriptors, never the slots of clients that talk. Also: a backoff when accepting fails
//! (EMFILE would otherwise spin a core), TCP_NODELAY, and every handshake off the loop.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// Connections either front serves at once, by default.
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections that may wait to speak (or for a slot) at once, by default.
pub const MAX_PENDING: usize = 1024;
/// How long a client has to send its first bytes or finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct ListenerOptions {
    pub max_connections: usize,
    pub max_pending: usize,
    /// TLS for every connection when set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            max_pending: MAX_PENDING,
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

/// Connections without a slot yet, oldest first; each can be told to give up.
struct Pending {
    next: AtomicU64,
    queue: Mutex<VecDeque<(u64, oneshot::Sender<()>)>>,
    max: usize,
}

impl Pending {
    /// Registers a newcomer, dropping the oldest pending connection when full.
    fn join(&self) -> (u64, oneshot::Receiver<()>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= self.max {
            if let Some((_, oldest)) = queue.pop_front() {
                let _ = oldest.send(());
            }
        }
        queue.push_back((id, tx));
        (id, rx)
    }

    fn leave(&self, id: u64) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = queue.iter().position(|(i, _)| *i == id) {
            queue.remove(at);
        }
    }
}

async fn accept_loop(listener: TcpListener, options: ListenerOptions, tx: mpsc::Sender<Conn>) {
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let pending = Arc::new(Pending {
        next: AtomicU64::new(0),
        queue: Mutex::new(VecDeque::new()),
        max: options.max_pending.max(1),
    });
    let acceptor = options.tls.map(tokio_rustls::TlsAcceptor::from);
    let mut backoff = BACKOFF_MIN;
    loop {
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
        // A client whose first bytes are already here (the usual case when the loop is
        // behind a flood) goes straight to a free slot, never through the pending queue.
        if has_data(&stream) {
            if let Ok(slot) = Arc::clone(&slots).try_acquire_owned() {
                tokio::spawn(hand_over(stream, peer, acceptor.clone(), slot, tx.clone()));
                continue;
            }
        }
        let (id, evicted) = pending.join();
        let admit = Admit {
            slots: Arc::clone(&slots),
            pending: Arc::clone(&pending),
            tx: tx.clone(),
        };
        tokio::spawn(admit.run(stream, peer, acceptor.clone(), id, evicted));
    }
}

/// Whether bytes (or the client's close) wait to be read: `Ok`, else `WouldBlock`. Looked at
/// without reading them.
fn peek(stream: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut byte = 0u8;
    // SAFETY: a one-byte peek into a local buffer on a socket this function borrows.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n >= 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the client has spoken already (an error counts: the server will see it).
fn has_data(stream: &TcpStream) -> bool {
    !matches!(peek(stream), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Waits until the client has spoken (a TLS client's first bytes are its ClientHello).
/// Readiness alone can be a false positive; `try_io` clears it when the peek finds nothing,
/// so the next wait really waits.
async fn spoken(stream: &TcpStream) -> io::Result<()> {
    loop {
        stream.readable().await?;
        match stream.try_io(tokio::io::Interest::READABLE, || peek(stream)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            _ => return Ok(()),
        }
    }
}

/// Gives a connection that spoke and holds its slot to the server, after the TLS handshake
/// (with its deadline) when TLS is on.
async fn hand_over(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    slot: OwnedSemaphorePermit,
    tx: mpsc::Sender<Conn>,
) {
    let io = match acceptor {
        None => Io::Plain(stream),
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Io::Tls(Box::new(tls)),
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    };
    let _ = tx
        .send(Conn {
            io,
            peer: Some(peer),
            _slot: slot,
        })
        .await;
}

/// What a pending connection needs to become a served one.
struct Admit {
    slots: Arc<Semaphore>,
    pending: Arc<Pending>,
    tx: mpsc::Sender<Conn>,
}

impl Admit {
    async fn run(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        acceptor: Option<tokio_rustls::TlsAcceptor>,
        id: u64,
        evicted: oneshot::Receiver<()>,
    ) {
        let admitted = async {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, spoken(&stream)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("connection failed: {e}")),
                Err(_) => return Err("sent nothing in time".to_owned()),
            }
            // It spoke: now it waits for a slot of the cap (still pending, so evictable).
            tokio::select! {
                s = Arc::clone(&self.slots).acquire_owned() => Ok(s.expect("the slots are never closed")),
                _ = self.tx.closed() => Err("listener closed".to_owned()),
            }
        };
        let outcome = tokio::select! {
            o = admitted => o,
            _ = evicted => Err("dropped: too many pending connections".to_owned()),
        };
        self.pending.leave(id);
        match outcome {
            Ok(slot) => hand_over(stream, peer, acceptor, slot, self.tx).await,
            Err(why) => tracing::debug!(%peer, %why, "connection not served"),
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn plain(
        max_connections: usize,
        max_pending: usize,
    ) -> (SocketAddr, mpsc::Receiver<Conn>) {
        let options = ListenerOptions {
            max_connections,
            max_pending,
            tls: None,
        };
        bind("127.0.0.1:0".parse().unwrap(), options).await.unwrap()
    }

    #[tokio::test]
    async fn silent_connections_take_no_slot_and_the_oldest_gives_way() {
        let (addr, mut rx) = plain(2, 4).await;
        // Ten connections that never speak: only the newest four are kept pending.
        let mut silent = Vec::new();
        for _ in 0..10 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut talker = TcpStream::connect(addr).await.unwrap();
        talker.write_all(b"hi").await.unwrap();
        let served = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(
            matches!(served, Ok(Some(_))),
            "a talker waited behind silence"
        );
        // The oldest silent ones were closed by the server (read sees EOF).
        let mut closed = 0;
        for s in silent.iter_mut().take(6) {
            let mut byte = [0u8; 1];
            if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte)).await
            {
                closed += 1;
            }
        }
        assert!(
            closed >= 6,
            "{closed} of the 6 oldest silent connections were closed"
        );
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_free_slot() {
        let (addr, mut rx) = plain(2, 8).await;
        let mut clients = Vec::new();
        for _ in 0..3 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"hello").await.unwrap();
            clients.push(c);
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
