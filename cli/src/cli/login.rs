//! `regent login`: start a login at the agent, show what the user must do,
//! wait with a progress line, cancel at the agent on Ctrl-C.

use super::args::LoginArgs;
use super::browser;
use super::output::{human, safe};
use super::{Failure, Result};
use regent_client::resource::{BoxFuture, Login as RunLogin};
use regent_client::AgentClient;
use regent_proto::{Login, LoginFlow, LoginRequest, LoginState};
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;

pub async fn run(agent: &AgentClient, args: LoginArgs) -> Result {
    if let Some(file) = &args.id_token_file {
        let name = args.name.as_deref().ok_or_else(|| {
            Failure::Usage("name the enterprise IdP the ID token is from: regent login IDP --id-token-file FILE".into())
        })?;
        let token = super::secret::read("ID token", file)?;
        agent.hand_over_id_token(name, &token).await?;
        println!(
            "Logged in to {name} with the ID token from {}.",
            file.display()
        );
        return Ok(());
    }
    let flow = if args.device {
        LoginFlow::Device
    } else {
        LoginFlow::Browser
    };
    // Listen for the signals before the login exists, so none can slip between.
    let mut stop = Stop::install()?;
    let login = agent
        .login(&LoginRequest {
            registry: args.name.clone(),
            flow,
            force: args.force,
        })
        .await?;
    if login.already {
        println!(
            "Already logged in to {}{}; nothing to do. Log in again with: regent login {} --force",
            login.registry,
            as_whom(login.account.as_deref()),
            login.registry
        );
        return Ok(());
    }
    let _browser = show_instructions(&login, !args.no_browser);
    let outcome = tokio::select! {
        r = wait(agent, &login) => r,
        (signal, name) = stop.recv() => {
            clear_progress();
            // The agent would otherwise keep the login (and its callback port) open.
            let _ = agent.cancel_login(&login.id).await;
            return Err(Failure::Signal {
                message: format!("login to {} cancelled ({name})", login.registry),
                signal,
            });
        }
    };
    clear_progress();
    let status = outcome?;
    match status.status {
        LoginState::Succeeded => {
            println!(
                "Logged in to {}{}.",
                login.registry,
                as_whom(status.account.as_deref())
            );
            if !login.also.is_empty() {
                println!(
                    "{} share{} this login, and {} logged in too.",
                    login.also.join(", "),
                    if login.also.len() == 1 { "s" } else { "" },
                    if login.also.len() == 1 { "is" } else { "are" }
                );
            }
            Ok(())
        }
        LoginState::Expired => Err(Failure::Other(format!(
            "login to {} expired: {}",
            login.registry,
            status.error.unwrap_or_else(|| "the deadline passed".into())
        ))),
        _ => Err(Failure::Other(format!(
            "login to {} failed: {}",
            login.registry,
            status.error.unwrap_or_else(|| "no reason given".into())
        ))),
    }
}

/// " as alice", or nothing when the IdP did not say.
fn as_whom(account: Option<&str>) -> String {
    account
        .map(|a| format!(" as {}", safe(a)))
        .unwrap_or_default()
}

