//! The HTTP client: configuration, login and token renewal, retries, headers and the envelope.
//! Owns transport and the generic `call`; the typed endpoints live in one file per service.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::error::{Error, cause_chain, snippet};
use super::token::{Token, TokenClaims};

/// The HTTP method of API calls. The server ignores it; the Python agent sends GET with a JSON
/// body unless `api.http.default_method` / `CLEARML_API_DEFAULT_REQ_METHOD` says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    Get,
    Post,
    Put,
}

impl Method {
    fn to_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
        }
    }
}

/// Retries of one call (api.http.retries in the Python agent's api.conf: total 240,
/// backoff_factor 1.0, backoff_max 120 s).
///
/// A call is retried on connection errors, timeouts and on the statuses in `statuses`
/// (default 429, 500, 502, 503, 504, 509; urllib3's list in the Python agent is 429, 502, 503,
/// 509). A 500 that carries a well-formed ClearML error envelope is the server's considered
/// answer and is not retried; a bare 500 (proxy, crash page) is. No other 4xx is ever retried.
/// The Python agent retries 503 and, after login, network errors forever; here every retry
/// counts against `total`, whose default (240 retries, delays capped at 120 s) spans hours.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub total: u32,
    /// Delay before retry n (0-based) is `backoff_factor * 2^n` seconds, capped at
    /// `max_backoff`, then scaled by a random jitter in [0.5, 1.0].
    pub backoff_factor: f64,
    pub max_backoff: Duration,
    /// HTTP statuses that are retried.
    pub statuses: Vec<u16>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            total: 240,
            backoff_factor: 1.0,
            max_backoff: Duration::from_secs(120),
            statuses: vec![429, 500, 502, 503, 504, 509],
        }
    }
}

impl RetryPolicy {
    /// The (jittered) delay before retry number `retry` (0-based).
    pub fn delay(&self, retry: u32) -> Duration {
        let base = self.backoff_factor.max(0.0) * 2f64.powi(retry.min(60) as i32);
        let capped = base.min(self.max_backoff.as_secs_f64());
        let jitter: f64 = rand::Rng::random_range(&mut rand::rng(), 0.5..=1.0);
        Duration::try_from_secs_f64(capped * jitter).unwrap_or(self.max_backoff)
    }
}

/// Timeouts of one HTTP attempt (the Python agent uses connect 10 s / read 30 s).
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    /// Establishing the TCP (and TLS) connection.
    pub connect: Duration,
    /// Waiting for any read of the response (headers or body).
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(30),
        }
    }
}

/// Everything the client needs; the settings layer fills it from clearml.conf and the environment.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `http://localhost:8008` (a trailing `/` is ignored).
    pub api_server: String,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// A bare token (CLEARML_AUTH_TOKEN) used when no key/secret is set.
    pub auth_token: Option<String>,
    pub verify_certificate: bool,
    /// Extra PEM root certificates, added to the platform's roots.
    pub ca_bundle: Option<PathBuf>,
    pub default_method: Method,
    pub retries: RetryPolicy,
    pub timeouts: Timeouts,
    /// Sent as `X-ClearML-Worker` and `X-Trains-Worker` (the Python agent sends the hostname).
    pub worker_header: String,
    /// Sent as `X-ClearML-Agent` and `X-Trains-Agent`, e.g. `clearml-agent-rs-0.1.0`.
    pub agent_header: String,
    /// api.auth.token_expiration_threshold_sec (12 h): renew when less than this is left.
    pub token_renew_threshold: Duration,
    /// api.auth.request_token_expiration_sec: asked for on login when set.
    pub request_token_expiration_sec: Option<u64>,
    /// Largest `events.add_batch` body; the Python agent's log reporter uses 1 MiB packets.
    pub max_batch_bytes: usize,
}

impl ClientConfig {
    /// A configuration with the Python agent's defaults for everything but the server URL.
    pub fn new(api_server: impl Into<String>) -> ClientConfig {
        ClientConfig {
            api_server: api_server.into(),
            access_key: None,
            secret_key: None,
            auth_token: None,
            verify_certificate: true,
            ca_bundle: None,
            default_method: Method::Get,
            retries: RetryPolicy::default(),
            timeouts: Timeouts::default(),
            worker_header: String::new(),
            agent_header: format!("clearml-agent-rs-{}", env!("CARGO_PKG_VERSION")),
            token_renew_threshold: Duration::from_secs(43200),
            request_token_expiration_sec: None,
            max_batch_bytes: 1024 * 1024,
        }
    }
}

