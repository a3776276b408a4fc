//! Repository URLs as the agent handles them: parsing (with scp-like `user@host:path`),
//! credentials (added from the configuration, scrubbed from what is printed), the ssh/https
//! rewriting of `agent.force_git_ssh_protocol` and `translate_ssh`, the folder a URL clones into.
//! mirrors clearml_agent/helper/repo.py (VCS.add_auth, VCS.replace_ssh_url, ...).

use md5::{Digest, Md5};

use super::git::GitOptions;

/// The folder name a URL clones into: its last path segment.
/// Mirrors repo.py: clone_repository_cached (`Path(furl(url).path).name`).
pub fn repo_folder_name(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let path = match GitUrl::parse(url) {
        Some(u) => u.path,
        None => url.rsplit(':').next().unwrap_or(url).to_string(),
    };
    let name = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        "repository".to_string()
    } else {
        name
    }
}

/// Hex md5 of a string (vcs-cache folder keys, same as the Python agent so caches are shared).
pub(crate) fn md5_hex(text: &str) -> String {
    let digest = Md5::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A URL with an authority (`scheme://[user[:pass]@]host[:port]/path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GitUrl {
    pub(crate) scheme: String,
    pub(crate) user: Option<String>,
    pub(crate) pass: Option<String>,
    pub(crate) host: String,
    pub(crate) port: Option<String>,
    /// Starts with `/` when non-empty; query/fragment kept verbatim.
    pub(crate) path: String,
}

impl GitUrl {
    pub(crate) fn parse(url: &str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, pass) = match userinfo {
            Some(ui) => match ui.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(ui.to_string()), None),
            },
            None => (None, None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
                (h.to_string(), Some(p.to_string()))
            }
            _ => (hostport.to_string(), None),
        };
        Some(Self {
            scheme: scheme.to_lowercase(),
            user: user.filter(|u| !u.is_empty()),
            pass: pass.filter(|p| !p.is_empty()),
            host,
            port,
            path: path.to_string(),
        })
    }

    pub(crate) fn render(&self) -> String {
        let mut s = format!("{}://", self.scheme);
        if let Some(u) = &self.user {
            s.push_str(u);
            if let Some(p) = &self.pass {
                s.push(':');
                s.push_str(p);
            }
            s.push('@');
        }
        s.push_str(&self.host);
        if let Some(p) = &self.port {
            s.push(':');
            s.push_str(p);
        }
        s.push_str(&self.path);
        s
    }
}

/// An scp-like ssh URL `[user@]host:path`.
/// Mirrors repo.py: VCS.SSH_URL_GIT_SYNTAX.
pub(crate) fn parse_scp_like(url: &str) -> Option<(Option<String>, String, String)> {
    if url.contains("://") {
        return None;
    }
    let bad = |c: char| matches!(c, '/' | '@' | ':' | '#');
    let (user, rest) = match url.split_once('@') {
        Some((u, r)) if !u.chars().any(bad) => (Some(u.to_string()), r),
        Some(_) => return None,
        None => (None, url),
    };
    let (host, path) = rest.split_once(':')?;
    if host.chars().any(bad) || path.starts_with(bad) {
        return None;
    }
    Some((user, host.to_string(), path.to_string()))
}

/// Whether the user part of a URL is a secret by itself: over http(s) a user without a
/// password is the usual form of a personal access token (`https://ghp_x@github.com/...`).
pub(crate) fn user_is_token(u: &GitUrl) -> bool {
    u.pass.is_none()
        && u.scheme.starts_with("http")
        && u.user
            .as_deref()
            .is_some_and(|user| !matches!(user.to_lowercase().as_str(), "git" | "hg"))
}

/// The URL with its password removed, and a token given as the user masked (safe to print).
pub fn scrub_url(url: &str) -> String {
    match GitUrl::parse(url) {
        Some(mut u) if u.pass.is_some() => {
            u.pass = None;
            u.render()
        }
        Some(mut u) if user_is_token(&u) => {
            u.user = Some("********".into());
            u.render()
        }
        _ => url.to_string(),
    }
}

/// The URL without any credentials (what a checkout keeps in `.git/config`).
pub(crate) fn without_credentials(url: &str) -> String {
    match GitUrl::parse(url) {
        Some(mut u) if u.pass.is_some() || user_is_token(&u) => {
            u.user = None;
            u.pass = None;
            u.render()
        }
        _ => url.to_string(),
    }
}

/// Credentials configured for a URL, honouring `git_host` and `extra_credentials`.
/// Mirrors repo.py: VCS._get_config_creds.
pub(crate) fn config_creds(
    opts: &GitOptions,
    full_url: &str,
    url_host: &str,
) -> Option<(String, String)> {
    let url_host = url_host.to_lowercase();
    let match_host = |h: &str| {
        if opts.git_host_match_prefix {
            full_url.starts_with(&h.to_lowercase())
        } else {
            url_host == h.to_lowercase()
        }
    };
    let base = match (&opts.git_user, &opts.git_pass) {
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => {
            if opts
                .git_host
                .as_deref()
                .is_none_or(|h| h.is_empty() || match_host(h))
            {
                Some((u.clone(), p.clone()))
            } else {
                None
            }
        }
        _ => None,
    };
    for c in &opts.extra_credentials {
        if !c.user.is_empty() && !c.pass.is_empty() && !c.host.is_empty() && match_host(&c.host) {
            return Some((c.user.clone(), c.pass.clone()));
        }
    }
    base
}

/// Applies `force_git_ssh_protocol` / `translate_ssh` to a repository URL.
/// Mirrors repo.py: VCS._set_ssh_url (with replace_http_url, rewrite_ssh_url, replace_ssh_url).
pub fn rewrite_url(url: &str, opts: &GitOptions, log: &dyn Fn(&str)) -> String {
    let parsed = GitUrl::parse(url);
    if opts.force_git_ssh_protocol
        && let Some(p) = &parsed
    {
        if let Some(h) = opts.git_host.as_deref().filter(|h| !h.is_empty())
            && h != p.host
        {
            return url.to_string();
        }
        if p.scheme == "https" {
            let mut n = p.clone();
            n.scheme = "ssh".into();
            n.user = Some(
                opts.force_git_ssh_user
                    .clone()
                    .unwrap_or_else(|| "git".into()),
            );
            n.pass = None;
            n.port = opts.force_git_ssh_port.map(|p| p.to_string());
            let new = n.render();
            if new != url {
                log(&format!(
                    "Using SSH credentials - replacing https url '{}' with ssh url '{new}'",
                    scrub_url(url)
                ));
            }
            return new;
        }
        if p.scheme == "ssh" {
            if opts.force_git_ssh_port.is_some() || opts.force_git_ssh_user.is_some() {
                let mut n = p.clone();
                n.user = Some(
                    opts.force_git_ssh_user
                        .clone()
                        .unwrap_or_else(|| "git".into()),
                );
                n.port = opts.force_git_ssh_port.map(|p| p.to_string());
                let new = n.render();
                if new != url {
                    log(&format!(
                        "Using SSH credentials - ssh url '{url}' with ssh url '{new}'"
                    ));
                }
                return new;
            }
            return url.to_string();
        }
    }
    if !opts.translate_ssh {
        return url.to_string();
    }
    let scp = parse_scp_like(url);
    let (full, host) = match (&scp, &parsed) {
        (Some((_, h, p)), _) => (format!("{h}:{p}"), h.clone()),
        (None, Some(p)) => (url.to_string(), p.host.clone()),
        (None, None) => (url.to_string(), String::new()),
    };
    if config_creds(opts, &full, &host).is_none() {
        return url.to_string();
    }
    let scheme = if opts.translate_ssh_replacement_scheme.is_empty() {
        "https".to_string()
    } else {
        opts.translate_ssh_replacement_scheme.clone()
    };
    let drop_special = |u: Option<String>, has_pass: bool| {
        u.filter(|u| has_pass || !matches!(u.to_lowercase().as_str(), "git" | "hg"))
    };
    let new = if let Some((user, host, path)) = scp {
        GitUrl {
            scheme,
            user: drop_special(user, false),
            pass: None,
            host,
            port: None,
            path: format!("/{}", path.trim_start_matches('/')),
        }
        .render()
    } else if let Some(p) = parsed.filter(|p| p.scheme == "ssh") {
        let has_pass = p.pass.is_some();
        GitUrl {
            scheme,
            user: drop_special(p.user.clone(), has_pass),
            ..p
        }
        .render()
    } else {
        return url.to_string();
    };
    if new != url {
        log(&format!(
            "Using user/pass credentials - replacing ssh url '{url}' with https url '{}'",
            scrub_url(&new)
        ));
    }
    new
}

/// Whether a repository names a folder of this host (a path or a `file://` URL) rather than a
/// remote: docker mode refuses those unless `agent.docker_allow_host_repositories`.
pub fn is_host_repository(url: &str) -> bool {
    let url = url.trim();
    if url.is_empty() {
        return false;
    }
    if url.to_lowercase().starts_with("file:") {
        return true;
    }
    !url.contains("://") && parse_scp_like(url).is_none()
}

/// Percent-encodes a URL userinfo part (as furl does when it sets username/password).
pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
