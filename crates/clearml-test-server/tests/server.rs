//! The test server's own tests, over real HTTP: envelope, auth, query-string merge, json-lines, every endpoint's success and
//! error paths, the task state machine, the stop handshake, atomic pops, restart persistence.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected reply"
)]

use std::collections::HashSet;

use base64::Engine;
use clearml_test_server::{Options, TestServer};
use serde_json::{Value, json};

/// A plain HTTP client. In a workspace build reqwest carries the agent's TLS features without a
/// crypto provider of its own, so one is installed first (these tests speak plain HTTP).
fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A logged-in client speaking the wire format.
struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

/// A reply: HTTP status and the whole JSON envelope.
struct Reply {
    status: u16,
    body: Value,
}

impl Reply {
    fn data(&self) -> &Value {
        &self.body["data"]
    }
    fn subcode(&self) -> i64 {
        self.body["meta"]["result_subcode"].as_i64().unwrap_or(-1)
    }
    fn msg(&self) -> String {
        self.body["meta"]["result_msg"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

impl Client {
    async fn login(server: &TestServer) -> Client {
        let http = http();
        let resp = http
            .get(format!("{}/auth.login", server.url()))
            .basic_auth(server.access_key(), Some(server.secret_key()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let body: Value = resp.json().await.unwrap();
        let token = body["data"]["token"].as_str().unwrap().to_string();
        Client {
            http,
            url: server.url(),
            token,
        }
    }

    async fn send(&self, path: &str, body: Value) -> Reply {
        let resp = self
            .http
            .get(format!("{}/{}", self.url, path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["meta"]["result_code"].as_u64(),
            Some(status as u64),
            "{body}"
        );
        Reply { status, body }
    }

    /// Calls and expects success; returns `data`.
    async fn ok(&self, endpoint: &str, body: Value) -> Value {
        let r = self.send(endpoint, body).await;
        assert_eq!(r.status, 200, "{endpoint}: {}", r.body);
        r.data().clone()
    }

    /// Calls and expects the given error code/subcode; returns the message.
    async fn err(&self, endpoint: &str, body: Value, code: u16, subcode: i64) -> String {
        let r = self.send(endpoint, body).await;
        assert_eq!(
            (r.status, r.subcode()),
            (code, subcode),
            "{endpoint}: {}",
            r.body
        );
        r.msg()
    }

    async fn new_task(&self, name: &str) -> String {
        let d = self
            .ok("tasks.create", json!({"name": name, "type": "training"}))
            .await;
        d["id"].as_str().unwrap().to_string()
    }

    async fn task(&self, id: &str) -> Value {
        self.ok("tasks.get_by_id", json!({"task": id})).await["task"].clone()
    }

    async fn queue(&self, name: &str) -> String {
        let d = self.ok("queues.create", json!({"name": name})).await;
        d["id"].as_str().unwrap().to_string()
    }
}

fn server() -> TestServer {
    TestServer::start(Options::default()).unwrap()
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

// ---------------------------------------------------------------- wire format

#[tokio::test]
async fn envelope_has_every_meta_field_and_server_header() {
    let s = server();
    let http = http();
    let resp = http
        .post(format!("{}/v2.23/debug.ping/", s.url()))
        .header("X-ClearML-Trx", "trx-1")
        .body("{\"hello\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["server"], "clearml");
    let body: Value = resp.json().await.unwrap();
    let meta = &body["meta"];
    assert!(is_hex32(meta["id"].as_str().unwrap()));
    assert_eq!(meta["trx"], "trx-1");
    assert_eq!(meta["endpoint"]["name"], "debug.ping");
    assert_eq!(meta["endpoint"]["requested_version"], "2.23");
    assert_eq!(meta["endpoint"]["actual_version"], "1.0");
    assert_eq!(meta["result_code"], 200);
    assert_eq!(meta["result_subcode"], 0);
    assert_eq!(meta["result_msg"], "OK");
    assert!(meta["error_stack"].is_null());
    assert_eq!(meta["error_data"], json!({}));
    assert_eq!(body["data"]["msg"], "ClearML server");
    assert_eq!(body["data"]["hello"], 1);
}

#[tokio::test]
async fn unversioned_path_uses_the_max_version_and_old_versions_get_floats() {
    let s = server();
    let c = Client::login(&s).await;
    let r = c.send("queues.get_all", json!({})).await;
    assert_eq!(r.body["meta"]["endpoint"]["requested_version"], "2.31");
    assert_eq!(r.body["meta"]["endpoint"]["actual_version"], "2.4");
    let r = c.send("v1.5/debug.ping", json!({})).await;
    assert_eq!(r.body["meta"]["endpoint"]["requested_version"], json!(1.5));
}

#[tokio::test]
async fn unknown_endpoint_and_too_low_version_are_404_with_envelope() {
    let s = server();
    let c = Client::login(&s).await;
    let msg = c.err("tasks.no_such_thing", json!({}), 404, 0).await;
    assert!(msg.contains("tasks.no_such_thing"), "{msg}");
    c.err("v2.3/queues.get_all", json!({}), 404, 0).await;
    c.err(
        "workers.get_runtime_properties",
        json!({"worker": "w"}),
        404,
        0,
    )
    .await;
    let r = http()
        .get(format!("{}/not-an-endpoint", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http()
        .get(format!("{}/vX/debug.ping", s.url()))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["meta"]["result_subcode"], 2);
}

#[tokio::test]
async fn get_with_json_body_and_unknown_fields_are_accepted() {
    let s = server();
    let c = Client::login(&s).await;
    let id = c.new_task("body on get").await;
    let t = c
        .ok(
            "tasks.get_by_id",
            json!({"task": id, "method": "get", "bogus": [1, 2]}),
        )
        .await;
    assert_eq!(t["task"]["id"], id.as_str());
}

#[tokio::test]
async fn query_string_is_merged_into_the_body() {
    let s = server();
    let r = http()
        .get(format!(
            "{}/debug.ping?n=12&f=1.5&yes=true&no=false&a.b=x&l[]=1&r=p&r=q",
            s.url()
        ))
        .body("{\"keep\": \"me\"}")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let d = &body["data"];
    assert_eq!(d["n"], 12);
    assert_eq!(d["f"], 1.5);
    assert_eq!(d["yes"], true);
    assert_eq!(d["no"], false);
    assert_eq!(d["a"], json!({"b": "x"}));
    assert_eq!(d["l"], json!([1]));
    assert_eq!(d["r"], json!(["p", "q"]));
    assert_eq!(d["keep"], "me");
}

#[tokio::test]
async fn malformed_json_is_400() {
    let s = server();
    let c = Client::login(&s).await;
    let r = c
        .http
        .post(format!("{}/tasks.get_all", s.url()))
        .bearer_auth(&c.token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["meta"]["result_subcode"], 0);
    let r = c
        .http
        .post(format!("{}/tasks.get_all", s.url()))
        .bearer_auth(&c.token)
        .header("Content-Encoding", "gzip")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        415,
        "compressed request bodies are refused"
    );
}

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn login_returns_a_jwt_with_the_server_claims() {
    let s = server();
    let c = Client::login(&s).await;
    let cl = claims(&c.token);
    assert_eq!(cl["auth_type"], "Bearer");
    assert_eq!(cl["api_version"], "2.31");
    assert_eq!(cl["server_version"], "2.0.0");
    assert_eq!(cl["feature_set"], "basic");
    assert!(is_hex32(cl["session_id"].as_str().unwrap()));
    assert!(cl["env"].is_string());
    for key in ["user", "company", "role", "user_name", "company_name"] {
        assert!(cl["identity"][key].is_string(), "identity.{key}");
    }
    assert_eq!(
        cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap(),
        2_592_000
    );
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(c.token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "HS256");
}

#[tokio::test]
async fn login_honours_expiration_sec_up_to_one_year() {
    let s = server();
    let http = http();
    let login = |q: &str| {
        http.get(format!("{}/auth.login{q}", s.url()))
            .basic_auth(s.access_key(), Some(s.secret_key()))
            .send()
    };
    let body: Value = login("?expiration_sec=120")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cl = claims(body["data"]["token"].as_str().unwrap());
    assert_eq!(
        cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap(),
        120
    );
    let r = login("?expiration_sec=31536001").await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["meta"]["result_subcode"], 12);
}

#[tokio::test]
async fn auth_errors_have_the_real_codes() {
    let s = server();
    let http = http();
    let url = format!("{}/tasks.get_all", s.url());
    let code = |r: Value| {
        (
            r["meta"]["result_code"].as_i64().unwrap(),
            r["meta"]["result_subcode"].as_i64().unwrap(),
        )
    };
    let r: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(code(r), (401, 20));
    let r: Value = http
        .get(&url)
        .basic_auth("test-access-key", Some("wrong"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(r), (401, 22));
    let r: Value = http
        .get(&url)
        .header("Authorization", "Basic !!!notbase64")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(r), (401, 21));
    let r: Value = http
        .get(&url)
        .header("Authorization", "Digest x")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(r), (401, 10));
    // A token signed with another secret.
    let other = TestServer::start(Options::default()).unwrap();
    let forged = other.issue_token(3600).unwrap();
    let r: Value = http
        .get(&url)
        .bearer_auth(forged)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(r), (401, 30));
    let expired = s.issue_token(-5).unwrap();
    let r: Value = http
        .get(&url)
        .bearer_auth(expired)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(r), (401, 30));
    let good = s.issue_token(60).unwrap();
    let r: Value = http
        .get(&url)
        .bearer_auth(good)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(r), (200, 0));
    // Basic works on other endpoints too; system-role endpoints are refused to a user.
    let r: Value = http
        .get(format!("{}/server.endpoints", s.url()))
        .basic_auth(s.access_key(), Some(s.secret_key()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(r), (403, 20));
}

#[tokio::test]
async fn bearer_login_gives_a_fresh_token_and_lifetime_is_configurable() {
    let s = server();
    s.set_token_lifetime(std::time::Duration::from_secs(30));
    let c = Client::login(&s).await;
    let cl = claims(&c.token);
    assert_eq!(
        cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap(),
        30
    );
    let fresh = c.ok("auth.login", json!({})).await;
    let fresh = fresh["token"].as_str().unwrap();
    assert_ne!(fresh, c.token);
    assert_eq!(claims(fresh)["identity"], cl["identity"]);
}

#[tokio::test]
async fn ping_and_server_info_need_no_credentials() {
    let s = server();
    let body: Value = http()
        .get(format!("{}/server.info", s.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["api_version"], "2.31");
    assert_eq!(body["data"]["version"], "2.0.0");
    let expired = s.issue_token(-5).unwrap();
    let r = http()
        .get(format!("{}/debug.ping", s.url()))
        .bearer_auth(expired)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "credentials are not looked at");
    let c = Client::login(&s).await;
    let me = c.ok("users.get_current_user", json!({})).await;
    assert_eq!(me["user"]["id"], claims(&c.token)["identity"]["user"]);
}

// ---------------------------------------------------------------- projects

#[tokio::test]
async fn projects_create_nested_get_all_and_get_by_id() {
    let s = server();
    let c = Client::login(&s).await;
    let id = c
        .ok(
            "projects.create",
            json!({"name": "top/mid/leaf", "description": "d"}),
        )
        .await;
    let id = id["id"].as_str().unwrap().to_string();
    let all = c
        .ok("projects.get_all", json!({"only_fields": ["name"]}))
        .await;
    let names: Vec<&str> = all["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["top", "top/mid", "top/mid/leaf"]);
    assert!(all["projects"][0].get("created").is_none());
    let found = c
        .ok(
            "projects.get_all",
            json!({"name": "^top/mid$", "only_fields": ["id"]}),
        )
        .await;
    assert_eq!(found["projects"].as_array().unwrap().len(), 1);
    let p = c.ok("projects.get_by_id", json!({"project": id})).await;
    assert_eq!(p["project"]["basename"], "leaf");
    c.err("projects.create", json!({"name": "top/mid"}), 400, 801)
        .await;
    c.err("projects.get_by_id", json!({"project": "nope"}), 400, 401)
        .await;
    c.err("projects.create", json!({}), 400, 11).await;
}

// ---------------------------------------------------------------- queues

#[tokio::test]
async fn default_queue_exists_on_first_start() {
    let s = server();
    let c = Client::login(&s).await;
    let d = c.ok("queues.get_default", json!({})).await;
    assert_eq!(d["name"], "default");
    let q = c.ok("queues.get_by_id", json!({"queue": d["id"]})).await;
    assert_eq!(q["queue"]["system_tags"], json!(["default"]));
    c.err("queues.get_by_id", json!({"queue": "default"}), 400, 701)
        .await;
}

#[tokio::test]
async fn queues_get_all_filters_projects_orders_and_pages() {
    let s = server();
    let c = Client::login(&s).await;
    for n in ["q-bbb", "q-aaa", "q-ccc"] {
        c.queue(n).await;
    }
    c.err("queues.create", json!({"name": "q-aaa"}), 400, 801)
        .await;
    let r = c
        .ok(
            "queues.get_all",
            json!({"name": "^q-", "only_fields": ["name"], "order_by": ["-name"]}),
        )
        .await;
    let names: Vec<&str> = r["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["q-ccc", "q-bbb", "q-aaa"]);
    assert!(r["queues"][0]["id"].is_string());
    assert!(r["queues"][0].get("entries").is_none());
    let r = c
        .ok(
            "queues.get_all",
            json!({"name": "^q-", "order_by": ["name"], "page": 1, "page_size": 2}),
        )
        .await;
    assert_eq!(r["queues"].as_array().unwrap().len(), 1);
    assert_eq!(r["queues"][0]["name"], "q-ccc");
    c.err("queues.get_all", json!({"page": 0}), 400, 11).await;
    let id = c.queue("by-id-queue").await;
    let r = c
        .ok(
            "queues.get_all",
            json!({"id": [id], "only_fields": ["id", "tags"]}),
        )
        .await;
    assert_eq!(r["queues"].as_array().unwrap().len(), 1);
    assert_eq!(r["queues"][0]["tags"], json!([]));
    let r = c
        .ok("queues.get_all_ex", json!({"name": "^by-id-queue$"}))
        .await;
    assert_eq!(r["queues"][0]["workers"], json!([]));
}

#[tokio::test]
async fn queue_entry_operations() {
    let s = server();
    let c = Client::login(&s).await;
    let q = c.queue("ops-queue").await;
    let a = c.new_task("task a").await;
    let b = c.new_task("task b").await;
    let t3 = c.new_task("task c").await;
    for t in [&a, &b, &t3] {
        assert_eq!(
            c.ok("queues.add_task", json!({"queue": q, "task": t}))
                .await["added"],
            1
        );
    }
    c.err("queues.add_task", json!({"queue": q, "task": a}), 400, 706)
        .await;
    c.err(
        "queues.add_task",
        json!({"queue": "nope", "task": a}),
        400,
        701,
    )
    .await;
    assert_eq!(c.task(&a).await["execution"]["queue"], q.as_str());
    assert_eq!(c.task(&a).await["status"], "created");
    assert_eq!(
        c.ok("queues.get_num_entries", json!({"queue": q})).await["num"],
        3
    );
    assert_eq!(
        c.ok("queues.peek_task", json!({"queue": q})).await["task"],
        a.as_str()
    );
    assert_eq!(
        c.ok("queues.move_task_to_front", json!({"queue": q, "task": t3}))
            .await["position"],
        0
    );
    assert_eq!(
        c.ok("queues.move_task_to_back", json!({"queue": q, "task": a}))
            .await["position"],
        2
    );
    assert_eq!(
        s.queue_entries("ops-queue").unwrap(),
        [t3.clone(), b.clone(), a.clone()]
    );
    assert_eq!(
        c.ok("queues.remove_task", json!({"queue": q, "task": b}))
            .await["removed"],
        1
    );
    c.err(
        "queues.remove_task",
        json!({"queue": q, "task": b}),
        400,
        703,
    )
    .await;
    c.err("queues.delete", json!({"queue": q}), 400, 702).await;
    let head = c
        .ok("queues.get_next_task", json!({"queue": q, "task": a}))
        .await;
    assert_eq!(head, json!({}), "pop of a task that is not at the head");
    let popped = c
        .ok(
            "queues.get_next_task",
            json!({"queue": q, "get_task_info": true}),
        )
        .await;
    assert_eq!(popped["entry"]["task"], t3.as_str());
    assert!(
        popped["entry"]["added"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    );
    assert_eq!(
        popped["task_info"]["company"],
        claims(&c.token)["identity"]["company"]
    );
    let cleared = c.ok("queues.clear_queue", json!({"queue": q})).await;
    assert_eq!(cleared["removed_tasks"], json!([a]));
    assert_eq!(
        c.ok("queues.get_next_task", json!({"queue": q})).await,
        json!({})
    );
    let upd = c
        .ok(
            "queues.update",
            json!({"queue": q, "name": "renamed-queue", "tags": ["x"]}),
        )
        .await;
    assert_eq!(upd["updated"], 1);
    assert_eq!(
        c.ok("queues.delete", json!({"queue": q})).await["deleted"],
        1
    );
    c.err("queues.get_next_task", json!({"queue": q}), 400, 701)
        .await;
}

#[tokio::test]
async fn queues_delete_with_force_reverts_queued_tasks() {
    let s = server();
    let c = Client::login(&s).await;
    let q = c.queue("doomed-queue").await;
    let t = c.new_task("queued task").await;
    c.ok("tasks.enqueue", json!({"task": t, "queue": q})).await;
    c.ok("queues.delete", json!({"queue": q, "force": true}))
        .await;
    let task = c.task(&t).await;
    assert_eq!(task["status"], "created");
    assert!(task["execution"].get("queue").is_none());
}

#[tokio::test]
async fn concurrent_get_next_task_never_hands_out_a_task_twice() {
    let s = server();
    let c = Client::login(&s).await;
    let q = c.queue("race-queue").await;
    let mut all = HashSet::new();
    for i in 0..120 {
        let t = s
            .create_task(json!({"name": format!("race task {i}")}))
            .unwrap();
        s.enqueue(&t, "race-queue").unwrap();
        all.insert(t);
    }
    let mut joins = Vec::new();
    for _ in 0..16 {
        let http = c.http.clone();
        let (url, token, q) = (c.url.clone(), c.token.clone(), q.clone());
        joins.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let body: Value = http
                    .get(format!("{url}/v2.14/queues.get_next_task"))
                    .bearer_auth(&token)
                    .json(&json!({"queue": q}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                match body["data"]["entry"]["task"].as_str() {
                    Some(t) => got.push(t.to_string()),
                    None => return got,
                }
            }
        }));
    }
    let mut seen = HashSet::new();
    for j in joins {
        for t in j.await.unwrap() {
            assert!(seen.insert(t.clone()), "task {t} was popped twice");
        }
    }
    assert_eq!(seen, all);
    assert!(s.calls("queues.get_next_task") >= 120 + 16);
}

// ---------------------------------------------------------------- tasks

#[tokio::test]
async fn tasks_create_validates_and_get_by_id_returns_the_full_shape() {
    let s = server();
    let c = Client::login(&s).await;
    c.err("tasks.create", json!({"type": "training"}), 400, 11)
        .await;
    c.err("tasks.create", json!({"name": "no type"}), 400, 11)
        .await;
    c.err(
        "tasks.create",
        json!({"name": "bad type", "type": "bogus"}),
        400,
        12,
    )
    .await;
    c.err(
        "tasks.create",
        json!({"name": "ab", "type": "training"}),
        400,
        12,
    )
    .await;
    c.err(
        "tasks.create",
        json!({"name": "bad proj", "type": "training", "project": "nope"}),
        400,
        401,
    )
    .await;
    let id = c.new_task("shape task").await;
    assert!(is_hex32(&id));
    let t = c.task(&id).await;
    for key in [
        "output",
        "script",
        "execution",
        "hyperparams",
        "configuration",
        "runtime",
        "container",
    ] {
        assert!(t[key].is_object(), "{key}");
    }
    assert_eq!(t["models"], json!({"input": [], "output": []}));
    assert_eq!(t["tags"], json!([]));
    assert_eq!(t["system_tags"], json!([]));
    assert_eq!(t["status"], "created");
    assert!(t["created"].as_str().unwrap().ends_with("+00:00"));
    let msg = c
        .err("tasks.get_by_id", json!({"task": "abc"}), 400, 101)
        .await;
    assert!(msg.starts_with("Invalid task id: id=abc"), "{msg}");
}

#[tokio::test]
async fn tasks_get_all_filters_and_projects_dotted_fields() {
    let s = server();
    let c = Client::login(&s).await;
    let a = c
        .ok(
            "tasks.create",
            json!({"name": "alpha one", "type": "training", "runtime": {"x": 1, "y": 2},
                   "script": {"entry_point": "a.py", "requirements": {"pip": "numpy"}}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = c
        .ok(
            "tasks.create",
            json!({"name": "beta two", "type": "testing", "system_tags": ["hidden"]}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c
        .ok(
            "tasks.get_all",
            json!({"id": [a], "only_fields": ["runtime.x", "script.requirements", "status"]}),
        )
        .await;
    assert_eq!(
        r["tasks"][0],
        json!({"id": a, "runtime": {"x": 1}, "script": {"requirements": {"pip": "numpy"}}, "status": "created"})
    );
    let r = c
        .ok(
            "tasks.get_all",
            json!({"name": "^beta", "only_fields": ["id"]}),
        )
        .await;
    assert_eq!(
        r["tasks"],
        json!([]),
        "hidden tasks are excluded by default"
    );
    let r = c
        .ok(
            "tasks.get_all",
            json!({"name": "^beta", "search_hidden": true, "only_fields": ["id"]}),
        )
        .await;
    assert_eq!(r["tasks"], json!([{"id": b}]));
    let r = c
        .ok(
            "tasks.get_all",
            json!({"id": [b, "missing"], "only_fields": ["id"]}),
        )
        .await;
    assert_eq!(
        r["tasks"],
        json!([{"id": b}]),
        "an id list finds hidden tasks, ignores missing ids"
    );
    let r = c
        .ok(
            "tasks.get_all",
            json!({"type": ["training"], "status": ["created"], "only_fields": ["name"]}),
        )
        .await;
    assert_eq!(r["tasks"], json!([{"id": a, "name": "alpha one"}]));
    let r = c.ok("tasks.get_all", json!({"order_by": ["-name"], "search_hidden": true, "only_fields": ["name"], "page": 0, "page_size": 1})).await;
    assert_eq!(r["tasks"][0]["name"], "beta two");
    let r = c.ok("tasks.get_all_ex", json!({"id": [a]})).await;
    assert_eq!(r["tasks"][0]["name"], "alpha one");
}

#[tokio::test]
async fn tasks_edit_merges_embedded_documents_and_replaces_the_rest() {
    let s = server();
    let c = Client::login(&s).await;
    let id = c
        .ok(
            "tasks.create",
            json!({"name": "edit me", "type": "training",
                   "script": {"entry_point": "a.py", "repository": "r"},
                   "hyperparams": {"Args": {"a": {"section": "Args", "name": "a", "value": "1"}}}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c
        .ok(
            "tasks.edit",
            json!({"task": id, "script": {"version_num": "abc"},
                   "hyperparams": {"Env": {"X": {"section": "Env", "name": "X", "value": "y"}}},
                   "runtime": {"k": "v"}}),
        )
        .await;
    assert_eq!(r["updated"], 1);
    let t = c.task(&id).await;
    assert_eq!(
        t["script"],
        json!({"entry_point": "a.py", "repository": "r", "version_num": "abc"})
    );
    assert_eq!(
        t["hyperparams"],
        json!({"Env": {"X": {"section": "Env", "name": "X", "value": "y"}}})
    );
    assert_eq!(t["runtime"], json!({"k": "v"}));
    c.ok("tasks.started", json!({"task": id})).await;
    let msg = c
        .err("tasks.edit", json!({"task": id, "comment": "x"}), 400, 110)
        .await;
    assert!(msg.contains("status=in_progress"), "{msg}");
    c.ok(
        "tasks.edit",
        json!({"task": id, "force": true, "runtime": {"k": "w"}, "output_dest": "s3://b"}),
    )
    .await;
    let t = c.task(&id).await;
    assert_eq!(t["runtime"], json!({"k": "w"}));
    assert_eq!(t["output"]["destination"], "s3://b");
}

#[tokio::test]
async fn legacy_versions_get_docker_cmd() {
    let s = server();
    let c = Client::login(&s).await;
    let id = c.new_task("legacy task").await;
    c.ok(
        "v2.5/tasks.edit",
        json!({"task": id, "execution": {"docker_cmd": "python:3.11 -e A=1"}}),
    )
    .await;
    let t = c.task(&id).await;
    assert_eq!(t["container"]["image"], "python:3.11");
    assert_eq!(t["container"]["arguments"], "-e A=1");
    assert!(t["execution"].get("docker_cmd").is_none());
    let old = c.ok("v2.5/tasks.get_by_id", json!({"task": id})).await;
    assert_eq!(old["task"]["execution"]["docker_cmd"], "python:3.11 -e A=1");
}

#[tokio::test]
async fn tasks_update_clone_delete_and_requirements() {
    let s = server();
    let c = Client::login(&s).await;
    let id = c
        .ok(
            "tasks.create",
            json!({"name": "source task", "type": "training", "system_tags": ["development"],
                   "tags": ["t1"], "script": {"entry_point": "x.py"}, "runtime": {"r": 1},
                   "execution": {"artifacts": [{"key": "o", "type": "t", "mode": "output"},
                                               {"key": "i", "type": "t", "mode": "input"}]}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let upd = c
        .ok(
            "tasks.update",
            json!({"task": id, "comment": "c", "output__error": "e"}),
        )
        .await;
    assert_eq!(upd["updated"], 1);
    assert_eq!(c.task(&id).await["output"]["error"], "e");
    let cl = c
        .ok(
            "tasks.clone",
            json!({"task": id, "new_task_name": "the clone"}),
        )
        .await;
    let clone_id = cl["id"].as_str().unwrap().to_string();
    let t = c.task(&clone_id).await;
    assert_eq!(t["name"], "the clone");
    assert_eq!(t["parent"], id.as_str());
    assert_eq!(t["system_tags"], json!([]));
    assert_eq!(t["tags"], json!(["t1"]));
    assert_eq!(t["runtime"], json!({}));
    assert_eq!(t["script"]["entry_point"], "x.py");
    assert_eq!(
        t["execution"]["artifacts"],
        json!([{"key": "i", "type": "t", "mode": "input"}])
    );
    let req = json!({"pip": "numpy==2.0", "org_pip": "numpy"});
    let r = c
        .ok(
            "tasks.set_requirements",
            json!({"task": id, "requirements": req}),
        )
        .await;
    assert_eq!(r["fields"]["script.requirements"], req);
    assert_eq!(c.task(&id).await["script"]["requirements"], req);
    let bare = c.new_task("no script").await;
    c.err(
        "tasks.set_requirements",
        json!({"task": bare, "requirements": {}}),
        400,
        122,
    )
    .await;
    c.ok("tasks.started", json!({"task": clone_id})).await;
    c.err("tasks.delete", json!({"task": clone_id}), 400, 123)
        .await;
    c.ok("tasks.delete", json!({"task": clone_id, "force": true}))
        .await;
    c.err("tasks.get_by_id", json!({"task": clone_id}), 400, 101)
        .await;
}

#[tokio::test]
async fn artifacts_hyperparams_and_configuration() {
    let s = server();
    let c = Client::login(&s).await;
    let id = c.new_task("params task").await;
    let art = |k: &str, uri: &str| json!({"key": k, "type": "str", "uri": uri});
    c.ok(
        "tasks.add_or_update_artifacts",
        json!({"task": id, "artifacts": [art("b", "1"), art("a", "1")]}),
    )
    .await;
    c.ok(
        "tasks.add_or_update_artifacts",
        json!({"task": id, "artifacts": [art("b", "2")]}),
    )
    .await;
    let arts = c.task(&id).await["execution"]["artifacts"].clone();
    assert_eq!(arts, json!([art("a", "1"), art("b", "2")]));
    c.err(
        "tasks.add_or_update_artifacts",
        json!({"task": id, "artifacts": []}),
        400,
        12,
    )
    .await;
    let hp = |sec: &str, n: &str, v: &str| json!({"section": sec, "name": n, "value": v});
    c.ok("tasks.edit_hyper_params", json!({"task": id, "hyperparams": [hp("Args", "b", "1"), hp("Args", "a", "2"), hp("Env", "X", "3")]}))
        .await;
    let got = c.ok("tasks.get_hyper_params", json!({"tasks": [id]})).await;
    assert_eq!(
        got["params"][0]["hyperparams"],
        json!([
            hp("Args", "a", "2"),
            hp("Args", "b", "1"),
            hp("Env", "X", "3")
        ])
    );
    c.ok("tasks.edit_hyper_params", json!({"task": id, "hyperparams": [hp("Args", "c", "9")], "replace_hyperparams": "section"}))
        .await;
    let got = c.ok("tasks.get_hyper_params", json!({"tasks": [id]})).await;
    assert_eq!(
        got["params"][0]["hyperparams"],
        json!([hp("Args", "c", "9"), hp("Env", "X", "3")])
    );
    c.err(
        "tasks.get_hyper_params",
        json!({"tasks": [id, "nope"]}),
        400,
        101,
    )
    .await;
    let cfg = |n: &str, v: &str| json!({"name": n, "value": v, "type": "dictionary"});
    c.ok(
        "tasks.edit_configuration",
        json!({"task": id, "configuration": [cfg("z", "1"), cfg("General", "{}")]}),
    )
    .await;
    let got = c
        .ok("tasks.get_configurations", json!({"tasks": [id]}))
        .await;
    assert_eq!(
        got["configurations"][0]["configuration"],
        json!([cfg("General", "{}"), cfg("z", "1")])
    );
    let got = c
        .ok(
            "tasks.get_configurations",
            json!({"tasks": [id], "names": ["z"]}),
        )
        .await;
    assert_eq!(
        got["configurations"][0]["configuration"],
        json!([cfg("z", "1")])
    );
    // In progress: only with force; completed: never.
    c.ok("tasks.started", json!({"task": id})).await;
    c.err(
        "tasks.edit_hyper_params",
        json!({"task": id, "hyperparams": [hp("Args", "a", "1")]}),
        400,
        110,
    )
    .await;
    c.ok(
        "tasks.edit_hyper_params",
        json!({"task": id, "force": true, "hyperparams": [hp("Args", "a", "1")]}),
    )
    .await;
    c.ok(
        "tasks.edit_hyper_params",
        json!({"task": id, "hyperparams": [hp("properties", "p", "1")]}),
    )
    .await;
    c.ok("tasks.completed", json!({"task": id})).await;
    c.err(
        "tasks.add_or_update_artifacts",
        json!({"task": id, "artifacts": [art("c", "1")]}),
        400,
        110,
    )
    .await;
}

// ---------------------------------------------------------------- state machine

const STATUSES: &[&str] = &[
    "created",
    "queued",
    "in_progress",
    "stopped",
    "closed",
    "failed",
    "completed",
    "publishing",
    "published",
];

/// The transition table of the real server (clearml-api.md 5.3).
fn allowed(from: &str, to: &str) -> bool {
    from == to
        || match from {
            "created" => ["queued", "in_progress"].contains(&to),
            "queued" => ["created", "in_progress", "stopped"].contains(&to),
            "in_progress" => ["stopped", "failed", "created", "completed"].contains(&to),
            "stopped" => [
                "closed",
                "created",
                "failed",
                "queued",
                "in_progress",
                "published",
                "publishing",
                "completed",
            ]
            .contains(&to),
            "closed" => ["created", "failed", "published", "publishing", "stopped"].contains(&to),
            "failed" => ["created", "stopped", "published", "queued"].contains(&to),
            "completed" => ["published", "in_progress", "created"].contains(&to),
            "publishing" => to == "published",
            _ => false,
        }
}

#[tokio::test]
async fn status_endpoints_follow_the_transition_table_unless_forced() {
    let s = server();
    let c = Client::login(&s).await;
    let endpoints = [
        ("tasks.started", "in_progress"),
        ("tasks.stopped", "stopped"),
        ("tasks.failed", "failed"),
        ("tasks.completed", "completed"),
        ("tasks.close", "closed"),
        ("tasks.publish", "published"),
    ];
    for from in STATUSES {
        for (endpoint, to) in endpoints {
            let id = c.new_task("machine task").await;
            c.ok("tasks.update", json!({"task": id, "status": from}))
                .await;
            let r = c
                .send(endpoint, json!({"task": id, "status_reason": "why"}))
                .await;
            if allowed(from, to) {
                assert_eq!(
                    r.status, 200,
                    "{from} -> {to} should be allowed: {}",
                    r.body
                );
                let t = c.task(&id).await;
                assert_eq!(t["status"], to);
                assert_eq!(t["status_reason"], "why");
            } else {
                assert_eq!(
                    (r.status, r.subcode()),
                    (400, 110),
                    "{from} -> {to} should be refused"
                );
                assert!(
                    r.msg().contains(&format!("current_status={from}")),
                    "{}",
                    r.msg()
                );
                assert_eq!(c.task(&id).await["status"], *from);
                let r = c.send(endpoint, json!({"task": id, "force": true})).await;
                assert_eq!(r.status, 200, "forced {from} -> {to}: {}", r.body);
                assert_eq!(c.task(&id).await["status"], to);
            }
        }
    }
}

#[tokio::test]
async fn status_changes_set_and_clear_reason_message_and_timestamps() {
    let s = server();
    let c = Client::login(&s).await;
    let id = c.new_task("timestamps task").await;
    let r = c
        .ok(
            "tasks.started",
            json!({"task": id, "status_reason": "r1", "status_message": "m1"}),
        )
        .await;
    assert_eq!(r["started"], 1);
    let t = c.task(&id).await;
    assert_eq!(
        (t["status_reason"].as_str(), t["status_message"].as_str()),
        (Some("r1"), Some("m1"))
    );
    let started = t["started"].clone();
    assert!(started.as_str().unwrap().ends_with("+00:00"));
    assert_eq!(t["status_changed"], t["last_update"]);
    c.ok("tasks.started", json!({"task": id})).await;
    let t = c.task(&id).await;
    assert_eq!(t["status_reason"], "");
    assert_eq!(t["status_message"], "");
    assert_eq!(t["started"], started, "started is kept");
    let r = c
        .ok(
            "tasks.completed",
            json!({"task": id, "status_reason": "done"}),
        )
        .await;
    assert_eq!(r["published"], 0);
    assert!(c.task(&id).await["completed"].is_string());
    c.ok("tasks.reset", json!({"task": id})).await;
    let t = c.task(&id).await;
    assert_eq!(t["status"], "created");
    assert!(t.get("started").is_none() && t.get("completed").is_none());
}

#[tokio::test]
async fn enqueue_and_dequeue() {
    let s = server();
    let c = Client::login(&s).await;
    let id = c
        .ok("tasks.create", json!({"name": "enqueue me", "type": "training", "system_tags": ["development", "keep"]}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let default = c.ok("queues.get_default", json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c
        .ok("tasks.enqueue", json!({"task": id, "status_reason": "go"}))
        .await;
    assert_eq!(r["queued"], 1);
    assert_eq!(r["fields"]["execution.queue"], default.as_str());
    let t = c.task(&id).await;
    assert_eq!(t["status"], "queued");
    assert_eq!(t["system_tags"], json!(["keep"]));
    assert!(t.get("enqueue_status").is_none(), "hidden field");
    assert_eq!(s.queue_entries("default").unwrap(), vec![id.clone()]);
    // Same queue again: 706, and nothing changes.
    c.err(
        "tasks.enqueue",
        json!({"task": id, "queue": default, "force": true}),
        400,
        706,
    )
    .await;
    // queue_name creates the queue and moves the task out of the other one.
    c.ok(
        "tasks.enqueue",
        json!({"task": id, "queue_name": "made-on-enqueue"}),
    )
    .await;
    assert_eq!(
        s.queue_entries("made-on-enqueue").unwrap(),
        vec![id.clone()]
    );
    assert!(s.queue_entries("default").unwrap().is_empty());
    c.err(
        "tasks.enqueue",
        json!({"task": id, "queue": default, "queue_name": "x"}),
        400,
        12,
    )
    .await;
    c.err(
        "tasks.enqueue",
        json!({"task": id, "queue": "nope"}),
        400,
        701,
    )
    .await;
    let r = c.ok("tasks.dequeue", json!({"task": id})).await;
    assert_eq!(
        (r["dequeued"].as_i64(), r["updated"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        c.task(&id).await["status"],
        "created",
        "back to the pre-enqueue status"
    );
    assert!(s.queue_entries("made-on-enqueue").unwrap().is_empty());
    let r = c.ok("tasks.dequeue", json!({"task": id})).await;
    assert_eq!(r["updated"], 0, "not queued: no change, no error");
    c.ok("tasks.enqueue", json!({"task": id, "queue": default}))
        .await;
    c.ok(
        "tasks.dequeue",
        json!({"task": id, "new_status": "in_progress"}),
    )
    .await;
    assert_eq!(c.task(&id).await["status"], "in_progress");
    assert_eq!(
        c.ok("tasks.dequeue", json!({"task": "unknown"})).await["updated"],
        0
    );
    let r = c
        .ok(
            "tasks.enqueue",
            json!({"task": c.new_task("watched").await, "verify_watched_queue": true}),
        )
        .await;
    assert_eq!(r["queue_watched"], false);
    // No default queue: 707.
    let q = c.ok("queues.get_default", json!({})).await["id"].clone();
    c.ok("queues.delete", json!({"queue": q, "force": true}))
        .await;
    c.err("queues.get_default", json!({}), 400, 707).await;
    c.err(
        "tasks.enqueue",
        json!({"task": c.new_task("no default").await}),
        400,
        707,
    )
    .await;
}

#[tokio::test]
async fn stop_handshake_depends_on_a_live_worker() {
    let s = server();
    let c = Client::login(&s).await;
    // No worker ever reported the task: stopped at once.
    let lonely = c.new_task("lonely task").await;
    c.ok("tasks.started", json!({"task": lonely})).await;
    c.ok("tasks.stop", json!({"task": lonely})).await;
    let t = c.task(&lonely).await;
    assert_eq!(t["status"], "stopped");
    assert!(
        t["status_message"]
            .as_str()
            .unwrap()
            .starts_with("Stopped by")
    );
    // A queued task is dequeued and stopped.
    let queued = c.new_task("queued task").await;
    c.ok("tasks.enqueue", json!({"task": queued})).await;
    c.ok("tasks.stop", json!({"task": queued})).await;
    assert_eq!(c.task(&queued).await["status"], "stopped");
    assert!(s.queue_entries("default").unwrap().is_empty());
    // A task run by a live worker: only "stopping", the worker then reports stopped.
    let run = c.new_task("running task").await;
    c.ok("tasks.started", json!({"task": run})).await;
    c.ok(
        "workers.status_report",
        json!({"worker": "w:cpu:0", "timestamp": 1, "task": run}),
    )
    .await;
    let r = c
        .ok("tasks.stop", json!({"task": run, "status_reason": "user"}))
        .await;
    assert_eq!(r["fields"]["status_message"], "stopping");
    let t = c.task(&run).await;
    assert_eq!(t["status"], "in_progress");
    assert_eq!(t["status_message"], "stopping");
    assert_eq!(t["last_worker"], "w:cpu:0");
    c.ok(
        "tasks.stopped",
        json!({"task": run, "status_reason": "task was stopped by tasks.stop"}),
    )
    .await;
    assert_eq!(c.task(&run).await["status"], "stopped");
    // A development task is stopped at once even with a worker.
    let dev = c
        .ok(
            "tasks.create",
            json!({"name": "dev task", "type": "training", "system_tags": ["development"]}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    c.ok("tasks.started", json!({"task": dev})).await;
    c.ok(
        "workers.status_report",
        json!({"worker": "w:cpu:0", "timestamp": 2, "task": dev}),
    )
    .await;
    c.ok("tasks.stop", json!({"task": dev})).await;
    assert_eq!(c.task(&dev).await["status"], "stopped");
    // created → stopped is not allowed without force.
    let fresh = c.new_task("fresh task").await;
    c.err("tasks.stop", json!({"task": fresh}), 400, 110).await;
}

#[tokio::test]
async fn ping_refreshes_last_update_and_ignores_unknown_ids() {
    let s = server();
    let c = Client::login(&s).await;
    let id = c.new_task("ping task").await;
    c.ok("tasks.update", json!({"task": id, "status": "in_progress"}))
        .await;
    let before = s.task(&id).unwrap()["last_update"].clone();
    // Let the clock move on, so the new stamp (millisecond precision) must differ.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(c.ok("tasks.ping", json!({"task": id})).await, json!({}));
    assert_ne!(s.task(&id).unwrap()["last_update"], before);
    assert_eq!(
        c.ok("tasks.ping", json!({"task": "unknown"})).await,
        json!({})
    );
}

// ---------------------------------------------------------------- events

#[tokio::test]
async fn add_batch_json_lines_stores_events_and_updates_the_task() {
    let s = server();
    let c = Client::login(&s).await;
    let id = c.new_task("events task").await;
    let lines = [
        json!({"task": id, "type": "log", "level": "INFO", "msg": "hello\nworld", "timestamp": 1000}),
        json!({"task": id, "type": "training_stats_scalar", "metric": "loss", "variant": "train", "value": 0.5, "iter": 7}),
        json!({"task": id, "type": "plot", "metric": "p", "variant": "v", "plot_str": "{}", "iter": 2}),
        json!({"task": "missing", "type": "log", "msg": "x"}),
        json!({"task": id, "type": "bogus"}),
        json!({"type": "log", "msg": "no task"}),
    ];
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let r: Value = c
        .http
        .post(format!("{}/events.add_batch", c.url))
        .bearer_auth(&c.token)
        .header("Content-Type", "application/json-lines")
        .header("X-ClearML-Worker", "box:cpu:0")
        .body(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["data"]["added"], 3);
    assert_eq!(r["data"]["errors"], 3);
    assert_eq!(
        r["data"]["errors_info"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum::<i64>(),
        3
    );
    let logs = s.log_events(&id).unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["msg"], "hello\nworld");
    assert_eq!(logs[0]["worker"], "box:cpu:0");
    assert_eq!(s.events(&id).unwrap().len(), 3);
    let t = c.task(&id).await;
    assert_eq!(t["last_iteration"], 7);
    let metric = t["last_metrics"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    let variant = metric.as_object().unwrap().values().next().unwrap();
    assert_eq!(
        (variant["metric"].as_str(), variant["value"].as_f64()),
        (Some("loss"), Some(0.5))
    );
    // Batch errors.
    let post = |body: &'static str| {
        c.http
            .post(format!("{}/events.add_batch", c.url))
            .bearer_auth(&c.token)
            .header("Content-Type", "application/json-lines")
            .body(body)
            .send()
    };
    let r: Value = post("").await.unwrap().json().await.unwrap();
    assert_eq!(
        (
            r["meta"]["result_code"].as_i64(),
            r["meta"]["result_subcode"].as_i64()
        ),
        (Some(400), Some(17))
    );
    let r: Value = post("{\"task\": \"missing\", \"type\": \"log\"}\n")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            r["meta"]["result_code"].as_i64(),
            r["meta"]["result_subcode"].as_i64()
        ),
        (Some(400), Some(131))
    );
    assert!(!r["meta"]["error_data"].as_object().unwrap().is_empty());
    let r: Value = post("[1, 2]\n").await.unwrap().json().await.unwrap();
    assert_eq!(r["meta"]["result_code"], 400);
    // events.add takes one event as the body.
    let r = c
        .ok(
            "events.add",
            json!({"task": id, "type": "log", "msg": "single"}),
        )
        .await;
    assert_eq!(r["added"], 1);
}

#[tokio::test]
async fn get_task_log_pages_like_the_2_9_endpoint() {
    let s = server();
    let c = Client::login(&s).await;
    let id = c.new_task("log paging").await;
    let body: String = (1..=10)
        .map(|i| {
            format!(
                "{}\n",
                json!({"task": id, "type": "log", "msg": format!("line {i}"), "timestamp": i * 10})
            )
        })
        .collect();
    let r = c
        .http
        .post(format!("{}/events.add_batch", c.url))
        .bearer_auth(&c.token)
        .header("Content-Type", "application/json-lines")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let msgs = |d: &Value| -> Vec<String> {
        d["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["msg"].as_str().unwrap().to_string())
            .collect()
    };
    let d = c
        .ok("events.get_task_log", json!({"task": id, "batch_size": 3}))
        .await;
    assert_eq!(msgs(&d), ["line 10", "line 9", "line 8"]);
    assert_eq!(
        (d["returned"].as_i64(), d["total"].as_i64()),
        (Some(3), Some(10))
    );
    let d = c
        .ok(
            "events.get_task_log",
            json!({"task": id, "batch_size": 3, "from_timestamp": 80}),
        )
        .await;
    assert_eq!(
        msgs(&d),
        ["line 8", "line 7", "line 6"],
        "the boundary event is included"
    );
    let d = c
        .ok(
            "events.get_task_log",
            json!({"task": id, "batch_size": 3, "order": "asc"}),
        )
        .await;
    assert_eq!(msgs(&d), ["line 8", "line 9", "line 10"]);
    let d = c
        .ok(
            "events.get_task_log",
            json!({"task": id, "batch_size": 3, "navigate_earlier": false}),
        )
        .await;
    assert_eq!(msgs(&d), ["line 1", "line 2", "line 3"]);
    let d = c
        .ok(
            "events.get_task_events",
            json!({"task": id, "batch_size": 4}),
        )
        .await;
    assert_eq!(msgs(&d), ["line 1", "line 2", "line 3", "line 4"]);
    let d = c
        .ok(
            "events.get_task_events",
            json!({"task": id, "batch_size": 4, "scroll_id": d["scroll_id"]}),
        )
        .await;
    assert_eq!(msgs(&d), ["line 5", "line 6", "line 7", "line 8"]);
    c.err("events.get_task_log", json!({"task": "nope"}), 400, 101)
        .await;
    let text = c
        .http
        .get(format!("{}/events.download_task_log", c.url))
        .bearer_auth(&c.token)
        .json(&json!({"task": id}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text.lines().count(), 10);
    assert!(text.lines().last().unwrap().ends_with("line 10"));
}

// ---------------------------------------------------------------- workers

#[tokio::test]
async fn workers_register_report_list_and_unregister() {
    let s = server();
    let c = Client::login(&s).await;
    let q = c.ok("queues.get_default", json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    c.err(
        "workers.register",
        json!({"worker": "w1", "queues": ["nope"]}),
        400,
        701,
    )
    .await;
    c.ok("workers.register", json!({"worker": "w1", "queues": [q]}))
        .await;
    let id = c.new_task("worker task").await;
    c.ok("tasks.started", json!({"task": id})).await;
    c.err(
        "workers.status_report",
        json!({"worker": "w1", "timestamp": 1, "task": "nope"}),
        400,
        101,
    )
    .await;
    c.err("workers.status_report", json!({"worker": "w1"}), 400, 11)
        .await;
    c.ok(
        "workers.status_report",
        json!({"worker": "w1", "timestamp": 1_700_000_000_000i64, "task": id, "queue": q,
               "machine_stats": {"cpu_usage": [1.0]}, "is_daemon": true}),
    )
    .await;
    let t = c.task(&id).await;
    assert_eq!(t["last_worker"], "w1");
    assert!(t["last_worker_report"].is_string());
    let all = c.ok("workers.get_all", json!({})).await;
    let w = &all["workers"][0];
    assert_eq!(w["id"], "w1");
    assert_eq!(w["task"]["id"], id.as_str());
    assert_eq!(w["task"]["name"], "worker task");
    assert_eq!(w["queue"]["name"], "default");
    assert_eq!(w["queues"][0]["id"], q.as_str());
    assert!(w["last_activity_time"].is_string());
    // A report without task clears it; an unknown worker is auto-registered.
    c.ok(
        "workers.status_report",
        json!({"worker": "w1", "timestamp": 2}),
    )
    .await;
    c.ok(
        "workers.status_report",
        json!({"worker": "w2", "timestamp": 2}),
    )
    .await;
    let all = c.ok("workers.get_all", json!({"last_seen": 0})).await;
    let ids: Vec<&str> = all["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["w1", "w2"]);
    assert!(all["workers"][0].get("task").is_none());
    let r = c
        .ok(
            "tasks.enqueue",
            json!({"task": c.new_task("watched").await, "queue": q, "verify_watched_queue": true}),
        )
        .await;
    assert_eq!(r["queue_watched"], true);
    let ex = c.ok("queues.get_all_ex", json!({"id": [q]})).await;
    assert_eq!(ex["queues"][0]["workers"][0]["name"], "w1");
    c.ok("workers.unregister", json!({"worker": "w1"})).await;
    c.ok("workers.unregister", json!({"worker": "never-registered"}))
        .await;
    assert_eq!(s.workers().unwrap().len(), 1);
}

#[tokio::test]
async fn workers_expire_after_their_timeout() {
    let s = server();
    let c = Client::login(&s).await;
    c.ok("workers.register", json!({"worker": "short", "timeout": 1}))
        .await;
    assert_eq!(s.workers().unwrap().len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        c.ok("workers.get_all", json!({"last_seen": 0})).await["workers"],
        json!([])
    );
}

// ---------------------------------------------------------------- harness

#[tokio::test]
async fn state_survives_a_restart_with_a_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let options = Options {
        db: Some(db.clone()),
        ..Options::default()
    };
    let (task, token) = {
        let s = TestServer::start(options.clone()).unwrap();
        let task = s.create_task(json!({"name": "persisted task"})).unwrap();
        s.enqueue(&task, "persist-queue").unwrap();
        (task, s.issue_token(3600).unwrap())
    };
    let s = TestServer::start(options).unwrap();
    assert_eq!(s.task(&task).unwrap()["status"], "queued");
    assert_eq!(
        s.queue_entries("persist-queue").unwrap(),
        vec![task.clone()]
    );
    let queues = s
        .call("queues.get_all", json!({"name": "^default$"}))
        .unwrap();
    assert_eq!(
        queues["queues"].as_array().unwrap().len(),
        1,
        "no second default queue"
    );
    let r: Value = http()
        .get(format!("{}/tasks.get_by_id", s.url()))
        .bearer_auth(token)
        .json(&json!({"task": task}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["meta"]["result_code"], 200, "tokens survive a restart");
}

#[tokio::test]
async fn restart_serves_again_on_the_same_port() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = TestServer::start(Options {
        db: Some(dir.path().join("db")),
        ..Options::default()
    })
    .unwrap();
    let url = s.url();
    let c = Client::login(&s).await;
    let id = c.new_task("across restart").await;
    s.stop();
    assert!(!s.is_running());
    assert!(
        http()
            .get(format!("{url}/debug.ping"))
            .send()
            .await
            .is_err()
    );
    s.restart().unwrap();
    assert_eq!(s.url(), url);
    let fresh = Client {
        http: http(),
        url: url.clone(),
        token: c.token.clone(),
    };
    assert_eq!(fresh.task(&id).await["name"], "across restart");
}

#[tokio::test]
async fn calls_are_counted_per_endpoint() {
    let s = server();
    let c = Client::login(&s).await;
    assert_eq!(s.calls("auth.login"), 1);
    for _ in 0..3 {
        c.ok("queues.get_all", json!({})).await;
    }
    c.send("v2.14/queues.get_all", json!({})).await;
    assert_eq!(s.calls("queues.get_all"), 4);
    assert_eq!(s.calls("tasks.get_all"), 0);
    assert_eq!(s.call_counts().values().sum::<u64>(), 5);
    c.send("workers.get_runtime_properties", json!({"worker": "w"}))
        .await;
    assert_eq!(
        s.calls("workers.get_runtime_properties"),
        1,
        "404s count too"
    );
    s.reset_calls();
    assert_eq!(s.calls("queues.get_all"), 0);
}

#[tokio::test]
async fn watchdog_stops_in_progress_tasks_that_stopped_updating() {
    let s = TestServer::start(Options {
        non_responsive_timeout: std::time::Duration::from_millis(300),
        ..Options::default()
    })
    .unwrap();
    let c = Client::login(&s).await;
    let silent = c.new_task("silent task").await;
    c.ok("tasks.started", json!({"task": silent})).await;
    let idle = c.new_task("idle created task").await;
    // Poll the server until the watchdog has acted.
    let stopped = loop {
        let t = s.task(&silent).unwrap();
        if t["status"] != "in_progress" {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(stopped["status_reason"], "Forced stop (non-responsive)");
    assert_eq!(stopped["status_message"], "Forced stop (non-responsive)");
    assert_eq!(s.task(&idle).unwrap()["status"], "created");
}