/// A ClearML API client. Cheap to clone; clones share the connection pool and the token.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    base: String,
    /// The login, shared with every client derived from this one (`with_retries`, `with_stop`):
    /// one token, renewed once for all of them.
    session: Arc<Session>,
    /// Once cancelled, waits between retries end and the last outcome is returned.
    stop: Option<CancellationToken>,
}

/// The current token and the lock that keeps logins one at a time.
#[derive(Default)]
struct Session {
    token: RwLock<Option<Arc<Token>>>,
    login_lock: tokio::sync::Mutex<()>,
}

/// One prepared request.
struct Outgoing<'a> {
    endpoint: &'a str,
    version: Option<&'a str>,
    method: Method,
    content_type: &'static str,
    body: Vec<u8>,
}

/// How a request authenticates.
enum Credentials<'a> {
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

/// A raw HTTP reply.
struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("api_server", &self.inner.base)
            .finish_non_exhaustive()
    }
}

/// A reqwest builder for any HTTP client of the agent. reqwest is linked without a TLS crypto
/// provider of its own (`rustls-no-provider`): rustls's ring provider is installed here, once,
/// as the process default. ring is a fraction of aws-lc's size, and the binary's mapped pages are
/// most of an idle daemon's RSS (docs/benchmarks.md).
pub(super) fn http_builder() -> reqwest::ClientBuilder {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        // Err only when a default is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// A plain HTTP client (no ClearML session) for other web requests, such as probing a package
/// index. Falls back to reqwest's defaults if the builder fails (it does not with these settings).
pub fn plain_http() -> reqwest::Client {
    http_builder().build().unwrap_or_default()
}

impl Client {
    /// Builds the client (TLS, proxies from the environment, timeouts). Does not contact the server.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let base = config.api_server.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config(format!(
                "api_server {:?} is not an http:// or https:// URL; set api.api_server in clearml.conf or CLEARML_API_HOST",
                config.api_server
            )));
        }
        let mut builder = http_builder()
            .connect_timeout(config.timeouts.connect)
            .read_timeout(config.timeouts.read)
            .tls_danger_accept_invalid_certs(!config.verify_certificate);
        if let Some(path) = &config.ca_bundle {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Config(format!("cannot read CA bundle {}: {e}", path.display()))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Config(format!(
                    "CA bundle {} is not PEM: {}",
                    path.display(),
                    cause_chain(&e)
                ))
            })?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("cannot build HTTP client: {}", cause_chain(&e))))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                config,
                base,
                session: Arc::default(),
                stop: None,
            }),
        })
    }

    /// A client that shares this one's connection pool and login but retries a failed
    /// call at most `total` times (the log shipper has its own backoff and spill).
    pub fn with_retries(&self, total: u32) -> Client {
        let mut config = self.inner.config.clone();
        config.retries.total = total;
        self.derived(config, self.inner.stop.clone())
    }

    /// A client that shares this one's connection pool and login but stops retrying
    /// once `stop` is cancelled: a request in flight still completes, the wait before the next
    /// attempt ends at once. The daemon's polls use it, so a shutdown is not held up for hours
    /// by a server that is away.
    pub fn with_stop(&self, stop: CancellationToken) -> Client {
        self.derived(self.inner.config.clone(), Some(stop))
    }

    fn derived(&self, config: ClientConfig, stop: Option<CancellationToken>) -> Client {
        Client {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                base: self.inner.base.clone(),
                session: self.inner.session.clone(),
                config,
                stop,
            }),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The claims of the current token (None before the first login).
    pub fn claims(&self) -> Option<TokenClaims> {
        self.current_token().map(|t| t.claims.clone())
    }

    /// Whether the server's API level (the token's `api_version`) is at least `min`;
    /// false before the first login.
    pub fn supports_api(&self, min: &str) -> bool {
        self.current_token()
            .is_some_and(|t| t.claims.supports_api(min))
    }

    /// The current raw token (None before the first login).
    pub fn token(&self) -> Option<String> {
        self.current_token().map(|t| t.raw.clone())
    }

    /// Logs in (`auth.login`, unversioned) and keeps the token; returns its claims.
    /// Basic auth with key/secret when set, else Bearer with the current or configured token.
    // mirrors clearml_agent/backend_api/session/session.py: Session._do_refresh_token
    pub async fn login(&self) -> Result<TokenClaims, Error> {
        let stale = self.current_token();
        let token = self
            .relogin(stale.as_deref().map(|t| t.raw.as_str()))
            .await?;
        Ok(token.claims.clone())
    }

    /// Calls `<service>.<action>` with a JSON body and returns the envelope's `data` as `Resp`.
    /// `version` None sends the unversioned path (the server's newest implementation).
    pub async fn call<Req, Resp>(
        &self,
        endpoint: &str,
        version: Option<&str>,
        body: &Req,
    ) -> Result<Resp, Error>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        self.call_with(endpoint, version, self.inner.config.default_method, body)
            .await
    }

    /// Like [`Client::call`], with an explicit HTTP method.
    pub async fn call_with<Req, Resp>(
        &self,
        endpoint: &str,
        version: Option<&str>,
        method: Method,
        body: &Req,
    ) -> Result<Resp, Error>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let body = serde_json::to_vec(body).map_err(|e| {
            Error::Config(format!("cannot encode the request body of {endpoint}: {e}"))
        })?;
        let out = Outgoing {
            endpoint,
            version,
            method,
            content_type: "application/json",
            body,
        };
        self.call_prepared(&out).await
    }

    /// A json-lines batch (`events.add_batch`): POST, `Content-Type: application/json-lines`.
    pub(crate) async fn call_batch<Resp: DeserializeOwned>(
        &self,
        endpoint: &str,
        version: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Resp, Error> {
        let out = Outgoing {
            endpoint,
            version,
            method: Method::Post,
            content_type: "application/json-lines",
            body,
        };
        self.call_prepared(&out).await
    }

    async fn call_prepared<Resp: DeserializeOwned>(
        &self,
        out: &Outgoing<'_>,
    ) -> Result<Resp, Error> {
        let token = self.session_token().await?;
        let reply = self.send(out, &Credentials::Bearer(&token.raw)).await?;
        // mirrors session.py: Session._send_request, one token refresh and retry on any 401
        let reply = if reply.status == 401 {
            let fresh = self.relogin(Some(&token.raw)).await?;
            self.send(out, &Credentials::Bearer(&fresh.raw)).await?
        } else {
            reply
        };
        let data = parse_envelope(out.endpoint, &reply)?;
        serde_json::from_value(data).map_err(|e| Error::BadResponse {
            endpoint: out.endpoint.to_owned(),
            status: reply.status,
            detail: format!("unexpected reply data: {e}"),
            snippet: snippet(&reply.body),
        })
    }

    fn current_token(&self) -> Option<Arc<Token>> {
        match self.inner.session.token.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store_token(&self, token: Arc<Token>) {
        match self.inner.session.token.write() {
            Ok(mut guard) => *guard = Some(token),
            Err(poisoned) => *poisoned.into_inner() = Some(token),
        }
    }

    /// The token to send: logs in when there is none, renews one that is close to expiry.
    async fn session_token(&self) -> Result<Arc<Token>, Error> {
        let threshold = self.inner.config.token_renew_threshold;
        match self.current_token() {
            None => self.relogin(None).await,
            Some(token) if token.needs_renewal(threshold, SystemTime::now()) => {
                match self.relogin(Some(&token.raw)).await {
                    Ok(fresh) => Ok(fresh),
                    Err(err) if !token.needs_renewal(Duration::ZERO, SystemTime::now()) => {
                        tracing::warn!("token renewal failed, using the current token: {err}");
                        Ok(token)
                    }
                    Err(err) => Err(err),
                }
            }
            Some(token) => Ok(token),
        }
    }

    /// Logs in unless another task already replaced `stale` meanwhile.
    async fn relogin(&self, stale: Option<&str>) -> Result<Arc<Token>, Error> {
        let _guard = self.inner.session.login_lock.lock().await;
        if let Some(current) = self.current_token() {
            let replaced = stale.is_none_or(|s| s != current.raw);
            let threshold = self.inner.config.token_renew_threshold;
            if replaced && !current.needs_renewal(threshold, SystemTime::now()) {
                return Ok(current);
            }
        }
        let config = &self.inner.config;
        let bearer = stale
            .map(str::to_owned)
            .or_else(|| config.auth_token.clone());
        let auth = match (&config.access_key, &config.secret_key, &bearer) {
            (Some(key), Some(secret), _) if !key.is_empty() => Credentials::Basic(key, secret),
            (_, _, Some(token)) => Credentials::Bearer(token),
            _ => {
                return Err(Error::Auth {
                    url: self.inner.base.clone(),
                    message:
                        "no credentials: neither an access key and secret nor a token is configured"
                            .to_owned(),
                });
            }
        };
        let endpoint = match config.request_token_expiration_sec {
            Some(sec) => format!("auth.login?expiration_sec={sec}"),
            None => "auth.login".to_owned(),
        };
        let out = Outgoing {
            endpoint: &endpoint,
            version: None,
            method: config.default_method,
            content_type: "application/json",
            body: b"{}".to_vec(),
        };
        let reply = self.send(&out, &auth).await?;
        let data = parse_envelope("auth.login", &reply).map_err(|err| match err {
            Error::Server { message, code, .. } => Error::Auth {
                url: self.inner.base.clone(),
                message: format!("{message} (HTTP {code})"),
            },
            other => other,
        })?;
        let Some(raw) = data.get("token").and_then(Value::as_str) else {
            return Err(Error::BadResponse {
                endpoint: "auth.login".to_owned(),
                status: reply.status,
                detail: format!(
                    "no token in the reply; is {} the ClearML API server?",
                    self.inner.base
                ),
                snippet: snippet(&reply.body),
            });
        };
        let token = Arc::new(Token::decode(raw));
        self.store_token(token.clone());
        Ok(token)
    }

    fn url(&self, out: &Outgoing<'_>) -> String {
        match out.version {
            Some(v) => format!("{}/v{}/{}", self.inner.base, v, out.endpoint),
            None => format!("{}/{}", self.inner.base, out.endpoint),
        }
    }

    /// Sends one request, retrying transport failures and retryable statuses per the policy.
    async fn send(&self, out: &Outgoing<'_>, auth: &Credentials<'_>) -> Result<Reply, Error> {
        let policy = &self.inner.config.retries;
        let url = self.url(out);
        let mut retry = 0u32;
        loop {
            let outcome = self.send_once(&url, out, auth).await;
            let problem = match &outcome {
                Ok(reply) if is_retryable_status(policy, reply) => {
                    format!("HTTP {}", reply.status)
                }
                Ok(_) => return outcome,
                Err(err) => err.to_string(),
            };
            let stop = self.inner.stop.as_ref();
            if retry >= policy.total || stop.is_some_and(CancellationToken::is_cancelled) {
                return outcome;
            }
            let delay = policy.delay(retry);
            retry += 1;
            tracing::warn!(
                "{}: {problem} (retry {retry}/{} in {:.1}s)",
                out.endpoint,
                policy.total,
                delay.as_secs_f64()
            );
            match stop {
                Some(stop) => tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => return outcome,
                },
                None => tokio::time::sleep(delay).await,
            }
        }
    }

    async fn send_once(
        &self,
        url: &str,
        out: &Outgoing<'_>,
        auth: &Credentials<'_>,
    ) -> Result<Reply, Error> {
        let config = &self.inner.config;
        let mut request = self
            .inner
            .http
            .request(out.method.to_reqwest(), url)
            .header(reqwest::header::CONTENT_TYPE, out.content_type)
            .body(out.body.clone());
        request = match auth {
            Credentials::Bearer(token) => {
                request.header(reqwest::header::AUTHORIZATION, format!("Bearer {token}"))
            }
            Credentials::Basic(key, secret) => {
                let pair =
                    base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"));
                request.header(reqwest::header::AUTHORIZATION, format!("Basic {pair}"))
            }
        };
        if !config.worker_header.is_empty() {
            request = request
                .header("X-ClearML-Worker", &config.worker_header)
                .header("X-Trains-Worker", &config.worker_header);
        }
        if !config.agent_header.is_empty() {
            request = request
                .header("X-ClearML-Agent", &config.agent_header)
                .header("X-Trains-Agent", &config.agent_header);
        }
        let transport = |err: reqwest::Error| classify(out.endpoint, url, &err);
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = read_body(response, out.endpoint, url, config.timeouts.read).await?;
        Ok(Reply { status, body })
    }
}

