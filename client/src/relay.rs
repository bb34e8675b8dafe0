//! The relay `regent ssh` starts on the remote side for the session's life.
//!
//! Every connection to a forwarded socket makes sshd open a channel to the
//! ssh client, and the client a connection to the agent: a round trip over
//! the session before the request's own, for each helper a tool runs. The
//! relay listens beside the forward (`regent-fwd-<id>.relay`, 0600), keeps
//! its connections to the agent open between requests, and answers a token
//! (or a URL's resource) it was given less than [`FRESH`] ago again, while
//! the token stays valid as long as asked: a tool that runs a helper per
//! request (kubectl, git, cargo) costs the session one round trip per
//! burst, not one or two per call. The agent's forwarding rules still
//! decide every answer: a resource denied there, or a logout, reaches the
//! remote side within [`FRESH`]; a token reported refused (invalidate,
//! challenge) empties the relay's memory at once. DPoP proofs are never
//! kept (each is for one request).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1 as client;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1 as server;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use regent_proto::api::{Endpoint, GetResource, Token};
use regent_proto::{ErrorBody, ErrorCode, ErrorDetail, TokenRequest, TokenResponse};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

/// How long an unused connection to the agent is kept. The agent holds a
/// forwarded connection that long and a minute more, so the relay lets go
/// first and never sends on a connection the agent is closing.
pub const IDLE: Duration = Duration::from_secs(240);
/// How long an answer is given again without asking the agent: the most a
/// change there (a deny, a logout) takes to reach the remote side.
pub const FRESH: Duration = Duration::from_secs(15);
/// Most answers kept (one per resource and way of asking, in practice).
const MAX_KEPT: usize = 64;
/// Largest answer kept (a token's is well under 16 KiB).
const MAX_KEPT_ANSWER: usize = 64 * 1024;
/// Largest request body passed on (the agent's own limit).
const MAX_REQUEST: usize = 64 * 1024;
/// Largest answer passed back; the agent's are JSON of a few KiB.
const MAX_ANSWER: usize = 4 * 1024 * 1024;
/// Most client connections served at once.
const MAX_CONNECTIONS: usize = 256;
/// Most idle connections to the agent kept (concurrent helpers open more;
/// the extra ones close when done).
const MAX_IDLE: usize = 4;
/// How often the relay looks whether its forward is still there.
const LOOK: Duration = Duration::from_secs(60);
/// A client must send its request headers within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The forward is not a socket this user owns with mode 0600.
    #[error("{0} is not a forwarded agent of this user (a socket of ours, mode 0600)")]
    NotOurs(PathBuf),
    /// The relay's socket could not be made.
    #[error("cannot listen on {0}: {1}")]
    Bind(PathBuf, std::io::Error),
    /// Signals could not be watched.
    #[error("cannot watch signals: {0}")]
    Signals(std::io::Error),
}

/// Relays `forward`'s agent on `forward`'s relay path until the session
/// ends: a signal, the parent shell gone, or the forward gone. The relay's
/// socket is removed on the way out.
pub async fn run(forward: &Path) -> Result<(), RelayError> {
    // The shell that started the relay may die without running its traps
    // (SIGKILL): the relay goes with it.
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    // It holds lent tokens for a while: no core file, no ptrace but root's.
    // SAFETY: prctl with PR_SET_DUMPABLE takes a flag only.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0) };
    if !crate::locate::is_ours(forward) {
        return Err(RelayError::NotOurs(forward.to_path_buf()));
    }
    let path = crate::locate::relay_of(forward);
    let listener = bind(&path)?;
    let _remove = RemoveOnDrop(path.clone());
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(RelayError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(RelayError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RelayError::Signals)?;
    let upstream = Arc::new(Upstream {
        path: forward.to_path_buf(),
        idle: Mutex::new(Vec::new()),
        answers: Mutex::new(Answers::default()),
        gone: Notify::new(),
    });
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let uid = regent_proto::paths::current_uid();
    // The session's shell removes the forward when it ends; should the relay
    // miss that (its shell killed before it asked for the parent's death
    // signal), it sees the forward gone here.
    let mut look = tokio::time::interval(LOOK);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = term.recv() => return Ok(()),
            _ = hup.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = upstream.gone.notified() => return Ok(()),
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => {
                    // Out of descriptors, most likely: let some close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = look.tick() => {
                if !crate::locate::is_ours(forward) {
                    return Ok(());
                }
                continue;
            }
            _ = term.recv() => return Ok(()),
            _ = hup.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = upstream.gone.notified() => return Ok(()),
        };
        // 0600 keeps others out; root aside, a peer not ours is dropped.
        if stream.peer_cred().map(|c| c.uid()).ok() != Some(uid) {
            continue;
        }
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let upstream = upstream.clone();
                async move { Ok::<_, std::convert::Infallible>(upstream.pass(req).await) }
            });
            let _ = server::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

