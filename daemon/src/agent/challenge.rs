//! What a resource server's refusal leads to. A proxy or client reports the
//! 401 or 403 it got (every `WWW-Authenticate` value, and which refusal of
//! the request it is); the agent invalidates the refused token, rediscovers
//! where the server now points elsewhere (or first asks for auth), steps up
//! to the union of the scopes held and those challenged, and says what comes
//! next: retry, log in, or give up (asking again would not help). What a
//! second refusal means is decided here too, and nowhere else.

use super::setup::Ask;
use super::{Agent, AgentError, Caller};
use crate::auth::Auth;
use crate::oauth::challenge::Challenge;
use crate::resource::{Kind, Resource};
use regent_proto::{AuthConfig, ChallengeAnswer, ChallengeRequest, Next};

fn answer(next: Next, message: impl Into<String>) -> ChallengeAnswer {
    let message = message.into();
    ChallengeAnswer {
        next,
        reason: message.clone(),
        message,
        fresh_login: false,
    }
}

/// A `login` answer: `reason`, and the command a person would run.
fn login(reason: String, command: String) -> ChallengeAnswer {
    ChallengeAnswer {
        next: Next::Login,
        message: format!("{reason}; log in with: {command}"),
        reason,
        fresh_login: false,
    }
}

/// Refusals of one request answered with anything but `fail`: past this,
/// another token or login would only loop (MCP asks clients for a limit).
const MAX_ATTEMPTS: u32 = 3;

impl Agent {
    /// `POST /v1/challenge`. A forwarded caller's refusal can only drop the
    /// refused token (and get a fresh one where no user is needed): a
    /// login, a step-up or a rediscovery is the user's, on this machine.
    pub async fn challenge(
        &self,
        caller: Caller,
        req: ChallengeRequest,
    ) -> Result<ChallengeAnswer, AgentError> {
        let res = self.resolve_as(caller, Some(&req.registry))?;
        if let Some(t) = &req.access_token {
            res.auth.invalidate(t);
        }
        let attempt = req.attempt.max(1);
        if !matches!(req.status, 401 | 403) {
            return Err(AgentError::Invalid(format!(
                "a challenge is a 401 or a 403, not {}",
                req.status
            )));
        }
        // DPoP (RFC 9449 §9): the server's nonce goes in the next proof; a
        // refusal that asks for one is answered by sending again with it.
        if let Some(n) = &req.dpop_nonce {
            self.ctx.dpop_nonces.put(&res.url, n);
        }
        let dpop_error = req.www_authenticate.iter().find_map(|v| {
            let v = v.trim_start();
            let scheme = v.split_whitespace().next()?;
            scheme.eq_ignore_ascii_case("dpop").then(|| {
                ["use_dpop_nonce", "invalid_dpop_proof"]
                    .into_iter()
                    .find(|e| v.contains(e))
            })?
        });
        if res.auth.dpop_key().is_some() {
            match dpop_error {
                Some("use_dpop_nonce") if req.dpop_nonce.is_some() => {
                    let first = answer(
                        Next::Retry,
                        format!("{} wants a DPoP nonce; sending again with it", res.name),
                    );
                    return Ok(repeated(&res, attempt, first, false));
                }
                Some("invalid_dpop_proof") => {
                    return Ok(answer(
                        Next::Fail,
                        format!(
                            "{} refused the DPoP proof (invalid_dpop_proof): check that this \
                             machine's clock is right, and that the URL regent sends to is the one \
                             the server sees (a proxy in between may change it)",
                            res.name
                        ),
                    ));
                }
                _ => {}
            }
        }
        if let Caller::Forwarded(_) = caller {
            let name = &res.name;
            let elsewhere = || {
                answer(
                    Next::Fail,
                    format!(
                        "{name} refused the token ({}); a new login or more scope is needed, which \
                         happens on the machine where the agent runs: there, run regent login {name}",
                        req.status
                    ),
                )
            };
            let first = if req.status == 401 && res.auth.mints_without_user() {
                answer(
                    Next::Retry,
                    "the refused token was dropped; a new one can be had",
                )
            } else {
                elsewhere()
            };
            let a = repeated(&res, attempt, first, true);
            return Ok(if a.next == Next::Login {
                elsewhere()
            } else {
                a
            });
        }
        let challenge = Challenge::find(&req.www_authenticate).unwrap_or_default();
        let (first, only_fresh) = self
            .first_refusal(&res, req.status, challenge, req.access_token.as_deref())
            .await?;
        Ok(repeated(&res, attempt, first, only_fresh))
    }

