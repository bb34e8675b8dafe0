//! The command line (contract: see DESIGN "CLI").

use super::complete;
use clap::{Args, Parser, Subcommand};
use clap_complete::engine::ArgValueCandidates;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  regent registry add corp https://registry.corp.example \\
      --issuer https://login.corp.example --client-id regent-cli
  regent login corp --device        # log in from an SSH session
  regent token corp                 # the bare token, for scripts
  curl -H \"Authorization: Bearer $(regent token corp)\" \\\n      https://registry.corp.example/v0.1/servers
  regent status

When no agent answers, regent starts regentd itself (logging to
$XDG_STATE_HOME/regent/agent.log) unless REGENT_NO_AUTOSTART is set.

Exit codes: 0 success, 1 error, 2 usage, 3 agent unreachable,\n4 login required.";

/// regent gets OAuth tokens for your MCP registries and MCP servers from
/// the regent agent (regentd), which logs in once per authorization server,
/// refreshes once for everyone, and keeps refresh tokens in the OS keyring.
#[derive(Parser, Debug, Clone)]
#[command(name = "regent", version, after_help = EXAMPLES, max_term_width = 100)]
pub struct Cli {
    /// The agent's socket [default: $REGENT_SOCKET, else $XDG_RUNTIME_DIR/regent/agent.sock, else /tmp/regent-$UID/agent.sock]
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub socket: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Add, remove and list registries.
    #[command(subcommand)]
    Registry(RegistryCommand),

    /// Configure how a registry authenticates.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Add, remove and list remote MCP servers; bridge local MCP clients to them.
    #[command(subcommand)]
    Mcp(McpCommand),

    /// Add, remove and list other HTTPS APIs behind an IdP (git, package registries, clusters),
    /// for the credential helpers.
    #[command(subcommand)]
    Api(ApiCommand),

    /// Add, remove and list enterprise IdPs (one login for every MCP server that trusts them).
    #[command(subcommand)]
    Idp(IdpCommand),

