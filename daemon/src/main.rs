//! regentd: the regent credential agent.

use anyhow::Context;
use clap::Parser;
use regentd::{agent, api, config, ctx, instance, log, security, server, socket, store, systemd};
use std::path::PathBuf;
use store::{Store, StoreChoice};

/// regentd, the regent agent: it holds the OAuth tokens of your MCP
/// registries and MCP servers in memory, keeps refresh tokens in the OS
/// keyring, refreshes them once for everyone, and serves them to `regent`
/// and other programs on a private Unix socket.
#[derive(Parser, Debug)]
#[command(
    version,
    after_help = "Examples:\n  regentd                          # default socket, OS keyring\n  regentd --store file             # keep tokens in a 0600 file instead\n  REGENT_LOG=debug regentd --socket /tmp/r/agent.sock"
)]
struct Args {
    /// Socket to serve on [default: $REGENT_SOCKET, else $XDG_RUNTIME_DIR/regent/agent.sock, else /tmp/regent-$UID/agent.sock]
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Where refresh tokens persist.
    #[arg(long, value_enum, default_value = "auto")]
    store: StoreChoice,

    /// How long a browser login waits for the user, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=3600))]
    login_timeout: u64,

    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text")]
    log_format: log::Format,

    /// regent's client ID metadata document: an https URL that serves it, used
    /// as the client id at authorization servers that accept such documents
    /// [default: `client_metadata_url` in the config file]
    #[arg(long, value_name = "URL")]
    client_metadata_url: Option<String>,

    /// Also refuse private addresses (10/8, 172.16/12, 192.168/16, fc00::/7)
    /// for hosts that servers' answers name (link-local and unspecified ones
    /// are always refused; the hosts you give are always allowed).
    #[arg(long)]
    no_private_addresses: bool,

    /// Check the config file and exit: 0 if it is valid (what it configures
    /// is printed), 1 with the error and its line if not. The service's
    /// reload runs it first, so a broken file fails `systemctl --user reload`.
    #[arg(long)]
    check_config: bool,

    /// Print regentd's man page (roff) and exit.
    #[arg(long)]
    man: bool,
}

fn main() {
    let args = Args::parse();
    if args.check_config {
        std::process::exit(check_config());
    }
    if args.man {
        std::process::exit(man());
    }
    if matches!(args.store, StoreChoice::Auto | StoreChoice::Keyutils) {
        // Before any thread exists: Linux credentials are per thread.
        store::ensure_session_keyring();
    }
    // Before any thread exists: it edits the environment.
    let activated = match systemd::take_activated_listener() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("regentd: {e:#}");
            std::process::exit(1);
        }
    };
    log::init(args.log_format);
    security::harden();
    security::raise_nofile_limit();
    security::limit_malloc_arenas();
    if let Err(e) = run(args, activated) {
        tracing::error!("{e:#}");
        eprintln!("regentd: {e:#}");
        std::process::exit(1);
    }
}

