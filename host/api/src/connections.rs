//! A cap on open HTTP connections. hyper keeps an idle keep-alive
//! connection (a task and its buffers) for as long as the client holds it,
//! so without a cap the server's memory was bounded only by the process's
//! file-descriptor limit, which containers often set to a million. At the
//! cap the listener stops accepting until a connection closes: new clients
//! wait in the kernel's backlog, as with nginx's `worker_connections`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The permits and what the cap did; shared by the listener and `/metrics`.
pub(crate) struct ConnectionLimit {
    permits: Arc<Semaphore>,
    max: usize,
    /// Accepts that had to wait for a connection to close.
    waited: AtomicU64,
}

impl ConnectionLimit {
    pub(crate) fn new(max: usize) -> Self {
        ConnectionLimit {
            permits: Arc::new(Semaphore::new(max)),
            max,
            waited: AtomicU64::new(0),
        }
    }

    pub(crate) fn open(&self) -> u64 {
        (self.max - self.permits.available_permits()) as u64
    }

    pub(crate) fn waited(&self) -> u64 {
        self.waited.load(Ordering::Relaxed)
    }
}

/// `listener` accepting only while fewer than the limit's connections are open.
pub(crate) struct LimitedListener {
    pub(crate) inner: TcpListener,
    pub(crate) limit: Arc<ConnectionLimit>,
}

impl axum::serve::Listener for LimitedListener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        let permit = match self.limit.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.limit.waited.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(max = self.limit.max, "connection limit reached; waiting");
                self.limit
                    .permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (
            Counted {
                io,
                _permit: permit,
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted connection; its permit goes back when it is dropped.
pub(crate) struct Counted {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
