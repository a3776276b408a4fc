//! `Shared`: what every request sees (the store, credentials, the token secret and lifetime,
//! the per-endpoint call counter, injected faults), and `Ctx`, the view a handler gets of one request.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::error::ApiError;
use crate::faults::Faults;
use crate::ids::new_id;
use crate::store::Store;
use crate::token::Identity;

/// Default token lifetime: 30 days (`apiserver.auth.default_expiration_sec`).
pub(crate) const DEFAULT_TOKEN_LIFETIME_SEC: i64 = 2_592_000;
/// The largest `expiration_sec` `auth.login` accepts: 1 year.
pub(crate) const MAX_TOKEN_LIFETIME_SEC: i64 = 31_536_000;
/// In-progress tasks without any update for this long are stopped by the watchdog (2 h).
pub(crate) const DEFAULT_NON_RESPONSIVE_MS: i64 = 7_200_000;
/// The company id of the open-source server's single company.
pub(crate) const COMPANY_ID: &str = "d1bd92a3b039400cbafc60a7a5b1e52b";

/// State shared by all requests, and kept across a restart of the listener.
pub struct Shared {
    pub store: Mutex<Store>,
    pub db_path: Option<PathBuf>,
    pub access_key: String,
    pub secret_key: String,
    pub identity: Identity,
    pub token_secret: Vec<u8>,
    pub token_lifetime_sec: AtomicI64,
    /// Watchdog: in-progress tasks whose `last_update` is older than this are stopped.
    pub non_responsive_ms: AtomicI64,
    pub calls: Mutex<BTreeMap<String, u64>>,
    /// Replies to give instead of the real ones (tests of client robustness).
    pub faults: Faults,
}

impl Shared {
    /// Opens the store, creates the `default` queue on a fresh database, and loads (or makes)
    /// the token-signing secret, which lives in the database so tokens survive a restart.
    pub fn open(
        db_path: Option<PathBuf>,
        access_key: String,
        secret_key: String,
        token_lifetime_sec: i64,
    ) -> anyhow::Result<Shared> {
        let store = Store::open(db_path.as_deref())?;
        let token_secret = match store.meta_get("token_secret")? {
            Some(s) => s,
            None => {
                let s = format!("{}{}", new_id(), new_id());
                store.meta_set("token_secret", &s)?;
                s
            }
        };
        let user_id = match store.meta_get("user_id")? {
            Some(s) => s,
            None => {
                let s = new_id();
                store.meta_set("user_id", &s)?;
                s
            }
        };
        crate::endpoints::queues::ensure_default_queue(&store)?;
        Ok(Shared {
            store: Mutex::new(store),
            db_path,
            access_key,
            secret_key,
            identity: Identity {
                user: user_id,
                company: COMPANY_ID.to_string(),
                role: "user".to_string(),
                user_name: "Test User".to_string(),
                company_name: "clearml".to_string(),
            },
            token_secret: token_secret.into_bytes(),
            token_lifetime_sec: AtomicI64::new(token_lifetime_sec),
            non_responsive_ms: AtomicI64::new(DEFAULT_NON_RESPONSIVE_MS),
            calls: Mutex::new(BTreeMap::new()),
            faults: Faults::default(),
        })
    }

    pub fn token_lifetime(&self) -> i64 {
        self.token_lifetime_sec.load(Ordering::Relaxed)
    }

    pub fn non_responsive_ms(&self) -> i64 {
        self.non_responsive_ms.load(Ordering::Relaxed)
    }

    pub fn count_call(&self, endpoint: &str) {
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry(endpoint.to_string()).or_insert(0) += 1;
        }
    }

    /// Runs `f` with the store locked, inside one transaction.
    pub fn with_store<T>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let store = self
            .store
            .lock()
            .map_err(|_| ApiError::internal("store lock poisoned"))?;
        store.transaction(f)
    }
}

/// A handler's view of one request.
pub(crate) struct Ctx<'a> {
    pub db: &'a Store,
    pub shared: &'a Shared,
    pub identity: &'a Identity,
    /// The `X-ClearML-Worker` header, if sent.
    pub worker: Option<&'a str>,
    /// The requested API version (the server maximum when the path has none).
    pub version: (u32, u32),
}