    /// Log in for a registry, an MCP server or an enterprise IdP.
    #[command(
        after_help = "Examples:\n  regent login corp              # opens your browser (honours $BROWSER)\n  regent login corp --no-browser # prints the URL to open yourself\n  regent login corp --device     # a URL and a code for any device (SSH)\n  regent login okta              # an enterprise IdP: every server behind it\n\nOne login serves every resource that shares it (same issuer, client id\nand scopes); regent says which. Already logged in: nothing happens\n(--force logs in again). A login another program started is joined,\nnot started twice. The agent waits for the IdP's answer on a one-shot\nloopback port; Ctrl-C cancels the login."
    )]
    Login(LoginArgs),

    /// Log out: revoke the refresh token at the IdP and delete the stored tokens.
    #[command(
        after_help = "Examples:\n  regent logout corp\n  regent logout corp --all    # corp shares its login: log out of all\n\nResources with the same issuer, client id and scopes share one login;\n`regent status` shows which. A logout of one is a logout of all, so regent\nasks (or wants --all)."
    )]
    Logout {
        /// The registry, MCP server or IdP (may be left out when only one is configured).
        #[arg(add = ArgValueCandidates::new(complete::resources))]
        name: Option<String>,
        /// Also log out the resources that share this login, without asking.
        #[arg(long)]
        all: bool,
    },

    /// Headers for an MCP server, as Claude Code's headersHelper wants them.
    #[command(
        long_about = "Print the headers to send to an MCP server as one flat JSON object \
({\"Authorization\": \"Bearer ...\"}), for Claude Code's headersHelper. Without NAME, the server \
is the one whose URL covers CLAUDE_CODE_MCP_SERVER_URL (origin and longest path prefix), else the \
one named CLAUDE_CODE_MCP_SERVER_NAME. Never opens a browser: without a login it exits 4 and \
names the regent login to run.",
        after_help = "In Claude Code's MCP configuration (.mcp.json):\n  \"corp\": {\"type\": \"http\", \"url\": \"https://mcp.corp.example/mcp\",\n           \"headersHelper\": \"regent headers\"}"
    )]
    Headers {
        /// The MCP server (default: from Claude Code's environment).
        name: Option<String>,
    },

    /// git's credential helper: regent's tokens for the git servers it covers.
    #[command(
        long_about = "git's credential helper protocol (git-credential(1)): for `get`, the token \
of the resource whose URL covers the one git asks about, as authtype=Bearer where git offers \
capability[]=authtype (git 2.46 and later), else as username x-access-token and the token as \
password; no resource covers it: nothing, so git asks its other helpers. `erase` (git saw the \
token refused) drops it at the agent; `store` does nothing. Never opens a browser: without a \
login, nothing is printed and stderr names the regent login to run.",
        after_help = "In ~/.gitconfig:\n  [credential \"https://git.corp.example\"]\n      helper = \"!regent git-credential\"\n      useHttpPath = true"
    )]
    GitCredential {
        /// What git asks: get, store or erase.
        #[arg(value_parser = ["get", "store", "erase"])]
        operation: String,
    },

    /// kubectl's exec credential plugin: an ExecCredential with the token.
    #[command(
        long_about = "Print a client.authentication.k8s.io ExecCredential (status.token, \
status.expirationTimestamp) for kubectl's exec credential plugins. Without NAME, the resource is \
the one whose URL covers the cluster's server (KUBERNETES_EXEC_INFO, with provideClusterInfo: \
true). Never opens a browser: without a login it exits 4 and names the regent login to run.",
        after_help = "In a kubeconfig:\n  users:\n  - name: corp\n    user:\n      exec:\n        apiVersion: client.authentication.k8s.io/v1\n        command: regent\n        args: [kube-credential, corp-k8s]\n        interactiveMode: Never"
    )]
    KubeCredential {
        /// The resource (default: the one covering the cluster's server).
        name: Option<String>,
    },

    /// The credential-helper protocol of Bazel, Buck2 and uv: headers for a URI.
    #[command(
        long_about = "The credential-helper protocol of Bazel and Buck2 (EngFlow's spec): `get` \
reads {\"uri\": ...} on stdin and prints {\"headers\": {\"Authorization\": [\"Bearer ...\"]}, \
\"expires\": ...} for the resource whose URL covers the URI (no headers where none covers it). \
Never opens a browser: without a login it exits 4 and names the regent login to run.",
        after_help = "In .bazelrc:\n  common --credential_helper=*.corp.example=regent-credential-helper\n(a two-line script: exec regent credential-helper \"$@\")"
    )]
    CredentialHelper {
        /// What is asked: get.
        #[arg(value_parser = ["get"])]
        operation: String,
    },

    /// cargo's credential provider (cargo runs `regent --cargo-plugin`).
    #[command(hide = true)]
    CargoCredential,

    /// Print a valid access token (refreshed if needed) on stdout.
    #[command(
        after_help = "Examples:\n  regent token corp\n  regent token --min-valid 300 --json\n  TOKEN=$(regent token corp) || exit; export TOKEN"
    )]
    Token(TokenArgs),

    /// List the MCP servers a registry offers (every page).
    #[command(
        after_help = "Examples:\n  regent servers corp\n  regent servers --search github --json | jq -r '.servers[].server.name'"
    )]
    Servers {
        /// The registry (may be left out when only one is configured).
        #[arg(add = ArgValueCandidates::new(complete::registries))]
        name: Option<String>,
        /// Only servers whose name matches (passed to the registry).
        #[arg(long)]
        search: Option<String>,
        /// Print JSON on stdout: {"servers": [...]} as the registry sent them.
        #[arg(long)]
        json: bool,
    },

    /// Serve a headless HTTP API over your registries (never opens a browser).
    #[command(
        after_help = "Examples:\n  regent serve                                  # http://127.0.0.1:8080\n  curl -s localhost:8080/api/v1/registries\n  curl -s localhost:8080/api/v1/registries/corp/servers\n  curl -s -X POST localhost:8080/api/v1/registries/corp/login \\\n      -d '{\"flow\": \"device\"}'\n  curl -s localhost:8080/api/v1/mcp    # MCP servers, their auth status\n\nMCP clients that speak HTTP reach MCP server NAME at\nhttp://127.0.0.1:8080/mcp/NAME with your token added; where a login or\nmore scope is needed the answer names the command to run (it never opens\na browser).\n\nIt lends your registry access to whoever can reach it: it listens on loopback\nunless --allow-remote, and refuses requests whose Host is not its own address."
    )]
    Serve {
        /// Where to listen: PORT, localhost:PORT, or ADDR:PORT.
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080", value_parser = listen_addr)]
        listen: std::net::SocketAddr,
        /// Allow a non-loopback --listen address (anyone who can connect gets your registry access).
        #[arg(long)]
        allow_remote: bool,
    },

    /// Install or remove the systemd user units (socket-activated agent).
    #[command(subcommand)]
    Service(ServiceCommand),

    /// Which resources a machine you ssh to may borrow tokens of (agent forwarding).
    #[command(subcommand)]
    Forward(ForwardCommand),

    /// ssh with the agent forwarded: regent token, servers and mcp proxy work on the other side, no login there.
    #[command(after_help = SSH_HELP)]
    Ssh {
        /// ssh's options and the destination, then -- and a command to run there (default: a login shell).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            required = true,
            value_name = "SSH_ARGS"
        )]
        args: Vec<String>,
    },

    /// The running agent, whoever started it (systemd or regent): status, stop, restart, reload, logs.
    #[command(subcommand)]
    Agent(AgentCommand),

    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  regent completions bash > ~/.local/share/bash-completion/completions/regent\n  regent completions zsh > ~/.zfunc/_regent\n  regent completions fish > ~/.config/fish/completions/regent.fish"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },

    /// Print a man page (roff), or write all of them (regent's, each command's, regentd's).
    #[command(
        after_help = "Examples:\n  regent man --dir ~/.local/share/man/man1 && man regent-mcp-proxy\n  regent man registry add | man -l -"
    )]
    Man {
        /// Write every page into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The command whose page to print (e.g. `registry add`).
        command: Vec<String>,
    },

    /// Show the agent and every registry's login state.
    #[command(after_help = "Example:\n  regent status --json | jq '.registries[].auth.status'")]
    Status {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },

    /// Check everything a login needs, step by step, and say what fixes what fails.
    #[command(
        long_about = "Check everything a login needs, one line a step: the agent (reachable, its \
version, its token store, how it was started), then for each resource (or NAME), from where the \
agent runs and with its network settings: DNS, the proxy, TCP, TLS (the certificate's issuer), the \
authorization server's metadata, its clock against ours, and the login. Each line says ok, warn or \
FAIL; a line that is not ok is followed by what fixes it. Exit status 0 when nothing failed, 1 \
otherwise.",
        after_help = "Examples:\n  regent doctor              # the agent and every resource\n  regent doctor corp         # one resource\n  regent doctor --json | jq '.checks[] | select(.status == \"fail\")'"
    )]
    Doctor {
        /// The registry, MCP server or IdP to check (default: all).
        name: Option<String>,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

// Parsed once per run: the size of a variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug, Clone)]
pub enum RegistryCommand {
    /// Add a registry, or replace one of the same name.
    #[command(
        after_help = "Examples:\n  regent registry add corp https://registry.corp.example \\\n      --issuer https://login.corp.example --client-id regent-cli\n  regent registry add ci https://registry.corp.example \\\n      --token-file /run/secrets/registry-token\n  regent registry add public https://registry.modelcontextprotocol.io"
    )]
    Add(ServerAddArgs),
    /// Remove a registry and delete its stored tokens.
    #[command(after_help = "Example:\n  regent registry remove corp")]
    Remove {
        /// The registry.
        #[arg(add = ArgValueCandidates::new(complete::registries))]
        name: String,
    },
    /// List registries and their login state.
    #[command(
        after_help = "Examples:\n  regent registry list\n  regent registry list --json | jq -r '.registries[].name'"
    )]
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// `regent registry add` and `regent api add`: the same arguments.
#[derive(Args, Debug, Clone)]
pub struct ServerAddArgs {
    /// A short name: letters, digits, '.', '_' or '-'.
    pub name: String,
    /// Its base URL (a registry's API base; an API covers every URL under it).
    pub url: String,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// It needs no token: no auth, and no request to find out (without any auth
    /// option, regent asks it whether and how it wants auth).
    #[arg(long, conflicts_with_all = ["issuer", "token_file"])]
    pub no_auth: bool,
    /// NAME exists with another URL: replace it (its login ends).
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub share: ShareArgs,
}

