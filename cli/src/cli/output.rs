//! Human output: the registry table and relative times.

use regent_proto::{AuthConfig, AuthState, RegistryStatus};
use time::OffsetDateTime;

/// Asks a yes/no question on the terminal; false when stdin is not one.
pub fn confirm(question: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES")
}

/// Asks whether a resource may share a login other origins use (the
/// agent's `message` says which); `Some(true)` share, `Some(false)` a login
/// of its own, `None` neither (or no terminal to ask on).
pub fn ask_share(message: &str) -> Option<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprintln!("{}", safe(message));
    eprint!("Share that login [s], log in on its own [o], or stop [N]? ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).ok()?;
    match answer.trim() {
        "s" | "S" | "share" => Some(true),
        "o" | "O" | "own" => Some(false),
        _ => None,
    }
}

/// Pretty JSON on stdout.
pub fn print_json(v: &serde_json::Value) {
    println!(
        "{}",
        json_for_terminal(&serde_json::to_string_pretty(v).expect("JSON values serialize"))
    );
}

/// JSON text whose strings may hold what servers chose, fit for a terminal:
/// serde escapes C0 controls but writes DEL, C1 and formatting characters as
/// they are; here they become `\uXXXX` escapes (still the same JSON).
pub fn json_for_terminal(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if regent_client::text::unsafe_char(c) && !matches!(c, '\n' | '\t') {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The registry table (or a hint when there is none).
pub fn print_registries(regs: &[RegistryStatus]) {
    if regs.is_empty() {
        println!("No registries. Add one with: regent registry add NAME URL");
        return;
    }
    print_resources("NAME", regs);
}

/// Whether a re-add may replace `before` (same name, another URL): yes with
/// `--replace` or at the prompt on a terminal; else an error naming both.
pub fn may_replace(
    kind: &str,
    before: &RegistryStatus,
    url: &str,
    replace: bool,
) -> Result<(), String> {
    if before.url.trim_end_matches('/') == url.trim_end_matches('/') || replace {
        return Ok(());
    }
    let login = before
        .auth
        .as_ref()
        .filter(|a| a.status != AuthState::AuthRequired)
        .map(|a| match &a.account {
            Some(who) => format!(", logged in as {}", safe(who)),
            None => ", logged in".to_string(),
        })
        .unwrap_or_default();
    let question = format!(
        "{} {} is {}{login}. Replace it with {}? Its login would end. [y/N] ",
        capitalized(kind),
        before.name,
        safe(&before.url),
        safe(url)
    );
    if confirm(&question) {
        return Ok(());
    }
    Err(format!(
        "{kind} {} is already {}{login}; to replace it (its login ends), add it with --replace, \
         or remove it first; or choose another name",
        before.name,
        safe(&before.url)
    ))
}

/// A string from a server, an IdP or a registry, fit for a terminal.
pub fn safe(s: &str) -> String {
    regent_client::text::printable(s).into_owned()
}

/// What `registry add` and `mcp add` print: what was found, and the next step.
/// What a re-add did, against what was there `before`: nothing, or a new
/// auth (and whether that ended the login); else as [`added`].
pub fn put_result(kind: &str, before: Option<&RegistryStatus>, after: &RegistryStatus) {
    let Some(before) = before else {
        return added(kind, after);
    };
    let config = |s: &RegistryStatus| s.auth.as_ref().map(|a| a.config.clone());
    if before.url == after.url && config(before) == config(after) {
        println!("{} {} is unchanged.", capitalized(kind), after.name);
        return;
    }
    let was_in = before
        .auth
        .as_ref()
        .is_some_and(|a| a.status != AuthState::AuthRequired);
    let now_out = after
        .auth
        .as_ref()
        .is_some_and(|a| a.status == AuthState::AuthRequired);
    added(kind, after);
    if was_in && now_out {
        println!(
            "Its new auth needs a login of its own: you are logged out of {} (other resources keep theirs).",
            after.name
        );
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Warnings about a registry URL that will not work as the user may think.
pub fn warn_registry_url(url: &str) {
    let Ok(u) = url::Url::parse(url) else { return };
    let path = u.path().trim_end_matches('/');
    if let Some(i) = ["/v0.1/servers", "/v0/servers", "/v0.1", "/v0"]
        .iter()
        .find_map(|s| path.ends_with(s).then(|| path.len() - s.len()))
    {
        let mut base = u.clone();
        base.set_path(&path[..i]);
        base.set_query(None);
        eprintln!(
            "regent: warning: {url} names an API path; a registry's URL is its base (regent adds /v0.1/servers): did you mean {}?",
            base.as_str().trim_end_matches('/')
        );
    } else if u.query().is_some() || u.fragment().is_some() {
        eprintln!(
            "regent: warning: {url} has a query or fragment; regent appends the API paths (/v0.1/servers) to the URL, so requests will not go where you expect"
        );
    }
}

/// "Added registry corp (URL): how it authorizes.", and what comes next.
pub fn added(kind: &str, status: &RegistryStatus) {
    match &status.auth {
        None => println!(
            "Added {kind} {} ({}); it asks for no auth.",
            status.name,
            safe(&status.url)
        ),
        Some(a) => {
            let how = match &a.config {
                AuthConfig::Oauth(o) if o.discovered => {
                    let client = match o.client {
                        Some(regent_proto::ClientOrigin::Registered) => "registered",
                        Some(regent_proto::ClientOrigin::MetadataDocument) => "metadata document",
                        _ => "pre-registered",
                    };
                    let scopes = if o.scopes.is_empty() {
                        "no scope".to_string()
                    } else {
                        format!("scope {}", o.scopes.join(" "))
                    };
                    format!(
                        "authorization server {}, client {} ({client}), {scopes}",
                        o.issuer, o.client_id
                    )
                }
                other => auth_kind(other),
            };
            println!(
                "Added {kind} {} ({}): {}.",
                status.name,
                safe(&status.url),
                safe(&how)
            );
            if !a.shared_with.is_empty() {
                // Never silent: one login (one account) for all of them.
                println!(
                    "It shares the login of {} (the same account); for a login of its own, add it \
                     again with --own-login.",
                    a.shared_with.join(", ")
                );
            }
            login_hint(status);
        }
    }
}

/// "Log in with: regent login NAME", where a login is what comes next.
pub fn login_hint(status: &RegistryStatus) {
    if let Some(a) = &status.auth {
        if matches!(a.config, AuthConfig::Oauth(_)) && a.status != AuthState::Authenticated {
            println!("Log in with: regent login {}", status.name);
        }
    }
}

fn auth_kind(config: &AuthConfig) -> String {
    match config {
        AuthConfig::Oauth(o) => format!("oauth {}", o.issuer),
        AuthConfig::Bearer(b) => format!("token file {}", b.token_file.display()),
        AuthConfig::ClientCredentials(c) => format!("client credentials at {}", c.issuer),
        AuthConfig::Enterprise(e) => format!("through IdP {}", e.idp),
        AuthConfig::Workload(w) => format!("workload identity at {}", w.issuer),
    }
}

/// A table of resources; `first` names the first column.
pub fn print_resources(first: &str, regs: &[RegistryStatus]) {
    // Every cell may hold what a server or an IdP said (an account, a URL).
    let rows: Vec<[String; 5]> = regs.iter().map(|r| row(r).map(|c| safe(&c))).collect();
    let headers = [first, "URL", "AUTH", "STATUS", "DETAILS"];
    let mut widths = headers.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(headers);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
}

fn row(r: &RegistryStatus) -> [String; 5] {
    let (auth, status, details) = match &r.auth {
        None => ("none".to_string(), "-".to_string(), String::new()),
        Some(a) => {
            let kind = auth_kind(&a.config);
            let status = match a.status {
                AuthState::Authenticated => "authenticated",
                AuthState::Expired => "expired",
                AuthState::AuthRequired => "login required",
            };
            let mut details = Vec::new();
            if let Some(acct) = &a.account {
                details.push(format!("as {acct}"));
            }
            if let Some(exp) = a.expires_at {
                details.push(format!("token {}", relative(exp)));
            }
            if a.has_refresh_token {
                details.push("refreshable".into());
            }
            if a.dpop_bound {
                details.push("DPoP-bound".into());
            }
            if matches!(a.config, AuthConfig::Oauth(_))
                && a.status != AuthState::AuthRequired
                && !a.persisted
            {
                details.push("NOT persisted (memory only)".into());
            }
            if !a.shared_with.is_empty() {
                details.push(format!("login shared with {}", a.shared_with.join(", ")));
            }
            if matches!(&a.config, AuthConfig::Oauth(o) if o.own_grant) {
                details.push("own login (its AS will not share one)".into());
            }
            if a.status == AuthState::AuthRequired && matches!(a.config, AuthConfig::Oauth(_)) {
                details.push(format!("run: regent login {}", r.name));
            }
            (kind, status.to_string(), details.join(", "))
        }
    };
    let details = match &r.forward {
        None => details,
        Some(f) => {
            let mut d = String::from(if f.confirm {
                "forwardable (asks per session)"
            } else {
                "forwardable"
            });
            if let Some(u) = &f.last_use {
                let ago = (OffsetDateTime::now_utc() - u.at).whole_seconds().max(0) as u64;
                d.push_str(&format!(", lent {} ago to {}", human(ago), u.via));
            }
            if details.is_empty() {
                d
            } else {
                format!("{details}, {d}")
            }
        }
    };
    [r.name.clone(), r.url.clone(), auth, status, details]
}

/// "keyutils — the kernel keyring: ...": the store and how long it keeps tokens.
pub fn store_line(h: &regent_proto::Health) -> String {
    match &h.durability {
        Some(d) => format!("{} — {d}", h.store),
        None => h.store.clone(),
    }
}

/// The agent's network settings, a line each: the proxies and where they
/// come from, what goes direct, the CAs trusted, the client certificate.
pub fn network_lines(n: &regent_proto::NetworkStatus) -> Vec<String> {
    let mut lines = Vec::new();
    match (&n.https_proxy, &n.http_proxy) {
        (None, None) => lines.push("proxy: none".to_string()),
        (a, b) if a == b => lines.push(format!(
            "proxy: {} (from the {})",
            safe(a.as_deref().unwrap_or_default()),
            n.proxy_source
        )),
        (a, b) => lines.push(format!(
            "proxy: https {}, http {} (from the {})",
            safe(a.as_deref().unwrap_or("none")),
            safe(b.as_deref().unwrap_or("none")),
            n.proxy_source
        )),
    }
    if let Some(np) = &n.no_proxy {
        lines.push(format!("no proxy for: {} (and loopback)", safe(np)));
    }
    lines.push(format!("trusted CAs: {}", safe(&n.ca_sources.join("; "))));
    if let Some(c) = &n.client_cert {
        lines.push(format!("client certificate: {}", c.display()));
    }
    lines
}

/// The resources whose logins wait for the user, if any.
pub fn waiting_logins(h: &regent_proto::Health) -> Option<String> {
    let names: Vec<&str> = h
        .pending_logins
        .iter()
        .map(|l| l.registry.as_str())
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

/// "expires in 4m 10s" / "expired 3m ago".
pub fn relative(t: OffsetDateTime) -> String {
    let secs = (t - OffsetDateTime::now_utc()).whole_seconds();
    if secs >= 0 {
        format!("expires in {}", human(secs as u64))
    } else {
        format!("expired {} ago", human(secs.unsigned_abs()))
    }
}

/// 75 -> "1m 15s".
pub fn human(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// The server table: name, version, description cut to the terminal.
pub fn print_servers(servers: &[serde_json::Value]) {
    if servers.is_empty() {
        println!("No servers.");
        return;
    }
    let rows: Vec<[String; 3]> = servers
        .iter()
        .map(|e| {
            let s = &e["server"];
            let field =
                |k: &str| safe(&s[k].as_str().unwrap_or("").replace(['\n', '\r', '\t'], " "));
            [field("name"), field("version"), field("description")]
        })
        .collect();
    let w0 = rows
        .iter()
        .map(|r| r[0].chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let w1 = rows
        .iter()
        .map(|r| r[1].chars().count())
        .max()
        .unwrap_or(0)
        .max(7);
    let room = terminal_width().map(|w| w.saturating_sub(w0 + w1 + 4).max(10));
    println!("{:<w0$}  {:<w1$}  DESCRIPTION", "NAME", "VERSION");
    for [name, version, desc] in rows {
        let desc = match room {
            Some(r) if desc.chars().count() > r => {
                format!(
                    "{}…",
                    desc.chars().take(r.saturating_sub(1)).collect::<String>()
                )
            }
            _ => desc,
        };
        println!("{name:<w0$}  {version:<w1$}  {desc}");
    }
    println!(
        "{} server{}",
        servers.len(),
        if servers.len() == 1 { "" } else { "s" }
    );
}

/// The width of the terminal on stdout, if stdout is one.
fn terminal_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        (libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0)
            .then_some(ws.ws_col as usize)
    }
}

/// Prints a token as `regent token` does (the bare token, or `--json`), on
/// both of its paths (the lean one in main.rs and the full one); says on
/// stderr when it is valid for less than the `min_valid` seconds asked (an
/// IdP whose tokens live shorter than that: the agent serves the freshest).
pub fn print_token(
    t: &regent_proto::TokenResponse,
    json: bool,
    min_valid: u64,
) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(exp) = t.expires_at {
        let left = (exp - OffsetDateTime::now_utc()).whole_seconds();
        if left < min_valid as i64 {
            eprintln!(
                "regent: this token is valid for {} more, less than the {} asked \
                 (--min-valid); the IdP issues none longer",
                human(left.max(0) as u64),
                human(min_valid)
            );
        }
    }
    let mut out = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string(t).map_err(std::io::Error::other)?;
        out.write_all(json_for_terminal(&text).as_bytes())?;
    } else {
        if t.token_type.eq_ignore_ascii_case("dpop") {
            eprintln!(
                "regent: this token is bound to the agent's key (DPoP): a request needs a proof \
                 too; for the headers of one, run: regent token NAME --dpop METHOD URL"
            );
        }
        out.write_all(t.access_token.as_bytes())?;
    }
    out.write_all(b"\n")?;
    out.flush()
}

/// The headers a request carries: `Authorization`, and `DPoP` with the
/// proof for a bound token (`regent token --dpop METHOD URL`, for curl -H).
pub fn print_headers(t: &regent_proto::TokenResponse) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match &t.dpop_proof {
        Some(proof) => {
            writeln!(out, "Authorization: DPoP {}", t.access_token.expose())?;
            writeln!(out, "DPoP: {}", proof.expose())?;
        }
        None => writeln!(out, "Authorization: Bearer {}", t.access_token.expose())?,
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_for_a_terminal_escapes_what_serde_leaves_raw() {
        let v = serde_json::json!({"account": "a\u{9b}31m\u{7f}b\u{202e}c", "ok": "plain é"});
        let text = json_for_terminal(&serde_json::to_string_pretty(&v).unwrap());
        assert!(
            !text
                .chars()
                .any(|c| regent_client::text::unsafe_char(c) && c != '\n'),
            "{text}"
        );
        // Still the same JSON.
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
