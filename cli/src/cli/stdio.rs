//! The bridge's stdin and stdout, read and written by the runtime itself.
//! tokio's `stdin()` and `stdout()` hand every read and write to a thread
//! of the blocking pool (a regular file or a terminal cannot be polled); a
//! bridge moves every message through them, and two thread hand-offs a
//! message were most of its added latency. A pipe or a socket (what an MCP
//! client connects a server's stdio with) is polled like any socket instead;
//! anything else keeps tokio's way. The descriptors' non-blocking flag is put
//! back as it was when the bridge ends.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

/// stdin, as the bridge reads it.
pub type Input = Pin<Box<dyn AsyncRead + Send>>;
/// stdout, as the bridge writes it.
pub type Output = Pin<Box<dyn AsyncWrite + Send>>;

/// Puts the descriptors' flags back when dropped.
pub struct Restore(Vec<(RawFd, libc::c_int)>);

impl Drop for Restore {
    fn drop(&mut self) {
        for (fd, flags) in &self.0 {
            // SAFETY: fcntl on a descriptor this process holds (0 or 1).
            unsafe { libc::fcntl(*fd, libc::F_SETFL, *flags) };
        }
    }
}

/// stdin and stdout, polled where they are pipes or sockets.
pub fn open() -> (Input, Output, Restore) {
    let mut restore = Restore(Vec::new());
    let input: Input = match polled(0, &mut restore) {
        Some(Kind::Pipe(fd)) => match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
            Ok(r) => Box::pin(r),
            Err(_) => Box::pin(tokio::io::stdin()),
        },
        Some(Kind::Socket(fd)) => match socket(fd) {
            Some(s) => Box::pin(s),
            None => Box::pin(tokio::io::stdin()),
        },
        None => Box::pin(tokio::io::stdin()),
    };
    let output: Output = match polled(1, &mut restore) {
        Some(Kind::Pipe(fd)) => match tokio::net::unix::pipe::Sender::from_owned_fd(fd) {
            Ok(w) => Box::pin(w),
            Err(_) => Box::pin(tokio::io::stdout()),
        },
        Some(Kind::Socket(fd)) => match socket(fd) {
            Some(s) => Box::pin(s),
            None => Box::pin(tokio::io::stdout()),
        },
        None => Box::pin(tokio::io::stdout()),
    };
    (input, output, restore)
}

enum Kind {
    Pipe(OwnedFd),
    Socket(OwnedFd),
}

/// A duplicate of `fd` where it is a pipe or a socket (its flags noted for
/// [`Restore`]); `None` for anything else.
fn polled(fd: RawFd, restore: &mut Restore) -> Option<Kind> {
    // SAFETY: fstat and fcntl on a descriptor number; dup gives one we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    let kind = st.st_mode & libc::S_IFMT;
    if kind != libc::S_IFIFO && kind != libc::S_IFSOCK {
        return None;
    }
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return None;
    }
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return None;
    }
    restore.0.push((fd, flags));
    // SAFETY: `dup` is a fresh descriptor nobody else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    Some(if kind == libc::S_IFIFO {
        Kind::Pipe(owned)
    } else {
        Kind::Socket(owned)
    })
}

/// A Unix socket descriptor as a polled stream (`None` for another kind of
/// socket, left as it was: tokio's way reads it).
fn socket(fd: OwnedFd) -> Option<tokio::net::UnixStream> {
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname into a buffer of the size given, on a descriptor we own.
    let named = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            &mut addr as *mut _ as *mut libc::sockaddr,
            &mut len,
        )
    } == 0;
    if !named || addr.ss_family as libc::c_int != libc::AF_UNIX {
        return None;
    }
    let std = std::os::unix::net::UnixStream::from(fd);
    std.set_nonblocking(true).ok()?;
    tokio::net::UnixStream::from_std(std).ok()
}
