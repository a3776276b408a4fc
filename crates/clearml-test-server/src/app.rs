//! Serving: the axum router (one fallback handler for every path), the serve loop with a
//! shutdown signal, and the non-responsive-task watchdog beside it. Used by the CLI and by
//! `TestServer`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::endpoints::task_status::stop_non_responsive;
use crate::state::{Ctx, Shared};
use crate::wire::{self, MAX_VERSION};

/// The router: every method and path goes to `wire::handle`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(wire::handle).with_state(shared)
}

/// Serves until `shutdown` resolves, then stops accepting and finishes in-flight requests.
/// The non-responsive-task watchdog runs alongside.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let watchdog = tokio::spawn(watchdog(shared.clone()));
    let result = axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await;
    watchdog.abort();
    result
}

/// Every quarter of the timeout (at most every 15 minutes, as the real server does), stops
/// in-progress tasks that stopped updating.
async fn watchdog(shared: Arc<Shared>) {
    loop {
        let timeout_ms = shared.non_responsive_ms();
        let period_ms = (timeout_ms / 4).clamp(50, 15 * 60 * 1000) as u64;
        tokio::time::sleep(Duration::from_millis(period_ms)).await;
        let sweeper = shared.clone();
        let result = tokio::task::spawn_blocking(move || {
            sweeper.with_store(|db| {
                let ctx = Ctx {
                    db,
                    shared: &sweeper,
                    identity: &sweeper.identity,
                    worker: None,
                    version: MAX_VERSION,
                };
                stop_non_responsive(&ctx, timeout_ms)
            })
        })
        .await;
        if let Ok(Err(e)) = result {
            tracing::warn!("watchdog: {e}");
        }
    }
}
