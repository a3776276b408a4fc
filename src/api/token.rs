//! The session token (JWT): decoding its claims without verification and deciding when to renew it.
//! Owns no I/O; the client logs in and stores the token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::Deserialize;

/// The identity block of the token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Identity {
    pub user: Option<String>,
    pub company: Option<String>,
    pub role: Option<String>,
    pub user_name: Option<String>,
    pub company_name: Option<String>,
}

/// The claims the agent reads from the token; every one is optional.
// mirrors clearml_agent/backend_api/session/session.py: Session.__init__ (decodes the token with verify_signature False)
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct TokenClaims {
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub env: Option<String>,
    pub api_version: Option<String>,
    pub server_version: Option<String>,
    pub feature_set: Option<String>,
    pub identity: Identity,
}

impl TokenClaims {
    /// The server's API level: the `api_version` claim, else "2.2" for `env: prod`, else "2.1"
    /// (mirrors clearml_agent/backend_api/session/session.py: Session.__init__, the token `api_version` fallback).
    pub fn effective_api_version(&self) -> String {
        match (&self.api_version, self.env.as_deref()) {
            (Some(version), _) => version.clone(),
            (None, Some("prod")) => "2.2".to_owned(),
            (None, _) => "2.1".to_owned(),
        }
    }

    /// Whether the server's API level is at least `min` ("2.26"), comparing numerically
    /// (mirrors clearml_agent/backend_api/session/session.py: Session.check_min_api_version).
    pub fn supports_api(&self, min: &str) -> bool {
        version_tuple(&self.effective_api_version()) >= version_tuple(min)
    }

    /// The feature set, "basic" when the claim is absent (open-source server).
    pub fn effective_feature_set(&self) -> &str {
        self.feature_set.as_deref().unwrap_or("basic")
    }
}

/// "2.26" → [2, 26]; non-numeric parts count as 0.
fn version_tuple(version: &str) -> Vec<u64> {
    version
        .split('.')
        .map(|part| part.trim().parse().unwrap_or(0))
        .collect()
}

/// A token and its decoded claims.
#[derive(Debug, Clone)]
pub struct Token {
    pub raw: String,
    pub claims: TokenClaims,
}

impl Token {
    /// Decodes the payload of a JWT without verifying its signature (as PyJWT with
    /// `verify_signature: false`). A token that is not a JWT is kept with empty claims: the server
    /// is the judge of its validity, and without `exp` it is only renewed after a 401.
    pub fn decode(raw: &str) -> Token {
        let claims = raw
            .split('.')
            .nth(1)
            .and_then(|payload| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload.trim_end_matches('='))
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice::<TokenClaims>(&bytes).ok())
            .unwrap_or_default();
        Token {
            raw: raw.to_owned(),
            claims,
        }
    }

    /// Whether the token should be renewed now. The Python agent renews when less than
    /// `threshold` (api.auth.token_expiration_threshold_sec, 12 h) is left; a token whose whole
    /// lifetime is shorter than twice the threshold is renewed once half of it has passed
    /// instead, so short-lived tokens neither loop on login nor expire in use.
    pub fn needs_renewal(&self, threshold: Duration, now: SystemTime) -> bool {
        let Some(exp) = self.claims.exp else {
            return false;
        };
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let left = exp as f64 - now;
        let mut margin = threshold.as_secs_f64();
        if let Some(iat) = self.claims.iat {
            let lifetime = exp as f64 - iat as f64;
            if lifetime > 0.0 {
                margin = margin.min(lifetime / 2.0);
            }
        }
        left <= margin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            enc.encode(r#"{"alg":"HS256"}"#),
            enc.encode(payload)
        )
    }

    #[test]
    fn decodes_claims_and_defaults() {
        let token = Token::decode(&jwt(
            r#"{"exp":100,"iat":40,"api_version":"2.31","feature_set":"basic","identity":{"user":"u1"}}"#,
        ));
        assert_eq!(token.claims.exp, Some(100));
        assert_eq!(token.claims.effective_api_version(), "2.31");
        assert_eq!(token.claims.identity.user.as_deref(), Some("u1"));
        assert!(token.claims.supports_api("2.26") && token.claims.supports_api("2.31"));
        assert!(!token.claims.supports_api("2.32") && !token.claims.supports_api("3.0"));
        let bare = Token::decode("not-a-jwt");
        assert_eq!(bare.claims, TokenClaims::default());
        assert_eq!(bare.claims.effective_api_version(), "2.1");
    }

    #[test]
    fn renewal_is_proportional_for_short_tokens() {
        let token = Token::decode(&jwt(r#"{"exp":1010,"iat":1000}"#));
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let threshold = Duration::from_secs(43200);
        assert!(!token.needs_renewal(threshold, at(1004)));
        assert!(token.needs_renewal(threshold, at(1006)));
        let long = Token::decode(&jwt(r#"{"exp":2592000,"iat":0}"#));
        assert!(!long.needs_renewal(threshold, at(2592000 - 43201)));
        assert!(long.needs_renewal(threshold, at(2592000 - 43199)));
    }
}
