//! What a resource server's refusal leads to. A proxy or client reports the
//! 401 or 403 it got; the agent invalidates the refused token, rediscovers
//! where the server now points elsewhere (or first asks for auth), steps up
//! to the union of the scopes held and those challenged, and says what comes
//! next: retry, log in, or give up (asking again would not help).

use super::setup::Ask;
use super::{Agent, AgentError};
use crate::auth::Auth;
use crate::oauth::challenge::Challenge;
use crate::resource::Kind;
use regent_proto::{AuthConfig, ChallengeAnswer, ChallengeRequest, Next};

fn answer(next: Next, message: impl Into<String>) -> ChallengeAnswer {
    ChallengeAnswer {
        next,
        message: message.into(),
    }
}

impl Agent {
    /// `POST /v1/challenge`.
    pub async fn challenge(&self, req: ChallengeRequest) -> Result<ChallengeAnswer, AgentError> {
        let res = self.resolve(Some(&req.registry))?;
        if let Some(t) = &req.access_token {
            res.auth.invalidate(t);
        }
        let challenge = req
            .www_authenticate
            .as_deref()
            .and_then(Challenge::parse)
            .unwrap_or_default();
        let name = res.name.as_str();
        match (req.status, &res.auth) {
            (403, _) if challenge.insufficient_scope() => {
                let wanted = challenge.scope.clone().unwrap_or_default();
                if wanted.is_empty() {
                    return Ok(answer(
                        Next::Fail,
                        format!(
                            "{name} refused the token for lack of scope but named none it wants"
                        ),
                    ));
                }
                self.step_up(name, &res.auth, &wanted).await
            }
            (403, _) => Ok(answer(
                Next::Fail,
                format!(
                    "{name} refused access (403{}); a new token would not change that",
                    challenge.error.map(|e| format!(" {e}")).unwrap_or_default()
                ),
            )),
            (401, Auth::None) if res.kind == Kind::Mcp || res.kind == Kind::Registry => {
                // Added as it was; its first 401 starts the discovery now.
                let auth = self
                    .discovered(name, res.kind, &res.url, Ask::default(), Some(challenge))
                    .await?;
                self.set_auth(name, res.kind, auth).await?;
                Ok(answer(
                    Next::Login,
                    format!("{name} wants a login; log in with: regent login {name}"),
                ))
            }
            (401, Auth::OAuth(o)) => {
                if let Some(prm) = &challenge.resource_metadata {
                    if self.points_elsewhere(prm, &o.config.issuer).await {
                        // Another AS now: a new discovery and a new registration, never the old credentials.
                        let ask = Ask {
                            scopes: Vec::new(),
                            callback_port: o.config.callback_port,
                            assume_pkce_s256: o.config.assume_pkce_s256,
                            ..Ask::default()
                        };
                        let auth = self
                            .discovered(name, res.kind, &res.url, ask, Some(challenge))
                            .await?;
                        self.set_auth(name, res.kind, auth).await?;
                        return Ok(answer(
                            Next::Login,
                            format!("{name} moved to another authorization server; log in with: regent login {name}"),
                        ));
                    }
                }
                let wanted = challenge.scope.clone().unwrap_or_default();
                let held = held_scopes(&res.auth);
                if wanted.iter().any(|s| !held.contains(s)) {
                    return self.step_up(name, &res.auth, &wanted).await;
                }
                let st = o.grant.status(&o.target);
                if st.has_refresh_token {
                    Ok(answer(
                        Next::Retry,
                        "the refused token was dropped; a new one can be had",
                    ))
                } else {
                    Ok(answer(
                        Next::Login,
                        format!("{name} wants a new login: regent login {name}"),
                    ))
                }
            }
            (401, Auth::ClientCredentials(_) | Auth::Enterprise(_)) => Ok(answer(
                Next::Retry,
                "the refused token was dropped; a new one is minted without the user",
            )),
            (401, Auth::Bearer(b)) => Ok(answer(
                Next::Fail,
                format!(
                    "{name} refused the static token in {}; put a valid one there",
                    b.config.token_file.display()
                ),
            )),
            (401, _) => Ok(answer(
                Next::Fail,
                format!("{name} refused the request (401)"),
            )),
            (status, _) => Err(AgentError::Invalid(format!(
                "a challenge is a 401 or a 403, not {status}"
            ))),
        }
    }

    /// Asks for `wanted` on top of what is held: a new login (a user's) or a
    /// new token (client credentials, enterprise). Asking for what is held
    /// already would not help.
    async fn step_up(
        &self,
        name: &str,
        auth: &Auth,
        wanted: &[String],
    ) -> Result<ChallengeAnswer, AgentError> {
        let held = held_scopes(auth);
        if wanted.iter().all(|s| held.contains(s)) {
            return Ok(answer(
                Next::Fail,
                format!(
                    "{name} wants scope {}, which the current token already has: another login would not help",
                    wanted.join(" ")
                ),
            ));
        }
        let Some(mut config) = auth.config() else {
            return Ok(answer(Next::Fail, format!("{name} has no auth to step up")));
        };
        let res = self.resolve(Some(name))?;
        let (scopes, next) = match &mut config {
            AuthConfig::Oauth(c) => (&mut c.scopes, Next::Login),
            AuthConfig::ClientCredentials(c) => (&mut c.scopes, Next::Retry),
            AuthConfig::Enterprise(c) => (&mut c.scopes, Next::Retry),
            AuthConfig::Bearer(_) => {
                return Ok(answer(
                    Next::Fail,
                    format!("{name} wants more scope than its static token has"),
                ))
            }
        };
        // The union of the scopes held and those challenged (MCP SEP-2350); what
        // the AS added on its own (offline_access) is added again by the scope rule.
        for s in wanted {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        let union = scopes.join(" ");
        self.set_auth(name, res.kind, Some(config)).await?;
        tracing::info!(resource = name, scopes = %union, "stepping up to more scope");
        Ok(answer(
            next,
            match next {
                Next::Login => {
                    format!("{name} wants scope {union}; log in again with: regent login {name}")
                }
                _ => format!("{name} wants scope {union}; a new token is minted with it"),
            },
        ))
    }

    /// Whether the protected resource metadata at `prm` names another AS than `issuer`.
    async fn points_elsewhere(&self, prm: &str, issuer: &str) -> bool {
        match crate::oauth::resource::fetch(&self.ctx.idp, &[prm.to_string()]).await {
            Ok(Some((doc, _))) => doc
                .authorization_servers
                .first()
                .is_some_and(|a| a != issuer),
            _ => false,
        }
    }
}

/// The scopes a resource's current token has: those granted (or asked for,
/// where the AS did not say) and those configured.
fn held_scopes(auth: &Auth) -> Vec<String> {
    let mut held: Vec<String> = match auth.config() {
        Some(AuthConfig::Oauth(c)) => c.scopes,
        Some(AuthConfig::ClientCredentials(c)) => c.scopes,
        Some(AuthConfig::Enterprise(c)) => c.scopes,
        _ => Vec::new(),
    };
    if let Auth::OAuth(o) = auth {
        if let Some(granted) = o.grant.granted_scope() {
            for s in granted.split_whitespace() {
                if !held.iter().any(|h| h == s) {
                    held.push(s.to_string());
                }
            }
        }
    }
    held
}
