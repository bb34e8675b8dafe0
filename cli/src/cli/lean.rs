//! The lean paths: `regent token` and the credential helpers in the common
//! case (an agent that answers 200), with no argument parser and no async
//! runtime, because scripts and tools run them for every request. Anything
//! else — an error, an agent to start, a flag — goes the full way, which
//! reads the same stdin (`helpers::input`) and answers the same way (the
//! protocols' shapes are `helpers`' own).

use super::helpers;
use regent_client::blocking;
use regent_proto::{TokenRequest, TokenResponse};
use std::path::{Path, PathBuf};

/// The exit code where the lean path answered; `None`: take the full one.
pub fn run() -> Option<i32> {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string().ok())
        .collect::<Option<_>>()?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if let ["token", rest @ ..] = args.as_slice() {
        return token(rest);
    }
    if args.iter().any(|a| a.starts_with('-')) {
        return None;
    }
    let socket = regent_client::locate::lean_socket(None);
    let out = match args.as_slice() {
        ["headers", name @ ..] if name.len() <= 1 => headers(&socket, name.first().copied())?,
        ["kube-credential", name @ ..] if name.len() <= 1 => kube(&socket, name.first().copied())?,
        ["credential-helper", "get"] => {
            let uri = helpers::bazel_uri(helpers::input().ok()?).ok()?;
            let (token, expires) = bearer(&socket, For::Url(&uri))?;
            helpers::bazel_answer(&token, expires).to_string()
        }
        ["git-credential", "get"] => {
            let fields = helpers::git_fields(helpers::input().ok()?);
            let (token, _) = match helpers::git_url(&fields)? {
                (url, false) => bearer(&socket, For::Url(&url))?,
                (url, true) => bearer(&socket, For::Name(&at_origin(&socket, &url)?))?,
            };
            helpers::git_answer(&fields, &token)
        }
        _ => return None,
    };
    println!("{out}");
    Some(0)
}

/// `regent token [NAME] [--min-valid N] [--json] [--socket P]`.
fn token(args: &[&str]) -> Option<i32> {
    let (mut name, mut min_valid, mut json, mut socket) = (None, None, false, None);
    let mut args = args.iter();
    while let Some(&a) = args.next() {
        match a {
            "--json" => json = true,
            "--min-valid" => min_valid = Some(args.next()?.parse::<u64>().ok()?),
            "--socket" => socket = Some(PathBuf::from(args.next()?)),
            s if s.starts_with('-') => return None,
            s if name.is_none() => name = Some(s.to_string()),
            _ => return None,
        }
    }
    let socket = regent_client::locate::lean_socket(socket.as_deref());
    let req = TokenRequest {
        url: None,
        registry: name,
        min_valid_secs: Some(min_valid.unwrap_or(regent_proto::DEFAULT_MIN_VALID_SECS)),
        dpop: None,
    };
    let t = blocking::token(&socket, &req)?;
    let printed = super::output::print_token(&t, json, req.min_valid_secs.unwrap_or_default());
    Some(if printed.is_ok() { 0 } else { 1 })
}

/// Whose token: a resource by name, or the one covering a URL (one
/// exchange either way).
enum For<'a> {
    Name(&'a str),
    Url(&'a str),
}

/// The name of the one resource at `url`'s origin (git named only the host).
fn at_origin(socket: &Path, url: &str) -> Option<String> {
    Some(blocking::resource_for_url(socket, url, true)?.name)
}

/// A Bearer token and its expiry (a DPoP-bound one: the full path says why
/// a helper cannot use it).
fn bearer(socket: &Path, whose: For) -> Option<(String, Option<time::OffsetDateTime>)> {
    let (registry, url) = match whose {
        For::Name(n) => (Some(n.to_string()), None),
        For::Url(u) => (None, Some(u.to_string())),
    };
    let t: TokenResponse = blocking::token(
        socket,
        &TokenRequest {
            registry,
            url,
            min_valid_secs: None,
            dpop: None,
        },
    )?;
    t.token_type
        .eq_ignore_ascii_case("bearer")
        .then(|| (t.access_token.into_inner(), t.expires_at))
}

fn headers(socket: &Path, name: Option<&str>) -> Option<String> {
    let env = helpers::claude_code_env();
    let (token, _) = match (name, &env) {
        (Some(n), _) => bearer(socket, For::Name(n))?,
        (None, (Some(url), _)) => bearer(socket, For::Url(url))?,
        (None, (None, named)) => bearer(socket, For::Name(named.as_deref()?))?,
    };
    Some(helpers::headers_answer(&token).to_string())
}

fn kube(socket: &Path, name: Option<&str>) -> Option<String> {
    let info = helpers::exec_info();
    let whose = match name {
        Some(n) => For::Name(n),
        None => For::Url(helpers::exec_server(info.as_ref())?),
    };
    let (token, expires) = bearer(socket, whose)?;
    Some(helpers::exec_credential(info.as_ref(), &token, expires).to_string())
}
