//! regent as the credential helper of other tools, in each tool's own
//! protocol: Claude Code's `headersHelper` (`regent headers`), git's
//! credential helpers (`regent git-credential`), kubectl's exec plugins
//! (`regent kube-credential`), Bazel's credential helpers (`regent
//! credential-helper`) and cargo's credential providers (`regent
//! --cargo-plugin`). Each finds the resource from what the tool says (a
//! name, or a URL the agent maps to the resource covering it), never opens
//! a browser, and prints nothing secret on stderr.

use super::{output, Failure, Result};
use regent_client::AgentClient;
use regent_proto::{ErrorCode, TokenRequest};
use std::io::{BufRead, Read, Write};
use std::sync::OnceLock;

/// The most a tool's request on stdin may hold.
const MAX_INPUT: u64 = 64 * 1024;

/// What the tool wrote on stdin, read once: a command run again (after the
/// agent was started for it) sees the same request, not an empty pipe. A
/// request over 64 KiB, or not UTF-8, is refused whole (never cut short:
/// a cut `path=` would name another URL).
pub(super) fn input() -> std::result::Result<&'static str, Failure> {
    static INPUT: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    INPUT
        .get_or_init(|| {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .take(MAX_INPUT + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read the request on stdin: {e}"))?;
            if bytes.len() as u64 > MAX_INPUT {
                return Err(format!(
                    "the request on stdin is over {} KiB",
                    MAX_INPUT / 1024
                ));
            }
            String::from_utf8(bytes).map_err(|_| "the request on stdin is not UTF-8".into())
        })
        .as_deref()
        .map_err(|e| Failure::Other(e.clone()))
}