// Parsed once per run: the size of a variant costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug, Clone)]
pub enum ApiCommand {
    /// Add an HTTPS API whose tokens the credential helpers hand out.
    #[command(
        long_about = "Add any HTTPS API behind an authorization server: a git server, a package \
registry, a Kubernetes API server. The credential helpers (git-credential, kube-credential, \
credential-helper, headers, and cargo's provider) give its tokens for every URL it covers: same \
origin, and URL's path as a prefix (the longest prefix wins). Without any auth option, regent \
asks the API (a GET of URL without a token must answer 401, naming its protected resource \
metadata, RFC 9728) and registers itself at the authorization server it names; an API that asks \
for no token is added with --no-auth.",
        after_help = "Examples:\n  regent api add forge https://git.corp.example \\\n      --issuer https://login.corp.example --client-id regent-cli\n  regent api add crates https://crates.corp.example   # how: asked (RFC 9728)\n  regent login forge\n\nThen, in ~/.gitconfig:\n  [credential \"https://git.corp.example\"]\n      helper = \"!regent git-credential\"\n      useHttpPath = true"
    )]
    Add(ServerAddArgs),
    /// Remove an API (its login goes unless another resource shares it).
    #[command(after_help = "Example:\n  regent api remove forge")]
    Remove {
        /// The API.
        #[arg(add = ArgValueCandidates::new(complete::apis))]
        name: String,
    },
    /// List APIs and their login state.
    #[command(after_help = "Example:\n  regent api list --json | jq -r '.apis[].name'")]
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum McpCommand {
    /// Add a remote MCP server; how it wants to be authorized is discovered from it.
    #[command(after_help = "Examples:
  regent mcp add github https://mcp.github.example/mcp
  regent mcp add tools https://mcp.corp.example/mcp \\\n      --client-id regent --client-secret-file ~/.secrets/tools
  regent mcp add ci-bot https://mcp.corp.example/mcp --client-credentials \\
      --client-id ci-bot --client-key-file /run/secrets/ci-bot.pem
  regent mcp add wiki https://wiki.corp.example/mcp \\\n      --enterprise-idp okta --client-id regent-wiki
  regent mcp add search --from corp io.example/search  # URL from corp
  regent mcp add deploy https://mcp.corp.example/mcp \\
      --workload-token-file /var/run/secrets/tokens/mcp  # a pod's identity

Without options regent asks the server (an unauthenticated request), reads
its protected resource metadata (RFC 9728) and its authorization server's
metadata, and registers itself there (a client ID metadata document where
supported and configured, else dynamic registration). Then: regent login NAME.")]
    Add(Box<McpAddArgs>),
    /// List MCP servers and their login state.
    #[command(after_help = "Example:\n  regent mcp list --json | jq -r '.servers[].name'")]
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove an MCP server (its login goes unless another resource shares it).
    #[command(after_help = "Example:\n  regent mcp remove github")]
    Remove {
        /// The server.
        #[arg(add = ArgValueCandidates::new(complete::mcp_servers))]
        name: String,
    },
    /// Bridge stdio to a remote MCP server, with the agent's tokens: for any local MCP client.
    #[command(after_help = r#"Examples:
  regent mcp proxy github
  regent mcp proxy https://mcp.example.com/mcp  # added on first use

In an MCP client's config (Claude Desktop, Cursor, VS Code):
  {"command": "regent", "args": ["mcp", "proxy", "github"]}

stdout carries only the protocol; notes go to stderr. A login, when one is
needed, opens your browser ($BROWSER is honoured); --device shows a code to
enter instead; --no-login answers a JSON-RPC error naming `regent login NAME`."#)]
    Proxy {
        /// A configured MCP server's name, or its https URL.
        #[arg(add = ArgValueCandidates::new(complete::mcp_servers))]
        target: String,
        /// Log in with the device flow when a login is needed.
        #[arg(long, conflicts_with = "no_login")]
        device: bool,
        /// Never start a login; answer a JSON-RPC error naming the command instead.
        #[arg(long)]
        no_login: bool,
        /// A URL added on first use: see `regent mcp add`.
        #[command(flatten)]
        share: ShareArgs,
    },
}

