//! The lean path of `regent token`, of the credential helpers and of shell
//! completion: HTTP/1.1 exchanges over a plain blocking Unix socket, no
//! async runtime. It handles
//! only the common case (a 200 answer); anything else returns `None` and the
//! caller takes the full path, which reports errors properly.

use regent_proto::api::{Endpoint, GetResource, Token};
use regent_proto::{RegistryStatus, TokenRequest, TokenResponse};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Largest answer read on this path.
const MAX_ANSWER: u64 = 64 * 1024;

/// `POST /v1/token`, blocking; `None` on anything but a well-formed 200.
pub fn token(socket: &Path, req: &TokenRequest) -> Option<TokenResponse> {
    let body = serde_json::to_vec(req).ok()?;
    exchange(
        socket,
        Token::METHOD,
        Token::PATH,
        &body,
        Duration::from_secs(30),
    )
}

/// `GET /v1/resource?url=U` (the resource covering `url`), or with
/// `whole_origin` `?origin=U` (the one at its origin), blocking; `None` on
/// anything but a well-formed 200.
pub fn resource_for_url(socket: &Path, url: &str, whole_origin: bool) -> Option<RegistryStatus> {
    let key = if whole_origin { "origin" } else { "url" };
    exchange(
        socket,
        GetResource::METHOD,
        &format!(
            "{}?{}",
            GetResource::PATH,
            crate::agent::lookup_query(key, url)
        ),
        b"",
        Duration::from_secs(30),
    )
}

/// Endpoint `E` (a GET without parameters), blocking, answered within
/// `timeout` (shell completion asks for names this way); `None` on
/// anything but a well-formed 200.
pub fn get<E: Endpoint>(socket: &Path, timeout: Duration) -> Option<E::Answer> {
    exchange(socket, E::METHOD, E::PATH, b"", timeout)
}

/// A connection to `socket`; where it is a relay that no longer listens
/// (killed without its cleanup), to its forward instead, the dead relay's
/// socket removed so the next call goes straight there.
fn connect(socket: &Path) -> Option<UnixStream> {
    crate::agent::check_socket(socket).ok()?;
    let stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            let forward = crate::locate::forward_of(socket)?;
            if e.kind() == std::io::ErrorKind::ConnectionRefused {
                let _ = std::fs::remove_file(socket);
            }
            crate::agent::check_socket(&forward).ok()?;
            UnixStream::connect(forward).ok()?
        }
    };
    // What listens is this user's (the agent, sshd as the user, the relay):
    // a name freed and taken by someone else in between gets no request.
    (peer_uid(&stream)? == regent_proto::paths::current_uid()).then_some(stream)
}

/// The uid of the process at the other end (`SO_PEERCRED`).
fn peer_uid(stream: &UnixStream) -> Option<u32> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: getsockopt fills a ucred we own, of the size we pass.
    unsafe {
        let mut cred: libc::ucred = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        let rc = libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        );
        (rc == 0).then_some(cred.uid)
    }
}

fn exchange<T: serde::de::DeserializeOwned>(
    socket: &Path,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Option<T> {
    let mut stream = connect(socket)?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).ok()?;
    let mut answer = Vec::with_capacity(2048);
    stream.take(MAX_ANSWER).read_to_end(&mut answer).ok()?;
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..split]).ok()?;
    if !head.starts_with("HTTP/1.1 200 ") {
        return None;
    }
    // The agent sends a Content-Length for JSON answers, never chunked encoding.
    if head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:"))
    {
        return None;
    }
    serde_json::from_slice(&answer[split + 4..]).ok()
}
