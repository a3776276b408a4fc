//! `TestServer`: the server on its own thread and tokio runtime, for sync and async tests
//! alike, with seeding helpers, state readers, per-endpoint call counts, and stop/restart on the
//! same port and database.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::endpoints;
use crate::error::ApiError;
use crate::state::{Ctx, DEFAULT_NON_RESPONSIVE_MS, DEFAULT_TOKEN_LIFETIME_SEC, Shared};
use crate::store::{Store, Table};
use crate::wire::MAX_VERSION;

/// The default access key (also the CLI default).
pub const DEFAULT_ACCESS_KEY: &str = "test-access-key";
/// The default secret key (also the CLI default).
pub const DEFAULT_SECRET_KEY: &str = "test-secret-key";

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on (default 127.0.0.1).
    pub host: String,
    /// Port; 0 picks a free one (the default).
    pub port: u16,
    /// SQLite file; `None` keeps the state in memory.
    pub db: Option<PathBuf>,
    pub access_key: String,
    pub secret_key: String,
    /// Lifetime of tokens issued by `auth.login` without `expiration_sec` (default 30 days).
    pub token_lifetime: Duration,
    /// Watchdog: in-progress tasks without updates for this long are stopped (default 2 h).
    pub non_responsive_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            host: "127.0.0.1".into(),
            port: 0,
            db: None,
            access_key: DEFAULT_ACCESS_KEY.into(),
            secret_key: DEFAULT_SECRET_KEY.into(),
            token_lifetime: Duration::from_secs(DEFAULT_TOKEN_LIFETIME_SEC as u64),
            non_responsive_timeout: Duration::from_millis(DEFAULT_NON_RESPONSIVE_MS as u64),
        }
    }
}

struct Running {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running (or stopped) ClearML-compatible server.
pub struct TestServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    running: Option<Running>,
}

fn listen(shared: Arc<Shared>, addr: SocketAddr) -> anyhow::Result<(SocketAddr, Running)> {
    let std_listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    std_listener.set_nonblocking(true)?;
    let bound = std_listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    let thread = std::thread::Builder::new()
        .name(format!("clearml-test-server-{}", bound.port()))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                let shutdown = {
                    let mut stop_rx = stop_rx.clone();
                    async move {
                        let _ = stop_rx.wait_for(|s| *s).await;
                    }
                };
                let server = crate::app::serve(listener, shared, shutdown);
                let mut grace = stop_rx;
                tokio::select! {
                    _ = server => {}
                    _ = async {
                        let _ = rx.await;
                        let _ = stop_tx.send(true);
                        // Give in-flight requests a moment, then drop open connections.
                        let _ = grace.wait_for(|s| *s).await;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    } => {}
                }
            });
            rt.shutdown_timeout(Duration::from_secs(1));
        })?;
    ready_rx
        .recv()
        .map_err(|_| anyhow!("server thread ended before listening"))??;
    Ok((
        bound,
        Running {
            shutdown: Some(tx),
            thread: Some(thread),
        },
    ))
}

impl TestServer {
    /// Starts a server (free port, in-memory DB by default).
    pub fn start(options: Options) -> anyhow::Result<TestServer> {
        let shared = Arc::new(Shared::open(
            options.db.clone(),
            options.access_key.clone(),
            options.secret_key.clone(),
            options.token_lifetime.as_secs() as i64,
        )?);
        shared.non_responsive_ms.store(
            options.non_responsive_timeout.as_millis() as i64,
            Ordering::Relaxed,
        );
        let addr: SocketAddr = format!("{}:{}", options.host, options.port)
            .parse()
            .with_context(|| format!("invalid host {:?}", options.host))?;
        let (addr, running) = listen(shared.clone(), addr)?;
        Ok(TestServer {
            shared,
            addr,
            running: Some(running),
        })
    }

    /// Starts with default options.
    pub fn start_default() -> anyhow::Result<TestServer> {
        TestServer::start(Options::default())
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn access_key(&self) -> &str {
        &self.shared.access_key
    }

    pub fn secret_key(&self) -> &str {
        &self.shared.secret_key
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Stops listening (in-flight requests finish, open connections are dropped). The state
    /// stays; [`TestServer::restart`] serves it again on the same port.
    pub fn stop(&mut self) {
        if let Some(mut r) = self.running.take() {
            r.stop();
        }
    }

    /// Stops if running, reopens the database file (when there is one) and listens again on
    /// the same port. Tokens issued before stay valid (the signing secret is in the database).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        if let Some(path) = &self.shared.db_path {
            let store = Store::open(Some(path))?;
            let mut guard = self
                .shared
                .store
                .lock()
                .map_err(|_| anyhow!("store lock poisoned"))?;
            *guard = store;
        }
        let (_, running) = listen(self.shared.clone(), self.addr)?;
        self.running = Some(running);
        Ok(())
    }

