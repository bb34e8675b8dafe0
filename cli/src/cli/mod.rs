//! The commands of the `regent` CLI.

mod agent;
pub mod args;
mod autostart;
mod browser;
pub mod complete;
pub mod doctor;
mod helpers;
pub mod lean;
mod login;
mod man;
mod mcp;
pub mod output;
mod proxy;
mod secret;
mod serve;
mod service;
mod ssh;
mod stdio;

use args::{
    ApiCommand, AuthArgs, Cli, Command, ConfigCommand, ForwardCommand, RegistryCommand,
    ServiceCommand, TokenArgs,
};
use regent_client::{AgentClient, ClientError, RegistryClient, RegistryError};
use regent_proto::{
    AuthConfig, BearerConfig, ErrorCode, LogoutRequest, OAuthConfig, PutRegistry, RegistryStatus,
    ResourceKind, Revocation, TokenRequest,
};

/// Why a command failed, and the exit code it gets (contract).
pub enum Failure {
    /// The agent answered, or the CLI found, an error.
    Client(ClientError),
    /// Anything else (exit 1).
    Other(String),
    /// A command line that cannot work (exit 2).
    Usage(String),
    /// Reading a registry failed.
    Registry(RegistryError),
    /// A program regent ran (ssh) ended with this status, and said why itself.
    Exit(i32),
    /// Stopped by a signal (exit 128 + its number: 130 for Ctrl-C).
    Signal {
        /// What was stopped, and how.
        message: String,
        /// The signal.
        signal: i32,
    },
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Agent(c) => Failure::Client(c),
            other => Failure::Registry(other),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

impl Failure {
    /// 1 error, 3 agent unreachable, 4 login required.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Client(ClientError::Unreachable { .. } | ClientError::Refused { .. }) => 3,
            Failure::Client(e) if e.code() == Some(ErrorCode::RegistryAuthRequired) => 4,
            Failure::Usage(_) => 2,
            Failure::Registry(e) if e.code() == ErrorCode::RegistryAuthRequired => 4,
            Failure::Signal { signal, .. } => 128 + signal,
            Failure::Exit(code) => *code,
            _ => 1,
        }
    }

    /// One readable line.
    pub fn message(&self) -> String {
        match self {
            Failure::Client(ClientError::Unreachable { socket, .. })
                if regent_client::locate::is_forwarded(socket) =>
            {
                format!(
                    "the agent forwarded to this machine ({}) does not answer: the regent ssh session \
                     that forwarded it has ended, or the agent on that machine is not running; \
                     reconnect with regent ssh",
                    socket.display()
                )
            }
            Failure::Client(e @ ClientError::Unreachable { .. }) => {
                format!("{e} (is regentd running? start it with `regentd &`)")
            }
            Failure::Client(e) => e.to_string(),
            Failure::Other(m) => m.clone(),
            Failure::Usage(m) => format!("{m} (see --help)"),
            Failure::Registry(e) => e.to_string(),
            Failure::Signal { message, .. } => message.clone(),
            Failure::Exit(_) => String::new(),
        }
    }
}

type Result<T = ()> = std::result::Result<T, Failure>;

