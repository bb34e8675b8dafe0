//! The agent API v1, one endpoint a type: its method, its path and what it
//! takes and answers, declared once. The agent's router, the async client
//! and the lean blocking path of `regent token` all use these, so none of
//! them can drift from the others.

use crate::types::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One endpoint of the agent API.
pub trait Endpoint {
    /// Its HTTP method.
    const METHOD: &'static str;
    /// Its path; `{name}`-style segments are parameters, filled in order.
    const PATH: &'static str;
    /// What it takes ([`NoBody`] for none).
    type Request: Serialize + DeserializeOwned;
    /// What it answers ([`NoContent`] for a 204).
    type Answer: Serialize + DeserializeOwned;
}

/// A request without a body.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoBody;

/// A `204 No Content` answer.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoContent;

macro_rules! endpoints {
    ($($(#[$doc:meta])* $name:ident: $method:literal $path:literal, $req:ty => $ans:ty;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl Endpoint for $name {
                const METHOD: &'static str = $method;
                const PATH: &'static str = $path;
                type Request = $req;
                type Answer = $ans;
            }
        )*
        /// Every endpoint's method and path, for checks over the whole API.
        pub const ALL: &[(&str, &str)] = &[$(($method, $path)),*];
    };
}

endpoints! {
    /// The agent's version, store and state.
    GetHealth: "GET" "/v1/health", NoBody => Health;
    /// Read the config file again (as SIGHUP does).
    Reload: "POST" "/v1/reload", NoBody => ReloadResponse;
    /// Which resource a name means (query: `name`, `kind`).
    GetResource: "GET" "/v1/resource", NoBody => RegistryStatus;
    /// The forwardable resources and the `regent ssh` sessions.
    GetForwards: "GET" "/v1/forward", NoBody => ForwardList;
    /// Make a resource forwardable, or not.
    PutForwardRule: "PUT" "/v1/forward/{name}", PutForward => RegistryStatus;
    /// A `regent ssh` session begins.
    OpenSession: "POST" "/v1/forward/sessions", ForwardSession => NoContent;
    /// A `regent ssh` session ended.
    CloseSession: "DELETE" "/v1/forward/sessions/{pid}", NoBody => NoContent;
    /// Every registry.
    GetRegistries: "GET" "/v1/registries", NoBody => RegistryList;
    /// Add or replace a registry.
    PutRegistryAt: "PUT" "/v1/registries/{name}", PutRegistry => RegistryStatus;
    /// Remove a registry (its stored tokens go, unless shared).
    DeleteRegistry: "DELETE" "/v1/registries/{name}", NoBody => NoContent;
    /// Set a registry's auth.
    PutAuth: "PUT" "/v1/registries/{name}/auth", AuthConfig => RegistryStatus;
    /// Remove a registry's auth.
    DeleteAuth: "DELETE" "/v1/registries/{name}/auth", NoBody => NoContent;
    /// A token.
    Token: "POST" "/v1/token", TokenRequest => TokenResponse;
    /// Drop a refused token.
    Invalidate: "POST" "/v1/token/invalidate", InvalidateRequest => NoContent;
    /// Every MCP server.
    GetMcp: "GET" "/v1/mcp", NoBody => McpList;
    /// Add or replace an MCP server.
    PutMcpAt: "PUT" "/v1/mcp/{name}", PutMcp => RegistryStatus;
    /// Remove an MCP server.
    DeleteMcp: "DELETE" "/v1/mcp/{name}", NoBody => NoContent;
    /// Every API (any other HTTPS API behind an AS).
    GetApis: "GET" "/v1/apis", NoBody => ApiList;
    /// Add or replace an API (its body as a registry's).
    PutApiAt: "PUT" "/v1/apis/{name}", PutRegistry => RegistryStatus;
    /// Remove an API.
    DeleteApi: "DELETE" "/v1/apis/{name}", NoBody => NoContent;
    /// Every enterprise IdP.
    GetIdps: "GET" "/v1/idps", NoBody => IdpList;
    /// Add or replace an enterprise IdP.
    PutIdpAt: "PUT" "/v1/idps/{name}", PutIdp => RegistryStatus;
    /// Remove an enterprise IdP.
    DeleteIdp: "DELETE" "/v1/idps/{name}", NoBody => NoContent;
    /// An ID token as the login at an enterprise IdP.
    HandOverIdToken: "POST" "/v1/idps/{name}/id-token", IdTokenRequest => NoContent;
    /// A resource server refused a request: what now.
    Challenge: "POST" "/v1/challenge", ChallengeRequest => ChallengeAnswer;
    /// Start (or join) a login.
    StartLogin: "POST" "/v1/login", LoginRequest => Login;
    /// Where a login stands (query: `wait_secs`).
    GetLogin: "GET" "/v1/login/{id}", NoBody => LoginStatus;
    /// Let go of a login (the last one cancels it).
    CancelLogin: "DELETE" "/v1/login/{id}", NoBody => NoContent;
    /// Log out (revoke and delete).
    Logout: "POST" "/v1/logout", LogoutRequest => LogoutResponse;
    /// Check what resources need, from where the agent runs (`regent doctor`).
    Doctor: "POST" "/v1/doctor", DoctorRequest => DoctorReport;
}

/// `E`'s path with its parameters filled in order, each percent-encoded so
/// no input can change the path's shape.
pub fn path<E: Endpoint>(params: &[&str]) -> String {
    let mut out = String::with_capacity(E::PATH.len() + 16);
    let mut params = params.iter();
    let mut rest = E::PATH;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').map_or(rest.len(), |c| open + c + 1);
        if let Some(p) = params.next() {
            segment(p, &mut out);
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

fn segment(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_filled_and_encoded() {
        assert_eq!(path::<Token>(&[]), "/v1/token");
        assert_eq!(path::<PutAuth>(&["corp"]), "/v1/registries/corp/auth");
        assert_eq!(path::<GetLogin>(&["a/b?c"]), "/v1/login/a%2Fb%3Fc");
    }

    #[test]
    fn every_endpoint_is_declared_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (m, p) in ALL {
            assert!(seen.insert((m, p)), "{m} {p} twice");
            assert!(p.starts_with("/v1/"), "{p}");
        }
    }
}
