//! regent: configure registries, log in, and get tokens from the regent agent.

mod cli;

use clap::Parser;
use cli::args::Cli;

/// What `regent` alone prints: the commands most people need, and where the rest is.
const SHORT_USAGE: &str = "\
regent: OAuth tokens for your MCP registries and MCP servers, from the regent agent

Usage: regent <COMMAND> [ARGS]

  regent status                  what is configured, and who is logged in
  regent registry add NAME URL   add a registry (how it authorizes is discovered)
  regent mcp add NAME URL        add a remote MCP server
  regent login NAME              log in (your browser; --device from an SSH session)
  regent token NAME              a valid access token on stdout, for scripts
  regent mcp proxy NAME          the stdio bridge to give your MCP client

All commands: regent --help.  One command: regent help COMMAND.
";

fn main() {
    // The shell asking for completions (REGENT_COMPLETE set): answered, then exit.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command)
        .var(cli::complete::VAR)
        .complete();
    if let Some(code) = fast_token() {
        std::process::exit(code);
    }
    if std::env::args_os().len() == 1 {
        // Asked for nothing: the overview is the answer (on stdout, exit 0).
        print!("{SHORT_USAGE}");
        std::process::exit(0);
    }
    let cli = Cli::parse();
    // Lean start for `regent token`: one thread, no pool of workers.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts");
    let code = match runtime.block_on(cli::run(cli)) {
        Ok(()) => 0,
        Err(f) => {
            let message = f.message();
            if !message.is_empty() {
                // It may quote what a server or an IdP said: shown, never acted on.
                eprintln!("regent: {}", regent_client::text::printable(&message));
            }
            f.exit_code()
        }
    };
    // Not a plain drop: that would wait forever on a blocking read of a stdin
    // that is still open (`mcp proxy` stopped by a signal). Output is flushed.
    runtime.shutdown_background();
    std::process::exit(code);
}

/// `regent token [NAME] [--min-valid N] [--json] [--socket P]` when the agent
/// answers 200: no argument parser, no async runtime (scripts call this in
/// loops). Anything else, errors included, goes the full way.
fn fast_token() -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != "token" {
        return None;
    }
    let (mut name, mut min_valid, mut json, mut socket) = (None, None, false, None);
    while let Some(a) = args.next() {
        let a = a.into_string().ok()?;
        match a.as_str() {
            "--json" => json = true,
            "--min-valid" => {
                min_valid = Some(args.next()?.into_string().ok()?.parse::<u64>().ok()?)
            }
            "--socket" => socket = Some(std::path::PathBuf::from(args.next()?)),
            s if s.starts_with('-') => return None,
            s if name.is_none() => name = Some(s.to_string()),
            _ => return None,
        }
    }
    let socket = regent_proto::paths::socket_path(socket.as_deref());
    let req = regent_proto::TokenRequest {
        registry: name,
        min_valid_secs: Some(min_valid.unwrap_or(regent_proto::DEFAULT_MIN_VALID_SECS)),
        dpop: None,
    };
    let t = regent_client::blocking::token(&socket, &req)?;
    Some(
        match cli::output::print_token(&t, json, req.min_valid_secs.unwrap_or_default()) {
            Ok(()) => 0,
            Err(_) => 1,
        },
    )
}