/// `regentd --man`: clap's sections, then what an agent's page needs.
fn man() -> i32 {
    use std::io::Write;
    let cmd = <Args as clap::CommandFactory>::command();
    let man = clap_mangen::Man::new(cmd.clone()).manual("regent manual");
    let mut out = Vec::new();
    let sections = [
        ("EXAMPLES", None),
        (
            "SIGNALS",
            Some(&[
                ("SIGHUP", "Read the config file again; a broken file is logged with its line, and the running config stays."),
                ("SIGTERM, SIGINT", "Stop: requests in flight and refreshes finish, their results are stored, then it exits."),
            ][..]),
        ),
        (
            "ENVIRONMENT",
            Some(&[
                ("REGENT_LOG, RUST_LOG", "The log filter (e.g. debug, or regentd=debug); info by default."),
                ("REGENT_SOCKET, XDG_RUNTIME_DIR", "Where the socket is when --socket is not given."),
                ("XDG_CONFIG_HOME, XDG_STATE_HOME", "Where the config file and the state (lock, file store) are."),
                ("LISTEN_FDS, LISTEN_PID, NOTIFY_SOCKET", "systemd socket activation and readiness (Type=notify)."),
                ("JOURNAL_STREAM", "When it names stderr, every log event is one line with its journal priority."),
            ][..]),
        ),
        (
            "FILES",
            Some(&[
                ("$XDG_CONFIG_HOME/regent/config.toml", "The config: registries, MCP servers, IdPs (no secrets)."),
                ("$XDG_STATE_HOME/regent/agent.lock", "Held while the agent runs: one agent per user."),
                ("$XDG_STATE_HOME/regent/tokens.json", "The file store (--store file), 0600."),
                ("$XDG_RUNTIME_DIR/regent/agent.sock", "The socket, 0600 in a 0700 directory."),
            ][..]),
        ),
        (
            "EXIT STATUS",
            Some(&[
                ("0", "Stopped by a signal after draining; --check-config: the file is valid."),
                ("1", "Could not start (another agent runs, the config does not parse, the socket directory is unsafe); --check-config: the file is not valid."),
            ][..]),
        ),
    ];
    let roff = |s: &str| s.replace('\\', "\\e").replace('-', "\\-");
    let ok = (|| -> std::io::Result<()> {
        man.render_title(&mut out)?;
        man.render_name_section(&mut out)?;
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        man.render_options_section(&mut out)?;
        for (title, items) in sections {
            writeln!(out, ".SH {title}")?;
            match items {
                None => {
                    writeln!(out, ".nf")?;
                    for l in cmd
                        .get_after_help()
                        .map(|h| h.to_string())
                        .unwrap_or_default()
                        .lines()
                    {
                        writeln!(out, "{}", roff(l))?;
                    }
                    writeln!(out, ".fi")?;
                }
                Some(items) => {
                    for (k, v) in items {
                        writeln!(out, ".TP\n\\fB{}\\fR\n{}", roff(k), roff(v))?;
                    }
                }
            }
        }
        writeln!(
            out,
            ".SH SEE ALSO\nregent(1), regent\\-agent(1), regent\\-service(1)"
        )?;
        std::io::stdout().write_all(&out)
    })();
    if let Err(e) = ok {
        eprintln!("regentd: cannot write the man page: {e}");
        return 1;
    }
    0
}

/// `regentd --check-config`.
fn check_config() -> i32 {
    let path = regent_proto::paths::config_file();
    match config::ConfigFile::open(&path) {
        Ok(file) => {
            let c = file.config();
            println!(
                "{}: valid ({} {}, {} MCP {}, {} {})",
                path.display(),
                c.registries.len(),
                if c.registries.len() == 1 {
                    "registry"
                } else {
                    "registries"
                },
                c.mcp.len(),
                if c.mcp.len() == 1 {
                    "server"
                } else {
                    "servers"
                },
                c.idps.len(),
                if c.idps.len() == 1 { "IdP" } else { "IdPs" },
            );
            if !c.apis.is_empty() {
                println!(
                    "  and {} API{} for the credential helpers",
                    c.apis.len(),
                    if c.apis.len() == 1 { "" } else { "s" }
                );
            }
            0
        }
        Err(e) => {
            eprintln!("regentd: {e}");
            1
        }
    }
}

fn run(args: Args, activated: Option<std::os::unix::net::UnixListener>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async_main(args, activated))
}