    /// Changes the lifetime of tokens issued from now on by `auth.login`.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared
            .token_lifetime_sec
            .store(lifetime.as_secs() as i64, Ordering::Relaxed);
    }

    /// Signs a token valid for `lifetime_sec` seconds from now (negative: already expired).
    pub fn issue_token(&self, lifetime_sec: i64) -> anyhow::Result<String> {
        Ok(crate::token::issue(
            &self.shared.token_secret,
            &self.shared.identity,
            crate::clock::now_ms() / 1000,
            lifetime_sec,
        )?)
    }

    /// Runs an endpoint in-process (no HTTP, no auth, not counted), at the newest API version.
    pub fn call(&self, endpoint: &str, body: Value) -> Result<Value, ApiError> {
        let ep = endpoints::find(endpoint, MAX_VERSION).ok_or_else(|| {
            ApiError::new(
                404,
                0,
                &format!("Unable to find endpoint for name {endpoint}"),
            )
        })?;
        self.shared.with_store(|db| {
            let ctx = Ctx {
                db,
                shared: &self.shared,
                identity: &self.shared.identity,
                worker: None,
                version: MAX_VERSION,
            };
            (ep.handler)(&ctx, body)
        })
    }

    fn id_of(value: &Value) -> anyhow::Result<String> {
        value
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("reply without id: {value}"))
    }

    /// Creates a queue; returns its id.
    pub fn create_queue(&self, name: &str) -> anyhow::Result<String> {
        Self::id_of(&self.call("queues.create", json!({ "name": name }))?)
    }

    /// The id of the queue named `name`.
    pub fn queue_id(&self, name: &str) -> anyhow::Result<String> {
        let found = self
            .shared
            .with_store(|db| endpoints::queues::find_by_name(db, name))?;
        Self::id_of(&found.ok_or_else(|| anyhow!("no queue named {name}"))?)
    }

    /// Creates a task from a `tasks.create` body (`name` and `type` default to
    /// "test task" / "training"); returns its id.
    pub fn create_task(&self, mut body: Value) -> anyhow::Result<String> {
        if !body.is_object() {
            body = json!({});
        }
        if body.get("name").is_none() {
            body["name"] = json!("test task");
        }
        if body.get("type").is_none() {
            body["type"] = json!("training");
        }
        Self::id_of(&self.call("tasks.create", body)?)
    }

    /// `tasks.enqueue` into the queue named `queue` (created when missing).
    pub fn enqueue(&self, task: &str, queue: &str) -> anyhow::Result<()> {
        self.call(
            "tasks.enqueue",
            json!({ "task": task, "queue_name": queue }),
        )?;
        Ok(())
    }

    /// The stored task as `tasks.get_by_id` returns it.
    pub fn task(&self, id: &str) -> anyhow::Result<Value> {
        let reply = self.call("tasks.get_by_id", json!({ "task": id }))?;
        reply
            .get("task")
            .cloned()
            .ok_or_else(|| anyhow!("no task in reply"))
    }

    /// Task ids waiting in the queue named `name`, head first.
    pub fn queue_entries(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let id = self.queue_id(name)?;
        let q = self
            .shared
            .with_store(|db| endpoints::queues::load(db, &id))?;
        Ok(q.get("entries")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.get("task").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn stored_events(&self, task: &str, kind: Option<&str>) -> anyhow::Result<Vec<Value>> {
        let rows = self.shared.with_store(|db| db.events(task, kind))?;
        Ok(rows.into_iter().map(|(_, _, d)| d).collect())
    }

    /// The task's log events, oldest first.
    pub fn log_events(&self, task: &str) -> anyhow::Result<Vec<Value>> {
        self.stored_events(task, Some("log"))
    }

    /// The `msg` of every log event of the task, oldest first, joined by newlines.
    pub fn log_text(&self, task: &str) -> anyhow::Result<String> {
        Ok(self
            .log_events(task)?
            .iter()
            .filter_map(|e| e.get("msg").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// Every event of the task (any type), oldest first.
    pub fn events(&self, task: &str) -> anyhow::Result<Vec<Value>> {
        self.stored_events(task, None)
    }

    /// Live workers as stored (ids of queues, current task id).
    pub fn workers(&self) -> anyhow::Result<Vec<Value>> {
        Ok(self.shared.with_store(endpoints::workers::live)?)
    }

    /// All tasks as stored.
    pub fn tasks(&self) -> anyhow::Result<Vec<Value>> {
        Ok(self.shared.with_store(|db| db.all(Table::Tasks))?)
    }

    /// How many HTTP requests reached `endpoint` (e.g. "queues.get_next_task").
    pub fn calls(&self, endpoint: &str) -> u64 {
        self.shared
            .calls
            .lock()
            .map(|c| c.get(endpoint).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// All per-endpoint request counts.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.shared
            .calls
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// The next `times` requests to `endpoint` get `fault` instead of the real reply.
    pub fn inject_fault(&self, endpoint: &str, fault: crate::Fault, times: usize) {
        self.shared.faults.push(endpoint, fault, times);
    }

    /// How many injected faults have not been given yet.
    pub fn pending_faults(&self) -> usize {
        self.shared.faults.pending()
    }

    /// Drops every injected fault not given yet.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Sets every request count back to zero.
    pub fn reset_calls(&self) {
        if let Ok(mut c) = self.shared.calls.lock() {
            c.clear();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}
