//! Integration tests: api. The client against injected faults (a raw TCP server in this file that
//! answers canned HTTP) and against the project's test server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use clearml_agent::api::{
    Client, ClientConfig, Error, LogEvent, RetryPolicy, ScriptRequirements, StatusChange, Timeouts,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------------
// Fault injection: a raw HTTP/1.1 server whose every answer is chosen by the test.

/// One request as the fake server received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn endpoint(&self) -> &str {
        let path = self.path.split('?').next().unwrap_or("");
        path.rsplit('/').next().unwrap_or("")
    }
}

/// What the fake server does with one request.
enum Answer {
    /// Status and raw body.
    Raw(u16, String),
    /// Never answer (the connection stays open).
    Hang,
}

type Script = dyn Fn(&Seen, usize) -> Answer + Send + Sync;

struct Fake {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    /// Starts a server; `script(request, n)` answers the n-th (0-based) request of its endpoint.
    async fn start(script: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(serve(listener, Arc::new(script), seen.clone()));
        Fake { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    fn endpoints(&self) -> Vec<String> {
        self.seen()
            .iter()
            .map(|s| s.endpoint().to_owned())
            .collect()
    }

    fn count(&self, endpoint: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.endpoint() == endpoint)
            .count()
    }
}

async fn serve(listener: TcpListener, script: Arc<Script>, seen: Arc<Mutex<Vec<Seen>>>) {
    while let Ok((stream, _)) = listener.accept().await {
        let script = script.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let _ = handle(stream, script, seen).await;
        });
    }
}

async fn handle(
    mut stream: TcpStream,
    script: Arc<Script>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let path = request_line.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let request = Seen {
        method,
        path,
        headers,
        body,
    };
    let n = {
        let mut all = seen.lock().expect("lock");
        let n = all
            .iter()
            .filter(|s| s.endpoint() == request.endpoint())
            .count();
        all.push(request.clone());
        n
    };
    match script(&request, n) {
        Answer::Raw(status, body) => {
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).await?;
            stream.shutdown().await?;
        }
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
    Ok(())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An unsigned JWT with the given times (the client does not verify signatures).
fn jwt(iat: i64, exp: i64) -> String {
    let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = json!({"iat": iat, "exp": exp, "api_version": "2.31", "server_version": "2.0.0",
        "feature_set": "basic", "identity": {"user": "u1", "company": "c1"}});
    format!(
        "{}.{}.sig",
        enc.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        enc.encode(claims.to_string())
    )
}

fn envelope(code: u16, subcode: u32, msg: &str, data: Value) -> String {
    json!({"meta": {"id": "x", "trx": "x", "endpoint": {"name": "", "requested_version": "2.31",
        "actual_version": "1.0"}, "result_code": code, "result_subcode": subcode,
        "result_msg": msg, "error_stack": null, "error_data": {}}, "data": data})
    .to_string()
}

fn ok(data: Value) -> Answer {
    Answer::Raw(200, envelope(200, 0, "OK", data))
}

/// A login answer with a 30-day token.
fn login_ok() -> Answer {
    ok(json!({ "token": jwt(now(), now() + 2_592_000) }))
}

fn fast_config(url: &str) -> ClientConfig {
    let mut config = ClientConfig::new(url);
    config.access_key = Some("key".into());
    config.secret_key = Some("secret".into());
    config.worker_header = "host-1".into();
    config.agent_header = "clearml-agent-rs-test".into();
    config.retries = RetryPolicy {
        total: 3,
        backoff_factor: 0.01,
        max_backoff: Duration::from_millis(50),
        ..RetryPolicy::default()
    };
    config
}

#[tokio::test]
async fn sends_paths_methods_and_headers_like_the_python_agent() {
    let fake = Fake::start(|req, _| match req.endpoint() {
        "auth.login" => login_ok(),
        _ => ok(json!({})),
    })
    .await;
    let client = Client::new(fast_config(&fake.url)).expect("client");
    client.tasks().ping("t1").await.expect("ping");
    client
        .tasks()
        .dequeue("t1", Some("in_progress"))
        .await
        .expect("dequeue");
    client
        .queues()
        .get_next_task("q1", false)
        .await
        .expect("get_next_task");

    let seen = fake.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/auth.login",
            "/v2.5/tasks.ping",
            "/tasks.dequeue",
            "/v2.14/queues.get_next_task"
        ]
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("key:secret");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    let token = client.token().expect("token after login");
    for request in &seen {
        assert_eq!(request.method, "GET");
        assert_eq!(request.header("x-clearml-worker"), Some("host-1"));
        assert_eq!(request.header("x-trains-worker"), Some("host-1"));
        assert_eq!(
            request.header("x-clearml-agent"),
            Some("clearml-agent-rs-test")
        );
        assert_eq!(
            request.header("x-trains-agent"),
            Some("clearml-agent-rs-test")
        );
    }
    for request in &seen[1..] {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        assert_eq!(request.header("content-type"), Some("application/json"));
    }
    let body: Value = serde_json::from_slice(&seen[2].body).expect("json body");
    assert_eq!(body, json!({"task": "t1", "new_status": "in_progress"}));
    let claims = client.claims().expect("claims");
    assert_eq!(claims.api_version.as_deref(), Some("2.31"));
    assert_eq!(claims.identity.user.as_deref(), Some("u1"));
}

