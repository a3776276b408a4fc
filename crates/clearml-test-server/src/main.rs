//! The `clearml-test-server` command: serve the ClearML-compatible test server on a port,
//! print its URL as the first stdout line, stop cleanly on SIGINT/SIGTERM.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use clap::Parser;
use clearml_test_server::{DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, Shared};

/// A ClearML-API-compatible server for tests and local trials.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Port to listen on; 0 picks a free port.
    #[arg(long, default_value_t = 8008)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// SQLite database file (created if missing); the state is kept in memory when absent.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Access key accepted by auth.login.
    #[arg(long, default_value = DEFAULT_ACCESS_KEY)]
    access_key: String,
    /// Secret key accepted by auth.login.
    #[arg(long, default_value = DEFAULT_SECRET_KEY)]
    secret_key: String,
    /// Lifetime in seconds of tokens issued without `expiration_sec`.
    #[arg(long, default_value_t = 2_592_000)]
    token_lifetime_sec: i64,
    /// In-progress tasks without any update for this many seconds are stopped
    /// ("Forced stop (non-responsive)").
    #[arg(long, default_value_t = 7200)]
    non_responsive_timeout_sec: i64,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let shared = Arc::new(Shared::open(
        cli.db.clone(),
        cli.access_key,
        cli.secret_key,
        cli.token_lifetime_sec,
    )?);
    shared.non_responsive_ms.store(
        cli.non_responsive_timeout_sec.saturating_mul(1000),
        Ordering::Relaxed,
    );
    let listener = tokio::net::TcpListener::bind((cli.host.as_str(), cli.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{}; pick another --port",
                cli.host, cli.port
            )
        })?;
    let addr = listener.local_addr()?;
    let mut out = std::io::stdout();
    writeln!(out, "http://{addr}")?;
    out.flush()?;
    clearml_test_server::serve(listener, shared, shutdown_signal()).await?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clearml-test-server: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clearml-test-server: {e:#}");
            ExitCode::from(1)
        }
    }
}
