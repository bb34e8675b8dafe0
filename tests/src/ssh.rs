//! A real `sshd` (Debian's openssh-server) in a network namespace of the
//! test's own — loopback and a veth pair inside this machine only — with key
//! authentication for a user of the test's own: the "remote machine" of
//! agent forwarding. Where the machine cannot do it (not root, no sshd, no
//! network namespaces), [`Sshd::start`] says why instead.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How the server is configured.
#[derive(Clone, Debug)]
pub struct SshdOptions {
    /// `AllowStreamLocalForwarding` (false: a server that refuses `regent ssh`'s forward).
    pub allow_forwarding: bool,
    /// The built `regent` in the remote user's ~/.local/bin, where `regent
    /// ssh` finds it to start its relay (false: a remote side without one).
    pub regent_installed: bool,
}

impl Default for SshdOptions {
    fn default() -> Self {
        SshdOptions {
            allow_forwarding: true,
            regent_installed: true,
        }
    }
}

/// A running sshd in its own network namespace; all of it removed on drop.
pub struct Sshd {
    /// The address it listens on (inside its namespace, reachable from ours).
    pub addr: String,
    /// The remote user.
    pub user: String,
    /// Its uid.
    pub uid: u32,
    /// Its home.
    pub home: PathBuf,
    netns: String,
    veth: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Sshd {
    /// Makes the namespace, the user and the keys, and starts sshd.
    pub fn start(opts: SshdOptions) -> Result<Sshd, String> {
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } != 0 {
            return Err("a network namespace and a user need root".into());
        }
        for tool in [
            "/usr/sbin/sshd",
            "/usr/bin/ssh",
            "/usr/bin/ssh-keygen",
            "/usr/sbin/ip",
        ] {
            if !Path::new(tool).exists() {
                return Err(format!("{tool} is missing (scripts/setup installs it)"));
            }
        }
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let pid = std::process::id();
        // A /30 of its own per server: 10.A.B.0, from the pid and a counter.
        let slot = (pid.wrapping_mul(7).wrapping_add(n)) % (64 * 64);
        let (a, b) = (100 + slot / 64, (slot % 64) * 4);
        let netns = format!("rgssh{pid}x{n}");
        let veth = format!("rgs{}{}", pid % 1_000_000, n % 10);
        let (ours, theirs) = (format!("10.{a}.{b}.1"), format!("10.{a}.{b}.2"));
        let dir = tempfile::Builder::new()
            .prefix("regent-sshd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| e.to_string())?;
        let user = format!("rgssh{pid}x{n}");
        let home = dir.path().join("home");
        let mut sshd = Sshd {
            addr: theirs.clone(),
            user: user.clone(),
            uid: 0,
            home: home.clone(),
            netns: netns.clone(),
            veth: veth.clone(),
            child: None,
            dir,
        };
        run(Command::new("ip").args(["netns", "add", &netns]))
            .map_err(|e| format!("no network namespaces here: {e}"))?;
        let peer = format!("{veth}p");
        run(Command::new("ip").args(["link", "add", &veth, "type", "veth", "peer", "name", &peer]))?;
        run(Command::new("ip").args(["link", "set", &peer, "netns", &netns]))?;
        run(Command::new("ip").args(["addr", "add", &format!("{ours}/30"), "dev", &veth]))?;
        run(Command::new("ip").args(["link", "set", &veth, "up"]))?;
        let inside = |args: &[&str]| {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &netns, "ip"]).args(args);
            c
        };
        run(&mut inside(&[
            "addr",
            "add",
            &format!("{theirs}/30"),
            "dev",
            &peer,
        ]))?;
        run(&mut inside(&["link", "set", &peer, "up"]))?;
        run(&mut inside(&["link", "set", "lo", "up"]))?;

        sshd.uid = crate::users::create(&user, &home)?;
        // sshd wants a home it can read as the user.
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        if opts.regent_installed {
            let bin = home.join(".local/bin");
            std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
            std::os::unix::fs::symlink(crate::bin("regent"), bin.join("regent"))
                .map_err(|e| e.to_string())?;
        }

        let d = sshd.dir.path();
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join("host")))?;
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(d.join("client")))?;
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys"))
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all("/run/sshd").map_err(|e| e.to_string())?;
        let config = format!(
            "ListenAddress {theirs}\nPort 22\nHostKey {host}\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             AllowStreamLocalForwarding {fwd}\nAllowTcpForwarding yes\nLogLevel ERROR\n",
            host = d.join("host").display(),
            d = d.display(),
            fwd = if opts.allow_forwarding { "yes" } else { "no" },
        );
        std::fs::write(d.join("sshd_config"), config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(d.join("sshd.log")).map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", &netns, "/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("sshd: {e}"))?;
        sshd.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((theirs.as_str(), 22)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("sshd did not listen: {}", sshd.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sshd)
    }

    /// What sshd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The ssh options and destination that reach it (`regent ssh ARGS`).
    pub fn ssh_args(&self) -> Vec<String> {
        [
            "-i",
            &self.dir.path().join("client").display().to_string(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            &format!("{}@{}", self.user, self.addr),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// A command run as the remote user, on this machine (outside ssh).
    pub fn as_user(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.uid))
            .arg("--init-groups")
            .arg(program)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.user)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::null());
        c
    }

    /// The forwarded sockets of the remote user in /tmp, and their relays'.
    pub fn forwarded_sockets(&self) -> Vec<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        std::fs::read_dir("/tmp")
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        regent_client::locate::is_forwarded(p)
                            || regent_client::locate::forward_of(p).is_some()
                    })
                    .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.uid() == self.uid))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.user])
            .status();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for p in self.forwarded_sockets() {
            let _ = std::fs::remove_file(p);
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
        crate::users::remove(&self.user);
    }
}

/// Output as text: (code, stdout, stderr).
pub fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
