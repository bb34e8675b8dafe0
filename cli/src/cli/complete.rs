//! Shell completion that knows your resources: `regent completions SHELL`
//! registers regent itself as the completer (clap_complete's dynamic
//! engine), and NAME arguments complete from what the running agent has
//! configured. No agent: no candidates (completion never starts one).

use clap_complete::engine::CompletionCandidate;
use regent_proto::api::{Endpoint, GetApis, GetIdps, GetMcp, GetRegistries};
use regent_proto::RegistryStatus;
use std::time::Duration;

/// The variable the shell sets when it asks regent to complete.
pub const VAR: &str = "REGENT_COMPLETE";

/// Completion must never make the shell wait.
const TIMEOUT: Duration = Duration::from_millis(500);

fn ask<E: Endpoint>() -> Option<E::Answer> {
    let socket = regent_client::locate::socket(None);
    regent_client::blocking::get::<E>(&socket, TIMEOUT)
}

fn candidates(list: Vec<RegistryStatus>, what: &str) -> Vec<CompletionCandidate> {
    list.into_iter()
        .map(|r| CompletionCandidate::new(r.name).help(Some(format!("{what} {}", r.url).into())))
        .collect()
}

/// Registries.
pub fn registries() -> Vec<CompletionCandidate> {
    ask::<GetRegistries>()
        .map(|l| candidates(l.registries, "registry"))
        .unwrap_or_default()
}

/// MCP servers.
pub fn mcp_servers() -> Vec<CompletionCandidate> {
    ask::<GetMcp>()
        .map(|l| candidates(l.servers, "MCP server"))
        .unwrap_or_default()
}

/// Enterprise IdPs.
pub fn idps() -> Vec<CompletionCandidate> {
    ask::<GetIdps>()
        .map(|l| candidates(l.idps, "IdP"))
        .unwrap_or_default()
}

/// APIs (for the credential helpers).
pub fn apis() -> Vec<CompletionCandidate> {
    ask::<GetApis>()
        .map(|l| candidates(l.apis, "API"))
        .unwrap_or_default()
}

/// Every resource (login, logout, token).
pub fn resources() -> Vec<CompletionCandidate> {
    let mut all = registries();
    all.extend(mcp_servers());
    all.extend(apis());
    all.extend(idps());
    all
}

/// Writes the shell's registration script: it calls `regent` back to complete.
pub fn register(shell: clap_complete::Shell) -> std::io::Result<()> {
    let name = match shell {
        clap_complete::Shell::Bash => "bash",
        clap_complete::Shell::Zsh => "zsh",
        clap_complete::Shell::Fish => "fish",
        clap_complete::Shell::Elvish => "elvish",
        clap_complete::Shell::PowerShell => "powershell",
        _ => "bash",
    };
    let shells = clap_complete::env::Shells::builtins();
    let completer = shells
        .completer(name)
        .ok_or_else(|| std::io::Error::other(format!("no completion for {name}")))?;
    // The installed regent if it is the one on PATH, so an upgrade in place keeps working.
    let program = std::env::current_exe()
        .ok()
        .filter(|p| which("regent").as_deref() != Some(p.as_path()))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "regent".into());
    let mut out = std::io::stdout().lock();
    completer.write_registration(VAR, "regent", "regent", &program, &mut out)
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok())
}
