//! The agent's socket: a private directory, a 0600 socket, stale sockets of
//! dead agents replaced, a live agent never displaced.

use anyhow::{bail, Context};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use tokio::net::UnixListener;

/// Held for the agent's lifetime: one agent per socket, even when two start at once.
pub struct SocketLock(#[allow(dead_code)] std::fs::File);

/// Prepares the directory and binds the socket at `path`.
pub fn bind(path: &Path) -> anyhow::Result<(UnixListener, SocketLock)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .context("the socket path has no directory")?;
    if !dir.exists() {
        crate::atomic_file::create_private_dir(dir)
            .with_context(|| format!("cannot create the socket directory {}", dir.display()))?;
    }
    check_private_dir(dir)?;
    // A live agent is named by its pid, lock or no lock.
    if let Ok(stream) = std::os::unix::net::UnixStream::connect(path) {
        bail!(
            "another regentd{} is already serving on {}; stop it first, or choose another --socket",
            running_pid(stream)
                .map(|p| format!(" (pid {p})"))
                .unwrap_or_default(),
            path.display()
        );
    }
    // Probe, remove and bind under a lock, or two agents starting together could
    // each remove the other's fresh socket.
    let lock_path = path.with_extension("lock");
    let lock = {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            bail!(
                "another regentd is starting or running on {} (lock {} is held)",
                path.display(),
                lock_path.display()
            );
        }
        SocketLock(f)
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            bail!(
                "{} exists and is not a socket; remove it or choose another --socket",
                path.display()
            );
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(stream) => bail!(
                "another regentd{} is already serving on {}; stop it first, or choose another --socket",
                running_pid(stream)
                    .map(|p| format!(" (pid {p})"))
                    .unwrap_or_default(),
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "replacing the stale socket of an agent that is gone");
                std::fs::remove_file(path).with_context(|| {
                    format!("cannot remove the stale socket {}", path.display())
                })?;
            }
            Err(e) => bail!("cannot probe the existing socket {}: {e}", path.display()),
        }
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot bind the socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    Ok((listener, lock))
}

/// Refuses a directory owned by someone else or open to others.
pub fn check_private_dir(dir: &Path) -> anyhow::Result<()> {
    // lstat: a symlink planted by someone else (in /tmp) could be re-pointed later.
    let meta = std::fs::symlink_metadata(dir)
        .with_context(|| format!("cannot inspect the socket directory {}", dir.display()))?;
    if meta.file_type().is_symlink() {
        bail!(
            "refusing to use the socket directory {}: it is a symbolic link",
            dir.display()
        );
    }
    let uid = regent_proto::paths::current_uid();
    if meta.uid() != uid {
        bail!(
            "refusing to use the socket directory {}: it is owned by uid {}, not by you (uid {uid})",
            dir.display(),
            meta.uid()
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "refusing to use the socket directory {}: its mode is {mode:03o}, open to other users; \
             run `chmod 700 {}` or choose another --socket",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// The device and inode of the socket file, to recognise it at exit.
pub fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Asks a running agent for its pid (`GET /v1/health`), briefly.
fn running_pid(mut stream: std::os::unix::net::UnixStream) -> Option<u64> {
    use std::io::{Read, Write};
    let timeout = Some(std::time::Duration::from_secs(2));
    stream.set_read_timeout(timeout).ok()?;
    stream.set_write_timeout(timeout).ok()?;
    stream
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut answer).ok()?;
    let text = String::from_utf8_lossy(&answer);
    let body = text.split("\r\n\r\n").nth(1)?;
    let health: regent_proto::Health = serde_json::from_str(body.trim()).ok()?;
    Some(u64::from(health.pid))
}
