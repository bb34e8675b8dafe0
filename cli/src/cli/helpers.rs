//! regent as the credential helper of other tools, in each tool's own
//! protocol: Claude Code's `headersHelper` (`regent headers`) and git's
//! credential helpers (`regent git-credential`). Each finds the resource
//! from what the tool says (a name, or a URL the agent maps to the resource
//! covering it), never opens a browser, and prints nothing secret on stderr.

use super::{output, Failure, Result};
use regent_client::AgentClient;
use regent_proto::{ErrorCode, TokenRequest};
use std::io::BufRead;

/// The token of `name` and its expiry, or why there is none, in words that
/// name the login to run (never a browser).
async fn bearer_until(
    agent: &AgentClient,
    name: &str,
) -> std::result::Result<(String, Option<time::OffsetDateTime>), Failure> {
    let t = agent
        .token(&TokenRequest {
            registry: Some(name.to_string()),
            min_valid_secs: None,
            dpop: None,
        })
        .await?;
    if t.token_type.eq_ignore_ascii_case("dpop") {
        return Err(Failure::Other(format!(
            "{name}'s tokens are bound to a key only the agent holds (DPoP), and this tool cannot \
             send a proof with each request"
        )));
    }
    Ok((t.access_token.into_inner(), t.expires_at))
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `regent kube-credential [NAME]`: an ExecCredential on stdout.
pub async fn kube_credential(agent: &AgentClient, name: Option<String>) -> Result {
    let info: Option<serde_json::Value> = std::env::var("KUBERNETES_EXEC_INFO")
        .ok()
        .and_then(|v| serde_json::from_str(&v).ok());
    let api_version = info
        .as_ref()
        .and_then(|i| i["apiVersion"].as_str())
        .unwrap_or("client.authentication.k8s.io/v1")
        .to_string();
    let name = match name {
        Some(n) => n,
        None => {
            let server = info
                .as_ref()
                .and_then(|i| i["spec"]["cluster"]["server"].as_str())
                .ok_or_else(|| {
                    Failure::Usage(
                        "name the resource (regent kube-credential NAME), or set \
                         provideClusterInfo: true in the kubeconfig's exec entry"
                            .into(),
                    )
                })?;
            agent.resource_for_url(server).await?.name
        }
    };
    let (token, expires) = bearer_until(agent, &name).await?;
    let mut status = serde_json::json!({ "token": token });
    if let Some(e) = expires {
        status["expirationTimestamp"] = rfc3339(e).into();
    }
    println!(
        "{}",
        serde_json::json!({
            "apiVersion": api_version,
            "kind": "ExecCredential",
            "status": status,
        })
    );
    Ok(())
}

/// `regent credential-helper get`: `{"uri"}` on stdin, headers on stdout.
pub async fn credential_helper(agent: &AgentClient) -> Result {
    let mut input = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut input)
        .map_err(|e| Failure::Other(format!("cannot read the request on stdin: {e}")))?;
    let req: serde_json::Value = serde_json::from_str(&input)
        .map_err(|e| Failure::Usage(format!("the request on stdin is not JSON: {e}")))?;
    let uri = req["uri"]
        .as_str()
        .ok_or_else(|| Failure::Usage("the request names no \"uri\"".into()))?;
    let res = match agent.resource_for_url(uri).await {
        Ok(r) => r,
        // Not ours: no headers, the tool goes on without.
        Err(e) if e.code() == Some(ErrorCode::UnknownRegistry) => {
            println!("{{\"headers\":{{}}}}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let (token, expires) = bearer_until(agent, &res.name).await?;
    let mut out = serde_json::json!({
        "headers": { "Authorization": [format!("Bearer {token}")] },
    });
    if let Some(e) = expires {
        out["expires"] = rfc3339(e).into();
    }
    println!("{out}");
    Ok(())
}

/// The token of `name`, or why there is none (never a browser).
async fn bearer(agent: &AgentClient, name: &str) -> std::result::Result<String, Failure> {
    match bearer_until(agent, name).await {
        Err(Failure::Other(m)) => Err(Failure::Other(format!(
            "{m}; reach {name} through regent mcp proxy {name}"
        ))),
        other => other.map(|(t, _)| t),
    }
}

/// `regent headers [NAME]`: `{"Authorization": "Bearer ..."}` on stdout.
pub async fn headers(agent: &AgentClient, name: Option<String>) -> Result {
    let name = match name {
        Some(n) => n,
        None => {
            let url = std::env::var("CLAUDE_CODE_MCP_SERVER_URL")
                .ok()
                .filter(|u| !u.is_empty());
            let named = std::env::var("CLAUDE_CODE_MCP_SERVER_NAME")
                .ok()
                .filter(|n| !n.is_empty());
            match (url, named) {
                (Some(u), named) => match agent.resource_for_url(&u).await {
                    Ok(r) => r.name,
                    Err(e) if e.code() == Some(ErrorCode::UnknownRegistry) && named.is_some() => {
                        named.expect("checked")
                    }
                    Err(e) => return Err(e.into()),
                },
                (None, Some(n)) => n,
                (None, None) => return Err(Failure::Usage(
                    "name the MCP server (regent headers NAME), or run from Claude Code, which \
                         sets CLAUDE_CODE_MCP_SERVER_URL"
                        .into(),
                )),
            }
        }
    };
    let token = bearer(agent, &name).await?;
    println!(
        "{}",
        serde_json::json!({ "Authorization": format!("Bearer {token}") })
    );
    Ok(())
}

/// What git said on stdin: `key=value` lines up to a blank line or the end.
fn read_git_input() -> Vec<(String, String)> {
    std::io::stdin()
        .lock()
        .lines()
        .map_while(|l| l.ok())
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// `regent git-credential get|store|erase`.
pub async fn git_credential(agent: &AgentClient, operation: &str) -> Result {
    let input = read_git_input();
    let get = |k: &str| {
        input
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let (Some(protocol), Some(host)) = (get("protocol"), get("host")) else {
        return Ok(());
    };
    let url = format!("{protocol}://{host}/{}", get("path").unwrap_or_default());
    let res = match agent.resource_for_url(&url).await {
        Ok(r) => r,
        // Not ours: git asks its other helpers.
        Err(e) if e.code() == Some(ErrorCode::UnknownRegistry) => return Ok(()),
        Err(e) => {
            eprintln!("regent: {}", output::safe(&e.to_string()));
            return Ok(());
        }
    };
    match operation {
        "get" => match bearer(agent, &res.name).await {
            Ok(token) => {
                let authtype = input
                    .iter()
                    .any(|(k, v)| k == "capability[]" && v == "authtype");
                if authtype {
                    println!("capability[]=authtype\nauthtype=Bearer\ncredential={token}\nephemeral=true");
                } else {
                    println!("username=x-access-token\npassword={token}");
                }
                Ok(())
            }
            // git goes on without us; the reason (and the login to run) on stderr.
            Err(Failure::Client(e)) => {
                eprintln!("regent: {}", output::safe(&e.to_string()));
                Ok(())
            }
            Err(Failure::Other(m)) => {
                eprintln!("regent: {}", output::safe(&m));
                Ok(())
            }
            Err(other) => Err(other),
        },
        // git saw the token refused: the agent drops it, and the next `get`
        // has a new one (or says a login is needed).
        "erase" => {
            let presented = get("credential").or(get("password"));
            if let Some(t) = presented {
                let _ = agent
                    .invalidate(&regent_proto::InvalidateRequest {
                        registry: Some(res.name.clone()),
                        access_token: t.to_string().into(),
                    })
                    .await;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
