//! The browser flow as a login: authorization code + PKCE with a one-shot
//! loopback callback on 127.0.0.1 (RFC 8252 §7.3).

use super::page::Page;
use super::{Ended, Entry, Flow, LoginError, Prepared};
use crate::oauth::code::{self, Authorization};
use crate::oauth::explain::{self, Step};
use crate::oauth::{OAuthError, Tokens};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use futures::FutureExt;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use oauth2::PkceCodeVerifier;
use regent_proto::{Login, LoginFlow, LoginState};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How long the callback page waits for the tokens to be stored before answering.
const PAGE_WAIT: Duration = Duration::from_secs(10);

/// Binds the loopback listener and builds the authorization URL.
pub async fn prepare(
    flow: Flow,
    resource: &str,
    callback_port: Option<u16>,
) -> Result<Prepared, LoginError> {
    let listener = bind(resource, callback_port).await?;
    let port = listener
        .local_addr()
        .map_err(|e| LoginError::Listen {
            port: callback_port.unwrap_or(0),
            reason: e.to_string(),
        })?
        .port();
    let auth = code::authorize(
        &flow.client,
        &flow.meta,
        &flow.scopes,
        &flow.target,
        &flow.also,
        port,
        flow.dpop_key.as_ref().map(|k| k.thumbprint()),
    )?;
    let login = Login {
        authorize_url: Some(auth.url.clone()),
        ..Login::new(LoginFlow::Browser, OffsetDateTime::now_utc())
    };
    let wait = flow.ctx.settings.login_timeout;
    let resource = resource.to_string();
    Ok(Prepared {
        login,
        wait,
        run: Box::new(move |entry| serve_callback(listener, auth, flow, resource, entry).boxed()),
    })
}