    /// What a refusal leads to, as if it were the request's first; and
    /// whether a `retry` only means "a fresh token can be minted" (nothing
    /// else changed, so a second refusal of a fresh token means more).
    async fn first_refusal(
        &self,
        res: &Resource,
        status: u16,
        challenge: Challenge,
        refused: Option<&str>,
    ) -> Result<(ChallengeAnswer, bool), AgentError> {
        let name = res.name.as_str();
        let changed = |a: ChallengeAnswer| Ok((a, false));
        match (status, &res.auth) {
            (403, _) if challenge.insufficient_scope() => {
                let mut wanted = challenge.scope.clone().unwrap_or_default();
                if wanted.is_empty() {
                    // Named none (the Python SDK's required_scopes): the scopes its
                    // metadata lists, as the SDKs' own clients do.
                    wanted = self
                        .scopes_supported(res, challenge.resource_metadata.as_deref())
                        .await;
                }
                if wanted.is_empty() {
                    return changed(answer(
                        Next::Fail,
                        format!(
                            "{name} refused the token for lack of scope but named none it wants,                              and its metadata lists none"
                        ),
                    ));
                }
                changed(self.step_up(name, &res.auth, &wanted).await?)
            }
            (403, _) => changed(answer(
                Next::Fail,
                format!(
                    "{name} refused access (403{}); a new token would not change that",
                    challenge.error.map(|e| format!(" {e}")).unwrap_or_default()
                ),
            )),
            (401, Auth::None) if res.kind != Kind::Idp => {
                // Added as it was; its first 401 starts the discovery now.
                let auth = self
                    .discovered(name, res.kind, &res.url, Ask::default(), Some(challenge))
                    .await?;
                self.set_auth(name, res.kind, auth).await?;
                changed(login(
                    format!("{name} wants a login"),
                    format!("regent login {name}"),
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
                            dpop: o.config.dpop,
                            ..Ask::default()
                        };
                        let auth = self
                            .discovered(name, res.kind, &res.url, ask, Some(challenge))
                            .await?;
                        self.set_auth(name, res.kind, auth).await?;
                        return changed(login(
                            format!("{name} moved to another authorization server"),
                            format!("regent login {name}"),
                        ));
                    }
                }
                let wanted = challenge.scope.clone().unwrap_or_default();
                let held = held_scopes(&res.auth);
                if wanted.iter().any(|s| !held.contains(s)) {
                    return changed(self.step_up(name, &res.auth, &wanted).await?);
                }
                if res.auth.mints_without_user() {
                    Ok((
                        answer(
                            Next::Retry,
                            "the refused token was dropped; a new one can be had",
                        ),
                        true,
                    ))
                } else {
                    changed(login(
                        format!("{name} refused the token and wants a new login"),
                        format!("regent login {name}"),
                    ))
                }
            }
            (401, Auth::ClientCredentials(_) | Auth::Enterprise(_)) => Ok((
                answer(
                    Next::Retry,
                    "the refused token was dropped; a new one is minted without the user",
                ),
                true,
            )),
            (401, Auth::Bearer(b)) if b.rotated_since(refused) => Ok((
                answer(
                    Next::Retry,
                    format!(
                        "the token file {} holds another token now; sending that one",
                        b.config.token_file.display()
                    ),
                ),
                false,
            )),
            (401, Auth::Bearer(b)) => changed(answer(
                Next::Fail,
                format!(
                    "{name} refused the static token in {}; put a valid one there",
                    b.config.token_file.display()
                ),
            )),
            (401, _) => changed(answer(
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
            AuthConfig::Workload(c) => (&mut c.scopes, Next::Retry),
            AuthConfig::Bearer(_) => {
                return Ok(answer(
                    Next::Fail,
                    format!("{name} wants more scope than its static token has"),
                ))
            }
        };
        // The union of the scopes held (asked for, and granted: a default login's
        // `openid` too) and those challenged (MCP SEP-2350); what the AS adds on
        // its own (offline_access) is added again by the scope rule.
        for s in held.iter().filter(|s| *s != "offline_access") {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        for s in wanted {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        let union = scopes.join(" ");
        self.set_auth(name, res.kind, Some(config)).await?;
        tracing::info!(resource = name, scopes = %union, "stepping up to more scope");
        Ok(match next {
            Next::Login => login(
                format!("{name} wants scope {union}, which needs a new login"),
                format!("regent login {name}"),
            ),
            _ => answer(
                next,
                format!("{name} wants scope {union}; a new token is minted with it"),
            ),
        })
    }

    /// The `scopes_supported` of the resource's protected resource metadata
    /// (at `prm`, else the well-known URLs); none where it has none, or the
    /// document speaks for another resource.
    async fn scopes_supported(&self, res: &Resource, prm: Option<&str>) -> Vec<String> {
        let Ok(urls) = crate::oauth::resource::candidates(&res.url, prm) else {
            return Vec::new();
        };
        match crate::oauth::resource::fetch(&self.ctx.idp, &urls).await {
            Ok(Some((doc, _))) if crate::oauth::resource::identifies(&doc.resource, &res.url) => {
                doc.scopes_supported.unwrap_or_default()
            }
            _ => Vec::new(),
        }
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

/// The answer to the `attempt`-th refusal of one request, given what the
/// first would get: a fresh token refused again is not retried (a user's
/// login may help; a machine's token would only be refused once more), and
/// after [`MAX_ATTEMPTS`] nothing more is tried.
fn repeated(
    res: &Resource,
    attempt: u32,
    first: ChallengeAnswer,
    only_fresh: bool,
) -> ChallengeAnswer {
    let name = &res.name;
    match first.next {
        Next::Fail | Next::Unknown => first,
        _ if attempt > MAX_ATTEMPTS => answer(
            Next::Fail,
            format!(
                "{name} still refuses after {MAX_ATTEMPTS} attempts to authorize; giving up: {}",
                first.message
            ),
        ),
        Next::Retry if only_fresh && attempt >= 2 => match res.auth {
            Auth::OAuth(_) => ChallengeAnswer {
                fresh_login: true,
                ..login(
                    format!("{name} refused a freshly minted token too; a new login may help"),
                    format!("regent login {name} --force"),
                )
            },
            _ => answer(
                Next::Fail,
                format!(
                    "{name} refuses freshly minted tokens too (401 again): it does not accept what its \
                     authorization server issues for this client; check the server's expected \
                     audience and issuer, and the client's access at the authorization server"
                ),
            ),
        },
        _ => first,
    }
}

/// The scopes a resource's current token has: those granted (or asked for,
/// where the AS did not say) and those configured.
fn held_scopes(auth: &Auth) -> Vec<String> {
    let mut held: Vec<String> = match auth.config() {
        Some(AuthConfig::Oauth(c)) => c.scopes,
        Some(AuthConfig::ClientCredentials(c)) => c.scopes,
        Some(AuthConfig::Enterprise(c)) => c.scopes,
        Some(AuthConfig::Workload(c)) => c.scopes,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ClientCredentials;
    use regent_proto::{ClientCredentialsConfig, TokenAuthMethod};

    fn machine() -> Resource {
        Resource {
            name: "svc".into(),
            kind: Kind::Mcp,
            url: "https://svc.example/mcp".into(),
            auth: Auth::ClientCredentials(ClientCredentials::new(ClientCredentialsConfig {
                issuer: "https://as.example".into(),
                client_id: "c".into(),
                method: TokenAuthMethod::ClientSecretBasic,
                scopes: Vec::new(),
                resource: None,
                metadata_url: None,
                dpop: Default::default(),
                resource_dpop: false,
            })),
        }
    }

    fn retry() -> ChallengeAnswer {
        answer(Next::Retry, "the refused token was dropped")
    }

    #[test]
    fn a_machine_token_refused_fresh_is_not_retried_and_says_why() {
        let res = machine();
        assert_eq!(repeated(&res, 1, retry(), true).next, Next::Retry);
        let second = repeated(&res, 2, retry(), true);
        assert_eq!(second.next, Next::Fail);
        assert!(
            second.message.contains("refuses freshly minted tokens"),
            "{}",
            second.message
        );
        // A retry that changed something (more scope) may follow a refusal.
        assert_eq!(repeated(&res, 2, retry(), false).next, Next::Retry);
    }

    #[test]
    fn nothing_is_tried_past_the_limit() {
        let res = machine();
        let login = answer(Next::Login, "x wants a login");
        assert_eq!(
            repeated(&res, MAX_ATTEMPTS, login.clone(), false).next,
            Next::Login
        );
        let past = repeated(&res, MAX_ATTEMPTS + 1, login, false);
        assert_eq!(past.next, Next::Fail);
        assert!(past.message.contains("still refuses"), "{}", past.message);
        let fail = answer(Next::Fail, "no");
        assert_eq!(repeated(&res, 1, fail.clone(), false), fail);
    }
}
