//! `RegistryClient`: reads an MCP registry with the Bearer token the agent
//! gives, the one HTTP layer everything else (CLI, `regent serve`) uses.
//!
//! - The token goes to the registry's own origin only: a redirect elsewhere
//!   is followed without `Authorization`.
//! - A 401 or 403 goes the one refusal path ([`ResourceAuth`]): the agent
//!   decides whether a new token, a login (run here only where the caller
//!   gave a way to run one) or nothing would help, and says why.

use crate::agent::{AgentClient, ClientError};
use crate::resource::{self, AuthError, Login, ResourceAuth, WithoutLogin};
use regent_proto::{ErrorCode, RegistryStatus};
use reqwest::header::LOCATION;
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;
use url::Url;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;
/// Pages read at most when listing (a registry that loops its cursor stops here).
const MAX_PAGES: usize = 1000;
/// Most servers collected when listing everything.
const MAX_SERVERS: usize = 100_000;
/// Largest registry answer read.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why reading a registry failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The agent refused or could not give a token (its error, as is).
    #[error("{0}")]
    Agent(#[from] ClientError),
    /// The registry wants a login (a first one, another, or one with more
    /// scope); the agent's message names the command.
    #[error("{message}")]
    AuthRequired {
        /// The registry.
        registry: String,
        /// Why, and what to run.
        message: String,
    },
    /// The registry refuses, and no new token or login would help.
    #[error("{message}")]
    Forbidden {
        /// The registry.
        registry: String,
        /// Why (the agent's reading of the refusal).
        message: String,
    },
    /// The registry is unreachable or answered something unusable.
    #[error("registry {registry}: {message}")]
    Unavailable {
        /// The registry.
        registry: String,
        /// What happened.
        message: String,
    },
    /// The thing asked for does not exist at the registry.
    #[error("registry {registry} has no {what}")]
    NotFound {
        /// The registry.
        registry: String,
        /// What was looked for.
        what: String,
    },
}

impl RegistryError {
    /// The contract code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            RegistryError::Agent(ClientError::Api(f)) => f.detail.code,
            RegistryError::Agent(ClientError::Unreachable { .. } | ClientError::Refused { .. }) => {
                ErrorCode::AgentUnavailable
            }
            RegistryError::Agent(ClientError::Protocol(_)) => ErrorCode::Internal,
            RegistryError::AuthRequired { .. } => ErrorCode::RegistryAuthRequired,
            RegistryError::Forbidden { .. } => ErrorCode::RegistryForbidden,
            RegistryError::Unavailable { .. } => ErrorCode::RegistryUnavailable,
            RegistryError::NotFound { .. } => ErrorCode::UnknownRegistry,
        }
    }
}

/// One page of a server list.
#[derive(Debug, Clone)]
pub struct Page {
    /// The entries (`{"server": {...}, "_meta": {...}}`), as the registry sent them.
    pub servers: Vec<Value>,
    /// The cursor of the next page.
    pub next_cursor: Option<String>,
    /// The API version that answered (`v0.1` or `v0`).
    pub api: &'static str,
}

/// Reads MCP registries with the agent's tokens.
#[derive(Clone)]
pub struct RegistryClient {
    agent: AgentClient,
    http: crate::http::Clients,
    login: Option<Arc<dyn Login>>,
}

/// One answer of a registry, after the redirects.
struct Fetched {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl resource::Answer for Fetched {
    fn status(&self) -> u16 {
        self.status.as_u16()
    }
    fn challenges(&self) -> Vec<String> {
        resource::challenges(&self.headers)
    }
}

impl RegistryClient {
    /// A client that asks `agent` for tokens.
    pub fn new(agent: AgentClient) -> Self {
        // Redirects are followed by hand, origin-aware.
        let http = crate::http::Clients::registry();
        RegistryClient {
            agent,
            http,
            login: None,
        }
    }

    /// Runs `login` where the agent says a login would help (interactive callers).
    pub fn with_login(mut self, login: Arc<dyn Login>) -> Self {
        self.login = Some(login);
        self
    }

    /// The agent this client asks.
    pub fn agent(&self) -> &AgentClient {
        &self.agent
    }