/// Shows what the user must do (on stderr), opening the browser for a
/// browser login; the browser command, if it still runs.
pub(super) fn show_instructions(login: &Login, open_browser: bool) -> Option<std::process::Child> {
    let mut launched = None;
    let mut err = std::io::stderr().lock();
    match login.flow {
        LoginFlow::Device => {
            // The agent checked them; shown escaped all the same.
            let uri = safe(login.verification_uri.as_deref().unwrap_or("?"));
            let code = safe(login.user_code.as_deref().unwrap_or("?"));
            let at = login
                .issuer
                .as_deref()
                .map(|i| format!(" at {}", safe(i)))
                .unwrap_or_default();
            let _ = writeln!(
                err,
                "To log in to {}{at}, open this page on any device:\n\n    {uri}\n\nand enter the code:  {code}\n",
                login.registry
            );
            // A code is worth what the page it is typed into is: say so when
            // the page is not on the authorization server's own host.
            let host = |u: &str| {
                url::Url::parse(u)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string))
            };
            if let (Some(i), Some(page)) = (
                login.issuer.as_deref().and_then(host),
                login.verification_uri.as_deref().and_then(host),
            ) {
                let related = page == i
                    || page.ends_with(&format!(".{i}"))
                    || i.ends_with(&format!(".{page}"));
                if !related {
                    let _ = writeln!(
                        err,
                        "Note: that page is on {}, not on the authorization server's host {}; \
                         enter the code only if you expect that.\n",
                        safe(&page),
                        safe(&i)
                    );
                }
            }
            if let Some(full) = &login.verification_uri_complete {
                let full = safe(full);
                let _ = writeln!(err, "(or open {full} to skip typing the code)\n");
            }
        }
        LoginFlow::Browser if login.joined => {
            // Another program started it and opened the browser: not again.
            let url = safe(login.authorize_url.as_deref().unwrap_or("?"));
            let _ = writeln!(
                err,
                "A login to {} is already waiting for you (another program started it). \
                 Finish it in the browser, or open:\n\n    {url}\n",
                login.registry
            );
        }
        LoginFlow::Browser => {
            let raw = login.authorize_url.as_deref().unwrap_or("?");
            let url = safe(raw);
            let opened = if open_browser {
                match browser::open(raw) {
                    Ok(child) => {
                        launched = child;
                        true
                    }
                    Err(e) => {
                        let _ = writeln!(err, "Could not open a browser ({e}).");
                        false
                    }
                }
            } else {
                false
            };
            if opened {
                let _ = writeln!(
                    err,
                    "Opened your browser to log in to {}. If it did not open, visit:\n\n    {url}\n",
                    login.registry
                );
            } else {
                let _ = writeln!(
                    err,
                    "To log in to {}, open this URL in a browser:\n\n    {url}\n",
                    login.registry
                );
            }
        }
    }
    launched
}

/// Long-polls the login until it ends, updating the progress line each second.
pub(super) async fn wait(agent: &AgentClient, login: &Login) -> Result<regent_proto::LoginStatus> {
    let tty = std::io::stderr().is_terminal();
    let mut last_note = std::time::Instant::now();
    loop {
        let status = agent.login_status(&login.id, 1).await?;
        if status.status != LoginState::Pending {
            return Ok(status);
        }
        if tty {
            let left = (login.expires_at - OffsetDateTime::now_utc())
                .whole_seconds()
                .max(0) as u64;
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r\x1b[2KWaiting for the login to be approved… {} left (Ctrl-C cancels)",
                human(left)
            );
            let _ = err.flush();
        } else if last_note.elapsed().as_secs() >= 30 {
            // Not a terminal: one plain line every 30 s instead of a live countdown.
            last_note = std::time::Instant::now();
            let left = (login.expires_at - OffsetDateTime::now_utc())
                .whole_seconds()
                .max(0) as u64;
            eprintln!(
                "Still waiting for the login to be approved ({} left)…",
                human(left)
            );
        }
    }
}

pub(super) fn clear_progress() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
}

/// The signals that end a waiting login: Ctrl-C, SIGTERM (a service
/// manager, a closed terminal's shell) and SIGHUP (a closed terminal); they
/// end `regent mcp proxy` too.
pub(super) struct Stop {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Stop {
    pub(super) fn install() -> Result<Stop> {
        use tokio::signal::unix::{signal, SignalKind};
        let handler = |kind: SignalKind| {
            signal(kind).map_err(|e| Failure::Other(format!("cannot handle signals: {e}")))
        };
        Ok(Stop {
            int: handler(SignalKind::interrupt())?,
            term: handler(SignalKind::terminate())?,
            hup: handler(SignalKind::hangup())?,
        })
    }