#[tokio::test]
async fn retries_5xx_and_bare_500_then_succeeds() {
    let fake = Fake::start(|req, n| match (req.endpoint(), n) {
        ("auth.login", _) => login_ok(),
        (_, 0) => Answer::Raw(502, "<html>bad gateway</html>".into()),
        (_, 1) => Answer::Raw(500, "Internal Server Error".into()),
        (_, 2) => Answer::Raw(503, envelope(503, 0, "maintenance", json!({}))),
        _ => ok(json!({})),
    })
    .await;
    let client = Client::new(fast_config(&fake.url)).expect("client");
    client.tasks().ping("t1").await.expect("ping after retries");
    assert_eq!(fake.count("tasks.ping"), 4);
}

#[tokio::test]
async fn gives_up_after_the_retry_budget() {
    let fake = Fake::start(|req, _| match req.endpoint() {
        "auth.login" => login_ok(),
        _ => Answer::Raw(502, "bad gateway".into()),
    })
    .await;
    let client = Client::new(fast_config(&fake.url)).expect("client");
    let err = client.tasks().ping("t1").await.expect_err("always 502");
    assert_eq!(fake.count("tasks.ping"), 4, "first try + 3 retries");
    assert!(
        matches!(err, Error::BadResponse { status: 502, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("proxy"), "{err}");
}

#[tokio::test]
async fn client_errors_and_server_envelopes_are_not_retried() {
    let fake = Fake::start(|req, _| match req.endpoint() {
        "auth.login" => login_ok(),
        "tasks.get_by_id" => Answer::Raw(
            400,
            envelope(400, 101, "Invalid task id: id=nope", json!({})),
        ),
        "queues.get_by_id" => Answer::Raw(400, envelope(400, 701, "Invalid queue id", json!({}))),
        "workers.get_runtime_properties" => {
            Answer::Raw(404, envelope(404, 0, "Unable to find endpoint", json!({})))
        }
        _ => Answer::Raw(500, envelope(500, 0, "General data error", json!({}))),
    })
    .await;
    let client = Client::new(fast_config(&fake.url)).expect("client");
    let err = client.tasks().get_by_id("nope").await.expect_err("400");
    assert!(err.is_task_not_found(), "{err}");
    assert_eq!(
        err.to_string(),
        "tasks.get_by_id failed: Invalid task id: id=nope (error 400/101)"
    );
    let err = client.queues().get_by_id("nope").await.expect_err("400");
    assert!(
        err.is_queue_not_found() && !err.is_task_not_found(),
        "{err}"
    );
    let err = client
        .call::<_, Value>(
            "workers.get_runtime_properties",
            None,
            &json!({"worker": "w"}),
        )
        .await
        .expect_err("404");
    assert!(err.is_endpoint_missing(), "{err}");
    let err = client.tasks().ping("t1").await.expect_err("500 envelope");
    assert_eq!(err.server_code(), Some((500, 0)));
    for endpoint in [
        "tasks.get_by_id",
        "queues.get_by_id",
        "workers.get_runtime_properties",
        "tasks.ping",
    ] {
        assert_eq!(fake.count(endpoint), 1, "{endpoint} was retried");
    }
}

#[tokio::test]
async fn garbage_bodies_are_bad_responses_naming_the_endpoint() {
    let fake = Fake::start(|req, _| match req.endpoint() {
        "auth.login" => login_ok(),
        "tasks.ping" => Answer::Raw(200, "<html>not the api server</html>".into()),
        "tasks.get_by_id" => Answer::Raw(200, r#"{"data": {"task": {}}}"#.into()),
        _ => ok(json!({"queues": "not a list"})),
    })
    .await;
    let client = Client::new(fast_config(&fake.url)).expect("client");
    let err = client.tasks().ping("t1").await.expect_err("html");
    let text = err.to_string();
    assert!(
        matches!(err, Error::BadResponse { status: 200, .. }),
        "{text}"
    );
    assert!(
        text.contains("tasks.ping") && text.contains("<html>not the api"),
        "{text}"
    );
    let err = client.tasks().get_by_id("t1").await.expect_err("no meta");
    assert!(err.to_string().contains("no meta"), "{err}");
    let err = client
        .queues()
        .get_all(&Default::default())
        .await
        .expect_err("wrong shape");
    assert!(err.to_string().contains("queues.get_all"), "{err}");
}

#[tokio::test]
async fn login_without_a_token_in_the_reply_is_a_clear_error() {
    let fake = Fake::start(|_, _| ok(json!({"hello": "world"}))).await;
    let client = Client::new(fast_config(&fake.url)).expect("client");
    let err = client.login().await.expect_err("no token");
    assert!(err.to_string().contains("ClearML API server"), "{err}");
}

#[tokio::test]
async fn rejected_credentials_are_an_auth_error() {
    let fake = Fake::start(|_, _| {
        Answer::Raw(
            401,
            envelope(401, 22, "Unauthorized (invalid credentials)", json!({})),
        )
    })
    .await;
    let client = Client::new(fast_config(&fake.url)).expect("client");
    let err = client.tasks().ping("t1").await.expect_err("401 on login");
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    assert!(err.to_string().contains("invalid credentials"), "{err}");
    assert_eq!(fake.count("tasks.ping"), 0);
}

#[tokio::test]
async fn slow_replies_time_out_and_are_retried() {
    let fake = Fake::start(|req, _| match req.endpoint() {
        "auth.login" => login_ok(),
        _ => Answer::Hang,
    })
    .await;
    let mut config = fast_config(&fake.url);
    config.timeouts = Timeouts {
        connect: Duration::from_secs(2),
        read: Duration::from_millis(300),
    };
    config.retries.total = 1;
    let client = Client::new(config).expect("client");
    let err = client.tasks().ping("t1").await.expect_err("hang");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.is_transport());
    assert_eq!(fake.count("tasks.ping"), 2);
}

#[tokio::test]
async fn expired_token_gets_one_relogin_and_retry() {
    let fake = Fake::start(|req, n| match (req.endpoint(), n) {
        ("auth.login", _) => login_ok(),
        ("tasks.ping", 0) => Answer::Raw(401, envelope(401, 30, "Invalid token", json!({}))),
        _ => ok(json!({})),
    })
    .await;
    let client = Client::new(fast_config(&fake.url)).expect("client");
    client
        .tasks()
        .ping("t1")
        .await
        .expect("ping after re-login");
    assert_eq!(
        fake.endpoints(),
        ["auth.login", "tasks.ping", "auth.login", "tasks.ping"]
    );
}

#[tokio::test]
async fn a_second_401_is_returned_not_looped() {
    let fake = Fake::start(|req, _| match req.endpoint() {
        "auth.login" => login_ok(),
        _ => Answer::Raw(401, envelope(401, 30, "Invalid token", json!({}))),
    })
    .await;
    let client = Client::new(fast_config(&fake.url)).expect("client");
    let err = client.tasks().ping("t1").await.expect_err("401 twice");
    assert!(err.is_unauthorized(), "{err}");
    assert_eq!(fake.count("tasks.ping"), 2);
    assert_eq!(fake.count("auth.login"), 2);
}

#[tokio::test]
async fn short_lived_token_is_renewed_before_it_expires() {
    // The first token has lived 10 s of its 12 s: past half its life, so the next call renews
    // it first. The second is a fresh 30-day token, which later calls keep using.
    let fake = Fake::start(|req, n| match (req.endpoint(), n) {
        ("auth.login", 0) => ok(json!({ "token": jwt(now() - 10, now() + 2) })),
        ("auth.login", _) => login_ok(),
        _ => ok(json!({})),
    })
    .await;
    let client = Client::new(fast_config(&fake.url)).expect("client");
    client.tasks().ping("t1").await.expect("ping 1");
    client.tasks().ping("t1").await.expect("ping 2");
    client.tasks().ping("t1").await.expect("ping 3");
    assert_eq!(
        fake.endpoints(),
        [
            "auth.login",
            "tasks.ping",
            "auth.login",
            "tasks.ping",
            "tasks.ping"
        ]
    );
    let seen = fake.seen();
    assert_ne!(
        seen[1].header("authorization"),
        seen[3].header("authorization")
    );
    assert_eq!(
        seen[3].header("authorization"),
        seen[4].header("authorization")
    );
}

#[tokio::test]
async fn bearer_token_login_when_no_key_is_configured() {
    let fake = Fake::start(|req, _| match req.endpoint() {
        "auth.login" => login_ok(),
        _ => ok(json!({})),
    })
    .await;
    let mut config = fast_config(&fake.url);
    config.access_key = None;
    config.secret_key = None;
    config.auth_token = Some("bare-token".into());
    config.request_token_expiration_sec = Some(3600);
    let client = Client::new(config).expect("client");
    client.tasks().ping("t1").await.expect("ping");
    let login = &fake.seen()[0];
    assert_eq!(login.path, "/auth.login?expiration_sec=3600");
    assert_eq!(login.header("authorization"), Some("Bearer bare-token"));
}

#[tokio::test]
async fn log_events_are_split_into_json_lines_packets_under_the_limit() {
    let fake = Fake::start(|req, _| match req.endpoint() {
        "auth.login" => login_ok(),
        _ => {
            let lines = req.body.split(|b| *b == b'\n').count();
            ok(json!({"added": lines, "errors": 0, "errors_info": {}}))
        }
    })
    .await;
    let mut config = fast_config(&fake.url);
    config.max_batch_bytes = 1000;
    let client = Client::new(config).expect("client");
    let events: Vec<LogEvent> = (0..10)
        .map(|i| LogEvent {
            task: "t1".into(),
            level: "INFO".into(),
            worker: "host-1:cpu:0".into(),
            msg: format!("line {i} {}", "x".repeat(200)),
            timestamp: 1_700_000_000_000 + i,
        })
        .collect();
    let result = client.events().add_log_events(&events).await.expect("add");
    assert_eq!((result.added, result.errors), (10, 0));

    let batches: Vec<Seen> = fake
        .seen()
        .into_iter()
        .filter(|s| s.endpoint() == "events.add_batch")
        .collect();
    // Each line is 314-315 bytes, so three lines (plus two newlines) fit in 1000 bytes.
    assert_eq!(batches.len(), 4);
    assert_eq!(result.packets, 4);
    let mut messages = Vec::new();
    for batch in &batches {
        assert_eq!(batch.method, "POST");
        assert_eq!(batch.path, "/events.add_batch");
        assert_eq!(batch.header("content-type"), Some("application/json-lines"));
        assert!(
            batch.body.len() <= 1000,
            "packet of {} bytes",
            batch.body.len()
        );
        for line in batch.body.split(|b| *b == b'\n') {
            let event: Value = serde_json::from_slice(line).expect("one JSON object per line");
            assert_eq!(event["type"], "log");
            assert_eq!(event["worker"], "host-1:cpu:0");
            messages.push(event["msg"].as_str().unwrap_or("").to_owned());
        }
    }
    let expected: Vec<String> = events.iter().map(|e| e.msg.clone()).collect();
    assert_eq!(messages, expected);
}

#[tokio::test]
async fn server_down_is_a_connect_error_that_names_the_cause() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let mut config = fast_config(&format!("http://127.0.0.1:{port}"));
    config.retries.total = 1;
    let client = Client::new(config).expect("client");
    let err = client.tasks().ping("t1").await.expect_err("nobody listens");
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    let text = err.to_string();
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
}

#[tokio::test]
async fn bad_configuration_is_reported_before_any_request() {
    let err = Client::new(ClientConfig::new("localhost:8008")).expect_err("no scheme");
    assert!(err.to_string().contains("CLEARML_API_HOST"), "{err}");
    let mut config = ClientConfig::new("https://localhost:8008");
    config.ca_bundle = Some("/nonexistent/ca.pem".into());
    let err = Client::new(config).expect_err("missing CA");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

#[tokio::test]
async fn concurrent_calls_share_one_login() {
    let logins = Arc::new(AtomicUsize::new(0));
    let counter = logins.clone();
    let fake = Fake::start(move |req, _| match req.endpoint() {
        "auth.login" => {
            counter.fetch_add(1, Ordering::SeqCst);
            login_ok()
        }
        _ => ok(json!({})),
    })
    .await;
    let client = Client::new(fast_config(&fake.url)).expect("client");
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.tasks().ping(&format!("t{i}")).await })
        })
        .collect();
    for call in calls {
        call.await.expect("join").expect("ping");
    }
    assert_eq!(logins.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn status_changes_send_the_python_agents_payloads() {
    let fake = Fake::start(|req, _| match req.endpoint() {
        "auth.login" => login_ok(),
        _ => ok(json!({"updated": 1, "fields": {"status": "in_progress"}})),
    })
    .await;
    let client = Client::new(fast_config(&fake.url)).expect("client");
    let change = StatusChange::new("t1")
        .message("pulled by agent")
        .force(true);
    let updated = client.tasks().started(&change).await.expect("started");
    assert_eq!(updated.updated, 1);
    let seen = fake.seen();
    assert_eq!(seen[1].path, "/v2.5/tasks.started");
    let body: Value = serde_json::from_slice(&seen[1].body).expect("json");
    assert_eq!(
        body,
        json!({"task": "t1", "status_message": "pulled by agent", "force": true})
    );
}

// ---------------------------------------------------------------------------------------------
// Against the project's test server.

use clearml_agent::api::{
    Container, MachineStats, ProjectQuery, QueueQuery, StatusReport, WorkerQuery, escape_regex,
};
use clearml_test_server::{Options, TestServer};

fn server_config(server: &TestServer) -> ClientConfig {
    let mut config = fast_config(&server.url());
    config.access_key = Some(server.access_key().to_owned());
    config.secret_key = Some(server.secret_key().to_owned());
    config
}

fn start_server() -> TestServer {
    TestServer::start_default().expect("test server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_lifecycle_through_a_queue() {
    let server = start_server();
    let client = Client::new(server_config(&server)).expect("client");
    let claims = client.login().await.expect("login");
    assert!(claims.api_version.is_some(), "{claims:?}");
    assert_eq!(claims.effective_feature_set(), "basic");
    assert!(
        client.supports_api("2.26"),
        "tasks.dequeue new_status needs 2.26"
    );
    assert!(!client.supports_api("99.0"));

    let queues = client.queues();
    let (default_id, default_name) = queues.get_default().await.expect("default queue");
    assert_eq!(default_name, "default");
    let qid = queues.create("api q.1", &[]).await.expect("create queue");
    let found = queues
        .get_all(&QueueQuery {
            name: Some(escape_regex("api q.1")),
            only_fields: Some(vec!["name".into(), "id".into()]),
            ..QueueQuery::default()
        })
        .await
        .expect("queue by name");
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].id.as_str(), found[0].name.as_str()),
        (qid.as_str(), "api q.1")
    );
    assert_ne!(qid, default_id);
    let err = queues
        .get_by_id("0".repeat(32).as_str())
        .await
        .expect_err("no queue");
    assert!(err.is_queue_not_found(), "{err}");

    let task = server
        .create_task(json!({"name": "api task", "script": {
            "repository": "https://example.com/r.git", "branch": "main", "entry_point": "a.py",
            "requirements": {"pip": "numpy\nclearml"}}}))
        .expect("seed task");
    let tasks = client.tasks();
    let queued = tasks
        .enqueue(&StatusChange::new(&task), Some(&qid))
        .await
        .expect("enqueue");
    assert_eq!(queued.queued, 1);
    assert_eq!(
        queues.get_by_id(&qid).await.expect("queue").entries[0].task,
        task
    );

    let next = queues.get_next_task(&qid, false).await.expect("pop");
    assert_eq!(next.map(|n| n.task), Some(task.clone()));
    assert_eq!(
        queues.get_next_task(&qid, false).await.expect("pop empty"),
        None
    );

    let started = tasks
        .started(
            &StatusChange::new(&task)
                .message("pulled by agent")
                .force(true),
        )
        .await
        .expect("started");
    assert_eq!(started.updated, 1);
    let read = tasks.get_by_id(&task).await.expect("get_by_id");
    assert_eq!(read.id, task);
    assert_eq!(read.status, "in_progress");
    assert_eq!(read.status_message, "pulled by agent");
    assert_eq!(read.script.repository, "https://example.com/r.git");
    assert_eq!(read.script.entry_point, "a.py");
    assert_eq!(
        read.script.requirements.pip().as_deref(),
        Some("numpy\nclearml")
    );
    let status = tasks.status(&task).await.expect("status").expect("exists");
    assert_eq!(status.status, "in_progress");
    assert_eq!(tasks.status(&"f".repeat(32)).await.expect("status"), None);

    let mut runtime = tasks.runtime(&task).await.expect("runtime");
    runtime.insert("_exec_agent_hostname".into(), json!("host-1"));
    tasks
        .edit_runtime(&task, &runtime)
        .await
        .expect("edit runtime");
    assert_eq!(
        tasks.runtime(&task).await.expect("runtime")["_exec_agent_hostname"],
        "host-1"
    );
    let container = Container {
        image: Some("python:3.11".into()),
        arguments: Some("-e X=1".into()),
        setup_shell_script: None,
    };
    tasks
        .edit_container(&task, &container)
        .await
        .expect("edit container");
    let stored = tasks.container(&task).await.expect("container");
    assert_eq!(stored.image.as_deref(), Some("python:3.11"));
    assert_eq!(stored.arguments.as_deref(), Some("-e X=1"));
    tasks
        .set_version_num(&task, "abc123")
        .await
        .expect("version");
    let requirements: ScriptRequirements =
        json!({"pip": ["numpy==2.0", "clearml==2.1"], "org_pip": "numpy\nclearml"}).into();
    tasks
        .set_requirements(&task, &requirements)
        .await
        .expect("requirements");
    let read = tasks.get_by_id(&task).await.expect("get_by_id");
    assert_eq!(read.script.version_num, "abc123");
    assert_eq!(
        read.script.branch, "main",
        "script edit merges one level deep"
    );
    assert_eq!(read.script.requirements, requirements);
    tasks.ping(&task).await.expect("ping");
    let params = tasks
        .get_hyper_params(std::slice::from_ref(&task))
        .await
        .expect("hyper params");
    assert_eq!(params.len(), 1);

    tasks
        .completed(&StatusChange::new(&task).reason("worker execution done"))
        .await
        .expect("completed");
    assert_eq!(server.task(&task).expect("task")["status"], "completed");
    let clone = tasks
        .clone_task(&task, Some("Clone of api task"))
        .await
        .expect("clone");
    let cloned = tasks.get_by_id(&clone).await.expect("clone read");
    assert_eq!(
        (cloned.name.as_str(), cloned.status.as_str()),
        ("Clone of api task", "created")
    );

    let err = tasks.get_by_id(&"0".repeat(32)).await.expect_err("no task");
    assert!(err.is_task_not_found(), "{err}");
    let err = tasks
        .completed(&StatusChange::new(&clone))
        .await
        .expect_err("created → completed is illegal");
    assert!(err.is_invalid_task_status(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dequeue_claims_a_queued_task() {
    let server = start_server();
    let client = Client::new(server_config(&server)).expect("client");
    let task = server.create_task(json!({})).expect("task");
    server.enqueue(&task, "default").expect("enqueue");
    let claimed = client
        .tasks()
        .dequeue(&task, Some("in_progress"))
        .await
        .expect("dequeue");
    assert_eq!(claimed.updated, 1);
    assert_eq!(server.task(&task).expect("task")["status"], "in_progress");
    assert!(server.queue_entries("default").expect("entries").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_register_report_list_and_unregister() {
    let server = start_server();
    let client = Client::new(server_config(&server)).expect("client");
    let (qid, _) = client.queues().get_default().await.expect("default");
    let task = server.create_task(json!({})).expect("task");
    let workers = client.workers();
    workers
        .register("host-1:cpu:0", std::slice::from_ref(&qid), None)
        .await
        .expect("register");
    let report = StatusReport {
        worker: "host-1:cpu:0".into(),
        timestamp: now() * 1000,
        machine_stats: Some(MachineStats {
            cpu_usage: Some(vec![12.5, 40.0]),
            memory_used: Some(1024.0),
            memory_free: Some(2048.0),
            disk_free_home: Some(55.0),
            ..MachineStats::default()
        }),
        tags: None,
        is_daemon: true,
        task: Some(task.clone()),
        queue: Some(qid.clone()),
        queues: Some(vec![qid.clone()]),
    };
    workers.status_report(&report).await.expect("status report");
    let all = workers
        .get_all(&WorkerQuery::default())
        .await
        .expect("get_all");
    let me = all
        .iter()
        .find(|w| w.id == "host-1:cpu:0")
        .expect("registered worker listed");
    assert_eq!(me.task.as_ref().map(|t| t.id.as_str()), Some(task.as_str()));
    assert_eq!(
        server.task(&task).expect("task")["last_worker"],
        "host-1:cpu:0"
    );
    let raw = workers
        .get_all_raw(&WorkerQuery::default())
        .await
        .expect("raw");
    assert!(raw["workers"].is_array(), "{raw}");

    // The open-source server has no runtime properties: 404, which callers branch on.
    let err = workers
        .get_runtime_properties("host-1:cpu:0")
        .await
        .expect_err("enterprise-only endpoint");
    assert!(err.is_endpoint_missing(), "{err}");

    workers
        .unregister("host-1:cpu:0", &[])
        .await
        .expect("unregister");
    let all = workers
        .get_all(&WorkerQuery::default())
        .await
        .expect("get_all");
    assert!(all.iter().all(|w| w.id != "host-1:cpu:0"), "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_events_reach_the_server_in_order_across_packets() {
    let server = start_server();
    let mut config = server_config(&server);
    config.max_batch_bytes = 4096;
    let client = Client::new(config).expect("client");
    let task = server.create_task(json!({})).expect("task");
    let mut events: Vec<LogEvent> = (0..60)
        .map(|i| LogEvent {
            task: task.clone(),
            level: "INFO".into(),
            worker: "host-1:cpu:0".into(),
            msg: format!("line {i:02} {}", "y".repeat(100)),
            timestamp: 1_700_000_000_000 + i * 10,
        })
        .collect();
    // One message longer than the 64 KiB cap is split into two events.
    events.push(LogEvent {
        msg: "z".repeat(64 * 1024 + 10),
        timestamp: 1_700_000_001_000,
        ..events[0].clone()
    });
    let result = client.events().add_log_events(&events).await.expect("add");
    assert_eq!((result.added, result.errors), (62, 0));
    assert!(result.packets > 2, "{result:?}");
    let stored = server.log_events(&task).expect("events");
    let messages: Vec<&str> = stored
        .iter()
        .map(|e| e["msg"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(messages.len(), 62);
    assert_eq!(messages[0], events[0].msg);
    assert_eq!(messages[59], events[59].msg);
    assert_eq!(messages[60].len() + messages[61].len(), 64 * 1024 + 10);
    assert_eq!(stored[0]["level"], "INFO");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_create_find_and_read() {
    let server = start_server();
    let client = Client::new(server_config(&server)).expect("client");
    let projects = client.projects();
    let id = projects.create("examples", "").await.expect("create");
    let found = projects
        .get_all(&ProjectQuery {
            name: Some(format!("^{}$", escape_regex("examples"))),
            only_fields: Some(vec!["id".into()]),
            ..ProjectQuery::default()
        })
        .await
        .expect("get_all");
    assert_eq!(
        found.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    assert_eq!(
        projects.get_by_id(&id).await.expect("read").name,
        "examples"
    );
    let user = client.auth().current_user().await.expect("current user");
    assert_eq!(Some(user.id), client.claims().and_then(|c| c.identity.user));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_wait_for_a_server_that_comes_back() {
    let mut server = start_server();
    let mut config = server_config(&server);
    config.retries = RetryPolicy {
        total: 100,
        backoff_factor: 0.05,
        max_backoff: Duration::from_millis(100),
        ..RetryPolicy::default()
    };
    let client = Client::new(config).expect("client");
    client.login().await.expect("login");
    let task = server.create_task(json!({})).expect("task");
    tokio::task::block_in_place(|| server.stop());
    let pinger = {
        let client = client.clone();
        let task = task.clone();
        tokio::spawn(async move { client.tasks().ping(&task).await })
    };
    // Let the first attempts be refused, then serve again on the same port.
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| server.restart()).expect("restart");
    pinger
        .await
        .expect("join")
        .expect("ping once the server is back");
    assert_eq!(server.calls("tasks.ping"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_server_tokens_are_renewed_without_a_401() {
    let server = TestServer::start(Options {
        token_lifetime: Duration::from_secs(2),
        ..Options::default()
    })
    .expect("server");
    let client = Client::new(server_config(&server)).expect("client");
    let task = server.create_task(json!({})).expect("task");
    client.tasks().ping(&task).await.expect("ping 1");
    let first = client.token();
    // Past half of the token's 2 s life: the next call logs in again before it is sent.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client.tasks().ping(&task).await.expect("ping 2");
    assert_ne!(client.token(), first);
    assert_eq!(server.calls("auth.login"), 2);
    assert_eq!(server.calls("tasks.ping"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_clients_share_one_login() {
    let server = TestServer::start(Options {
        token_lifetime: Duration::from_secs(2),
        ..Options::default()
    })
    .expect("server");
    let client = Client::new(server_config(&server)).expect("client");
    let retrying = client.with_retries(3);
    let stoppable = client.with_stop(tokio_util::sync::CancellationToken::new());
    let task = server.create_task(json!({})).expect("task");
    // Logged in once, through a derived client: the others use that token.
    retrying.tasks().ping(&task).await.expect("ping 1");
    stoppable.tasks().ping(&task).await.expect("ping 2");
    client.tasks().ping(&task).await.expect("ping 3");
    assert_eq!(server.calls("auth.login"), 1);
    assert_eq!(client.token(), stoppable.token());
    // A renewal by one is the renewal of all of them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stoppable.tasks().ping(&task).await.expect("ping 4");
    assert_eq!(server.calls("auth.login"), 2);
    retrying.tasks().ping(&task).await.expect("ping 5");
    client.tasks().ping(&task).await.expect("ping 6");
    assert_eq!(server.calls("auth.login"), 2);
    assert_eq!(client.token(), retrying.token());
}

// ---------------------------------------------------------------------------------------------
// TLS: a real TLS server (`openssl s_server -www`, which answers any request with an HTML page)
// with a self-signed certificate made by the test.

struct TlsServer {
    url: String,
    /// The CA that signed the server's certificate.
    cert: std::path::PathBuf,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

async fn start_tls_server() -> TlsServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name);
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("openssl is needed for the TLS tests");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A private CA, and a server certificate for localhost signed by it.
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=Test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        path("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    let (cert, key, ca) = (path("cert.pem"), path("key.pem"), path("ca.pem"));
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let child = tokio::process::Command::new("openssl")
        .args(["s_server", "-www", "-quiet", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl s_server");
    // Wait until it accepts connections.
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    TlsServer {
        url: format!("https://localhost:{port}"),
        cert: ca,
        _child: child,
        _dir: dir,
    }
}

fn tls_config(url: &str) -> ClientConfig {
    let mut config = fast_config(url);
    config.retries.total = 0;
    config
}

/// The TLS handshake succeeded when the reply is s_server's HTML page (not a ClearML envelope).
fn handshake_succeeded(err: &Error) -> bool {
    matches!(err, Error::BadResponse { status: 200, snippet, .. } if snippet.contains("<HTML>"))
}

#[tokio::test]
async fn self_signed_certificates_are_rejected_unless_trusted_or_unverified() {
    let tls = start_tls_server().await;

    let client = Client::new(tls_config(&tls.url)).expect("client");
    let err = client.login().await.expect_err("untrusted certificate");
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    let mut config = tls_config(&tls.url);
    config.verify_certificate = false;
    let client = Client::new(config).expect("client");
    let err = client.login().await.expect_err("not a ClearML server");
    assert!(handshake_succeeded(&err), "{err}");

    let mut config = tls_config(&tls.url);
    config.ca_bundle = Some(tls.cert.clone());
    let client = Client::new(config).expect("client");
    let err = client.login().await.expect_err("not a ClearML server");
    assert!(handshake_succeeded(&err), "{err}");
}

#[tokio::test]
async fn default_method_is_configurable_and_batches_stay_post() {
    let fake = Fake::start(|req, _| match req.endpoint() {
        "auth.login" => login_ok(),
        "events.add_batch" => ok(json!({"added": 1, "errors": 0})),
        _ => ok(json!({})),
    })
    .await;
    let mut config = fast_config(&fake.url);
    config.default_method = clearml_agent::api::Method::Put;
    let client = Client::new(config).expect("client");
    client.tasks().ping("t1").await.expect("ping");
    client
        .events()
        .add_batch(&[json!({"type": "log", "task": "t1", "msg": "x"})])
        .await
        .expect("batch");
    let methods: Vec<(String, String)> = fake
        .seen()
        .iter()
        .map(|s| (s.endpoint().to_owned(), s.method.clone()))
        .collect();
    let expected = [
        ("auth.login", "PUT"),
        ("tasks.ping", "PUT"),
        ("events.add_batch", "POST"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(e, m)| ((*e).to_owned(), (*m).to_owned()))
        .collect();
    assert_eq!(methods, expected);
}