/// The largest reply body read: far above any reply the agent asks for (a task, a queue's
/// entries), small enough that a broken server or proxy cannot exhaust the daemon's memory.
pub(super) const MAX_REPLY_BYTES: usize = 32 << 20;

/// Reads a reply body of at most [`MAX_REPLY_BYTES`], all of it within `within` of the headers:
/// a per-read timeout alone lets a reply that trickles a byte at a time hold a call for ever.
async fn read_body(
    mut response: reqwest::Response,
    endpoint: &str,
    url: &str,
    within: Duration,
) -> Result<Vec<u8>, Error> {
    let too_large = |status: u16, size: String| Error::BadResponse {
        endpoint: endpoint.to_owned(),
        status,
        detail: format!(
            "the reply body ({size}) is over the {} MiB limit; is api_server a ClearML API server?",
            MAX_REPLY_BYTES >> 20
        ),
        snippet: String::new(),
    };
    let status = response.status().as_u16();
    if let Some(length) = response
        .content_length()
        .filter(|n| *n > MAX_REPLY_BYTES as u64)
    {
        return Err(too_large(status, format!("{length} bytes")));
    }
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| classify(endpoint, url, &err))?
        {
            if body.len() + chunk.len() > MAX_REPLY_BYTES {
                return Err(too_large(status, "more bytes".to_owned()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(within, read)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout {
                endpoint: endpoint.to_owned(),
                url: url.to_owned(),
                cause: format!(
                    "the reply did not arrive whole within {}s",
                    within.as_secs_f64()
                ),
            })
        })
}

