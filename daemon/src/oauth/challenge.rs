//! `WWW-Authenticate` challenges (RFC 6750 §3, RFC 9728 §5.1): the
//! `Bearer` scheme's parameters, in whatever order a server writes them.

use std::collections::BTreeMap;

/// A `Bearer` challenge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Challenge {
    /// `error` (`invalid_token`, `insufficient_scope`, ...).
    pub error: Option<String>,
    /// `scope`, split on spaces.
    pub scope: Option<Vec<String>>,
    /// `resource_metadata` (RFC 9728): where the protected resource metadata is.
    pub resource_metadata: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
}

impl Challenge {
    /// The `Bearer` challenge among every `WWW-Authenticate` value of an
    /// answer (a server may send others, such as `Basic`, first).
    pub fn find(values: &[String]) -> Option<Challenge> {
        values.iter().find_map(|v| Challenge::parse(v))
    }

    /// The `Bearer` challenge of a header, if it has one.
    pub fn parse(header: &str) -> Option<Challenge> {
        let params = bearer_params(header)?;
        let get = |k: &str| params.get(k).cloned();
        Some(Challenge {
            error: get("error"),
            scope: get("scope").map(|s| s.split_whitespace().map(str::to_string).collect()),
            resource_metadata: get("resource_metadata"),
            error_description: get("error_description"),
        })
    }

    /// Whether it asks for more scope (a 403 `insufficient_scope`).
    pub fn insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// The auth-params of the `Bearer` challenge in `header` (names lowercased).
/// Several challenges may share one header (`Basic realm="x", Bearer ...`).
fn bearer_params(header: &str) -> Option<BTreeMap<String, String>> {
    let mut rest = header.trim();
    let mut in_bearer = false;
    let mut found = false;
    let mut params = BTreeMap::new();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', ',', '\t']);
        let token_end = rest
            .find(|c: char| c == '=' || c == ',' || c.is_whitespace())
            .unwrap_or(rest.len());
        let token = &rest[..token_end];
        let after = rest[token_end..].trim_start();
        if token.is_empty() {
            break;
        }
        if let Some(value_part) = after.strip_prefix('=') {
            // An auth-param: name=token or name="quoted".
            let value_part = value_part.trim_start();
            let (value, remaining) = if let Some(q) = value_part.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = q.char_indices();
                let mut end = q.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                out.push(n);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => out.push(c),
                    }
                }
                (out, &q[end.min(q.len())..])
            } else {
                let end = value_part.find(',').unwrap_or(value_part.len());
                (value_part[..end].trim().to_string(), &value_part[end..])
            };
            if in_bearer {
                params.entry(token.to_ascii_lowercase()).or_insert(value);
            }
            rest = remaining;
        } else {
            // A scheme name starts a new challenge.
            in_bearer = token.eq_ignore_ascii_case("bearer");
            found |= in_bearer;
            rest = after;
        }
    }
    found.then_some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_in_any_order_with_quotes_and_spaces() {
        let c = Challenge::parse(
            r#"Bearer error="insufficient_scope", scope="mcp:basic mcp:write", resource_metadata="http://localhost:1/.well-known/oauth-protected-resource/mcp""#,
        )
        .unwrap();
        assert!(c.insufficient_scope());
        assert_eq!(c.scope.unwrap(), vec!["mcp:basic", "mcp:write"]);
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("http://localhost:1/.well-known/oauth-protected-resource/mcp")
        );
        let c = Challenge::parse(r#"Bearer scope="a", resource_metadata="u""#).unwrap();
        assert_eq!(c.error, None);
        assert_eq!(c.scope.unwrap(), vec!["a"]);
        let c = Challenge::parse(
            r#"bearer error=invalid_token, error_description="a \"quoted\" word""#,
        )
        .unwrap();
        assert_eq!(c.error.as_deref(), Some("invalid_token"));
        assert_eq!(c.error_description.as_deref(), Some(r#"a "quoted" word"#));
        let c = Challenge::parse(r#"Basic realm="x", Bearer realm="y", scope="s""#).unwrap();
        assert_eq!(c.scope.unwrap(), vec!["s"]);
        assert_eq!(Challenge::parse("Bearer").unwrap(), Challenge::default());
        assert!(Challenge::parse(r#"Basic realm="x""#).is_none());
        assert!(Challenge::parse("").is_none());
    }

    #[test]
    fn the_bearer_challenge_is_found_in_any_header_and_quoted_commas_hold() {
        let values = vec![
            r#"Basic realm="a, b""#.to_string(),
            r#"Bearer error="insufficient_scope", scope="read, write", error_description="x, y""#
                .to_string(),
        ];
        let c = Challenge::find(&values).unwrap();
        assert!(c.insufficient_scope());
        assert_eq!(c.scope.unwrap(), vec!["read,", "write"]);
        assert_eq!(c.error_description.as_deref(), Some("x, y"));
        assert!(Challenge::find(&values[..1]).is_none());
    }
}
