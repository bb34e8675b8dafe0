//! A resource: anything the agent holds tokens for (a registry, an MCP
//! server, an enterprise IdP), with its auth. Replaced as a whole when its
//! configuration changes; its grant is shared with every resource that
//! names the same one. What a name and a URL must be is the config's
//! (`config::values`).

use crate::auth::Auth;

/// The kinds of resources (the wire's own type).
pub use regent_proto::ResourceKind as Kind;

/// One resource.
pub struct Resource {
    /// Its name (unique across kinds).
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// Its base URL.
    pub url: String,
    /// How it authenticates, and its token source.
    pub auth: Auth,
}
