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

/// How much of `url` the resource URL `base` covers: `Some(length of its
/// path)` when both have the same origin (scheme, host, port, default
/// ports as such) and `base`'s path is a prefix of `url`'s at a segment
/// boundary; the longest cover wins among resources.
pub fn covers(base: &str, url: &url::Url) -> Option<usize> {
    let base = url::Url::parse(base).ok()?;
    if base.origin() != url.origin() {
        return None;
    }
    let prefix = base.path().trim_end_matches('/');
    let path = url.path();
    let at_boundary = path == prefix
        || (path.starts_with(prefix) && path[prefix.len()..].starts_with('/'))
        || prefix.is_empty();
    at_boundary.then_some(prefix.len())
}

/// Whether `base` is at `url`'s origin, whatever its path: what a caller
/// that knows only the host (git without `credential.useHttpPath`) asks.
pub fn at_origin(base: &str, url: &url::Url) -> bool {
    url::Url::parse(base).is_ok_and(|b| b.origin() == url.origin())
}

#[cfg(test)]
mod tests {
    use super::covers;

    fn u(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    /// Same origin (default ports as such), a prefix at a segment boundary.
    #[test]
    fn a_url_is_covered_by_its_origin_and_a_path_prefix() {
        assert_eq!(
            covers("https://git.corp/org", &u("https://git.corp/org/repo.git")),
            Some(4)
        );
        assert_eq!(
            covers("https://git.corp/org/", &u("https://git.corp/org/repo.git")),
            Some(4)
        );
        assert_eq!(
            covers("https://git.corp/org", &u("https://git.corp/org")),
            Some(4)
        );
        assert_eq!(
            covers("https://git.corp", &u("https://git.corp:443/x")),
            Some(0)
        );
        assert_eq!(
            covers("https://git.corp/org", &u("https://git.corp/organisation")),
            None
        );
        assert_eq!(
            covers("https://git.corp/org", &u("http://git.corp/org")),
            None
        );
        assert_eq!(
            covers("https://git.corp/org", &u("https://git.corp:8443/org")),
            None
        );
        assert_eq!(
            covers("https://git.corp/org", &u("https://other.corp/org")),
            None
        );
        // A root URL is not under a path; asked for the host alone, it is.
        assert_eq!(covers("https://git.corp/org", &u("https://git.corp")), None);
        assert!(super::at_origin(
            "https://git.corp/org",
            &u("https://git.corp")
        ));
        assert!(!super::at_origin(
            "https://git.corp/org",
            &u("http://git.corp")
        ));
    }
}
