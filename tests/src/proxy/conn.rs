//! The proxy's listener: TCP connections the request handler can break on purpose.
//!
//! Every accepted connection gets a [`ConnHandle`] (handed to the handler as axum's
//! `ConnectInfo`). Through it the handler can make the connection fail its next write,
//! and either close it normally (the client sees the connection end: FIN) or reset it
//! (`SO_LINGER` 0 before the close, so the kernel sends RST and the client sees
//! `ECONNRESET`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

const OPEN: u8 = 0;
const CLOSE: u8 = 1;
const RESET: u8 = 2;

/// A handle on one accepted connection.
#[derive(Debug, Clone)]
pub(super) struct ConnHandle {
    state: Arc<AtomicU8>,
    /// This connection's WAN-mode bandwidth bucket.
    pub(super) wan: Arc<super::wan::BucketSlot>,
}

impl ConnHandle {
    /// Fail every further write and close the connection normally (FIN).
    pub(super) fn close(&self) {
        let _ = self
            .state
            .compare_exchange(OPEN, CLOSE, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Fail every further write and reset the connection (RST) when it is dropped.
    pub(super) fn reset(&self) {
        self.state.store(RESET, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, FaultListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, FaultListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A TCP listener whose connections carry a [`ConnHandle`].
pub(super) struct FaultListener {
    inner: TcpListener,
}

impl FaultListener {
    pub(super) fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

impl Listener for FaultListener {
    type Io = FaultIo;
    type Addr = ConnHandle;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let state = Arc::new(AtomicU8::new(OPEN));
                    let io = FaultIo {
                        inner: stream,
                        state: state.clone(),
                    };
                    let wan = Arc::default();
                    return (io, ConnHandle { state, wan });
                }
                // Out of file descriptors and the like: wait a moment, as axum does.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        // Only used for logging by axum; a fresh, unused handle will do.
        Ok(ConnHandle {
            state: Arc::new(AtomicU8::new(OPEN)),
            wan: Arc::default(),
        })
    }
}

/// An accepted connection that fails its writes once its handle says so.
pub(super) struct FaultIo {
    inner: TcpStream,
    state: Arc<AtomicU8>,
}

impl FaultIo {
    fn broken(&self) -> Option<io::Error> {
        match self.state.load(Ordering::SeqCst) {
            OPEN => None,
            CLOSE => Some(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "test proxy: connection closed on purpose",
            )),
            _ => Some(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "test proxy: connection reset on purpose",
            )),
        }
    }
}

impl Drop for FaultIo {
    fn drop(&mut self) {
        if self.state.load(Ordering::SeqCst) == RESET {
            // Zero linger: close() discards unsent data and answers with RST.
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for FaultIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(err) = self.broken() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(err) = self.broken() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(err) = self.broken() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.state.load(Ordering::SeqCst) == RESET {
            // No FIN before the RST that dropping sends.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
