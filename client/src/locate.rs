//! Finding the agent: the socket the usual rules name (`--socket`,
//! `$REGENT_SOCKET`, `$XDG_RUNTIME_DIR/regent/agent.sock`,
//! `/tmp/regent-$UID/agent.sock`), and, where nothing answers there, the
//! socket the running agent recorded in its lock file. A CLI run from cron,
//! `sudo -u` or an ssh session without `XDG_RUNTIME_DIR` so reaches the agent
//! the user already has, instead of starting a second one. Last, before any
//! agent is started here: an agent forwarded from another machine
//! (`regent ssh` puts it at `/tmp/regent-fwd-*.sock`, which sshd creates as
//! this user, 0600).

use regent_proto::AgentRecord;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The agent this user runs, if one holds the lock: its record, with the
/// pid the kernel reports as the holder.
pub fn running_agent() -> Option<AgentRecord> {
    let (mut record, holder) = lock_record()?;
    record.pid = holder?;
    Some(record)
}

/// The agent's record in its lock file, and the pid holding the lock now.
fn lock_record() -> Option<(AgentRecord, Option<u32>)> {
    let path = regent_proto::paths::agent_lock();
    let file = std::fs::File::open(&path).ok()?;
    let text = std::fs::read_to_string(&path).ok()?;
    let record: AgentRecord = serde_json::from_str(text.trim()).ok()?;
    Some((record, lock_holder(&file)))
}

/// The recorded agent whose socket still answers (held lock, or systemd's
/// socket after the agent exited).
fn recorded_socket() -> Option<PathBuf> {
    recorded().map(|r| r.socket).filter(|s| answers(s))
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
/// the running agent recorded another, or an agent was forwarded here.
pub fn socket(explicit: Option<&Path>) -> PathBuf {
    let usual = regent_proto::paths::socket_path(explicit);
    let named = explicit.is_some()
        || std::env::var_os(regent_proto::paths::SOCKET_ENV).is_some_and(|v| !v.is_empty());
    if named || answers(&usual) {
        return usual;
    }
    recorded_socket()
        .or_else(|| forwarded(Path::new(FORWARD_DIR)))
        .unwrap_or(usual)
}

/// The socket the lean paths try, chosen without connecting anywhere: the
/// usual one where it is named or exists, else the newest forwarded agent
/// of ours. A wrong guess costs nothing: the lean path fails, and the full
/// one ([`socket`]) decides.
pub fn lean_socket(explicit: Option<&Path>) -> PathBuf {
    let usual = regent_proto::paths::socket_path(explicit);
    let named = explicit.is_some()
        || std::env::var_os(regent_proto::paths::SOCKET_ENV).is_some_and(|v| !v.is_empty());
    if named || usual.exists() {
        return usual;
    }
    // In the order [`socket`] tries them: the agent this user runs, then a
    // forwarded one.
    recorded()
        .map(|r| r.socket)
        .filter(|s| s.exists())
        .or_else(|| forwarded_sockets(Path::new(FORWARD_DIR)).into_iter().next())
        .unwrap_or(usual)
}

/// The agent's record in its lock file, where it is live: the lock held, or
/// systemd holding its socket after it exited. No connection is made.
fn recorded() -> Option<AgentRecord> {
    let (record, holder) = lock_record()?;
    (holder.is_some() || record.systemd).then_some(record)
}

/// Where `regent ssh` has sshd put a forwarded agent.
pub const FORWARD_DIR: &str = "/tmp";
/// The file names of forwarded agents: `regent-fwd-<random>.sock`.
pub const FORWARD_PREFIX: &str = "regent-fwd-";

/// Whether `socket` is (named as) a forwarded agent.
pub fn is_forwarded(socket: &Path) -> bool {
    socket
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(FORWARD_PREFIX) && n.ends_with(".sock"))
}

/// The newest forwarded agent in `dir` that is ours (0600) and answers. A
/// forward whose session is gone is the dead socket sshd left (it never
/// removes it): one of ours is removed; the newest dead one is returned when
/// none answers, so the error can name it.
pub fn forwarded(dir: &Path) -> Option<PathBuf> {
    let mut dead = None;
    for p in forwarded_sockets(dir) {
        if answers(&p) {
            return Some(p);
        }
        let _ = std::fs::remove_file(&p);
        dead.get_or_insert(p);
    }
    dead
}

/// The forwarded agents in `dir` that are ours (sockets we own, 0600),
/// newest first.
fn forwarded_sockets(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let uid = regent_proto::paths::current_uid();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_forwarded(p))
        .filter_map(|p| {
            let m = std::fs::symlink_metadata(&p).ok()?;
            let ours = m.file_type().is_socket() && m.uid() == uid && m.mode() & 0o077 == 0;
            ours.then(|| (m.modified().unwrap_or(std::time::UNIX_EPOCH), p))
        })
        .collect();
    found.sort();
    found.into_iter().rev().map(|(_, p)| p).collect()
}
