//! Why an agent operation failed, typed; `crate::error` maps each to its
//! contract code.

use crate::config::ConfigError;
use crate::login::LoginError;
use crate::resource::Kind;
use crate::token::TokenError;

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No resource of that name.
    #[error("no registry, MCP server or API named {0}; see: regent status")]
    Unknown(String),
    /// No resource's URL covers the URL asked about.
    #[error("no registry, MCP server or API covers {0}; see: regent status")]
    NoneCovers(String),
    /// None (of the kind asked for) is configured, and the request named none.
    #[error("{}", none_configured(*.0))]
    NoneConfigured(Option<Kind>),
    /// Several are configured, and the request named none.
    #[error("several are configured ({}); name one", .0.join(", "))]
    Ambiguous(Vec<String>),
    /// The name is of another kind of resource than the operation is for.
    #[error("{name} is {} {}, not {} {}", is.article(), is.noun(), wanted.article(), wanted.noun())]
    WrongKind {
        /// The name.
        name: String,
        /// What it is.
        is: Kind,
        /// What was wanted.
        wanted: Kind,
    },
    /// The name is taken by another kind of resource (names are unique across kinds).
    #[error("the name {name} is taken by {} {}; names are unique across registries, MCP servers, APIs and IdPs", by.article(), by.noun())]
    Taken {
        /// The name.
        name: String,
        /// What has it.
        by: Kind,
    },
    /// The resource uses a machine identity (client credentials, workload
    /// identity): there is no user to log in.
    #[error("{0} uses {1}: there is no user login, its tokens are minted as needed")]
    NoUser(String, &'static str),
    /// The resource's tokens come from the login at an enterprise IdP.
    #[error("{name} gets its tokens through the enterprise IdP {idp}; log in there with: regent login {idp}")]
    ThroughIdp {
        /// The resource.
        name: String,
        /// Its IdP.
        idp: String,
    },
    /// The resource has no auth.
    #[error("{}", not_configured(.0, *.1))]
    NotConfigured(String, Kind),
    /// The resource uses a static token: nothing to log in or out of.
    #[error("{} {} uses a static token file; there is nothing to log in or out of", .1.noun(), .0)]
    StaticToken(String, Kind),
    /// A bad name or URL.
    #[error("{0}")]
    Invalid(String),
    /// The auth asked for cannot work (discovery failed, a bad value).
    #[error("{message}")]
    InvalidAuth {
        /// The resource.
        resource: String,
        /// Why.
        message: String,
    },
    /// No token could be served.
    #[error("{err}")]
    Token {
        /// The resource.
        resource: String,
        /// Why.
        err: TokenError,
    },
    /// A login could not be started.
    #[error("{err}")]
    Login {
        /// The resource.
        resource: String,
        /// Why.
        err: LoginError,
    },
    /// The resource shares its login; a logout would log out the others too.
    #[error("{resource} shares its login with {} (same issuer, client id and scopes), so a logout logs them all out; log out of all with: regent logout {resource} --all", .others.join(", "))]
    Shared {
        /// The resource.
        resource: String,
        /// Those sharing its login.
        others: Vec<String>,
    },
    /// The resource would share a login with resources on other origins, and
    /// the user has not said whether it may.
    #[error("{message}")]
    ConsentNeeded {
        /// The resource.
        resource: String,
        /// Who shares it, and both ways on.
        message: String,
    },
    /// A forwarded caller asked for what is not lent to it (the reason says why).
    #[error("{0}")]
    NotLent(String),
    /// A forwarded caller's resource needs a login, which only the user can do, there.
    #[error("{0} needs a login on the machine where the agent runs: there, run regent login {0}")]
    LoginElsewhere(String),
    /// The config file on disk does not parse: the change was refused.
    #[error("{0}; the change was refused, and the file left as it is: fix it first")]
    ConfigRefused(ConfigError),
    /// The config file could not be written (or reloaded).
    #[error("the config was not changed: {0}")]
    Config(ConfigError),
}

impl AgentError {
    /// The resource involved, if any.
    pub fn resource(&self) -> Option<&str> {
        match self {
            AgentError::Unknown(n)
            | AgentError::NotConfigured(n, _)
            | AgentError::StaticToken(n, _)
            | AgentError::LoginElsewhere(n) => Some(n),
            AgentError::InvalidAuth { resource, .. }
            | AgentError::Token { resource, .. }
            | AgentError::Login { resource, .. }
            | AgentError::ConsentNeeded { resource, .. }
            | AgentError::Shared { resource, .. } => Some(resource),
            _ => None,
        }
    }
}

fn not_configured(name: &str, kind: Kind) -> String {
    match kind {
        Kind::Mcp => format!(
            "MCP server {name} asks for no auth (it answered without a 401 when it was added), so \
             there is no token to give; if it wants one now, its first 401 through regent mcp \
             proxy sets auth up, or add it again with: regent mcp add {name} URL"
        ),
        Kind::Api => format!(
            "API {name} was added without auth; add it again with its auth (or none, to have \
             it asked): regent api add {name} URL --replace"
        ),
        _ => format!(
            "{} {name} has no auth configured; set it with: regent config set-registry-auth \
             --registry {name} --issuer URL --client-id ID",
            kind.noun()
        ),
    }
}

fn none_configured(kind: Option<Kind>) -> String {
    match kind {
        Some(Kind::Registry) => {
            "no registry is configured; add one with: regent registry add NAME URL".into()
        }
        Some(Kind::Mcp) => {
            "no MCP server is configured; add one with: regent mcp add NAME URL".into()
        }
        Some(Kind::Api) => "no API is configured; add one with: regent api add NAME URL".into(),
        Some(Kind::Idp) => {
            "no IdP is configured; add one with: regent idp add NAME --issuer URL --client-id ID"
                .into()
        }
        None => "nothing is configured; add a registry with: regent registry add NAME URL, \
                 or an MCP server with: regent mcp add NAME URL"
            .into(),
    }
}