/// Whether a new resource may use a login that resources on other origins
/// use (never without the user's word; same-origin resources share freely).
#[derive(Args, Debug, Clone, Default)]
pub struct ShareArgs {
    /// Its login is one other servers (other origins) use: share it.
    #[arg(long, conflicts_with = "own_login")]
    pub share_login: bool,
    /// Its login is one other servers (other origins) use: log in on its own.
    #[arg(long)]
    pub own_login: bool,
}

impl ShareArgs {
    /// The user's word, if given.
    pub fn choice(&self) -> Option<bool> {
        match (self.share_login, self.own_login) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

/// `regent mcp add`.
#[derive(Args, Debug, Clone)]
pub struct McpAddArgs {
    /// A short name: letters, digits, '.', '_' or '-'.
    pub name: String,
    /// The server's streamable HTTP endpoint (https; http only on loopback).
    #[arg(required_unless_present = "from")]
    pub url: Option<String>,
    /// Take the URL from a registry's entry: REGISTRY SERVER.
    #[arg(long, num_args = 2, value_names = ["REGISTRY", "SERVER"], conflicts_with = "url")]
    pub from: Option<Vec<String>>,
    /// A client registered at the server's authorization server.
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// A file holding that client's secret (kept in the token store, never in the config).
    #[arg(long, value_name = "PATH", requires = "client_id")]
    pub client_secret_file: Option<PathBuf>,
    /// Scopes instead of the discovered ones, comma separated.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    pub scopes: Vec<String>,
    /// Fixed loopback port for the browser login.
    #[arg(long, value_name = "PORT")]
    pub callback_port: Option<u16>,
    /// The authorization server supports PKCE S256 although its metadata omits it (Entra ID).
    #[arg(long)]
    pub assume_pkce_s256: bool,
    /// Bind tokens to a key only the agent holds (DPoP, RFC 9449): auto (where the
    /// resource's metadata names DPoP and the authorization server offers it),
    /// always, or never.
    #[arg(long, value_name = "MODE", value_parser = ["auto", "always", "never"])]
    pub dpop: Option<String>,
    /// No user: OAuth client credentials (with --client-secret-file or --client-key-file).
    #[arg(long, requires = "client_id", conflicts_with = "enterprise_idp")]
    pub client_credentials: bool,
    /// The client's private key, PEM (private_key_jwt: ES256 for P-256, ES384 for P-384,
    /// RS256 for RSA).
    #[arg(long, value_name = "PEM", requires = "client_credentials")]
    pub client_key_file: Option<PathBuf>,
    /// Sign with this algorithm instead of the one the key implies (PS256 for an RSA key
    /// that must, or an authorization server that wants it).
    #[arg(long, value_name = "ALG", requires = "client_key_file",
          value_parser = clap::builder::PossibleValuesParser::new(
              ["ES256", "ES384", "RS256", "PS256", "RS384", "PS384", "RS512", "PS512"]))]
    pub client_key_alg: Option<String>,
    /// Get tokens through this enterprise IdP (regent idp add), no browser per server.
    #[arg(long, value_name = "IDP", requires = "client_id")]
    pub enterprise_idp: Option<String>,
    /// A static Bearer token from a file instead.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["client_id", "client_credentials", "enterprise_idp"])]
    pub token_file: Option<PathBuf>,
    /// No user: workload identity. The platform's JWT in PATH (a Kubernetes
    /// service-account token, a CI OIDC token; read fresh for every grant) is
    /// exchanged at the server's authorization server (RFC 7523 JWT bearer).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["client_credentials", "enterprise_idp", "token_file", "client_secret_file", "callback_port"])]
    pub workload_token_file: Option<PathBuf>,
    /// No auth at all (skip discovery).
    #[arg(long, conflicts_with_all = ["client_id", "client_credentials", "enterprise_idp", "token_file", "workload_token_file"])]
    pub no_auth: bool,
    /// NAME exists with another URL: replace it (its login ends).
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub share: ShareArgs,
}

