//! The accept loop: peer uid checked on every connection, a cap on
//! connections, a header read timeout, graceful shutdown.

use crate::agent::{Caller, Peer};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;

/// Most connections served at once; more wait in the kernel's backlog. Idle
/// ones are cut by the header read timeout; only the user can connect at all.
pub const MAX_CONNECTIONS: usize = 4096;
/// A client must send its request headers within this time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The forwarding socket's connections may wait this long for a request:
/// the relay of a `regent ssh` session keeps one open between a remote
/// helper's calls (it lets go after 240 s, before this). Only the user's
/// ssh client connects there.
pub const FORWARD_IDLE: Duration = Duration::from_secs(300);
/// How long shutdown waits for requests in flight.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(listener: UnixListener, app: Router, shutdown: impl Future<Output = ()>) {
    serve_with(listener, app, shutdown, false).await
}

/// [`serve`]; with `forwarded`, each request is a [`Caller::Forwarded`]
/// carrying its connection's peer (the forwarding socket tells sessions
/// apart by it).
pub async fn serve_with(
    listener: UnixListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    forwarded: bool,
) {
    let uid = regent_proto::paths::current_uid();
    let forbidden = crate::api::forbidden_router();
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let cred = stream.peer_cred().ok();
        let peer = cred.map(|c| c.uid());
        let svc = if peer == Some(uid) && forwarded {
            let pid = cred
                .and_then(|c| c.pid())
                .and_then(|p| u32::try_from(p).ok());
            tracing::debug!(ssh_pid = ?pid, "a forwarded connection");
            app.clone()
                .layer(axum::Extension(Caller::Forwarded(Peer { pid })))
        } else if peer == Some(uid) {
            app.clone()
        } else {
            tracing::warn!(peer_uid = ?peer, "refusing a connection from another user");
            forbidden.clone()
        };
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(if forwarded {
                FORWARD_IDLE
            } else {
                HEADER_READ_TIMEOUT
            })
            .max_buf_size(64 * 1024)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
        });
    }
    tracing::info!("shutting down: draining requests in flight");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "some requests were still running after {}s",
            DRAIN_TIMEOUT.as_secs()
        );
    }
}
