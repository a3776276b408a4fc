//! `auth.*` and `users.*`: who the client is. Login itself lives in the client (it is transport).

use serde_json::{Value, json};

use super::client::Client;
use super::error::Error;
use super::token::TokenClaims;
use super::types::nullable;

/// Calls of the `auth` and `users` services.
pub struct Auth<'a> {
    client: &'a Client,
}

/// `users.get_current_user` → `user`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct CurrentUser {
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub role: Option<String>,
    /// `{id, name}`.
    pub company: Value,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct CurrentUserReply {
    #[serde(deserialize_with = "nullable")]
    user: CurrentUser,
}

impl Client {
    /// The `auth` / `users` calls.
    pub fn auth(&self) -> Auth<'_> {
        Auth { client: self }
    }
}

impl Auth<'_> {
    /// `auth.login` (unversioned): a fresh token; returns its claims.
    pub async fn login(&self) -> Result<TokenClaims, Error> {
        self.client.login().await
    }

    /// `users.get_current_user` (unversioned, as the Python agent sends it).
    pub async fn current_user(&self) -> Result<CurrentUser, Error> {
        let reply: CurrentUserReply = self
            .client
            .call("users.get_current_user", None, &json!({}))
            .await?;
        Ok(reply.user)
    }
}