#[derive(Subcommand, Debug, Clone)]
pub enum IdpCommand {
    /// Add an enterprise IdP: log in there once (regent login NAME), reach every server that trusts it.
    #[command(after_help = "Examples:
  regent idp add okta --issuer https://corp.okta.example \\\n      --client-id regent-xaa
  regent login okta                                # browser or --device
  regent login okta --id-token-file ~/.cache/sso/id_token  # one you have")]
    Add {
        /// A short name.
        name: String,
        /// The IdP's issuer.
        #[arg(long, value_name = "URL")]
        issuer: String,
        /// regent's client id there.
        #[arg(long, value_name = "ID")]
        client_id: String,
        /// A file holding that client's secret.
        #[arg(long, value_name = "PATH")]
        client_secret_file: Option<PathBuf>,
        /// Scopes of the login, comma separated [default: openid, plus offline_access where offered].
        #[arg(long, value_delimiter = ',', value_name = "A,B")]
        scopes: Vec<String>,
        /// Fixed loopback port for the browser login.
        #[arg(long, value_name = "PORT")]
        callback_port: Option<u16>,
    },
    /// List enterprise IdPs and their login state.
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove an enterprise IdP.
    Remove {
        /// The IdP.
        #[arg(add = ArgValueCandidates::new(complete::idps))]
        name: String,
    },
}