/// Binds `path` as 0600 from the start: bound in a directory of its own
/// (0700) and moved into place, so no other user can connect in the moment
/// before the chmod (and the process's umask is left alone).
fn bind(path: &Path) -> Result<UnixListener, RelayError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let fail = |e| RelayError::Bind(path.to_path_buf(), e);
    let private = path.with_extension("relay-new");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(fail)?;
    let staged = private.join("s");
    let bound = std::os::unix::net::UnixListener::bind(&staged).and_then(|l| {
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        // In /tmp (sticky) a name another user took is not replaced.
        std::fs::rename(&staged, path)?;
        Ok(l)
    });
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    let listener = bound.map_err(fail)?;
    listener
        .set_nonblocking(true)
        .and_then(|()| UnixListener::from_std(listener))
        .map_err(fail)
}

/// Removes the relay's socket when the relay ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The forwarded agent, the connections to it kept between requests, and
/// its recent answers.
struct Upstream {
    path: PathBuf,
    idle: Mutex<Vec<(Instant, client::SendRequest<Full<Bytes>>)>>,
    answers: Mutex<Answers>,
    /// Told when the forward stops answering: the session is over.
    gone: Notify,
}

impl Upstream {
    /// Passes one request to the agent and its answer back.
    async fn pass(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_REQUEST).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error(
                    ErrorCode::PayloadTooLarge,
                    "the request body is over 64 KiB".into(),
                )
            }
        };
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = Request::builder().method(parts.method.clone()).uri(target);
        for (name, value) in parts.headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
            request = request.header(name, value);
        }
        let request = request
            .header(hyper::header::HOST, HeaderValue::from_static("agent"))
            .body(Full::new(body.clone()));
        let key = Key {
            method: parts.method.clone(),
            target: target.to_string(),
            body: body.clone(),
        };
        // What the answer may be kept as: how long its token must stay valid
        // when given again, and the memory's generation when it was asked.
        let keep = match keepable(&key) {
            Some(min_valid) => {
                if let Some(answer) = self.recent(&key, min_valid) {
                    return answer;
                }
                Some(self.answers.lock().expect("never poisoned").generation)
            }
            None => {
                // A token reported refused (invalidate, challenge): nothing
                // given before is given again, nor what is on its way now.
                if parts.method != hyper::Method::GET && key.target != Token::PATH {
                    self.answers.lock().expect("never poisoned").forget();
                }
                None
            }
        };
        let asked = Instant::now();
        let Ok(request) = request else {
            return error(ErrorCode::InvalidRequest, "a malformed request".into());
        };
        let answer = match self.send(request, true).await {
            Ok(a) => Ok(a),
            // A kept connection closed before the request went out (the agent
            // restarted, or let it go): once more, on a new one. Nothing
            // that may have reached the agent is sent twice.
            Err(Failed::Unsent(again)) => self.send(*again, false).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok((parts, body)) => {
                if let Some(generation) = keep.filter(|_| parts.status == StatusCode::OK) {
                    self.remember(key, generation, asked, &parts.headers, &body);
                }
                Response::from_parts(parts, Full::new(body))
            }
            Err(e) => {
                if let Failed::New(Some(kind)) = e {
                    if matches!(
                        kind,
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) {
                        self.gone.notify_one();
                    }
                }
                error(
                    ErrorCode::AgentUnavailable,
                    format!(
                        "the agent forwarded at {} does not answer",
                        self.path.display()
                    ),
                )
            }
        }
    }

    /// Sends `req` on a kept connection (where `reuse` and one is there) or
    /// a new one, and reads the whole answer before the connection is kept
    /// again, so the next request finds it.
    async fn send(
        &self,
        req: Request<Full<Bytes>>,
        reuse: bool,
    ) -> Result<(hyper::http::response::Parts, Bytes), Failed> {
        let (mut sender, kept) = match reuse.then(|| self.take()).flatten() {
            Some(s) => (s, true),
            None => (self.connect().await?, false),
        };
        let resp = match sender.ready().await {
            Ok(()) => sender.try_send_request(req).await,
            Err(_) if kept => return Err(Failed::Unsent(Box::new(req))),
            Err(_) => return Err(Failed::New(None)),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(mut e) => match e.take_message() {
                Some(req) if kept => return Err(Failed::Unsent(Box::new(req))),
                _ => return Err(Failed::New(None)),
            },
        };
        let (mut parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map_err(|_| Failed::New(None))?
            .to_bytes();
        let reusable = !parts
            .headers
            .get(hyper::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        if reusable {
            self.keep(sender);
        }
        let drop: Vec<HeaderName> = parts
            .headers
            .keys()
            .filter(|n| hop_by_hop(n))
            .cloned()
            .collect();
        for name in drop {
            parts.headers.remove(name);
        }
        Ok((parts, body))
    }

    /// The agent's answer to `key` if it was asked for within [`FRESH`]
    /// and its token is still valid for `min_valid`.
    fn recent(&self, key: &Key, min_valid: Duration) -> Option<Response<Full<Bytes>>> {
        let answers = self.answers.lock().expect("never poisoned");
        let kept = answers.kept.get(key)?;
        let now = Instant::now();
        let valid = kept
            .valid_until
            .is_none_or(|until| until.saturating_duration_since(now) >= min_valid);
        (now < kept.fresh_until && valid).then(|| {
            let mut r = Response::new(Full::new(kept.body.clone()));
            *r.headers_mut() = kept.headers.clone();
            r
        })
    }

    /// Keeps an answer asked for at `asked`, unless the memory was emptied
    /// since (a refusal reported while it was on its way). A token's expiry
    /// is read against the agent's clock (its `Date`), never this machine's.
    fn remember(
        &self,
        key: Key,
        generation: u64,
        asked: Instant,
        headers: &hyper::HeaderMap,
        body: &Bytes,
    ) {
        if body.len() > MAX_KEPT_ANSWER {
            return;
        }
        let valid_until = if key.target == Token::PATH {
            let Ok(t) = serde_json::from_slice::<TokenResponse>(body) else {
                return;
            };
            // A proof is for one request only.
            if t.dpop_proof.is_some() {
                return;
            }
            match t.expires_at {
                None => None,
                Some(expires) => {
                    let Some(now) = headers
                        .get(hyper::header::DATE)
                        .and_then(|d| regent_proto::http_date(d.to_str().ok()?))
                    else {
                        return;
                    };
                    // The Date header counts whole seconds: a second less.
                    let left = expires - now - time::Duration::SECOND;
                    let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
                    Some(asked + left)
                }
            }
        } else {
            None
        };
        let mut answers = self.answers.lock().expect("never poisoned");
        if answers.generation != generation {
            return;
        }
        if answers.kept.len() >= MAX_KEPT {
            answers.kept.clear();
        }
        answers.kept.insert(
            key,
            Kept {
                fresh_until: asked + FRESH,
                valid_until,
                headers: headers.clone(),
                body: body.clone(),
            },
        );
    }

    /// A kept connection, not closed and not idle too long.
    fn take(&self) -> Option<client::SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().expect("never poisoned");
        while let Some((since, s)) = idle.pop() {
            if !s.is_closed() && since.elapsed() < IDLE {
                return Some(s);
            }
        }
        None
    }

    fn keep(&self, sender: client::SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().expect("never poisoned");
        if idle.len() < MAX_IDLE {
            idle.push((Instant::now(), sender));
        }
    }

    /// A new connection to the forwarded agent. Its peer must be this user
    /// (sshd listens as the user): should the session's socket be removed
    /// and its name taken by someone else, nothing is sent there.
    async fn connect(&self) -> Result<client::SendRequest<Full<Bytes>>, Failed> {
        let stream = UnixStream::connect(&self.path)
            .await
            .map_err(|e| Failed::New(Some(e.kind())))?;
        let peer = stream.peer_cred().map(|c| c.uid()).ok();
        if peer != Some(regent_proto::paths::current_uid()) {
            return Err(Failed::New(Some(std::io::ErrorKind::NotFound)));
        }
        let (sender, conn) = client::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| Failed::New(None))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

/// A request, as the relay tells answers apart.
#[derive(PartialEq, Eq, Hash)]
struct Key {
    method: hyper::Method,
    target: String,
    body: Bytes,
}

/// The agent's recent answers; `generation` counts the times they were
/// forgotten, so an answer asked for before is not kept after.
#[derive(Default)]
struct Answers {
    generation: u64,
    kept: HashMap<Key, Kept>,
}

impl Answers {
    fn forget(&mut self) {
        self.kept.clear();
        self.generation += 1;
    }
}

/// An answer of the agent, given again until `fresh_until` while its token
/// (if any) is valid until `valid_until` on this machine's monotonic clock.
struct Kept {
    fresh_until: Instant,
    valid_until: Option<Instant>,
    headers: hyper::HeaderMap,
    body: Bytes,
}

/// Whether an answer to this request may be given again, and how long its
/// token must then still be valid: a token without a proof, or the lookup
/// of a URL's resource.
fn keepable(key: &Key) -> Option<Duration> {
    if key.method.as_str() == Token::METHOD && key.target == Token::PATH {
        let req: TokenRequest = serde_json::from_slice(&key.body).ok()?;
        let secs = req
            .min_valid_secs
            .unwrap_or(regent_proto::DEFAULT_MIN_VALID_SECS);
        return req.dpop.is_none().then_some(Duration::from_secs(secs));
    }
    let lookup = key.method.as_str() == GetResource::METHOD
        && key.target.split('?').next() == Some(GetResource::PATH);
    lookup.then_some(Duration::ZERO)
}

/// How a send failed: on a kept connection before the request went out
/// (given back, to send on a new one), or otherwise (with the connect
/// error's kind, where connecting failed).
enum Failed {
    Unsent(Box<Request<Full<Bytes>>>),
    New(Option<std::io::ErrorKind>),
}

/// Headers of one hop, never passed on (a client's `Connection: close`
/// would otherwise close the kept connection to the agent).
fn hop_by_hop(name: &HeaderName) -> bool {
    use hyper::header::*;
    [
        CONNECTION,
        HOST,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
        PROXY_AUTHORIZATION,
        PROXY_AUTHENTICATE,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
}

/// An answer in the agent's error shape.
fn error(code: ErrorCode, message: String) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorDetail {
            code,
            message,
            registry: None,
        },
    })
    .unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_GATEWAY))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid answer")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What the stand-in agent saw: connections and requests.
    #[derive(Default)]
    struct Seen {
        connections: AtomicUsize,
        requests: AtomicUsize,
    }

    /// A stand-in agent, on a runtime of its own (stopping it closes every
    /// connection, as sshd does when the session ends): a token `tN` (the
    /// Nth request) valid 120 s for `/v1/token`, the method and path for
    /// anything else.
    fn agent(path: &Path) -> (impl FnOnce(), Arc<Seen>) {
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let seen = Arc::new(Seen::default());
        let counted = seen.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = UnixListener::from_std(listener).unwrap();
                let serve = async {
                    loop {
                        let (s, _) = listener.accept().await.unwrap();
                        counted.connections.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(serve_one(s, counted.clone()));
                    }
                };
                tokio::select! {
                    () = serve => {}
                    _ = stopped => {}
                }
            });
        });
        let stop = move || {
            let _ = stop.send(());
            thread.join().unwrap();
        };
        (stop, seen)
    }

    async fn serve_one(s: UnixStream, counted: Arc<Seen>) {
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let n = counted.requests.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let body = if req.uri().path() == Token::PATH {
                    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(120);
                    serde_json::json!({
                        "access_token": format!("t{n}"),
                        "token_type": "Bearer",
                        "expires_at": at
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap(),
                    })
                    .to_string()
                } else {
                    format!("{} {}", req.method(), req.uri().path())
                };
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
            }
        });
        let _ = server::Builder::new()
            .serve_connection(TokioIo::new(s), svc)
            .await;
    }

    /// One request over a fresh connection to `socket`, as the lean path
    /// sends it (`Connection: close`): status and body.
    async fn ask(socket: &Path, path: &str, body: &[u8]) -> (u16, String) {
        let stream = UnixStream::connect(socket).await.unwrap();
        let (mut sender, conn) = client::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let req = Request::post(path)
            .header("connection", "close")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// The access token in an answer.
    fn token(answer: &(u16, String)) -> String {
        assert_eq!(answer.0, 200, "{}", answer.1);
        let v: serde_json::Value = serde_json::from_str(&answer.1).unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn one_kept_connection_serves_every_call_until_the_forward_goes() {
        let dir = tempfile::tempdir().unwrap();
        let forward = dir.path().join("regent-fwd-t.sock");
        let relay_path = crate::locate::relay_of(&forward);
        let (stop, seen) = agent(&forward);
        let relay = tokio::spawn({
            let forward = forward.clone();
            async move { run(&forward).await }
        });
        while !relay_path.exists() {
            assert!(!relay.is_finished(), "the relay ended: {:?}", relay.await);
            tokio::task::yield_now().await;
        }
        assert!(
            crate::locate::is_ours(&relay_path),
            "the relay's socket is 0600"
        );
        let r = &relay_path;
        // A token is given again while it came lately and stays valid as asked.
        assert_eq!(token(&ask(r, "/v1/token", b"{}").await), "t1");
        assert_eq!(token(&ask(r, "/v1/token", b"{}").await), "t1");
        // Valid 120 s: not enough for 300.
        let longer = br#"{"min_valid_secs":300}"#;
        assert_eq!(token(&ask(r, "/v1/token", longer).await), "t2");
        assert_eq!(token(&ask(r, "/v1/token", longer).await), "t3");
        // A proof is for one request: never given again.
        let proof = br#"{"dpop":{"htm":"GET","htu":"https://x.example/"}}"#;
        assert_eq!(token(&ask(r, "/v1/token", proof).await), "t4");
        assert_eq!(token(&ask(r, "/v1/token", proof).await), "t5");
        // A token reported refused: nothing is given again.
        let refused = ask(r, "/v1/token/invalidate", b"{}").await;
        assert_eq!(refused, (200, "POST /v1/token/invalidate".into()));
        assert_eq!(token(&ask(r, "/v1/token", b"{}").await), "t7");
        assert_eq!(seen.requests.load(Ordering::SeqCst), 7);
        assert_eq!(
            seen.connections.load(Ordering::SeqCst),
            1,
            "one connection for every call"
        );
        let (status, body) = ask(r, "/v1/token", &vec![b' '; MAX_REQUEST + 1]).await;
        assert_eq!(status, 413, "{body}");
        // The session ends: the forward is gone, the relay says so and goes.
        stop();
        std::fs::remove_file(&forward).unwrap();
        let (status, body) = ask(r, "/v1/health", b"").await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("agent_unavailable"), "{body}");
        relay.await.unwrap().unwrap();
        assert!(!relay_path.exists(), "the relay's socket stayed");
    }

    #[tokio::test]
    async fn an_answer_asked_for_before_a_refusal_is_not_kept() {
        let upstream = Upstream {
            path: PathBuf::from("/nonexistent"),
            idle: Mutex::new(Vec::new()),
            answers: Mutex::new(Answers::default()),
            gone: Notify::new(),
        };
        let key = || Key {
            method: hyper::Method::POST,
            target: Token::PATH.into(),
            body: Bytes::from_static(b"{}"),
        };
        let mut headers = hyper::HeaderMap::new();
        let date = time::OffsetDateTime::now_utc();
        let date = date.format(regent_proto::HTTP_DATE).unwrap();
        headers.insert(hyper::header::DATE, date.parse().unwrap());
        // Valid 120 s by the agent's clock, whatever this machine's says.
        let at = regent_proto::http_date(headers[hyper::header::DATE].to_str().unwrap()).unwrap()
            + time::Duration::seconds(120);
        let body = Bytes::from(
            serde_json::json!({"access_token": "t", "token_type": "Bearer",
                "expires_at": at.format(&time::format_description::well_known::Rfc3339).unwrap()})
            .to_string(),
        );
        let asked = Instant::now();
        let generation = upstream.answers.lock().unwrap().generation;
        upstream.answers.lock().unwrap().forget();
        upstream.remember(key(), generation, asked, &headers, &body);
        assert!(upstream.recent(&key(), Duration::ZERO).is_none());
        let generation = upstream.answers.lock().unwrap().generation;
        upstream.remember(key(), generation, asked, &headers, &body);
        assert!(upstream.recent(&key(), Duration::from_secs(100)).is_some());
        assert!(upstream.recent(&key(), Duration::from_secs(120)).is_none());
    }

    #[tokio::test]
    async fn a_forward_that_is_not_ours_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let forward = dir.path().join("regent-fwd-t.sock");
        let _l = std::os::unix::net::UnixListener::bind(&forward).unwrap();
        std::fs::set_permissions(&forward, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = run(&forward).await.unwrap_err();
        assert!(matches!(e, RelayError::NotOurs(_)), "{e}");
        assert!(!crate::locate::relay_of(&forward).exists());
    }
}