    /// GETs `url` with the registry's token; answers the final status and JSON body.
    pub async fn get_json(
        &self,
        reg: &RegistryStatus,
        url: Url,
    ) -> Result<(StatusCode, Value), RegistryError> {
        let mut auth = ResourceAuth::new(self.agent.clone(), &reg.name, WithoutLogin::Fail);
        if let Some(l) = &self.login {
            auth = auth.with_login(l.clone());
        }
        let Fetched { status, body, .. } = auth
            .send("GET", url.as_str(), |credential| {
                self.send(reg, url.clone(), credential)
            })
            .await
            .map_err(|e| match e {
                AuthError::Agent(c) => RegistryError::Agent(c),
                AuthError::LoginNeeded { resource, message } => RegistryError::AuthRequired {
                    registry: resource,
                    message,
                },
                // A 401 no token or login would cure is still about auth (a static token).
                AuthError::Refused {
                    resource,
                    status: 401,
                    message,
                } => RegistryError::AuthRequired {
                    registry: resource,
                    message,
                },
                AuthError::Refused {
                    resource, message, ..
                } => RegistryError::Forbidden {
                    registry: resource,
                    message,
                },
                AuthError::Send(e) => e,
            })?;
        let value = if status.is_success() || status == StatusCode::NOT_FOUND {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        } else {
            return Err(RegistryError::Unavailable {
                registry: reg.name.clone(),
                message: format!("HTTP {} from {}", status.as_u16(), url_without_query(&url)),
            });
        };
        Ok((status, value))
    }

