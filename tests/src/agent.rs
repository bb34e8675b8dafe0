//! The real `regentd` on a temp socket with temp XDG dirs, and the real
//! `regent` CLI pointed at it.

use crate::bin;
use regent_client::AgentClient;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start the agent.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    /// `--store`.
    pub store: String,
    /// Extra environment (e.g. `DBUS_SESSION_BUS_ADDRESS`).
    pub env: Vec<(String, String)>,
    /// Extra `regentd` arguments (e.g. `--login-timeout 2`).
    pub args: Vec<String>,
    /// A program that runs regentd (e.g. `systemd-socket-activate -l {socket}`);
    /// `{socket}` stands for the socket path.
    pub wrapper: Vec<String>,
    /// Tell regentd its stderr (the log file) is the journal, as systemd does
    /// (`JOURNAL_STREAM` = the file's device and inode).
    pub journal: bool,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            store: "file".into(),
            env: Vec::new(),
            args: Vec::new(),
            wrapper: Vec::new(),
            journal: false,
        }
    }
}

/// The proxy variables of the environment, removed from what the tests'
/// agents and CLIs see (a test that wants a proxy sets it).
fn proxy_vars() -> impl Iterator<Item = &'static str> {
    regent_net::PROXY_ENV
        .into_iter()
        .chain(regent_net::NO_PROXY_ENV)
}

/// What a CLI run produced.
#[derive(Debug)]
pub struct CmdOut {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

impl From<std::process::Output> for CmdOut {
    fn from(out: std::process::Output) -> CmdOut {
        CmdOut {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A running agent with its own home; killed on drop.
pub struct Agent {
    home: tempfile::TempDir,
    /// The socket.
    pub socket: PathBuf,
    opts: AgentOptions,
    child: Option<Child>,
}

impl Agent {
    /// Starts an agent in a fresh home and waits until it answers.
    pub async fn start(opts: AgentOptions) -> Agent {
        let mut a = Agent::unstarted(opts);
        a.spawn().await;
        a
    }

    /// A fresh home with no agent running (yet).
    pub fn unstarted(opts: AgentOptions) -> Agent {
        let home = tempfile::tempdir().unwrap();
        let socket = home.path().join("run/regent/agent.sock");
        Agent {
            home,
            socket,
            opts,
            child: None,
        }
    }

    /// The agent's home (HOME and the XDG dirs live below it).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The config file.
    pub fn config_file(&self) -> PathBuf {
        self.home().join("config/regent/config.toml")
    }

    /// The file store.
    pub fn token_file(&self) -> PathBuf {
        self.home().join("state/regent/tokens.json")
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home().join("agent.log")).unwrap_or_default()
    }

    /// The environment every process of this test sees.
    pub fn env(&self) -> Vec<(String, String)> {
        let h = self.home().display().to_string();
        let mut v = vec![
            ("HOME".to_string(), h.clone()),
            ("XDG_RUNTIME_DIR".into(), format!("{h}/run")),
            ("XDG_CONFIG_HOME".into(), format!("{h}/config")),
            ("XDG_STATE_HOME".into(), format!("{h}/state")),
            ("REGENT_SOCKET".into(), self.socket.display().to_string()),
            // Everything at trace level: every test's World checks that no token the
            // IdP issued reached the log.
            ("REGENT_LOG".into(), "trace".into()),
            // Tests start their agents themselves; autostart has tests of its own.
            ("REGENT_NO_AUTOSTART".into(), "1".into()),
        ];
        v.extend(self.opts.env.iter().cloned());
        v
    }

    /// A `regentd` command with this agent's environment (not started).
    pub fn regentd_command(&self) -> Command {
        let socket = self.socket.display().to_string();
        let mut c = match self.opts.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args.iter().map(|a| a.replace("{socket}", &socket)));
                c.arg(bin("regentd"));
                c
            }
            None => Command::new(bin("regentd")),
        };
        c.arg("--store").arg(&self.opts.store).args(&self.opts.args);
        c.env_remove("DBUS_SESSION_BUS_ADDRESS");
        // The machine's proxies are not the test's: a test sets its own.
        for k in proxy_vars() {
            c.env_remove(k);
        }
        c.envs(self.env());
        c
    }