const SSH_HELP: &str = "\
Examples:
  regent forward allow corp           # once: corp's tokens may be lent
  regent ssh build-box                # a shell there; regent token corp works
  regent ssh -p 2222 me@build-box -- regent servers corp

The agent's forwarding socket goes to /tmp/regent-fwd-<random>.sock there
(sshd makes it yours, 0600), and is removed when the session ends. Only
tokens are lent: logins, logouts and changes stay here. Root on the other
machine can use the socket while the session lasts, as with ssh-agent.

By hand: ssh -R /tmp/regent-fwd-$(openssl rand -hex 8).sock:\\
  $XDG_RUNTIME_DIR/regent/agent.forward.sock HOST";

/// `regent forward`.
#[derive(Subcommand, Debug, Clone)]
pub enum ForwardCommand {
    /// What is forwardable, when each was last lent, the sessions open now.
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Let machines you ssh to (regent ssh) borrow these resources' tokens.
    #[command(
        after_help = "Examples:\n  regent forward allow corp\n  regent forward allow github --confirm   # regent ssh asks each time"
    )]
    Allow {
        /// Registries or MCP servers.
        #[arg(required = true, add = ArgValueCandidates::new(complete::resources))]
        names: Vec<String>,
        /// Lend them only in sessions you say yes to when regent ssh starts.
        #[arg(long)]
        confirm: bool,
    },
    /// Lend them no more.
    Deny {
        /// Registries or MCP servers.
        #[arg(required = true, add = ArgValueCandidates::new(complete::resources))]
        names: Vec<String>,
    },
    /// Run by regent ssh on the remote side: keeps connections to the
    /// forwarded agent open for the session, so helpers there need no new
    /// channel per call.
    #[command(hide = true)]
    Relay {
        /// The forwarded agent's socket (/tmp/regent-fwd-<random>.sock).
        forward: std::path::PathBuf,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum AgentCommand {
    /// Which agent runs: pid, version, since when, who started it, its socket and store.
    #[command(after_help = "Example:\n  regent agent status --json | jq .agent.pid")]
    Status {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Stop it: requests in flight and refreshes finish, tokens stay in the store.
    #[command(
        after_help = "Under systemd the socket stays: the next regent command starts the agent again\n(stop that too with: systemctl --user stop regentd.socket)."
    )]
    Stop,
    /// Stop it and start it again (its logins are restored from the store).
    Restart,
    /// Read the config file again; a broken file is reported (with its line) and the running config stays.
    Reload,
    /// Show its log: the journal under systemd, else $XDG_STATE_HOME/regent/agent.log.
    #[command(after_help = "Examples:\n  regent agent logs -n 50\n  regent agent logs -f")]
    Logs {
        /// Keep printing as it logs.
        #[arg(short, long)]
        follow: bool,
        /// How many of the last lines.
        #[arg(short = 'n', long, value_name = "N", default_value_t = 100)]
        lines: usize,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum ServiceCommand {
    /// Write regentd.socket and regentd.service into ~/.config/systemd/user/.
    #[command(
        after_help = "Example:\n  regent service install --enable   # and systemd starts regentd on first use"
    )]
    Install {
        /// Also run `systemctl --user daemon-reload` and `enable --now regentd.socket`.
        #[arg(long)]
        enable: bool,
    },
    /// Stop, disable and remove the units.
    #[command(after_help = "Example:\n  regent service uninstall")]
    Uninstall,
}