/// Whether a reply should be retried: a listed status, except a 500 that is a ClearML envelope.
fn is_retryable_status(policy: &RetryPolicy, reply: &Reply) -> bool {
    if !policy.statuses.contains(&reply.status) {
        return false;
    }
    if reply.status == 500 {
        let envelope = serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .is_some_and(|v| v.get("meta").is_some_and(Value::is_object));
        return !envelope;
    }
    true
}

fn classify(endpoint: &str, url: &str, err: &reqwest::Error) -> Error {
    // reqwest's own text only repeats the URL; the cause is in its sources.
    let cause = std::error::Error::source(err)
        .map(cause_chain)
        .unwrap_or_else(|| err.to_string());
    if err.is_timeout() {
        Error::Timeout {
            endpoint: endpoint.to_owned(),
            url: url.to_owned(),
            cause,
        }
    } else if err.is_connect() {
        Error::Connect {
            endpoint: endpoint.to_owned(),
            url: url.to_owned(),
            cause,
        }
    } else {
        Error::Transport {
            endpoint: endpoint.to_owned(),
            cause,
        }
    }
}

/// The reply's `meta`, as far as the agent reads it.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Meta {
    result_code: Option<u16>,
    result_subcode: Option<u32>,
    result_msg: Option<String>,
}

