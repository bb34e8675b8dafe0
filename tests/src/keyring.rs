//! Real keyrings for tests: the kernel keyutils keyring (`keyctl`) and a
//! Secret Service (gnome-keyring) on a private session bus.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Whether `keyctl` finds a user key with this description in the per-user
/// persistent keyring, where the agent links every key. Run in a fresh
/// session keyring of its own, so the search possesses what it searches.
pub fn keyctl_finds(description: &str) -> bool {
    let out = Command::new("keyctl")
        .args(["session", "-", "sh", "-c"])
        .arg(r#"keyctl search "$(keyctl get_persistent @s)" user "$1""#)
        .args(["sh", description])
        .output()
        .expect("keyctl runs (Debian package keyutils)");
    out.status.success()
}

/// A gnome-keyring Secret Service, unlocked, on its own session bus; stopped on drop.
pub struct SecretService {
    child: Child,
    /// `DBUS_SESSION_BUS_ADDRESS` of its bus.
    pub bus: String,
    _home: tempfile::TempDir,
}

impl SecretService {
    /// Starts `dbus-run-session` with an unlocked gnome-keyring in it.
    pub fn start() -> SecretService {
        let home = tempfile::tempdir().unwrap();
        let run = home.path().join("run");
        std::fs::create_dir_all(&run).unwrap();
        let script = "echo -n test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null \
                      && echo \"$DBUS_SESSION_BUS_ADDRESS\" && exec sleep 600";
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("dbus-run-session")
            .args(["--", "sh", "-c", script])
            .env("HOME", home.path())
            .env("XDG_RUNTIME_DIR", &run)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("dbus-run-session runs (Debian packages dbus, gnome-keyring)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let bus = line.trim().to_string();
        assert!(!bus.is_empty(), "gnome-keyring did not start");
        SecretService {
            child,
            bus,
            _home: home,
        }
    }

    /// `secret-tool search --all ATTR VALUE...` on this bus: the items' attributes.
    pub fn search(&self, attrs: &[&str]) -> String {
        let out = Command::new("secret-tool")
            .arg("search")
            .arg("--all")
            .args(attrs)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus)
            .output()
            .expect("secret-tool runs (Debian package libsecret-tools)");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

impl Drop for SecretService {
    fn drop(&mut self) {
        // The whole process group: dbus-run-session, its bus, the keyring, sleep.
        // SAFETY: killpg on the group we created.
        unsafe {
            libc::killpg(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}