/// The token of `name` and its expiry, or why there is none, in words that
/// name the login to run (never a browser).
async fn bearer_until(
    agent: &AgentClient,
    name: &str,
) -> std::result::Result<(String, Option<time::OffsetDateTime>), Failure> {
    let t = agent
        .token(&TokenRequest {
            url: None,
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

// What each protocol reads and writes, shared by the lean path (`lean.rs`)
// and the full one below: the two cannot answer differently.

/// `KUBERNETES_EXEC_INFO`, where kubectl set it.
pub(super) fn exec_info() -> Option<serde_json::Value> {
    std::env::var("KUBERNETES_EXEC_INFO")
        .ok()
        .and_then(|v| serde_json::from_str(&v).ok())
}

/// The cluster's server in `KUBERNETES_EXEC_INFO` (`provideClusterInfo`).
pub(super) fn exec_server(info: Option<&serde_json::Value>) -> Option<&str> {
    info?["spec"]["cluster"]["server"].as_str()
}

/// An ExecCredential in the apiVersion kubectl asked for (v1 by default).
pub(super) fn exec_credential(
    info: Option<&serde_json::Value>,
    token: &str,
    expires: Option<time::OffsetDateTime>,
) -> serde_json::Value {
    let api_version = info
        .and_then(|i| i["apiVersion"].as_str())
        .unwrap_or("client.authentication.k8s.io/v1");
    let mut status = serde_json::json!({ "token": token });
    if let Some(e) = expires {
        status["expirationTimestamp"] = rfc3339(e).into();
    }
    serde_json::json!({ "apiVersion": api_version, "kind": "ExecCredential", "status": status })
}

/// The URI of a Bazel credential-helper request.
pub(super) fn bazel_uri(input: &str) -> std::result::Result<String, Failure> {
    let req: serde_json::Value = serde_json::from_str(input)
        .map_err(|e| Failure::Usage(format!("the request on stdin is not JSON: {e}")))?;
    req["uri"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Failure::Usage("the request names no \"uri\"".into()))
}

/// A Bazel credential-helper answer with the token.
pub(super) fn bazel_answer(
    token: &str,
    expires: Option<time::OffsetDateTime>,
) -> serde_json::Value {
    let mut out = serde_json::json!({
        "headers": { "Authorization": [format!("Bearer {token}")] },
    });
    if let Some(e) = expires {
        out["expires"] = rfc3339(e).into();
    }
    out
}

/// Claude Code's `headersHelper` answer.
pub(super) fn headers_answer(token: &str) -> serde_json::Value {
    serde_json::json!({ "Authorization": format!("Bearer {token}") })
}

/// Claude Code's environment: the server's URL and its name, where set.
pub(super) fn claude_code_env() -> (Option<String>, Option<String>) {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    (
        var("CLAUDE_CODE_MCP_SERVER_URL"),
        var("CLAUDE_CODE_MCP_SERVER_NAME"),
    )
}

/// git's request: `key=value` lines up to a blank line or the end.
pub(super) fn git_fields(input: &str) -> Vec<(String, String)> {
    input
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The value of `key` in git's request.
pub(super) fn git_field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The URL git asks about, and whether git named only the host (without
/// `credential.useHttpPath`): then the one resource at that origin answers.
pub(super) fn git_url(fields: &[(String, String)]) -> Option<(String, bool)> {
    let protocol = git_field(fields, "protocol")?;
    let host = git_field(fields, "host")?;
    let path = git_field(fields, "path");
    Some((
        format!("{protocol}://{host}/{}", path.unwrap_or_default()),
        path.is_none(),
    ))
}

/// git's `get` answer: `authtype=Bearer` where git offers it, else the
/// token as the password.
pub(super) fn git_answer(fields: &[(String, String)], token: &str) -> String {
    let authtype = fields
        .iter()
        .any(|(k, v)| k == "capability[]" && v == "authtype");
    if authtype {
        format!("capability[]=authtype\nauthtype=Bearer\ncredential={token}\nephemeral=true")
    } else {
        format!("username=x-access-token\npassword={token}")
    }
}

/// `regent kube-credential [NAME]`: an ExecCredential on stdout.
pub async fn kube_credential(agent: &AgentClient, name: Option<String>) -> Result {
    let info = exec_info();
    let name = match name {
        Some(n) => n,
        None => {
            let server = exec_server(info.as_ref()).ok_or_else(|| {
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
    println!("{}", exec_credential(info.as_ref(), &token, expires));
    Ok(())
}

/// `regent credential-helper get`: `{"uri"}` on stdin, headers on stdout.
pub async fn credential_helper(agent: &AgentClient) -> Result {
    let uri = bazel_uri(input()?)?;
    let res = match agent.resource_for_url(&uri).await {
        Ok(r) => r,
        // Not ours: no headers, the tool goes on without.
        Err(e) if e.code() == Some(ErrorCode::UnknownRegistry) => {
            println!("{{\"headers\":{{}}}}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let (token, expires) = bearer_until(agent, &res.name).await?;
    println!("{}", bazel_answer(&token, expires));
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
    let name =
        match name {
            Some(n) => n,
            None => match claude_code_env() {
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
            },
        };
    let token = bearer(agent, &name).await?;
    println!("{}", headers_answer(&token));
    Ok(())
}

/// `regent git-credential get|store|erase`.
pub async fn git_credential(agent: &AgentClient, operation: &str) -> Result {
    let input = match input() {
        Ok(text) => git_fields(text),
        // Not a request regent can read: not ours, git asks its other helpers.
        Err(e) => {
            eprintln!("regent: {}", e.message());
            return Ok(());
        }
    };
    let get = |k: &str| git_field(&input, k);
    let Some((url, host_only)) = git_url(&input) else {
        return Ok(());
    };
    let found = if host_only {
        agent.resource_at_origin(&url).await
    } else {
        agent.resource_for_url(&url).await
    };
    let res = match found {
        Ok(r) => r,
        // Not ours: git asks its other helpers.
        Err(e) if e.code() == Some(ErrorCode::UnknownRegistry) => return Ok(()),
        Err(e) => {
            // Several resources on the host, and git named no path: it names
            // one when told to.
            let hint = if host_only && e.code() == Some(ErrorCode::InvalidRequest) {
                " (git named no path: set git config credential.useHttpPath true)"
            } else {
                ""
            };
            eprintln!("regent: {}{hint}", output::safe(&e.to_string()));
            return Ok(());
        }
    };
    match operation {
        "get" => match bearer(agent, &res.name).await {
            Ok(token) => {
                println!("{}", git_answer(&input, &token));
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

/// cargo's credential-provider protocol (`regent --cargo-plugin`, cargo
/// 1.74+): a hello, then one JSON request per line until cargo closes
/// stdin, each answered on one line. A `get` is answered with `Bearer
/// TOKEN` (cargo sends it as the whole `Authorization` value) of the
/// resource covering the registry's index URL; a URL no resource covers is
/// `url-not-supported`, so cargo asks its next provider.
pub async fn cargo_credential(agent: &AgentClient) -> Result {
    // Said once, and the request kept: a run after the agent was started for
    // it (autostart runs the command again) goes on where this one stopped.
    static HELLO: std::sync::Once = std::sync::Once::new();
    static FIRST: OnceLock<Option<String>> = OnceLock::new();
    let write = |v: serde_json::Value| -> Result {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{v}")
            .and_then(|()| out.flush())
            .map_err(|e| Failure::Other(format!("cannot answer cargo: {e}")))
    };
    let mut hello = Ok(());
    HELLO.call_once(|| hello = write(serde_json::json!({ "v": [1] })));
    hello?;
    let read_line = || -> Option<String> {
        let mut line = String::new();
        match std::io::stdin().lock().take(MAX_INPUT).read_line(&mut line) {
            Ok(n) if n > 0 => Some(line),
            _ => None,
        }
    };
    let mut next = FIRST.get_or_init(read_line).clone();
    while let Some(line) = next {
        let answer = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(req) => cargo_answer(agent, &req).await?,
            Err(e) => cargo_error(format!("regent cannot read cargo's request: {e}")),
        };
        write(answer)?;
        next = read_line();
    }
    Ok(())
}

/// The answer to cargo's pending request when regent could not reach an
/// agent: the reason, in the protocol (cargo shows it).
pub fn cargo_failed(f: &Failure) -> Result {
    println!("{}", cargo_error(f.message()));
    Ok(())
}

fn cargo_error(message: String) -> serde_json::Value {
    serde_json::json!({ "Err": { "kind": "other", "message": message } })
}

/// The answer to one cargo request. An agent that is not there is the
/// caller's failure (it is started, and the request asked again).
async fn cargo_answer(
    agent: &AgentClient,
    req: &serde_json::Value,
) -> std::result::Result<serde_json::Value, Failure> {
    use serde_json::json;
    if req["kind"] != "get" {
        // login and logout are regent's own commands.
        return Ok(json!({ "Err": { "kind": "operation-not-supported" } }));
    }
    let Some(index) = req["registry"]["index-url"].as_str() else {
        return Ok(cargo_error("cargo's request names no index-url".into()));
    };
    let url = index.strip_prefix("sparse+").unwrap_or(index);
    let res = match agent.resource_for_url(url).await {
        Ok(r) => r,
        Err(e) if e.code() == Some(ErrorCode::UnknownRegistry) => {
            return Ok(json!({ "Err": { "kind": "url-not-supported" } }))
        }
        Err(e @ regent_client::ClientError::Unreachable { .. }) => return Err(e.into()),
        Err(e) => return Ok(cargo_error(output::safe(&e.to_string()))),
    };
    match bearer_until(agent, &res.name).await {
        Ok((token, expires)) => {
            let mut ok = json!({
                "kind": "get",
                "token": format!("Bearer {token}"),
                "cache": "session",
                "operation_independent": true,
            });
            if let Some(e) = expires {
                ok["cache"] = "expires".into();
                ok["expiration"] = e.unix_timestamp().into();
            }
            Ok(json!({ "Ok": ok }))
        }
        Err(Failure::Client(e @ regent_client::ClientError::Unreachable { .. })) => Err(e.into()),
        Err(Failure::Client(e)) => Ok(cargo_error(output::safe(&e.to_string()))),
        Err(other) => Ok(cargo_error(output::safe(&other.message()))),
    }
}