// Parsed once per run: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug, Clone)]
pub enum ConfigCommand {
    /// Set a registry's (or an API's) auth (the IdP is checked first).
    #[command(
        after_help = "Examples:\n  regent config set-registry-auth --registry corp \\\n      --issuer https://login.corp.example --client-id regent-cli \\\n      --scopes openid,registry:read\n  regent config set-registry-auth --registry ci \\\n      --token-file /run/secrets/registry-token\n  regent config set-registry-auth --api forge \\\n      --issuer https://login.corp.example --client-id regent-cli"
    )]
    SetRegistryAuth {
        /// The registry (may be left out when only one is configured).
        #[arg(long, add = ArgValueCandidates::new(complete::registries))]
        registry: Option<String>,
        /// An API (regent api add) instead of a registry.
        #[arg(long, conflicts_with = "registry", add = ArgValueCandidates::new(complete::resources))]
        api: Option<String>,
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        share: ShareArgs,
    },
    /// Remove a registry's (or an API's) auth and delete its stored tokens.
    #[command(after_help = "Example:\n  regent config unset-registry-auth --registry corp")]
    UnsetRegistryAuth {
        /// The registry (may be left out when only one is configured).
        #[arg(long, add = ArgValueCandidates::new(complete::registries))]
        registry: Option<String>,
        /// An API (regent api add) instead of a registry.
        #[arg(long, conflicts_with = "registry", add = ArgValueCandidates::new(complete::resources))]
        api: Option<String>,
    },
}

/// How a registry authenticates: OAuth (`--issuer` and `--client-id`) or a token file.
#[derive(Args, Debug, Default, Clone)]
pub struct AuthArgs {
    /// OAuth/OIDC issuer URL (https; http only on loopback).
    #[arg(
        long,
        value_name = "URL",
        requires = "client_id",
        conflicts_with = "token_file"
    )]
    pub issuer: Option<String>,
    /// The public client id registered at the IdP.
    #[arg(long, value_name = "ID", requires = "issuer")]
    pub client_id: Option<String>,
    /// A file holding the client's secret, where the IdP issued one (Google's
    /// "installed app" clients); kept in the token store, never in the config.
    #[arg(long, value_name = "PATH", requires = "issuer")]
    pub client_secret_file: Option<PathBuf>,
    /// Scopes, comma separated [default: openid, plus offline_access where offered].
    #[arg(long, value_delimiter = ',', value_name = "A,B", requires = "issuer")]
    pub scopes: Vec<String>,
    /// `audience` parameter, for IdPs that want one.
    #[arg(long, value_name = "AUD", requires = "issuer")]
    pub audience: Option<String>,
    /// RFC 8707 resource indicator.
    #[arg(long, value_name = "URI", requires = "issuer")]
    pub resource: Option<String>,
    /// Fixed loopback port for the browser login (IdPs that match redirect URIs exactly).
    #[arg(long, value_name = "PORT", requires = "issuer")]
    pub callback_port: Option<u16>,
    /// The IdP supports PKCE S256 although its metadata omits it (Microsoft Entra ID).
    #[arg(long, requires = "issuer")]
    pub assume_pkce_s256: bool,
    /// Bind tokens to a key only the agent holds (DPoP, RFC 9449): auto (where the
    /// resource's metadata names DPoP and the authorization server offers it),
    /// always, or never.
    #[arg(long, value_name = "MODE", value_parser = ["auto", "always", "never"])]
    pub dpop: Option<String>,
    /// A file holding a static Bearer token (read on every use).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct LoginArgs {
    /// The registry, MCP server or IdP (may be left out when only one is configured).
    #[arg(add = ArgValueCandidates::new(complete::resources))]
    pub name: Option<String>,
    /// Use the device flow: a URL and a code to enter on any device.
    #[arg(long)]
    pub device: bool,
    /// Print the URL instead of opening a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Log in again even when already logged in.
    #[arg(long)]
    pub force: bool,
    /// Enterprise IdPs: take this ID token (a file) as the login instead.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["device", "no_browser"])]
    pub id_token_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct TokenArgs {
    /// The registry or MCP server (may be left out when only one is configured).
    #[arg(add = ArgValueCandidates::new(complete::resources))]
    pub name: Option<String>,
    /// Seconds the token must stay valid.
    #[arg(long, value_name = "SECS", default_value_t = regent_proto::DEFAULT_MIN_VALID_SECS)]
    pub min_valid: u64,
    /// Print the token, its type, expiry and scope as JSON.
    #[arg(long)]
    pub json: bool,
    /// For a request METHOD URL: print the headers to send, `Authorization`
    /// and, for a DPoP-bound token, a fresh `DPoP` proof for that request.
    #[arg(long, num_args = 2, value_names = ["METHOD", "URL"])]
    pub dpop: Option<Vec<String>>,
}

