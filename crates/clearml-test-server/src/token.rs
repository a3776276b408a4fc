//! JWT (HS256) tokens as issued by `auth.login`: signing, and verifying the signature and expiry.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::error::ApiError;
use crate::ids::new_id;

/// The API level and versions this server claims (server 2.0.0, API 2.31).
pub const API_VERSION: &str = "2.31";
pub const SERVER_VERSION: &str = "2.0.0";

/// Who a token belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub user: String,
    pub company: String,
    pub role: String,
    pub user_name: String,
    pub company_name: String,
}

impl Identity {
    pub fn to_json(&self) -> Value {
        json!({
            "user": self.user, "company": self.company, "role": self.role,
            "user_name": self.user_name, "company_name": self.company_name,
        })
    }

    fn from_json(v: &Value) -> Option<Identity> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Identity {
            user: s("user")?,
            company: s("company")?,
            role: s("role").unwrap_or_else(|| "user".into()),
            user_name: s("user_name").unwrap_or_default(),
            company_name: s("company_name").unwrap_or_default(),
        })
    }
}

fn mac(secret: &[u8], signing_input: &str) -> Result<Vec<u8>, ApiError> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).map_err(ApiError::internal)?;
    m.update(signing_input.as_bytes());
    Ok(m.finalize().into_bytes().to_vec())
}

/// Signs a token for `identity` issued at `now_sec`, expiring `lifetime_sec` later.
pub(crate) fn issue(
    secret: &[u8],
    identity: &Identity,
    now_sec: i64,
    lifetime_sec: i64,
) -> Result<String, ApiError> {
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let claims = json!({
        "auth_type": "Bearer",
        "identity": identity.to_json(),
        "iat": now_sec,
        "exp": now_sec + lifetime_sec,
        "env": "test",
        "session_id": new_id(),
        "api_version": API_VERSION,
        "server_version": SERVER_VERSION,
        "server_build": "clearml-test-server",
        "feature_set": "basic",
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = URL_SAFE_NO_PAD.encode(mac(secret, &input)?);
    Ok(format!("{input}.{sig}"))
}

fn invalid(extra: &str) -> ApiError {
    ApiError::new(401, 30, "Invalid token").extra(extra.to_string())
}

/// Verifies signature and expiry; returns the token's identity.
pub(crate) fn verify(secret: &[u8], token: &str, now_sec: i64) -> Result<Identity, ApiError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("malformed token"));
    };
    let expected = mac(secret, &format!("{h}.{c}"))?;
    let given = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| invalid("malformed signature"))?;
    let mut check = Hmac::<Sha256>::new_from_slice(secret).map_err(ApiError::internal)?;
    check.update(format!("{h}.{c}").as_bytes());
    if check.verify_slice(&given).is_err() || expected.len() != given.len() {
        return Err(invalid("signature verification failed"));
    }
    let claims: Value = URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("malformed claims"))?;
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64)
        && exp <= now_sec
    {
        return Err(invalid("token expired"));
    }
    claims
        .get("identity")
        .and_then(Identity::from_json)
        .ok_or_else(|| invalid("missing identity"))
}
