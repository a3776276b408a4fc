//! `auth.*`: issuing tokens (`auth.login`), logout, and token validation.

use serde_json::{Value, json};

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::request::{opt_i64, req_str};
use crate::state::{Ctx, MAX_TOKEN_LIFETIME_SEC};
use crate::token;

/// `auth.login {expiration_sec?}` → `{token}`. Credentials were checked by `wire`
/// (Basic key/secret, or a valid Bearer token for a fresh one).
pub(crate) fn login(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let lifetime = match opt_i64(&body, "expiration_sec")? {
        Some(sec) if sec > MAX_TOKEN_LIFETIME_SEC => {
            return Err(
                ApiError::validation("Expiration is larger than the allowed maximum")
                    .with("expiration_sec", sec)
                    .with("max_expiration_sec", MAX_TOKEN_LIFETIME_SEC),
            );
        }
        Some(sec) if sec <= 0 => {
            return Err(ApiError::validation("expiration_sec must be positive"));
        }
        Some(sec) => sec,
        None => ctx.shared.token_lifetime(),
    };
    let token = token::issue(
        &ctx.shared.token_secret,
        ctx.identity,
        now_ms() / 1000,
        lifetime,
    )?;
    Ok(json!({ "token": token }))
}

/// `auth.logout` → `{}`. Tokens are stateless here, so nothing is revoked.
pub(crate) fn logout(_ctx: &Ctx, _body: Value) -> Result<Value, ApiError> {
    Ok(json!({}))
}

/// `auth.validate_token {token}` → `{valid, user, company, msg?}` (system role only).
pub(crate) fn validate_token(ctx: &Ctx, body: Value) -> Result<Value, ApiError> {
    let text = req_str(&body, "token")?;
    Ok(
        match token::verify(&ctx.shared.token_secret, &text, now_ms() / 1000) {
            Ok(id) => json!({"valid": true, "user": id.user, "company": id.company}),
            Err(e) => json!({"valid": false, "msg": e.message()}),
        },
    )
}
