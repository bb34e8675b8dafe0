//! `regent mcp add|list|remove|proxy` and `regent idp add|list|remove`.

use super::args::{IdpCommand, McpAddArgs, McpCommand};
use super::{output, proxy, Failure, Result};
use regent_client::{AgentClient, RegistryClient};
use regent_proto::{McpAuth, PutIdp, PutMcp};

pub async fn run(agent: &AgentClient, cmd: McpCommand) -> Result {
    match cmd {
        McpCommand::Add(args) => add(agent, *args).await,
        McpCommand::List { json } => {
            let servers = agent.mcp_servers().await?;
            if json {
                output::print_json(&serde_json::json!({ "servers": servers }));
            } else if servers.is_empty() {
                println!("No MCP servers. Add one with: regent mcp add NAME URL");
            } else {
                output::print_resources("NAME", &servers);
            }
            Ok(())
        }
        McpCommand::Remove { name } => {
            agent.remove_mcp(&name).await?;
            println!("Removed MCP server {name}.");
            Ok(())
        }
        McpCommand::Proxy {
            target,
            device,
            no_login,
            share,
        } => proxy::run(agent, &target, device, no_login, share.choice()).await,
    }
}

async fn add(agent: &AgentClient, a: McpAddArgs) -> Result {
    let url = match (&a.url, &a.from) {
        (Some(u), _) => u.clone(),
        (None, Some(from)) => from_registry(agent, &from[0], &from[1]).await?,
        (None, None) => {
            return Err(Failure::Usage(
                "give the server's URL, or --from REGISTRY SERVER".into(),
            ))
        }
    };
    let secret = a
        .client_secret_file
        .as_deref()
        .map(|p| super::secret::read("client secret", p))
        .transpose()?;
    let scopes: Vec<String> = a.scopes.into_iter().filter(|s| !s.is_empty()).collect();
    let auth = if a.no_auth {
        Some(McpAuth::None)
    } else if let Some(path) = a.token_file {
        let token_file = std::path::absolute(&path)
            .map_err(|e| Failure::Other(format!("bad --token-file {}: {e}", path.display())))?;
        Some(McpAuth::Bearer { token_file })
    } else if let Some(path) = a.workload_token_file {
        let token_file = std::path::absolute(&path).map_err(|e| {
            Failure::Other(format!("bad --workload-token-file {}: {e}", path.display()))
        })?;
        Some(McpAuth::Workload {
            token_file,
            client_id: a.client_id.clone(),
            scopes,
        })
    } else if a.client_credentials {
        let private_key_pem = a
            .client_key_file
            .as_deref()
            .map(|p| super::secret::read("private key", p))
            .transpose()?;
        if secret.is_none() && private_key_pem.is_none() {
            return Err(Failure::Usage(
                "--client-credentials needs --client-secret-file or --client-key-file".into(),
            ));
        }
        Some(McpAuth::ClientCredentials {
            client_id: a.client_id.clone().expect("clap requires it"),
            client_secret: secret,
            private_key_pem,
            key_alg: a.client_key_alg.clone(),
            scopes,
        })
    } else if let Some(idp) = a.enterprise_idp {
        Some(McpAuth::Enterprise {
            idp,
            client_id: a.client_id.clone().expect("clap requires it"),
            client_secret: secret,
            scopes,
        })
    } else if a.client_id.is_some()
        || !scopes.is_empty()
        || a.callback_port.is_some()
        || a.assume_pkce_s256
    {
        Some(McpAuth::Oauth {
            client_id: a.client_id,
            client_secret: secret,
            scopes,
            callback_port: a.callback_port,
            assume_pkce_s256: a.assume_pkce_s256,
        })
    } else {
        None
    };
    let before = super::existing(agent, &a.name, regent_proto::ResourceKind::Mcp).await?;
    if let Some(b) = &before {
        output::may_replace("MCP server", b, &url, a.replace).map_err(Failure::Other)?;
    }
    if auth.is_none() {
        eprintln!(
            "Asking {} how it wants to be authorized…",
            output::safe(&url)
        );
    }
    let status = super::with_consent(a.share.choice(), |share_login| {
        let body = PutMcp {
            url: url.clone(),
            auth: auth.clone(),
            share_login,
            dpop: super::args::dpop_mode(a.dpop.as_deref()),
        };
        let (agent, name) = (agent.clone(), a.name.clone());
        async move { agent.put_mcp(&name, &body).await }
    })
    .await?;
    output::put_result("MCP server", before.as_ref(), &status);
    Ok(())
}

/// The streamable HTTP endpoint a registry lists for `server`.
async fn from_registry(agent: &AgentClient, registry: &str, server: &str) -> Result<String> {
    let regs = agent.registries().await?;
    let reg = regs.iter().find(|r| r.name == registry).ok_or_else(|| {
        Failure::Other(format!(
            "no registry named {registry}; see: regent registry list"
        ))
    })?;
    let entry = RegistryClient::new(agent.clone())
        .server(reg, server)
        .await?;
    let remotes = entry["server"]["remotes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let url = remotes
        .iter()
        .find(|r| r["type"] == "streamable-http")
        .and_then(|r| r["url"].as_str())
        .ok_or_else(|| {
            let kinds: Vec<String> = remotes
                .iter()
                .filter_map(|r| r["type"].as_str().map(str::to_string))
                .collect();
            Failure::Other(format!(
                "{server} in registry {registry} lists no streamable-http remote{}",
                if kinds.is_empty() {
                    " (it has no remotes: it may be a local server to run, not one to reach)"
                        .to_string()
                } else {
                    format!(" (it lists: {})", kinds.join(", "))
                }
            ))
        })?;
    Ok(url.to_string())
}

pub async fn run_idp(agent: &AgentClient, cmd: IdpCommand) -> Result {
    match cmd {
        IdpCommand::Add {
            name,
            issuer,
            client_id,
            client_secret_file,
            scopes,
            callback_port,
        } => {
            let client_secret = client_secret_file
                .as_deref()
                .map(|p| super::secret::read("client secret", p))
                .transpose()?;
            let status = agent
                .put_idp(
                    &name,
                    &PutIdp {
                        issuer,
                        client_id,
                        client_secret,
                        scopes: scopes.into_iter().filter(|s| !s.is_empty()).collect(),
                        callback_port,
                    },
                )
                .await?;
            println!("Added enterprise IdP {} ({}).", status.name, status.url);
            println!(
                "Log in with: regent login {name}   (or hand over an ID token: regent login {name} --id-token-file FILE)"
            );
            Ok(())
        }
        IdpCommand::List { json } => {
            let idps = agent.idps().await?;
            if json {
                output::print_json(&serde_json::json!({ "idps": idps }));
            } else if idps.is_empty() {
                println!("No enterprise IdPs. Add one with: regent idp add NAME --issuer URL --client-id ID");
            } else {
                output::print_resources("NAME", &idps);
            }
            Ok(())
        }
        IdpCommand::Remove { name } => {
            agent.remove_idp(&name).await?;
            println!("Removed enterprise IdP {name}.");
            Ok(())
        }
    }
}
