//! One agent per user (per state directory): the agent holds a write lock
//! on `$XDG_STATE_HOME/regent/agent.lock` for its whole life and records its
//! pid and socket in it. Two agents sharing one refresh token race on its
//! rotation and the IdP revokes the grant; this lock prevents it, whatever
//! socket each would serve on.
//!
//! The lock is a POSIX record lock (`fcntl`), so a client can ask who holds
//! it (`F_GETLK`) without taking it, and so without ever making an agent
//! that is starting fail.

use anyhow::{bail, Context};
use regent_proto::AgentRecord;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Held for the agent's lifetime.
pub struct Instance {
    _file: File,
}

/// Takes the lock at `path` and records `record` in it; refuses, naming the
/// running agent, when another holds it.
pub fn claim(path: &Path, record: &AgentRecord) -> anyhow::Result<Instance> {
    if let Some(dir) = path.parent() {
        crate::atomic_file::create_private_dir(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: fcntl with a flock struct we own, on a descriptor we own.
    let locked = unsafe {
        let mut fl: libc::flock = std::mem::zeroed();
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) == 0
    };
    if !locked {
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let running = serde_json::from_str::<AgentRecord>(text.trim()).ok();
        match running {
            Some(r) => bail!(
                "another regentd (pid {}) is already running for this user, serving on {}; \
                 one agent per user keeps them from racing on refresh-token rotation. \
                 Use that one (regent finds it), or stop it first",
                r.pid,
                r.socket.display()
            ),
            None => bail!(
                "another regentd is already running for this user (it holds {})",
                path.display()
            ),
        }
    }
    let json = serde_json::to_string(record).expect("a record serializes");
    file.set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| file.write_all(json.as_bytes()))
        .and_then(|_| file.write_all(b"\n"))
        .and_then(|_| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Instance { _file: file })
}
