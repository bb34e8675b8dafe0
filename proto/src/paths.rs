//! Where regent keeps its socket, config and state: the one path resolver.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Environment variable naming the agent socket.
pub const SOCKET_ENV: &str = "REGENT_SOCKET";

/// Resolves the agent socket: `flag`, else `$REGENT_SOCKET`, else
/// `$XDG_RUNTIME_DIR/regent/agent.sock`, else `/tmp/regent-$UID/agent.sock`.
pub fn socket_path(flag: Option<&Path>) -> PathBuf {
    socket_path_with(flag, &|k| std::env::var_os(k), current_uid())
}

/// [`socket_path`] with the environment and uid given, for tests.
pub fn socket_path_with(
    flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<OsString>,
    uid: u32,
) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = non_empty(env(SOCKET_ENV)) {
        return PathBuf::from(p);
    }
    if let Some(dir) = non_empty(env("XDG_RUNTIME_DIR")) {
        return PathBuf::from(dir).join("regent").join("agent.sock");
    }
    PathBuf::from(format!("/tmp/regent-{uid}/agent.sock"))
}

/// The config file: `$XDG_CONFIG_HOME/regent/config.toml` (default `~/.config`).
pub fn config_file() -> PathBuf {
    xdg_dir("XDG_CONFIG_HOME", ".config")
        .join("regent")
        .join("config.toml")
}

/// The user's config home: `$XDG_CONFIG_HOME` (default `~/.config`).
pub fn config_home() -> PathBuf {
    xdg_dir("XDG_CONFIG_HOME", ".config")
}

/// The state directory: `$XDG_STATE_HOME/regent` (default `~/.local/state`).
pub fn state_dir() -> PathBuf {
    xdg_dir("XDG_STATE_HOME", ".local/state").join("regent")
}

/// The lock a running agent holds for its whole life (one agent per user):
/// `$XDG_STATE_HOME/regent/agent.lock`, holding an [`crate::AgentRecord`].
pub fn agent_lock() -> PathBuf {
    state_dir().join("agent.lock")
}

fn xdg_dir(var: &str, home_rel: &str) -> PathBuf {
    if let Some(p) = non_empty(std::env::var_os(var)) {
        let p = PathBuf::from(p);
        // The XDG spec says relative values are invalid and must be ignored.
        if p.is_absolute() {
            return p;
        }
    }
    home_dir().join(home_rel)
}

fn home_dir() -> PathBuf {
    non_empty(std::env::var_os("HOME"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn non_empty(v: Option<OsString>) -> Option<OsString> {
    v.filter(|s| !s.is_empty())
}

/// The real uid of this process.
pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn socket_resolution_follows_the_contract_order() {
        let all = env_of(&[
            ("REGENT_SOCKET", "/s/env.sock"),
            ("XDG_RUNTIME_DIR", "/run/user/7"),
        ]);
        assert_eq!(
            socket_path_with(Some(Path::new("/flag.sock")), &all, 7),
            PathBuf::from("/flag.sock")
        );
        assert_eq!(
            socket_path_with(None, &all, 7),
            PathBuf::from("/s/env.sock")
        );
        let xdg = env_of(&[("REGENT_SOCKET", ""), ("XDG_RUNTIME_DIR", "/run/user/7")]);
        assert_eq!(
            socket_path_with(None, &xdg, 7),
            PathBuf::from("/run/user/7/regent/agent.sock")
        );
        let none = env_of(&[]);
        assert_eq!(
            socket_path_with(None, &none, 7),
            PathBuf::from("/tmp/regent-7/agent.sock")
        );
    }
}