/// Runs one command.
pub async fn run(cli: Cli) -> Result {
    // Commands that need no agent.
    match &cli.command {
        Command::Service(ServiceCommand::Install { enable }) => return service::install(*enable),
        Command::Service(ServiceCommand::Uninstall) => return service::uninstall(),
        Command::Completions { shell } => {
            return complete::register(*shell)
                .map_err(|e| Failure::Other(format!("cannot write the completion script: {e}")));
        }
        Command::Man { dir, command } => return man(dir.as_deref(), command),
        Command::Forward(ForwardCommand::Relay { forward }) => {
            return regent_client::relay::run(forward)
                .await
                .map_err(|e| Failure::Other(e.to_string()))
        }
        _ => {}
    }
    let agent = AgentClient::new(regent_client::locate::socket(cli.socket.as_deref()));
    // About the agent itself: never autostarted on the way (restart starts one itself).
    if let Command::Agent(cmd) = cli.command {
        return agent::run(&agent, cmd).await;
    }
    // The doctor looks at the agent as it is: a missing one is a finding.
    if let Command::Doctor { name, json } = cli.command {
        return doctor::run(&agent, name, json).await;
    }
    let cargo = matches!(cli.command, Command::CargoCredential);
    let result = match run_with_agent(&agent, cli.clone()).await {
        // No agent at all: start one (or wait for the one another regent is
        // starting right now) and try once more. The first request never reached
        // an agent, so nothing was done twice.
        Err(Failure::Client(ClientError::Unreachable { .. }))
            if autostart::enabled()
                // A forwarded agent that is gone is said so; no local one replaces it.
                && !regent_client::locate::is_forwarded(agent.socket())
                && (autostart::nobody_listens(agent.socket())
                    || regent_client::locate::answers(agent.socket())) =>
        {
            match autostart::start(&agent).await {
                Ok(()) => run_with_agent(&agent, cli).await,
                Err(e) => Err(e),
            }
        }
        other => other,
    };
    match result {
        // cargo waits for an answer line, in its protocol, and exit 0.
        Err(f) if cargo => helpers::cargo_failed(&f),
        other => other,
    }
}

