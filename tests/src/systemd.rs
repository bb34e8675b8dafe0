//! A real systemd user manager for a user of the test's own, on a machine
//! whose PID 1 is not systemd: a fresh user with delegated cgroups, a mount
//! namespace in which `/run/systemd/system` exists, and `systemd --user` run
//! as that user. `systemctl --user` then works over its private socket.
//! Where the machine cannot do it (not root, no systemd binary, no writable
//! cgroup hierarchy), [`UserManager::start`] says why instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The cgroup hierarchies systemd wants a delegated directory in.
const HIERARCHIES: [&str; 2] = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"];

/// A user with a running `systemd --user`; removed (processes, user, cgroups) on drop.
pub struct UserManager {
    /// The user's name.
    pub user: String,
    /// The user's uid.
    pub uid: u32,
    /// The user's home.
    pub home: PathBuf,
    /// Its `XDG_RUNTIME_DIR`.
    pub runtime: PathBuf,
    manager: Option<std::process::Child>,
    _dir: tempfile::TempDir,
}

impl UserManager {
    /// Creates the user and starts its manager, or says why this machine cannot.
    pub fn start() -> Result<UserManager, String> {
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } != 0 {
            return Err("creating a user and its systemd manager needs root".into());
        }
        for tool in [
            "/lib/systemd/systemd",
            "/usr/sbin/useradd",
            "/usr/bin/unshare",
        ] {
            if !Path::new(tool).exists() {
                return Err(format!("{tool} is missing"));
            }
        }
        for h in HIERARCHIES {
            if !Path::new(h).join("cgroup.procs").exists() {
                return Err(format!("no cgroup hierarchy at {h}"));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("regent-sd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| e.to_string())?;
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let user = format!("rgsd{}x{n}", std::process::id());
        let home = dir.path().join("home");
        let uid = crate::users::create(&user, &home)?;
        let runtime = dir.path().join("run");
        crate::users::private_dir(&runtime, uid)?;
        let mut um = UserManager {
            user,
            uid,
            home,
            runtime,
            manager: None,
            _dir: dir,
        };
        for h in HIERARCHIES {
            let cg = Path::new(h).join(&um.user);
            std::fs::create_dir_all(&cg).map_err(|e| format!("{}: {e}", cg.display()))?;
            chown_tree(&cg, uid)?;
        }
        let script = format!(
            "mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system && \
             echo $$ > {u}/{user}/cgroup.procs && echo $$ > {s}/{user}/cgroup.procs && \
             exec setpriv --reuid {uid} --regid {uid} --init-groups env -i HOME={home} USER={user} \
             LOGNAME={user} XDG_RUNTIME_DIR={rt} PATH=/usr/local/bin:/usr/bin:/bin /lib/systemd/systemd --user",
            u = HIERARCHIES[0],
            s = HIERARCHIES[1],
            user = um.user,
            home = um.home.display(),
            rt = um.runtime.display(),
        );
        let log =
            std::fs::File::create(um._dir.path().join("manager.log")).map_err(|e| e.to_string())?;
        let child = Command::new("unshare")
            .args(["-m", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("unshare: {e}"))?;
        um.manager = Some(child);
        // Ready when systemctl answers over the private socket ("is-system-running"
        // says "offline" here whatever the state: the system manager is not systemd).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let out = um.systemctl(&["show", "--property=Version", "--value"]);
            let state = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if out.status.success() {
                return Ok(um);
            }
            if let Some(status) = um
                .manager
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!(
                    "systemd --user exited ({status}): {}",
                    um.manager_log()
                ));
            }
            if std::time::Instant::now() > deadline {
                return Err(format!(
                    "systemd --user did not come up ({state}): {}",
                    um.manager_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the manager printed.
    pub fn manager_log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("manager.log")).unwrap_or_default()
    }

    /// A command run as the user, in its session's environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.uid))
            .arg("--init-groups")
            .arg(program)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.user)
            .env("XDG_RUNTIME_DIR", &self.runtime)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::null());
        c
    }

    /// `systemctl --user ARGS` as the user.
    pub fn systemctl(&self, args: &[&str]) -> Output {
        self.command("systemctl")
            .arg("--user")
            .args(args)
            .output()
            .expect("systemctl runs")
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        // Everything of the user goes: the manager, its services, stray agents.
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.user])
            .status();
        if let Some(mut c) = self.manager.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for _ in 0..100 {
            if !Command::new("pgrep")
                .args(["-u", &self.user])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        crate::users::remove(&self.user);
        for h in HIERARCHIES {
            remove_cgroup(&Path::new(h).join(&self.user));
        }
    }
}

fn chown_tree(dir: &Path, uid: u32) -> Result<(), String> {
    std::os::unix::fs::chown(dir, Some(uid), Some(uid)).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        // cgroup files: owned by the user too, so systemd can write them.
        let _ = std::os::unix::fs::chown(entry.path(), Some(uid), Some(uid));
    }
    Ok(())
}

/// Removes a cgroup directory and its children, deepest first.
fn remove_cgroup(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
