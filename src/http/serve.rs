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
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service.clone())
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Errors here are the client's (reset, timed out, malformed): nothing to do.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests were still running {DRAIN_TIMEOUT:?} after the stop; closing");
    }
    Ok(())
}