    /// One page of `GET /v0.1/servers` (falling back to `/v0/servers`).
    pub async fn list_page(
        &self,
        reg: &RegistryStatus,
        search: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page, RegistryError> {
        for api in ["v0.1", "v0"] {
            let mut url = base(reg)?
                .join(&format!("{api}/servers"))
                .map_err(|e| bad_url(reg, e))?;
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = search {
                    q.append_pair("search", s);
                }
                if let Some(l) = limit {
                    q.append_pair("limit", &l.to_string());
                }
                if let Some(c) = cursor {
                    q.append_pair("cursor", c);
                }
            }
            let (status, body) = self.get_json(reg, url).await?;
            if status == StatusCode::NOT_FOUND {
                continue; // a registry without this API version
            }
            let servers =
                body["servers"]
                    .as_array()
                    .cloned()
                    .ok_or_else(|| RegistryError::Unavailable {
                        registry: reg.name.clone(),
                        message: format!("its {api}/servers answer has no \"servers\" list"),
                    })?;
            let next_cursor = body["metadata"]["nextCursor"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            return Ok(Page {
                servers,
                next_cursor,
                api,
            });
        }
        Err(RegistryError::NotFound {
            registry: reg.name.clone(),
            what: "MCP registry API (neither /v0.1/servers nor /v0/servers)".into(),
        })
    }

    /// Every server, following `metadata.nextCursor` through all pages.
    pub async fn list_all(
        &self,
        reg: &RegistryStatus,
        search: Option<&str>,
    ) -> Result<Vec<Value>, RegistryError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            // The registry's own page size: every page is followed anyway.
            let page = self.list_page(reg, search, None, cursor.as_deref()).await?;
            all.extend(page.servers);
            if all.len() > MAX_SERVERS {
                return Err(RegistryError::Unavailable {
                    registry: reg.name.clone(),
                    message: format!("it lists more than {MAX_SERVERS} servers; use --search or regent serve's limit"),
                });
            }
            match page.next_cursor {
                Some(next) if seen.insert(next.clone()) => cursor = Some(next),
                Some(_) => {
                    return Err(RegistryError::Unavailable {
                        registry: reg.name.clone(),
                        message: "its cursors go round in a circle".into(),
                    })
                }
                None => return Ok(all),
            }
        }
        Err(RegistryError::Unavailable {
            registry: reg.name.clone(),
            message: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// One server's latest version.
    pub async fn server(&self, reg: &RegistryStatus, name: &str) -> Result<Value, RegistryError> {
        let enc: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        for path in [
            format!("v0.1/servers/{enc}/versions/latest"),
            format!("v0/servers/{enc}"),
        ] {
            let url = base(reg)?.join(&path).map_err(|e| bad_url(reg, e))?;
            let (status, body) = self.get_json(reg, url).await?;
            if status.is_success() {
                return Ok(body);
            }
        }
        Err(RegistryError::NotFound {
            registry: reg.name.clone(),
            what: format!("server named {name}"),
        })
    }

    /// Sends a GET, following redirects by hand: `Authorization` only to the
    /// registry's origin. A refusal from another origin, which never saw the
    /// token, is not the token's fault: it is not reported as a refusal.
    async fn send(
        &self,
        reg: &RegistryStatus,
        mut url: Url,
        credential: Option<resource::Credential>,
    ) -> Result<Fetched, RegistryError> {
        let origin = base(reg)?.origin();
        let first = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self
                .http
                .for_url(&url)
                .get(url.clone())
                .header("accept", "application/json");
            // Only to the registry's origin; a DPoP proof is for the URL it
            // names, so a bound token goes only there.
            if let Some(c) = credential
                .as_ref()
                .filter(|c| url.origin() == origin && (c.proof().is_none() || url == first))
            {
                req = c.apply(req);
            }
            let again = req.try_clone();
            let resp = match req.send().await {
                Ok(r) => Ok(r),
                // A pooled connection the registry had just closed: a GET is safe to
                // send once more, on a fresh connection.
                Err(e) if !e.is_connect() && !e.is_timeout() && again.is_some() => {
                    again.expect("checked").send().await
                }
                Err(e) => Err(e),
            }
            .map_err(|e| RegistryError::Unavailable {
                registry: reg.name.clone(),
                message: format!(
                    "cannot reach {}: {}",
                    url_without_query(&url),
                    crate::http::why(&e, &url)
                ),
            })?;
            let status = resp.status();
            if status.is_redirection() {
                let next = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                    .ok_or_else(|| RegistryError::Unavailable {
                        registry: reg.name.clone(),
                        message: "a redirect without a usable Location".into(),
                    })?;
                check_redirect(reg, &next)?;
                url = next;
                continue;
            }
            let headers = resp.headers().clone();
            let body = read_limited(resp)
                .await
                .map_err(|m| RegistryError::Unavailable {
                    registry: reg.name.clone(),
                    message: m,
                })?;
            if url.origin() != origin && matches!(status.as_u16(), 401 | 403) {
                return Err(RegistryError::Unavailable {
                    registry: reg.name.clone(),
                    message: format!(
                        "HTTP {} from a server it redirected to (the token is sent to the registry's own origin only)",
                        status.as_u16()
                    ),
                });
            }
            return Ok(Fetched {
                status,
                headers,
                body,
            });
        }
        Err(RegistryError::Unavailable {
            registry: reg.name.clone(),
            message: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }
}

/// Where a registry may redirect to: http(s) only, and never a link-local or
/// unspecified address (a cloud metadata service, 0.0.0.0: this machine).
fn check_redirect(reg: &RegistryStatus, to: &Url) -> Result<(), RegistryError> {
    let ip = match to.host() {
        Some(url::Host::Ipv4(a)) => Some(std::net::IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => Some(std::net::IpAddr::V6(a)),
        _ => None,
    };
    let bad =
        !matches!(to.scheme(), "https" | "http") || ip.is_some_and(regent_proto::net::forbidden);
    if bad {
        return Err(RegistryError::Unavailable {
            registry: reg.name.clone(),
            message: format!(
                "refusing its redirect to {}",
                crate::text::printable(&url_without_query(to))
            ),
        });
    }
    Ok(())
}

/// The registry's base URL, with a trailing slash so `join` appends.
fn base(reg: &RegistryStatus) -> Result<Url, RegistryError> {
    let s = if reg.url.ends_with('/') {
        reg.url.clone()
    } else {
        format!("{}/", reg.url)
    };
    Url::parse(&s).map_err(|e| bad_url(reg, e))
}

fn url_without_query(u: &Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.to_string()
}

fn bad_url(reg: &RegistryStatus, e: url::ParseError) -> RegistryError {
    RegistryError::Unavailable {
        registry: reg.name.clone(),
        message: format!("bad registry URL {}: {e}", reg.url),
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!(
                "an answer larger than {} MiB",
                MAX_BODY / 1024 / 1024
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