async fn run_with_agent(agent: &AgentClient, cli: Cli) -> Result {
    let agent = agent.clone();
    match cli.command {
        Command::Token(args) => token(&agent, args).await,
        Command::Headers { name } => helpers::headers(&agent, name).await,
        Command::GitCredential { operation } => helpers::git_credential(&agent, &operation).await,
        Command::KubeCredential { name } => helpers::kube_credential(&agent, name).await,
        Command::CredentialHelper { .. } => helpers::credential_helper(&agent).await,
        Command::CargoCredential => helpers::cargo_credential(&agent).await,
        Command::Registry(RegistryCommand::Add(a)) => {
            add_server(&agent, ResourceKind::Registry, a).await
        }
        Command::Api(ApiCommand::Add(a)) => add_server(&agent, ResourceKind::Api, a).await,
        Command::Api(ApiCommand::List { json }) => {
            let apis = agent.apis().await?;
            if json {
                output::print_json(&serde_json::json!({ "apis": apis }));
            } else if apis.is_empty() {
                println!("No APIs. Add one with: regent api add NAME URL");
            } else {
                output::print_resources("NAME", &apis);
            }
            Ok(())
        }
        Command::Api(ApiCommand::Remove { name }) => {
            agent.remove_api(&name).await?;
            println!("Removed API {name}.");
            Ok(())
        }
        Command::Mcp(cmd) => mcp::run(&agent, cmd).await,
        Command::Forward(cmd) => ssh::forward(&agent, cmd).await,
        Command::Ssh { args } => ssh::ssh(&agent, args).await,
        Command::Idp(cmd) => mcp::run_idp(&agent, cmd).await,
        Command::Registry(RegistryCommand::Remove { name }) => {
            let sharing = pick_registry(&agent, Some(name.clone()))
                .await?
                .auth
                .map(|a| a.shared_with)
                .unwrap_or_default();
            agent.remove_registry(&name).await?;
            if sharing.is_empty() {
                println!("Removed registry {name} and deleted its stored tokens.");
            } else {
                println!(
                    "Removed registry {name}. Its login stays: {} still use{} it.",
                    sharing.join(", "),
                    if sharing.len() == 1 { "s" } else { "" }
                );
            }
            Ok(())
        }
        Command::Registry(RegistryCommand::List { json }) => {
            let regs = agent.registries().await?;
            if json {
                output::print_json(&serde_json::json!({ "registries": regs }));
            } else {
                output::print_registries(&regs);
            }
            Ok(())
        }
        Command::Config(ConfigCommand::SetRegistryAuth {
            registry,
            api,
            auth,
            share,
        }) => {
            let (kind, named) = auth_target(registry, api);
            let reg = agent.resource(named.as_deref(), Some(kind)).await?;
            let name = reg.name.clone();
            let client_secret = auth
                .client_secret_file
                .as_deref()
                .map(|p| secret::read("client secret", p))
                .transpose()?;
            let dpop = args::dpop_mode(auth.dpop.as_deref());
            let auth = auth_config(auth)?.ok_or_else(|| {
                Failure::Usage("give --issuer and --client-id, or --token-file".into())
            })?;
            // One PUT of the whole registry: it carries a secret and the user's word on sharing.
            let status = with_consent(share.choice(), |share_login| {
                let body = PutRegistry {
                    url: reg.url.clone(),
                    auth: Some(auth.clone()),
                    discover: false,
                    client_secret: client_secret.clone(),
                    share_login,
                    dpop,
                };
                let (agent, name) = (agent.clone(), name.clone());
                async move { put_server(&agent, kind, &name, &body).await }
            })
            .await?;
            println!("Auth of {} {name} set.", kind.noun());
            if matches!(auth, AuthConfig::Oauth(_)) {
                output::login_hint(&status);
            }
            Ok(())
        }
        Command::Config(ConfigCommand::UnsetRegistryAuth { registry, api }) => {
            let (kind, named) = auth_target(registry, api);
            let name = agent.resource(named.as_deref(), Some(kind)).await?.name;
            agent.unset_auth(&name).await?;
            println!(
                "Auth of {} {name} removed; its stored tokens are deleted.",
                kind.noun()
            );
            Ok(())
        }
        Command::Login(args) => login::run(&agent, args).await,
        Command::Logout { name, all } => logout(&agent, name, all).await,
        Command::Servers { name, search, json } => {
            let reg = pick_registry(&agent, name).await?;
            // On a terminal, a login the registry asks for (a step-up) runs here.
            let interactive = {
                use std::io::IsTerminal;
                std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
            };
            let logins = std::sync::Arc::new(login::Interactive::new(
                agent.clone(),
                regent_proto::LoginFlow::Browser,
                interactive,
            ));
            let listed = RegistryClient::new(agent.clone())
                .with_login(logins.clone())
                .list_all(&reg, search.as_deref())
                .await;
            logins.cancel_pending().await;
            logins.reap();
            let servers = listed?;
            if json {
                output::print_json(&serde_json::json!({ "servers": servers }));
            } else {
                output::print_servers(&servers);
            }
            Ok(())
        }
        Command::Serve {
            listen,
            allow_remote,
        } => serve::run(agent, listen, allow_remote).await,
        Command::Service(_)
        | Command::Doctor { .. }
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Agent(_) => {
            unreachable!("handled without an agent")
        }
        Command::Status { json } => {
            let health = agent.health().await?;
            let regs = agent.registries().await?;
            let servers = agent.mcp_servers().await?;
            let idps = agent.idps().await?;
            // An agent older than APIs has none to show.
            let apis = agent.apis().await.unwrap_or_default();
            if json {
                output::print_json(&serde_json::json!({
                    "agent": health,
                    "socket": agent.socket(),
                    "registries": regs,
                    "mcp_servers": servers,
                    "apis": apis,
                    "idps": idps,
                    "network": health.network,
                }));
            } else {
                println!(
                    "agent: regentd {} (pid {}{}), socket {}",
                    health.version,
                    health.pid,
                    if health.systemd { ", systemd" } else { "" },
                    agent.socket().display()
                );
                println!("store: {}", output::store_line(&health));
                if let Some(n) = &health.network {
                    for line in output::network_lines(n) {
                        println!("{line}");
                    }
                }
                if let Some(names) = output::waiting_logins(&health) {
                    println!("logins waiting for you: {names}");
                }
                output::print_registries(&regs);
                if !servers.is_empty() {
                    println!();
                    output::print_resources("MCP SERVER", &servers);
                }
                if !apis.is_empty() {
                    println!();
                    output::print_resources("API", &apis);
                }
                if !idps.is_empty() {
                    println!();
                    output::print_resources("IDP", &idps);
                }
            }
            Ok(())
        }
    }
}

