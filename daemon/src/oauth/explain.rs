//! What an IdP's OAuth error most likely means for the user, and the fix,
//! per step of a login or refresh. The error code is the IdP's; the advice
//! names the client id and the options that change what regent sends.

use super::OAuthError;

/// Where the IdP refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The device authorization request (before any code is shown).
    DeviceStart,
    /// Polling for the device login's tokens.
    DevicePoll,
    /// The browser's redirect back (an error instead of a code).
    Authorize,
    /// Exchanging the authorization code.
    CodeExchange,
    /// A refresh.
    Refresh,
}

impl Step {
    fn what(self) -> &'static str {
        match self {
            Step::DeviceStart | Step::DevicePoll => "device login",
            Step::Authorize | Step::CodeExchange => "browser login",
            Step::Refresh => "refresh",
        }
    }
}

/// The likely fix for OAuth error `code` (with the IdP's `description`) at
/// `step`, for client `client_id`: only where the error supports it. The
/// IdP's own words are always shown beside it.
pub fn fix(code: &str, description: Option<&str>, step: Step, client_id: &str) -> Option<String> {
    // `invalid_request` covers any malformed request; the redirect URI is the
    // likely cause only when the IdP says nothing else.
    let about_redirect = description.is_none_or(|d| d.to_ascii_lowercase().contains("redirect"));
    Some(match (code, step) {
        ("unauthorized_client", Step::DeviceStart | Step::DevicePoll) => format!(
            "client {client_id} may not use the device flow at this IdP: allow the device \
             authorization grant for it (Keycloak: \"OAuth 2.0 Device Authorization Grant\"; Okta: the \
             \"Device Authorization\" grant type; Entra ID: \"Allow public client flows\"), or log in \
             with the browser (regent login without --device)"
        ),
        ("unauthorized_client", _) => format!(
            "client {client_id} may not use this grant at this IdP: allow authorization code (with \
             PKCE) and refresh token for it"
        ),
        ("invalid_client", _) => format!(
            "the IdP does not accept client {client_id}: check --client-id; if the IdP registered \
             it with a secret (Google's \"installed app\" clients have one), give it with \
             --client-secret-file; a public native client needs none"
        ),
        ("invalid_scope", _) => "the IdP refuses a scope regent asked for: set the ones it grants \
             with --scopes (Entra ID wants e.g. api://APP/.default)"
            .to_string(),
        ("invalid_target", _) => "the IdP refuses the resource (or audience) regent sent: check \
             --resource / --audience (Entra ID v2 takes the API in the scope instead, \
             api://APP/.default, with no --resource)"
            .to_string(),
        ("access_denied", _) => {
            "the login was declined at the IdP (by you, or by a policy there)".to_string()
        }
        ("invalid_request", Step::Authorize) if about_redirect => format!(
            "the IdP refused the authorization request: check that client {client_id} allows \
             loopback redirect URIs on any port (RFC 8252), or fix one with --callback-port and \
             register http://127.0.0.1:PORT/callback"
        ),
        _ => return None,
    })
}

/// `e` as the user should read it: the resource, the step, the client, and the fix.
pub fn describe(e: &OAuthError, step: Step, resource: &str, client_id: &str) -> String {
    match e {
        OAuthError::Protocol { code, description } => {
            let base = format!("the {} of {resource} failed: {e}", step.what());
            match fix(code, description.as_deref(), step, client_id) {
                Some(f) => format!("{base}; {f}"),
                None => base,
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_refusal_names_the_client_and_the_switch() {
        let e = OAuthError::Protocol {
            code: "unauthorized_client".into(),
            description: None,
        };
        let m = describe(&e, Step::DeviceStart, "corp", "regent-cli");
        assert!(m.contains("device login of corp"), "{m}");
        assert!(
            m.contains("client regent-cli may not use the device flow"),
            "{m}"
        );
        assert!(fix("invalid_client", None, Step::Refresh, "x")
            .unwrap()
            .contains("--client-secret-file"));
        assert!(fix("server_error", None, Step::Refresh, "x").is_none());
    }

    /// The redirect-URI hint is given where the IdP's words allow it, and
    /// the IdP's words are always shown.
    #[test]
    fn an_invalid_request_gets_the_redirect_hint_only_where_it_fits() {
        let said = |d: Option<&str>| {
            let e = OAuthError::Protocol {
                code: "invalid_request".into(),
                description: d.map(str::to_string),
            };
            describe(&e, Step::Authorize, "corp", "regent-cli")
        };
        let m = said(Some("nonce required"));
        assert!(m.contains("nonce required"), "{m}");
        assert!(!m.contains("--callback-port"), "{m}");
        let m = said(Some(
            "redirect_uri did not match any client's registered redirect_uris",
        ));
        assert!(
            m.contains("did not match") && m.contains("--callback-port"),
            "{m}"
        );
        assert!(said(None).contains("--callback-port"));
    }
}