    /// The first signal: its number and what to call it.
    pub(super) async fn recv(&mut self) -> (i32, &'static str) {
        tokio::select! {
            _ = self.int.recv() => (libc::SIGINT, "Ctrl-C"),
            _ = self.term.recv() => (libc::SIGTERM, "SIGTERM"),
            _ = self.hup.recv() => (libc::SIGHUP, "SIGHUP"),
        }
    }
}

/// The logins the agent asks for in the middle of a command (a step-up, a
/// server's first 401), run by the CLI: one at a time, shown on stderr (the
/// browser opened, or the device code), cancelled at the agent if the
/// command stops while one waits. Without `allowed`, it only says which
/// login is needed.
pub(super) struct Interactive {
    agent: AgentClient,
    flow: LoginFlow,
    allowed: bool,
    /// Said after the agent's reason when no login may be run here.
    why_not: &'static str,
    one_at_a_time: tokio::sync::Mutex<()>,
    /// The login in progress, to cancel at the agent if the proxy stops.
    pending: Arc<Mutex<Option<String>>>,
    /// A login is being started at the agent (its id not known yet).
    starting: Arc<tokio::sync::watch::Sender<bool>>,
    /// Browser commands still running, reaped at exit.
    children: Mutex<Vec<std::process::Child>>,
}

impl Interactive {
    pub(super) fn new(agent: AgentClient, flow: LoginFlow, allowed: bool) -> Interactive {
        Interactive {
            agent,
            flow,
            allowed,
            why_not: "",
            one_at_a_time: tokio::sync::Mutex::new(()),
            pending: Arc::default(),
            starting: Arc::new(tokio::sync::watch::channel(false).0),
            children: Mutex::new(Vec::new()),
        }
    }

    async fn run(&self, name: &str, why: &str, fresh: bool) -> std::result::Result<(), String> {
        if !self.allowed {
            return Err(format!("{why}{}", self.why_not));
        }
        let _one = self.one_at_a_time.lock().await;
        // Started in a task of its own: if the command stops while the agent
        // is starting the login, its id still arrives, and the login is
        // cancelled (`cancel_pending` waits for it) instead of left waiting.
        let (agent, pending, starting) = (
            self.agent.clone(),
            self.pending.clone(),
            self.starting.clone(),
        );
        let req = LoginRequest {
            registry: Some(name.to_string()),
            flow: self.flow,
            force: fresh,
        };
        starting.send_replace(true);
        let login = tokio::spawn(async move {
            let started = agent.login(&req).await;
            if let Some(l) = started.as_ref().ok().filter(|l| !l.already) {
                *pending.lock().unwrap() = Some(l.id.clone());
            }
            starting.send_replace(false);
            started
        })
        .await
        .map_err(|e| format!("the login to {name} stopped: {e}"))?
        .map_err(|e| format!("cannot start a login to {name}: {e}"))?;
        if login.already {
            // Logged in meanwhile (another program's login finished first).
            return Ok(());
        }
        let child = {
            let login = login.clone();
            tokio::task::spawn_blocking(move || show_instructions(&login, true))
                .await
                .ok()
                .flatten()
        };
        if let Some(c) = child {
            self.children.lock().unwrap().push(c);
        }
        let status = wait(&self.agent, &login).await;
        clear_progress();
        *self.pending.lock().unwrap() = None;
        let status = status.map_err(|e| e.message())?;
        match status.status {
            LoginState::Succeeded => {
                eprintln!("regent: logged in to {name}");
                Ok(())
            }
            _ => Err(format!(
                "the login to {name} did not succeed: {}",
                status.error.unwrap_or_else(|| "no reason given".into())
            )),
        }
    }

    /// Says `note` after the agent's reason when no login may be run here.
    pub(super) fn why_not(mut self, note: &'static str) -> Interactive {
        self.why_not = note;
        self
    }

    /// Cancels a login still waiting at the agent.
    pub(super) async fn cancel_pending(&self) {
        // One being started: its id first (bounded: the agent answers a start at once).
        let mut started = self.starting.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), started.wait_for(|s| !*s)).await;
        let id = self.pending.lock().unwrap().take();
        if let Some(id) = id {
            let _ = self.agent.cancel_login(&id).await;
        }
    }

    /// Waits (briefly) for the browser commands it started, so none is left behind.
    pub(super) fn reap(&self) {
        let mut children = std::mem::take(&mut *self.children.lock().unwrap());
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        for c in &mut children {
            while c.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl RunLogin for Interactive {
    fn login<'a>(
        &'a self,
        resource: &'a str,
        why: &'a str,
        fresh: bool,
    ) -> BoxFuture<'a, std::result::Result<(), String>> {
        Box::pin(self.run(resource, why, fresh))
    }
}
