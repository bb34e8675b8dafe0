//! Agent forwarding (`regent ssh`) as a policy over the one API: a caller
//! is [`Caller::Local`] (the agent's own socket) or [`Caller::Forwarded`]
//! (the forwarding socket, `agent.forward.sock`, that a remote machine
//! reaches through an OpenSSH stream-local forward). A forwarded caller may
//! only borrow tokens of the resources the user made forwardable (and, where
//! marked `forward_confirm`, only in sessions the user said yes to when
//! `regent ssh` asked), see nothing of the others, and never change, log in
//! or log out; the API's guard holds it to the routes that lend.
//!
//! Sessions are told apart by the peer of a forwarded connection: the local
//! `ssh` process relaying it, whose pid `regent ssh` registered.

use regent_proto::{ForwardInfo, ForwardSession, ForwardUse};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A process of the user on this machine (the agent's socket).
    Local,
    /// A remote machine, through the forwarding socket.
    Forwarded(Peer),
}

/// The forwarding socket's file name, beside the agent's socket.
pub const SOCKET_NAME: &str = "agent.forward.sock";

/// The peer of a connection on the forwarding socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its process id (the local `ssh` relaying the remote request).
    pub pid: Option<u32>,
}

/// What forwarding holds: which resources, the sessions, the last uses.
#[derive(Default)]
pub struct Forwarding {
    /// Forwardable resources, and whether each needs a yes per session.
    rules: RwLock<BTreeMap<String, bool>>,
    /// `regent ssh` sessions by the pid of their `ssh`.
    sessions: Mutex<HashMap<u32, ForwardSession>>,
    /// The last forwarded token per resource.
    uses: Mutex<BTreeMap<String, ForwardUse>>,
    /// The socket, once served.
    socket: RwLock<Option<PathBuf>>,
    /// Whether any resource is forwardable (the socket is served from the first one on).
    wanted: tokio::sync::watch::Sender<bool>,
}

impl Forwarding {
    /// Takes the config's forwardable resources (name, confirm).
    pub fn set_rules(&self, rules: BTreeMap<String, bool>) {
        let any = !rules.is_empty();
        self.uses
            .lock()
            .unwrap()
            .retain(|name, _| rules.contains_key(name));
        *self.rules.write().unwrap() = rules;
        self.wanted.send_if_modified(|w| {
            let changed = *w != any;
            *w = any;
            changed
        });
    }

    /// Resolves once a resource is forwardable.
    pub async fn wanted(&self) {
        let mut rx = self.wanted.subscribe();
        let _ = rx.wait_for(|w| *w).await;
    }

    /// Records the socket being served.
    pub fn serving(&self, path: PathBuf) {
        *self.socket.write().unwrap() = Some(path);
    }

    /// The socket, while served.
    pub fn socket(&self) -> Option<PathBuf> {
        self.socket.read().unwrap().clone()
    }

    /// The forwarding status of `name`, if it is forwardable.
    pub fn info(&self, name: &str) -> Option<ForwardInfo> {
        let confirm = *self.rules.read().unwrap().get(name)?;
        Some(ForwardInfo {
            confirm,
            last_use: self.uses.lock().unwrap().get(name).cloned(),
        })
    }

    /// Registers a `regent ssh` session.
    pub fn open(&self, s: ForwardSession) {
        self.sessions.lock().unwrap().insert(s.ssh_pid, s);
    }

    /// Ends one.
    pub fn close(&self, ssh_pid: u32) -> bool {
        self.sessions.lock().unwrap().remove(&ssh_pid).is_some()
    }

    /// The sessions open now.
    pub fn sessions(&self) -> Vec<ForwardSession> {
        let mut v: Vec<_> = self.sessions.lock().unwrap().values().cloned().collect();
        v.sort_by_key(|s| s.ssh_pid);
        v
    }

    /// Why `name` may not be lent to `peer`, if it may not.
    pub fn refusal(&self, name: &str, peer: Peer) -> Option<String> {
        let confirm = match self.rules.read().unwrap().get(name) {
            None => {
                return Some(format!(
                    "{name} is not forwardable; on the machine where the agent runs: regent forward allow {name}"
                ))
            }
            Some(c) => *c,
        };
        if confirm {
            let approved = peer.pid.is_some_and(|pid| {
                self.sessions
                    .lock()
                    .unwrap()
                    .get(&pid)
                    .is_some_and(|s| s.approved.iter().any(|a| a == name))
            });
            if !approved {
                return Some(format!(
                    "{name} is lent only to sessions you said yes to: connect with regent ssh, which asks"
                ));
            }
        }
        None
    }

    /// Notes a token lent to `peer`.
    pub fn used(&self, name: &str, peer: Peer, now: time::OffsetDateTime) {
        let via = peer
            .pid
            .and_then(|pid| {
                self.sessions
                    .lock()
                    .unwrap()
                    .get(&pid)
                    .map(|s| s.host.clone())
            })
            .unwrap_or_else(|| "ssh -R".into());
        self.uses
            .lock()
            .unwrap()
            .insert(name.to_string(), ForwardUse { at: now, via });
    }

    /// The forwardable resources.
    pub fn names(&self) -> Vec<String> {
        self.rules.read().unwrap().keys().cloned().collect()
    }
}
