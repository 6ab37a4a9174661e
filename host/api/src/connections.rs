//! The server's connections: a cap on how many are open, and a deadline for
//! a request's head. hyper kept an idle keep-alive connection (a task and
//! its buffers) for as long as the client held it, so without a cap the
//! server's memory was bounded only by the process's file-descriptor limit,
//! which containers often set to a million. At the cap the listener stops
//! accepting until a connection closes: new clients wait in the kernel's
//! backlog, as with nginx's `worker_connections`. So that idle clients
//! cannot hold every place, a connection that does not deliver a request's
//! head within the deadline (counted from the end of the previous response)
//! is closed; axum::serve sets no such deadline, so this module serves.
//! The subscription cap is a [`Cap`] too (it refuses instead of waiting).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `max` of something open at once (HTTP connections,
/// subscriptions), and how often the cap was met; read by `/metrics`.
pub(crate) struct Cap {
    permits: Arc<Semaphore>,
    max: usize,
    /// Times a place was asked for with all of them taken.
    at_cap: AtomicU64,
}

impl Cap {
    pub(crate) fn new(max: usize) -> Self {
        Cap {
            permits: Arc::new(Semaphore::new(max)),
            max,
            at_cap: AtomicU64::new(0),
        }
    }

    pub(crate) fn open(&self) -> u64 {
        (self.max - self.permits.available_permits()) as u64
    }

    pub(crate) fn at_cap(&self) -> u64 {
        self.at_cap.load(Ordering::Relaxed)
    }

    /// A place, held until the permit is dropped; none (counted) when all
    /// are taken.
    pub(crate) fn try_take(&self) -> Option<OwnedSemaphorePermit> {
        let taken = self.permits.clone().try_acquire_owned().ok();
        if taken.is_none() {
            self.at_cap.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    /// A place, waiting (counted) for one to be given back when all are taken.
    pub(crate) async fn take(&self) -> OwnedSemaphorePermit {
        match self.try_take() {
            Some(p) => p,
            None => {
                tracing::debug!(max = self.max, "limit reached; waiting for a place");
                self.permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        }
    }
}

/// Serves `router` on what `listener` accepts until `shutdown` resolves,
/// then lets each connection finish its request in flight and waits for
/// them (as axum::serve's graceful shutdown does).
pub(crate) async fn serve(
    mut listener: LimitedListener,
    router: Router,
    head_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // HTTP/1.1 only (what browsers speak to a plain-HTTP server; WebSockets
    // upgrade from it): hyper-util's version-guessing server reads from an
    // idle connection with no deadline, before the head timeout applies.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    // Told to stop, and told when every connection's task has ended (each
    // holds a receiver; the sender's `closed` resolves once all are gone).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let (done_tx, done_rx) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, _addr) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let conn = builder
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::trace!("connection ended: {e}");
            }
            drop(done);
        });
    }
    drop(listener);
    let _ = stop_tx.send(());
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// `listener` accepting only while fewer than the limit's connections are open.
pub(crate) struct LimitedListener {
    pub(crate) inner: TcpListener,
    pub(crate) limit: Arc<Cap>,
}

impl axum::serve::Listener for LimitedListener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        let permit = self.limit.take().await;
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