/// Binds 127.0.0.1 on the fixed port, or an ephemeral one. A busy fixed port
/// is an error that says so: IdPs that match redirect URIs exactly would
/// refuse any other port.
async fn bind(resource: &str, fixed: Option<u16>) -> Result<TcpListener, LoginError> {
    let port = fixed.unwrap_or(0);
    // A login of this registry that was just replaced may still be releasing the port.
    let mut tries = 0;
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 10 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(LoginError::PortBusy {
                    resource: resource.to_string(),
                    port,
                })
            }
            Err(e) => {
                return Err(LoginError::Listen {
                    port,
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// What the callback handler needs.
struct Callback {
    state: String,
    verifier: Mutex<Option<PkceCodeVerifier>>,
    redirect: oauth2::RedirectUrl,
    nonce: Option<String>,
    flow: Flow,
    resource: String,
    entry: Arc<Entry>,
    done: Mutex<Option<oneshot::Sender<Result<Tokens, Ended>>>>,
}

/// Serves the loopback listener until one valid callback ended the login.
async fn serve_callback(
    listener: TcpListener,
    auth: Authorization,
    flow: Flow,
    resource: String,
    entry: Arc<Entry>,
) -> Result<Tokens, Ended> {
    let (tx, mut rx) = oneshot::channel();
    let cb = Arc::new(Callback {
        state: auth.state.secret().clone(),
        verifier: Mutex::new(Some(auth.verifier)),
        redirect: auth.redirect,
        nonce: auth.nonce,
        flow,
        resource,
        entry,
        done: Mutex::new(Some(tx)),
    });
    let app = Router::new()
        .route("/callback", get(callback))
        .fallback(|| async {
            Page::Rejected {
                status: StatusCode::NOT_FOUND,
                reason: "regent's login listener serves only its callback.".into(),
            }
        })
        .with_state(cb);
    loop {
        tokio::select! {
            outcome = &mut rx => {
                // Dropping the listener here closes the port: the callback is one-shot.
                return outcome.unwrap_or_else(|_| Err(Ended::Failed("the callback handler went away".into())));
            }
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
                tokio::spawn(conn);
            }
        }
    }
}

fn param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn callback(State(cb): State<Arc<Callback>>, RawQuery(query): RawQuery) -> Page {
    let query = query.unwrap_or_default();
    let state_ok = param(&query, "state")
        .is_some_and(|s| crate::security::constant_time_eq(s.as_bytes(), cb.state.as_bytes()));
    if !state_ok {
        // Not ours (a stale tab, another login, a forged link): the login stays pending.
        return Page::Rejected {
            status: StatusCode::BAD_REQUEST,
            reason: "The state of this callback does not match the login in progress. \
                     If you started a new login, finish it in its own tab."
                .into(),
        };
    }
    let Some(verifier) = cb.verifier.lock().unwrap().take() else {
        return Page::Rejected {
            status: StatusCode::BAD_REQUEST,
            reason: "This login has already been completed; a callback is accepted once.".into(),
        };
    };
    let outcome = outcome(&cb, &query, verifier).await;
    let failed = outcome.as_ref().err().map(|e| match e {
        Ended::Failed(why) => why.clone(),
        Ended::Expired => "the login expired".into(),
    });
    if let Some(tx) = cb.done.lock().unwrap().take() {
        let _ = tx.send(outcome);
    }
    if let Some(reason) = failed {
        return Page::Failure {
            registry: cb.resource.clone(),
            reason,
        };
    }
    // Answer once the tokens are stored (or the login ended otherwise).
    let mut rx = cb.entry.status.subscribe();
    let _ = tokio::time::timeout(PAGE_WAIT, rx.wait_for(|s| s.status.is_final())).await;
    let status = rx.borrow().clone();
    match status.status {
        LoginState::Succeeded => Page::Success {
            registry: cb.resource.clone(),
            account: status.account,
        },
        _ => Page::Failure {
            registry: cb.resource.clone(),
            reason: status
                .error
                .unwrap_or_else(|| "the tokens could not be stored".into()),
        },
    }
}

/// Checks the authorization response (RFC 6749 §4.1.2, RFC 9207) and exchanges the code.
async fn outcome(cb: &Callback, query: &str, verifier: PkceCodeVerifier) -> Result<Tokens, Ended> {
    let meta = &cb.flow.meta;
    let iss = param(query, "iss");
    match &iss {
        Some(i) if *i != meta.issuer => {
            return Err(Ended::Failed(format!(
                "the authorization response names issuer {i:?}, not {:?} (RFC 9207): refused as a possible mix-up attack",
                meta.issuer
            )))
        }
        None if meta.authorization_response_iss_parameter_supported => {
            // What it says cannot be trusted, but may help: shown as unverified text.
            let said = param(query, "error")
                .map(|e| {
                    format!(
                        "; it said (unverified): {}",
                        crate::oauth::grant::shorten(&e)
                    )
                })
                .unwrap_or_default();
            return Err(Ended::Failed(format!(
                "the authorization response has no iss parameter, which this IdP promises (RFC 9207): refused{said}"
            )));
        }
        _ => {}
    }
    if let Some(error) = param(query, "error") {
        let e = OAuthError::Protocol {
            code: crate::oauth::grant::shorten(&error),
            description: param(query, "error_description")
                .map(|d| crate::oauth::grant::shorten(&d)),
        };
        return Err(Ended::Failed(explain::describe(
            &e,
            Step::Authorize,
            &cb.resource,
            &cb.flow.client.id,
        )));
    }
    let Some(code) = param(query, "code") else {
        return Err(Ended::Failed(
            "the callback carries neither a code nor an error".into(),
        ));
    };
    let flow = &cb.flow;
    // The callback is served by its own task: the login's DPoP key is given here.
    let exchange = code::exchange(
        &flow.ctx.idp,
        &flow.client,
        meta,
        &flow.target,
        code,
        verifier,
        &cb.redirect,
        cb.nonce.as_deref(),
    );
    crate::oauth::http::with_dpop(flow.dpop_key.clone(), exchange)
        .await
        .map_err(|e| {
            Ended::Failed(match e {
                OAuthError::InvalidGrant(why) => {
                    format!("the IdP refused the authorization code ({why})")
                }
                other => {
                    explain::describe(&other, Step::CodeExchange, &cb.resource, &flow.client.id)
                }
            })
        })
}
