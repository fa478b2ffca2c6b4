//! Serving HTTP connections with their own bounds, which `axum::serve` does not offer:
//!
//! - at most `HTTP_MAX_CONNECTIONS` client connections at once: past that the server stops
//!   accepting (new connections wait in the kernel's backlog) instead of running out of file
//!   descriptors and failing everyone;
//! - a connection must send a whole request head within `HTTP_HEADER_TIMEOUT_SECS`, also between
//!   the requests of a kept-alive connection: idle and slow-header connections are closed;
//! - a graceful stop: no new connections, requests in flight finish (for up to
//!   [`DRAIN_TIMEOUT`]), then the connections close.
//!
//! Connections are served by hyper-util's `auto` builder (HTTP/1.1 and HTTP/2), as `axum::serve`
//! does.

use std::{future::Future, sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};

use crate::config::HttpLimits;

/// Longest wait for requests in flight at a graceful stop.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(limits.header_timeout);
    let service = TowerToHyperService::new(router);
    // Tells connections still waiting for their first byte that the server is stopping.
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: back off a little, keep serving.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let service = service.clone();
        let first_byte_timeout = limits.header_timeout;
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            // hyper's header timeout starts with the first byte of a request (the `auto` builder
            // waits to see which protocol the client speaks first, without a timer): a client
            // that connects and says nothing is closed after the same time.
            let mut probe = [0_u8; 1];
            let first = tokio::select! {
                first = tokio::time::timeout(first_byte_timeout, stream.peek(&mut probe)) => first,
                _ = stopped.wait_for(|stopped| *stopped) => return,
            };
            if !matches!(first, Ok(Ok(n)) if n > 0) {
                return;
            }
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            // Errors here are the client's (reset, timed out, malformed): nothing to do.
            let _ = watcher.watch(connection).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests were still running {DRAIN_TIMEOUT:?} after the stop; closing");
    }
    Ok(())
}
