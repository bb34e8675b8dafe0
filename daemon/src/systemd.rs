//! systemd integration: socket activation and readiness notification.
//! Both are no-ops when the agent is not run by systemd.

use std::os::fd::FromRawFd;

/// Takes the listening socket systemd passed (`LISTEN_FDS`, checked against
/// `LISTEN_PID`), if any, and clears those variables so no child inherits
/// them. Call before any thread exists (it edits the environment).
pub fn take_activated_listener() -> anyhow::Result<Option<std::os::unix::net::UnixListener>> {
    let fds: Vec<_> = sd_notify::listen_fds()
        .map_err(|e| anyhow::anyhow!("bad socket activation environment: {e}"))?
        .collect();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    let Some(&fd) = fds.first() else {
        return Ok(None);
    };
    if fds.len() > 1 {
        anyhow::bail!(
            "systemd passed {} sockets; regentd.socket must have exactly one ListenStream",
            fds.len()
        );
    }
    // SAFETY: systemd passed this descriptor to us and nothing else owns it.
    let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
    listener.local_addr().map_err(|e| {
        anyhow::anyhow!("the socket systemd passed is not a Unix stream socket: {e}")
    })?;
    Ok(Some(listener))
}

/// Tells systemd the agent serves (`READY=1` and a status line).
pub fn ready(status: &str) {
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
}

/// Tells systemd the agent is stopping.
pub fn stopping() {
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("draining requests in flight"),
    ]);
}

/// Updates the status line.
pub fn status(status: &str) {
    notify(&[sd_notify::NotifyState::Status(status)]);
}

fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {e}");
    }
}
