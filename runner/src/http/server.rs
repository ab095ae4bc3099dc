//! The HTTP server loop: accepts connections up to a cap, serves each over HTTP/1.1 with a
//! deadline on the request head and one on the request body, and on shutdown lets in-flight
//! requests finish.
//!
//! `axum::serve` has no read deadlines: a client that connects and sends nothing, or a byte
//! a second, would hold a connection (and its task) forever. Here hyper drops a connection
//! whose head is not complete within [`ServerLimits::header_read_timeout`] (also between
//! keep-alive requests), and every request body is wrapped so that reading it fails with
//! [`BodyTimeout`] once [`ServerLimits::body_read_timeout`] has passed since its head
//! arrived; the body extractors answer that `408`.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::Request;
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long clients may take and how many may be connected at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// The longest wait for a complete request head, from the connection's start or the end
    /// of the previous response; the connection is closed after it.
    pub header_read_timeout: Duration,
    /// The longest a request body may take to arrive, from the end of its head; reading it
    /// afterwards fails with [`BodyTimeout`] (`408`).
    pub body_read_timeout: Duration,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
}

impl ServerLimits {
    /// 10 s for a request head, 30 s for a body, 1,024 connections.
    pub const DEFAULT: ServerLimits = ServerLimits {
        header_read_timeout: Duration::from_secs(10),
        body_read_timeout: Duration::from_secs(30),
        max_connections: 1024,
    };
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits::DEFAULT
    }
}

/// A request body that did not arrive within the body read timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {}; send the whole body without pauses", humantime::format_duration(*.0))]
pub struct BodyTimeout(pub Duration);

/// Serves `app` on `listener` until `shutdown` is cancelled, then stops accepting, lets the
/// requests in flight finish and closes idle connections; returns when every connection is
/// closed.
pub async fn serve(listener: TcpListener, app: Router, limits: ServerLimits, shutdown: CancellationToken) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    let body_read_timeout = limits.body_read_timeout;
    let service = TowerToHyperService::new(app.map_request(move |request: Request<Incoming>| {
        let deadline = Instant::now() + body_read_timeout;
        request.map(|body| Body::new(DeadlineBody::new(body, deadline, body_read_timeout)))
    }));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the connection semaphore is never closed"),
        };
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to be closed.
                    tracing::error!(error = %e, "cannot accept an HTTP connection; retrying in 1s");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Clients that time out, reset or send garbage: their problem, not the server's.
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset)
}

/// A request body that fails with [`BodyTimeout`] when it is still being read at `deadline`.
struct DeadlineBody<B> {
    inner: B,
    deadline: Instant,
    limit: Duration,
    /// Started when the body first has to wait, so a body nobody reads costs no timer.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> DeadlineBody<B> {
    fn new(inner: B, deadline: Instant, limit: Duration) -> Self {
        DeadlineBody { inner, deadline, limit, sleep: None }
    }
}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    /// A body whose frames come `every` apart.
    fn trickle(
        frames: usize,
        every: Duration,
    ) -> impl http_body::Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let stream = futures::stream::unfold(0, move |sent| async move {
            if sent == frames {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok(Frame::data(Bytes::from_static(b"x"))), sent + 1))
        });
        StreamBody::new(Box::pin(stream))
    }

    #[tokio::test]
    async fn a_body_that_trickles_past_its_deadline_fails() {
        let limit = Duration::from_millis(300);
        let body = DeadlineBody::new(trickle(100, Duration::from_millis(20)), Instant::now() + limit, limit);
        let error = body.collect().await.expect_err("the body arrives too slowly");
        assert!(error.is::<BodyTimeout>(), "{error}");
        assert_eq!(
            error.to_string(),
            "the request body did not arrive within 300ms; send the whole body without pauses"
        );

        let body = DeadlineBody::new(trickle(3, Duration::from_millis(20)), Instant::now() + limit, limit);
        assert_eq!(body.collect().await.expect("the body arrives in time").to_bytes().len(), 3);
    }
}
