//! Credentials for pulling an image, found as the docker CLI finds them in its client
//! configuration (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): the registry's
//! credential helper (`credHelpers`), else the store (`credsStore`), else its `auths` entry.
//! A helper is the program `docker-credential-<name>`, run with `get` and the registry's address
//! on its input, answering `{"ServerURL", "Username", "Secret"}` (a `<token>` user means an
//! identity token). The configuration is the agent host's, never the task's; the image name (the
//! task's) only reaches the helper's input.
//!
//! mirrors docker/cli: cli/config/configfile (GetCredentialsStore, GetAuthConfig) and
//! docker-credential-helpers/client (Get). The Python agent leaves all of it to `docker pull`.

use std::time::Duration;

use base64::Engine as _;
use bollard::auth::DockerCredentials;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// How long a credential helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The credentials for pulling `image`, from the client configuration `config_json`: a helper's
/// answer, else the `auths` entry. `None`: pull anonymously. A helper that fails is reported
/// through `warn` (its message, never a secret) and the pull goes on anonymously, as the CLI's.
pub async fn for_image(
    image: &str,
    config_json: &str,
    warn: &(dyn Fn(String) + Send + Sync),
) -> Option<DockerCredentials> {
    let config: Value = serde_json::from_str(config_json).ok()?;
    let registry = registry_of(image);
    let host = bare_host(registry);
    let helper = config
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|helpers| {
            helpers
                .iter()
                .find_map(|(k, v)| (bare_host(k) == host || k == registry).then_some(v))
        })
        .or_else(|| config.get("credsStore"))
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty());
    match helper {
        Some(name) => match run_helper(name, registry).await {
            Ok(creds) => creds,
            Err(why) => {
                warn(format!(
                    "Warning: docker credential helper `docker-credential-{name}` failed for {registry}: {why}; pulling without credentials"
                ));
                None
            }
        },
        None => registry_credentials(image, config_json),
    }
}

/// A registry key without its scheme and trailing `/` (`https://index.docker.io/v1/` →
/// `index.docker.io/v1`), as the docker CLI compares them.
fn bare_host(key: &str) -> &str {
    key.trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
}

/// Runs `docker-credential-<name> get` for `registry`; `Ok(None)` when it has no credentials.
async fn run_helper(name: &str, registry: &str) -> Result<Option<DockerCredentials>, String> {
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!("`{name}` is not a helper name"));
    }
    let program = format!("docker-credential-{name}");
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(registry.as_bytes())
            .await
            .map_err(|e| format!("cannot write to {program}: {e}"))?;
    }
    let out = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("{program} did not answer in {}s", HELPER_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{program}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // The helpers' "not found" answer (docker-credential-helpers: ErrCredentialsNotFound).
        if text.contains("credentials not found") {
            return Ok(None);
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().chain(text.lines()).next().unwrap_or_default();
        return Err(format!("{} ({first})", out.status));
    }
    parse_helper_answer(&text, registry).map(Some)
}

/// `{"ServerURL", "Username", "Secret"}` → credentials (`<token>` user: an identity token).
fn parse_helper_answer(text: &str, registry: &str) -> Result<DockerCredentials, String> {
    let v: Value = serde_json::from_str(text.trim())
        .map_err(|_| "its answer is not the JSON of a credential".to_string())?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let (user, secret) = (field("Username"), field("Secret"));
    let mut creds = DockerCredentials {
        serveraddress: Some(registry.to_string()),
        ..Default::default()
    };
    match (user.as_deref(), secret) {
        (Some("<token>"), Some(token)) => creds.identitytoken = Some(token),
        (Some(_), Some(secret)) => {
            creds.username = user;
            creds.password = Some(secret);
        }
        _ => return Err("its answer has no Username and Secret".into()),
    }
    Ok(creds)
}

/// The registry an image comes from, as the `auths` keys of the Docker config name it.
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "https://index.docker.io/v1/",
    }
}

/// The credentials for pulling `image` from the Docker client config's `auths` (base64
/// `user:password` in `auth`, or `identitytoken`). Credential helpers (`credsStore`) are not
/// run.
pub fn registry_credentials(image: &str, config_json: &str) -> Option<DockerCredentials> {
    let config: serde_json::Value = serde_json::from_str(config_json).ok()?;
    let registry = registry_of(image);
    let auths = config.get("auths")?.as_object()?;
    let wanted = bare_host(registry);
    let entry = auths.iter().find_map(|(k, v)| {
        let host = bare_host(k);
        (k == registry || host == wanted || host.split('/').next() == Some(wanted)).then_some(v)
    })?;
    let mut creds = DockerCredentials {
        serveraddress: Some(registry.to_string()),
        ..Default::default()
    };
    if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, pass) = text.split_once(':')?;
        creds.username = Some(user.to_string());
        creds.password = Some(pass.to_string());
    }
    if let Some(token) = entry.get("identitytoken").and_then(|a| a.as_str()) {
        creds.identitytoken = Some(token.to_string());
    }
    (creds.username.is_some() || creds.identitytoken.is_some()).then_some(creds)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pull_credentials_come_from_the_docker_config() {
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:s3cret");
        let cfg = format!(
            r#"{{"auths": {{"registry.example.com:5000": {{"auth": "{auth}"}},
                "https://index.docker.io/v1/": {{"auth": "{auth}"}}}}}}"#
        );
        let c = registry_credentials("registry.example.com:5000/team/img:1", &cfg).unwrap();
        assert_eq!(c.username.as_deref(), Some("bob"));
        assert_eq!(c.password.as_deref(), Some("s3cret"));
        assert_eq!(
            c.serveraddress.as_deref(),
            Some("registry.example.com:5000")
        );
        let hub = registry_credentials("python:3.11", &cfg).unwrap();
        assert_eq!(
            hub.serveraddress.as_deref(),
            Some("https://index.docker.io/v1/")
        );
        assert!(registry_credentials("other.io/img", &cfg).is_none());
        assert!(registry_credentials("python", "not json").is_none());
    }

    #[test]
    fn helper_answers_become_credentials() {
        let c = parse_helper_answer(
            r#"{"ServerURL":"r.io","Username":"bob","Secret":"s"}"#,
            "r.io",
        )
        .unwrap();
        assert_eq!(
            (c.username.as_deref(), c.password.as_deref()),
            (Some("bob"), Some("s"))
        );
        let t = parse_helper_answer(
            r#"{"ServerURL":"r.io","Username":"<token>","Secret":"tok"}"#,
            "r.io",
        )
        .unwrap();
        assert_eq!(t.identitytoken.as_deref(), Some("tok"));
        assert!(t.username.is_none());
        assert!(parse_helper_answer("nope", "r.io").is_err());
    }
}
