//! Finding the agent: the socket the usual rules name (`--socket`,
//! `$REGENT_SOCKET`, `$XDG_RUNTIME_DIR/regent/agent.sock`,
//! `/tmp/regent-$UID/agent.sock`), and, where nothing answers there, the
//! socket the running agent recorded in its lock file. A CLI run from cron,
//! `sudo -u` or an ssh session without `XDG_RUNTIME_DIR` so reaches the agent
//! the user already has, instead of starting a second one.

use regent_proto::AgentRecord;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The agent this user runs, if one holds the lock: its record, with the
/// pid the kernel reports as the holder.
pub fn running_agent() -> Option<AgentRecord> {
    let path = regent_proto::paths::agent_lock();
    let file = std::fs::File::open(&path).ok()?;
    let holder = lock_holder(&file)?;
    let text = std::fs::read_to_string(&path).ok()?;
    let mut record: AgentRecord = serde_json::from_str(text.trim()).ok()?;
    record.pid = holder;
    Some(record)
}

/// The recorded agent whose socket still answers (held lock, or systemd's
/// socket after the agent exited).
fn recorded_socket() -> Option<PathBuf> {
    let path = regent_proto::paths::agent_lock();
    let text = std::fs::read_to_string(&path).ok()?;
    let record: AgentRecord = serde_json::from_str(text.trim()).ok()?;
    let file = std::fs::File::open(&path).ok()?;
    let live = lock_holder(&file).is_some() || record.systemd;
    (live && answers(&record.socket)).then_some(record.socket)
}

/// The pid holding a write lock on `file`, if any (`F_GETLK` takes nothing).
fn lock_holder(file: &std::fs::File) -> Option<u32> {
    // SAFETY: fcntl with a flock struct we own, on a descriptor we own.
    unsafe {
        let mut fl: libc::flock = std::mem::zeroed();
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        if libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) != 0 {
            return None;
        }
        (fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_pid as u32)
    }
}

/// Whether something accepts connections at `socket`.
pub fn answers(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

/// The socket to talk to. An explicit `--socket` or `$REGENT_SOCKET` is
/// used as given; otherwise the usual path, unless nothing answers there and
/// the running agent recorded another.
pub fn socket(explicit: Option<&Path>) -> PathBuf {
    let usual = regent_proto::paths::socket_path(explicit);
    let named = explicit.is_some()
        || std::env::var_os(regent_proto::paths::SOCKET_ENV).is_some_and(|v| !v.is_empty());
    if named || answers(&usual) {
        return usual;
    }
    recorded_socket().unwrap_or(usual)
}