    /// Starts (again) the agent of this home and waits until it answers.
    pub async fn spawn(&mut self) {
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(self.socket.parent().unwrap())
                .unwrap();
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home().join("agent.log"))
            .unwrap();
        let mut cmd = self.regentd_command();
        if self.opts.journal {
            use std::os::unix::fs::MetadataExt;
            let m = log.metadata().unwrap();
            cmd.env("JOURNAL_STREAM", format!("{}:{}", m.dev(), m.ino()));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("regentd starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Each probe bounded: an agent that took the connection but does
            // not answer yet is asked again, within the deadline.
            let client = self.client();
            let probe = tokio::time::timeout(Duration::from_secs(2), client.health()).await;
            if matches!(probe, Ok(Ok(_))) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("regentd exited ({status}) at start:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "regentd did not answer:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    /// SIGTERM, and waits for the agent to exit; its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    /// Sends the agent a signal.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            crate::idp::signal(c.id(), sig);
        }
    }

    /// Waits for the agent to exit (after a signal); its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        c.wait().ok().and_then(|s| s.code())
    }

    /// Waits until the agent's log holds `needle` at least `times` times.
    pub async fn wait_log(&self, needle: &str, times: usize) {
        crate::eventually(
            &format!("{times} × {needle:?} in the agent's log"),
            Duration::from_secs(60),
            || async { (self.log().matches(needle).count() >= times).then_some(()) },
        )
        .await;
    }

    /// kill -9: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// kill -9, then start again on the same home and socket.
    pub async fn restart_after_kill9(&mut self) {
        self.kill9();
        self.spawn().await;
    }

    /// The forwarding socket, once the agent serves it (a resource was made forwardable).
    pub async fn forward_socket(&self) -> PathBuf {
        let client = self.client();
        crate::eventually("the forwarding socket", Duration::from_secs(10), || async {
            client.health().await.ok().and_then(|h| h.forward_socket)
        })
        .await
    }

    /// An API client.
    pub fn client(&self) -> AgentClient {
        AgentClient::new(&self.socket)
    }

    /// A `regent` command with this agent's environment (not started).
    pub fn regent_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("regent"));
        for k in proxy_vars() {
            c.env_remove(k);
        }
        c.args(args).envs(self.env()).stdin(Stdio::null());
        c
    }

    /// Runs `regent ARGS` to completion (at most two minutes: a command that
    /// hangs fails the test here, naming itself, instead of stalling it).
    pub fn regent(&self, args: &[&str]) -> CmdOut {
        crate::output_within(
            self.regent_command(args),
            Duration::from_secs(120),
            &format!("regent {}", args.join(" ")),
        )
        .into()
    }

    /// Runs `regent ARGS` on the tokio blocking pool (for concurrency tests).
    pub async fn regent_async(&self, args: &[&str]) -> CmdOut {
        let out = tokio::process::Command::from(self.regent_command(args))
            .output()
            .await
            .expect("regent runs");
        out.into()
    }

    /// The file store's contents (`--store file`).
    pub fn stored(&self) -> serde_json::Map<String, serde_json::Value> {
        match std::fs::read(self.token_file()) {
            Ok(b) => serde_json::from_slice(&b).unwrap(),
            Err(_) => Default::default(),
        }
    }

    /// The one stored refresh token (`--store file`).
    pub fn stored_refresh_token(&self) -> Option<String> {
        self.stored()
            .values()
            .next()
            .and_then(|v| v["refresh_token"].as_str().map(str::to_string))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- regentd log ----\n{}\n---------------------",
                self.log()
            );
        }
        self.kill9();
    }
}