async fn async_main(
    args: Args,
    activated: Option<std::os::unix::net::UnixListener>,
) -> anyhow::Result<()> {
    let config_path = regent_proto::paths::config_file();
    let socket_path = regent_proto::paths::socket_path(args.socket.as_deref());
    let serving_on = match &activated {
        Some(l) => l
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| p.to_path_buf()))
            .unwrap_or_else(|| socket_path.clone()),
        None => socket_path.clone(),
    };
    let serving_systemd = activated.is_some();
    // One agent per user, before anything else is touched.
    let _instance = instance::claim(
        &regent_proto::paths::agent_lock(),
        &regent_proto::AgentRecord {
            pid: std::process::id(),
            socket: serving_on.clone(),
            systemd: activated.is_some(),
            args: std::env::args().skip(1).collect(),
        },
    )?;
    let config = config::ConfigFile::open(&config_path).map_err(|e| {
        anyhow::anyhow!(
            "{e}\n(the agent will not start, and will not touch the file, until it is fixed)"
        )
    })?;
    let store = Store::open(args.store, regent_proto::paths::state_dir())
        .with_context(|| format!("cannot open the {:?} token store", args.store))?;
    // Bind before restoring: a second agent on the socket must fail before touching anything.
    let (listener, bound, _socket_lock) = match activated {
        Some(std) => {
            std.set_nonblocking(true)?;
            (tokio::net::UnixListener::from_std(std)?, None, None)
        }
        None => {
            let (l, lock) = socket::bind(&socket_path)?;
            (l, socket::identity(&socket_path), Some(lock))
        }
    };
    let settings = ctx::Settings {
        login_timeout: std::time::Duration::from_secs(args.login_timeout),
        client_metadata_url: args.client_metadata_url.clone(),
        systemd: serving_systemd,
    };
    let ctx = ctx::Ctx::new(store.clone(), settings);
    ctx.idp.typed().deny_private(args.no_private_addresses);
    let agent = agent::Agent::start(ctx.clone(), config).await;
    tracing::info!(
        socket = %serving_on.display(),
        config = %config_path.display(),
        store = store.name(),
        pid = std::process::id(),
        "regentd {} ready",
        env!("CARGO_PKG_VERSION")
    );
    // Installed before READY=1: an early SIGHUP must reload, not terminate.
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot handle SIGHUP")?;
    tokio::spawn(reload_on_sighup(agent.clone(), hup));
    let stop = shutdown_signal()?;
    // The forwarding socket, beside ours, from the first forwardable resource on.
    let forward_stop = tokio_util::sync::CancellationToken::new();
    let forward_task = {
        let (agent, stop) = (agent.clone(), forward_stop.clone());
        let path = serving_on.with_file_name(regentd::agent::forward::SOCKET_NAME);
        tokio::spawn(async move {
            tokio::select! {
                _ = agent.forwarding().wanted() => {}
                _ = stop.cancelled() => return,
            }
            match socket::bind(&path) {
                Ok((listener, _lock)) => {
                    let ours = socket::identity(&path);
                    agent.forwarding().serving(path.clone());
                    tracing::info!(socket = %path.display(), "serving the forwarding socket (tokens only)");
                    server::serve_with(
                        listener,
                        regentd::api::router(agent.clone()),
                        stop.cancelled(),
                        true,
                    )
                    .await;
                    if socket::identity(&path) == ours {
                        let _ = std::fs::remove_file(&path);
                    }
                }
                Err(e) => tracing::error!(
                    "cannot serve the forwarding socket {}: {e:#}",
                    path.display()
                ),
            }
        })
    };
    let registries = agent.all(regentd::resource::Kind::Registry).len();
    let servers = agent.all(regentd::resource::Kind::Mcp).len();
    let apis = agent.all(regentd::resource::Kind::Api).len();
    systemd::ready(&format!(
        "serving {registries} {}, {servers} MCP {}, {apis} API{} on {}",
        if registries == 1 {
            "registry"
        } else {
            "registries"
        },
        if servers == 1 { "server" } else { "servers" },
        if apis == 1 { "" } else { "s" },
        serving_on.display()
    ));
    server::serve(listener, api::router(agent.clone()), async {
        stop.await;
        systemd::stopping();
    })
    .await;
    forward_stop.cancel();
    let _ = forward_task.await;
    ctx.tasks.close();
    if tokio::time::timeout(server::DRAIN_TIMEOUT, ctx.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("a refresh or login was still running at exit");
    }
    // Remove our socket only if it is still ours (not replaced by a newer agent).
    if bound.is_some() && socket::identity(&socket_path) == bound {
        let _ = std::fs::remove_file(&socket_path);
    }
    tracing::info!("stopped");
    Ok(())
}

async fn reload_on_sighup(
    agent: std::sync::Arc<agent::Agent>,
    mut hup: tokio::signal::unix::Signal,
) {
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received: reloading the config");
        match agent.reload().await {
            Ok(n) => systemd::status(&format!(
                "serving {n} {} (config reloaded)",
                if n == 1 { "resource" } else { "resources" }
            )),
            Err(e) => {
                tracing::error!("the config was not reloaded, the current one stays in force: {e}");
                systemd::status("config reload failed; the previous config stays in force");
            }
        }
    }
}

/// Installs the SIGTERM and SIGINT handlers now (before READY=1: a signal
/// that comes early must drain, not kill) and resolves on the first one.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move { wait_for(&mut term, &mut int).await })
}

async fn wait_for(term: &mut tokio::signal::unix::Signal, int: &mut tokio::signal::unix::Signal) {
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