/// `--listen`: `PORT` and `localhost:PORT` mean loopback; else `ADDR:PORT`.
fn listen_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    let loopback = |port: &str| {
        port.parse::<u16>()
            .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p)))
            .map_err(|_| format!("{port:?} is not a port number"))
    };
    if s.chars().all(|c| c.is_ascii_digit()) {
        return loopback(s);
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        return loopback(port);
    }
    s.parse().map_err(|_| {
        format!("{s:?} is not an address to listen on; give PORT, localhost:PORT or ADDR:PORT (e.g. 127.0.0.1:8080)")
    })
}

/// A `--dpop` value as the agent takes it.
pub fn dpop_mode(s: Option<&str>) -> Option<regent_proto::DpopMode> {
    s.map(|m| match m {
        "always" => regent_proto::DpopMode::Always,
        "never" => regent_proto::DpopMode::Never,
        _ => regent_proto::DpopMode::Auto,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn listen_takes_a_port_localhost_or_an_address() {
        assert_eq!(listen_addr("8089").unwrap().to_string(), "127.0.0.1:8089");
        assert_eq!(
            listen_addr("localhost:9").unwrap().to_string(),
            "127.0.0.1:9"
        );
        assert_eq!(listen_addr("[::1]:80").unwrap().to_string(), "[::1]:80");
        assert!(listen_addr("localhost:x").is_err());
        assert!(listen_addr("99999").is_err());
        assert!(listen_addr("example.com:80").unwrap_err().contains("PORT"));
    }

    /// Every command's help examples fit an 80-column terminal, so clap
    /// never reflows them and copy-paste works.
    #[test]
    fn examples_fit_80_columns_and_are_never_reflowed() {
        fn walk(cmd: &clap::Command, path: &str, bad: &mut Vec<String>) {
            if let Some(h) = cmd.get_after_help() {
                for l in h.to_string().lines() {
                    if l.chars().count() > 78 {
                        bad.push(format!("{path}: {l}"));
                    }
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), bad);
            }
        }
        let mut bad = Vec::new();
        walk(&Cli::command(), "regent", &mut bad);
        assert!(bad.is_empty(), "lines over 78 columns:\n{}", bad.join("\n"));
    }

    /// Only `regent` itself has a version flag; subcommands do not.
    #[test]
    fn version_is_top_level_only() {
        let cmd = Cli::command();
        assert!(Cli::try_parse_from(["regent", "-V"])
            .is_err_and(|e| e.kind() == clap::error::ErrorKind::DisplayVersion));
        assert!(Cli::try_parse_from(["regent", "status", "-V"])
            .is_err_and(|e| e.kind() == clap::error::ErrorKind::UnknownArgument));
        assert!(cmd.get_subcommands().all(|s| s.get_version().is_none()));
    }
}
