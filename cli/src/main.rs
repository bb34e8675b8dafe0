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
    if let Some(code) = cli::lean::run() {
        std::process::exit(code);
    }
    if std::env::args_os().len() == 1 {
        // Asked for nothing: the overview is the answer (on stdout, exit 0).
        print!("{SHORT_USAGE}");
        std::process::exit(0);
    }
    // cargo runs its credential providers as `PROGRAM --cargo-plugin`.
    let cli = if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "--cargo-plugin")
    {
        Cli::parse_from(["regent", "cargo-credential"])
    } else {
        Cli::parse()
    };
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