/// Checks the envelope and returns `data` (`{}` when absent or null).
fn parse_envelope(endpoint: &str, reply: &Reply) -> Result<Value, Error> {
    let bad = |detail: &str| Error::BadResponse {
        endpoint: endpoint.to_owned(),
        status: reply.status,
        detail: detail.to_owned(),
        snippet: snippet(&reply.body),
    };
    let hint = if reply.status == 200 {
        "is api_server a ClearML API server?"
    } else {
        "an error page from the server or a proxy in front of it"
    };
    let mut root: Value = serde_json::from_slice(&reply.body)
        .map_err(|_| bad(&format!("not a JSON document; {hint}")))?;
    let Some(meta) = root.get("meta").filter(|m| m.is_object()) else {
        return Err(bad(&format!("not a ClearML reply (no meta); {hint}")));
    };
    let meta: Meta = serde_json::from_value(meta.clone()).unwrap_or_default();
    let code = meta.result_code.unwrap_or(reply.status);
    if code != 200 {
        return Err(Error::Server {
            code,
            subcode: meta.result_subcode.unwrap_or(0),
            message: meta
                .result_msg
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| format!("HTTP {}", reply.status)),
            endpoint: endpoint.to_owned(),
        });
    }
    match root.get_mut("data").map(Value::take) {
        None | Some(Value::Null) => Ok(Value::Object(serde_json::Map::new())),
        Some(data) => Ok(data),
    }
}
