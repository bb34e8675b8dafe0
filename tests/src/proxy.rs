//! A real forward proxy (Debian's tinyproxy) with Basic auth and an access
//! log, to show which requests went through it; and an address of this
//! machine that is not loopback (loopback is never proxied), for servers
//! the proxy is to reach.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running tinyproxy; stopped on drop.
pub struct Tinyproxy {
    child: Child,
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// The user and password it wants.
pub const USER: &str = "regent";
/// The password.
pub const PASSWORD: &str = "pr0xy-s3cret";

impl Tinyproxy {
    /// Starts tinyproxy on a free port of 127.0.0.1, wanting Basic auth;
    /// `Err` says why it cannot (not installed).
    pub fn start() -> Result<Tinyproxy, String> {
        let bin = ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .ok_or("tinyproxy is not installed (Debian package tinyproxy)")?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // tinyproxy drops to nobody: its log must be writable for it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .map_err(|e| e.to_string())?;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            l.local_addr().unwrap().port()
        };
        let log = dir.path().join("access.log");
        let conf = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "User nobody\nGroup nogroup\nPort {port}\nListen 127.0.0.1\nTimeout 60\n\
                 LogFile \"{}\"\nLogLevel Connect\nMaxClients 50\nAllow 127.0.0.1\n\
                 BasicAuth {USER} {PASSWORD}\nDisableViaHeader Yes\n",
                log.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .args(["-d", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("tinyproxy does not start: {e}"))?;
        let p = Tinyproxy { child, dir, port };
        // Ready when it accepts connections (it logs nothing before).
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(p);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("tinyproxy did not listen on 127.0.0.1:{port}"))
    }

    /// Its URL with the right credentials.
    pub fn url(&self) -> String {
        format!("http://{USER}:{PASSWORD}@127.0.0.1:{}", self.port)
    }

    /// Its URL with `password` instead.
    pub fn url_with_password(&self, password: &str) -> String {
        format!("http://{USER}:{password}@127.0.0.1:{}", self.port)
    }

    /// Its access log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// The `CONNECT` requests it took for `host_port`, so far.
    pub fn connects_to(&self, host_port: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains(&format!("CONNECT {host_port} ")))
            .count()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An IPv4 address of this machine that is not loopback (a proxy is used
/// for it), or why there is none.
pub fn outward_address() -> Result<String, String> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .ok_or_else(|| "this machine has no IPv4 address besides loopback".to_string())
}
