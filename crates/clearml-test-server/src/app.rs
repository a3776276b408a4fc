//! Serving: the axum router (one fallback handler for every path) and the serve loop with a
//! shutdown signal. Used by the CLI and by `TestServer`.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::state::Shared;
use crate::wire;

/// The router: every method and path goes to `wire::handle`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(wire::handle).with_state(shared)
}

/// Serves until `shutdown` resolves, then stops accepting and finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await
}