/// `regent man`: one page on stdout, or every page into `dir` (regentd's too,
/// from the regentd installed next to regent).
fn man(dir: Option<&std::path::Path>, words: &[String]) -> Result {
    let mut cmd = <Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = dir else {
        let page = man::find(&cmd, words)
            .ok_or_else(|| Failure::Usage(format!("no command `regent {}`", words.join(" "))))?;
        return man::render(page, &mut std::io::stdout())
            .map_err(|e| Failure::Other(format!("cannot write the man page: {e}")));
    };
    let fail =
        |e: std::io::Error| Failure::Other(format!("cannot write into {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let pages = man::write_all(&cmd, dir).map_err(fail)?;
    println!("Wrote {} pages into {}.", pages.len(), dir.display());
    let regentd = autostart::regentd_path();
    match std::process::Command::new(&regentd).arg("--man").output() {
        Ok(out) if out.status.success() => {
            std::fs::write(dir.join("regentd.1"), out.stdout).map_err(fail)?;
            println!("Wrote regentd.1 (from {}).", regentd.display());
        }
        _ => eprintln!(
            "regent: no regentd.1: cannot run {} --man",
            regentd.display()
        ),
    }
    Ok(())
}

async fn token(agent: &AgentClient, args: TokenArgs) -> Result {
    let t = agent
        .token(&TokenRequest {
            url: None,
            registry: args.name,
            min_valid_secs: Some(args.min_valid),
            dpop: args.dpop.as_ref().map(|d| regent_proto::DpopRequest {
                htm: d[0].to_ascii_uppercase(),
                htu: d[1].clone(),
                nonce: None,
            }),
        })
        .await?;
    if args.dpop.is_some() && !args.json {
        return output::print_headers(&t)
            .map_err(|e| Failure::Other(format!("cannot write the headers: {e}")));
    }
    output::print_token(&t, args.json, args.min_valid)
        .map_err(|e| Failure::Other(format!("cannot write the token: {e}")))
}

/// `regent logout`: a shared login is logged out only when the user says
/// so (`--all`, or yes at the prompt on a terminal).
async fn logout(agent: &AgentClient, name: Option<String>, mut all: bool) -> Result {
    let res = agent.resource(name.as_deref(), None).await?;
    let (name, sharing) = (
        res.name,
        res.auth.map(|a| a.shared_with).unwrap_or_default(),
    );
    if !sharing.is_empty() && !all {
        let question = format!(
            "{name} shares its login with {} (same issuer, client id and scopes); a logout logs out all of them. Log out of all? [y/N] ",
            sharing.join(", ")
        );
        if !output::confirm(&question) {
            return Err(Failure::Other(format!(
                "not logged out: {name} shares its login with {}; log out of all with: regent logout {name} --all",
                sharing.join(", ")
            )));
        }
        all = true;
    }
    let r = agent
        .logout(&LogoutRequest {
            registry: Some(name.clone()),
            all,
        })
        .await?;
    let who = if r.logged_out.len() > 1 {
        r.logged_out.join(", ")
    } else {
        name
    };
    if !r.deleted && r.revocation == Revocation::NotNeeded {
        println!("Not logged in to {who}; nothing to do.");
        return Ok(());
    }
    match r.revocation {
        Revocation::Revoked => println!(
            "Logged out of {who}: the refresh token is revoked at the IdP and deleted here."
        ),
        Revocation::NotOffered => println!(
            "Logged out of {who}: tokens deleted here. The IdP offers no revocation, so the refresh \
             token stays valid there until it expires."
        ),
        Revocation::Failed => println!(
            "Logged out of {who}: tokens deleted here, but the IdP did not confirm the revocation \
             (the agent's log says why); the refresh token may stay valid there until it expires."
        ),
        Revocation::NotNeeded | Revocation::Unknown => {
            println!("Logged out of {who}: tokens deleted here.")
        }
    }
    Ok(())
}

/// Sends a change that may need the user's word on sharing a login: where
/// the agent answers `consent_required` and no word was given, it is asked
/// on a terminal (else the agent's error, naming both flags, stands).
async fn with_consent<F, Fut>(share: Option<bool>, mut put: F) -> Result<RegistryStatus>
where
    F: FnMut(Option<bool>) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<RegistryStatus, ClientError>>,
{
    match put(share).await {
        Err(ClientError::Api(f))
            if f.detail.code == ErrorCode::ConsentRequired && share.is_none() =>
        {
            match output::ask_share(&f.detail.message) {
                Some(answer) => Ok(put(Some(answer)).await?),
                None => Err(Failure::Client(ClientError::Api(f))),
            }
        }
        other => Ok(other?),
    }
}

/// The resource of `kind` named `name`, if there is one (a name of another
/// kind is the agent's to refuse).
async fn existing(
    agent: &AgentClient,
    name: &str,
    kind: ResourceKind,
) -> Result<Option<RegistryStatus>> {
    match agent.resource(Some(name), None).await {
        Ok(r) => Ok(Some(r).filter(|r| r.kind == Some(kind))),
        // None of that name; or a forwarded agent, which refuses the change anyway.
        Err(e)
            if matches!(
                e.code(),
                Some(ErrorCode::UnknownRegistry | ErrorCode::Forbidden)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The registry named, or the only one configured (the agent decides).
async fn pick_registry(agent: &AgentClient, name: Option<String>) -> Result<RegistryStatus> {
    Ok(agent
        .resource(name.as_deref(), Some(ResourceKind::Registry))
        .await?)
}

/// Whose auth `config set-registry-auth` and `unset-registry-auth` change:
/// the API named, else the registry (which may be left out).
fn auth_target(registry: Option<String>, api: Option<String>) -> (ResourceKind, Option<String>) {
    match api {
        Some(name) => (ResourceKind::Api, Some(name)),
        None => (ResourceKind::Registry, registry),
    }
}

/// The whole PUT of a registry or an API (`registry add`, `api add`,
/// `config set-registry-auth`).
async fn put_server(
    agent: &AgentClient,
    kind: ResourceKind,
    name: &str,
    body: &PutRegistry,
) -> std::result::Result<RegistryStatus, ClientError> {
    match kind {
        ResourceKind::Api => agent.put_api(name, body).await,
        _ => agent.put_registry(name, body).await,
    }
}

fn auth_config(a: AuthArgs) -> Result<Option<AuthConfig>> {
    if let Some(path) = a.token_file {
        let path = std::path::absolute(&path)
            .map_err(|e| Failure::Other(format!("bad --token-file {}: {e}", path.display())))?;
        return Ok(Some(AuthConfig::Bearer(BearerConfig { token_file: path })));
    }
    match (a.issuer, a.client_id) {
        (Some(issuer), Some(client_id)) => Ok(Some(AuthConfig::Oauth(OAuthConfig {
            issuer,
            client_id,
            scopes: a.scopes.into_iter().filter(|s| !s.is_empty()).collect(),
            audience: a.audience,
            resource: a.resource,
            callback_port: a.callback_port,
            discovered: false,
            assume_pkce_s256: a.assume_pkce_s256,
            client: None,
            metadata_url: None,
            endpoints: None,
            own_grant: false,
            dpop: Default::default(),
            resource_dpop: false,
        }))),
        _ => Ok(None),
    }
}

/// `regent registry add` and `regent api add`: one body, one set of checks.
async fn add_server(agent: &AgentClient, kind: ResourceKind, a: args::ServerAddArgs) -> Result {
    let client_secret = a
        .auth
        .client_secret_file
        .as_deref()
        .map(|p| secret::read("client secret", p))
        .transpose()?;
    let dpop = args::dpop_mode(a.auth.dpop.as_deref());
    let auth = auth_config(a.auth)?;
    let discover = auth.is_none() && !a.no_auth;
    let noun = kind.noun();
    // Asked first: without an agent, autostart runs this again, warnings and all.
    let before = existing(agent, &a.name, kind).await?;
    if let Some(b) = &before {
        output::may_replace(noun, b, &a.url, a.replace).map_err(Failure::Other)?;
    }
    if kind == ResourceKind::Registry {
        output::warn_registry_url(&a.url);
    } else if discover {
        eprintln!(
            "Asking {} how it wants to be authorized…",
            output::safe(&a.url)
        );
    }
    let status = with_consent(a.share.choice(), |share_login| {
        let body = PutRegistry {
            url: a.url.clone(),
            auth: auth.clone(),
            discover,
            client_secret: client_secret.clone(),
            share_login,
            dpop,
        };
        let (agent, name) = (agent.clone(), a.name.clone());
        async move { put_server(&agent, kind, &name, &body).await }
    })
    .await?;
    output::put_result(noun, before.as_ref(), &status);
    Ok(())
}
