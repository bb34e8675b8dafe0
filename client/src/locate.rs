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
        // A forward named by `regent ssh`'s `SetEnv REGENT_SOCKET` (a server
        // that accepts it): through its relay too.
        let relay = relay_of(&usual);
        return if is_forwarded(&usual) && is_ours(&relay) {
            relay
        } else {
            usual
        };
    }
    // In the order [`socket`] tries them: the agent this user runs, then a
    // forwarded one — through its relay where one runs (a relay that died
    // without removing its socket: the lean client goes to the forward).
    recorded()
        .map(|r| r.socket)
        .filter(|s| s.exists())
        .or_else(|| {
            let forward = forwarded_sockets(Path::new(FORWARD_DIR))
                .into_iter()
                .next()?;
            let relay = relay_of(&forward);
            Some(if is_ours(&relay) { relay } else { forward })
        })
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

/// The file names of relays end so: `regent-fwd-<random>.relay`, beside
/// their forward (and never taken for one).
pub const RELAY_SUFFIX: &str = ".relay";

/// Where the relay of a forwarded agent listens.
pub fn relay_of(forward: &Path) -> PathBuf {
    forward.with_extension(&RELAY_SUFFIX[1..])
}

/// The forwarded agent a relay stands for, if `relay` is named as one.
pub fn forward_of(relay: &Path) -> Option<PathBuf> {
    let name = relay.file_name()?.to_str()?;
    (name.starts_with(FORWARD_PREFIX) && name.ends_with(RELAY_SUFFIX))
        .then(|| relay.with_extension("sock"))
}

/// Whether `path` is a socket of this user's that only this user may use
/// (0600): what sshd makes of a forward, and a relay of its own.
pub fn is_ours(path: &Path) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    std::fs::symlink_metadata(path).is_ok_and(|m| {
        m.file_type().is_socket()
            && m.uid() == regent_proto::paths::current_uid()
            && m.mode() & 0o077 == 0
    })
}

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
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_forwarded(p) && is_ours(p))
        .filter_map(|p| {
            let m = std::fs::symlink_metadata(&p).ok()?;
            Some((m.modified().unwrap_or(std::time::UNIX_EPOCH), p))
        })
        .collect();
    found.sort();
    found.into_iter().rev().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_sits_beside_its_forward_and_is_never_taken_for_one() {
        let forward = Path::new("/tmp/regent-fwd-0a1b.sock");
        let relay = relay_of(forward);
        assert_eq!(relay, Path::new("/tmp/regent-fwd-0a1b.relay"));
        assert_eq!(forward_of(&relay).as_deref(), Some(forward));
        assert!(!is_forwarded(&relay));
        // Only a relay's name leads to a forward.
        assert_eq!(forward_of(forward), None);
        assert_eq!(forward_of(Path::new("/tmp/other.relay")), None);
    }

    #[test]
    fn the_lean_path_takes_a_relay_only_if_it_is_ours() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let forward = dir.path().join("regent-fwd-x.sock");
        let relay = relay_of(&forward);
        let _f = std::os::unix::net::UnixListener::bind(&forward).unwrap();
        std::fs::set_permissions(&forward, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(is_ours(&forward));
        // A relay others may connect to is not ours to use.
        let _r = std::os::unix::net::UnixListener::bind(&relay).unwrap();
        std::fs::set_permissions(&relay, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(!is_ours(&relay));
        std::fs::set_permissions(&relay, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(is_ours(&relay));
        // A symlink to a socket of ours is not a socket of ours.
        let link = dir.path().join("regent-fwd-y.relay");
        std::os::unix::fs::symlink(&relay, &link).unwrap();
        assert!(!is_ours(&link));
        assert_eq!(
            forwarded_sockets(dir.path()),
            std::slice::from_ref(&forward)
        );
        // A forward named outright (SetEnv REGENT_SOCKET) goes through its relay too.
        assert_eq!(lean_socket(Some(&forward)), relay);
        std::fs::set_permissions(&relay, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(lean_socket(Some(&forward)), forward);
    }
}
