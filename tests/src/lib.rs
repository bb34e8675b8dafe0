//! Harness for regent's end-to-end tests: the real `regentd` and `regent`
//! binaries, a real OpenID Provider (`oidc-provider` under `tests/idp/`), and
//! the provider's own HTML forms driven over HTTP.

pub mod agent;
pub mod apis;
pub mod browser;
pub mod forms;
pub mod hostile;
pub mod idp;
pub mod keyring;
pub mod mcp;
pub mod proxy;
pub mod registry;
pub mod ssh;
pub mod systemd;
pub mod tls;
pub mod users;

pub use agent::{Agent, AgentOptions, CmdOut};
pub use idp::{Idp, IdpOptions};

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `target/debug` (or whichever profile built the tests).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its path");
    // Tests live in target/<profile>/deps/, the demo in target/<profile>/.
    let dir = exe.parent().expect("binaries live in target/<profile>");
    if dir.ends_with("deps") {
        dir.parent().expect("deps has a parent").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Path of a workspace binary; panics with the fix when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first (cargo build --workspace), or run scripts/test",
        p.display()
    );
    p
}

/// A part this machine lacks (an sshd in a namespace, a systemd user
/// manager): under CI (`CI=true`, which `.ci/run` sets, and where `.ci/run`
/// installs every part) the test fails; elsewhere it says it checked
/// nothing, and passes.
pub fn missing(part: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
        panic!("{part} is missing under CI, where .ci/run provides it: {why}");
    }
    eprintln!("SKIPPED: {part} is missing here (this test checked nothing): {why}");
}

/// Runs `cmd` to completion, its output read as it comes; one that has not
/// finished within `limit` is killed and fails the test, naming `what`
/// and showing what it printed so far.
pub fn output_within(
    mut cmd: std::process::Command,
    limit: std::time::Duration,
    what: &str,
) -> std::process::Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = err.join().unwrap_or_default();
            panic!(
                "{what} did not finish within {limit:?}; its stderr so far:\n{}",
                String::from_utf8_lossy(&err)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// `GET url` as a browser would follow a link, with the tests' CAs and a
/// bounded wait (a server that never answers fails the test, saying so).
pub async fn get<U: reqwest::IntoUrl>(url: U) -> reqwest::Result<reqwest::Response> {
    tls::client_builder().build()?.get(url).send().await
}

/// Starts a Node fixture (`cmd`, stdout and stderr taken here) and reads the
/// one JSON line it prints once listening; `what` names it if it does not.
pub fn start_fixture(
    cmd: &mut std::process::Command,
    what: &str,
) -> (std::process::Child, serde_json::Value) {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts (is Node.js installed?)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .unwrap();
    let ready = serde_json::from_str(&line)
        .unwrap_or_else(|_| panic!("the {what} fixture did not start: {line:?}"));
    (child, ready)
}

/// GETs `url` and decodes its JSON answer; panics (the test fails) otherwise.
pub async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: String) -> T {
    let r = http
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    r.json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not the JSON expected: {e}"))
}

/// Polls `f` every 20 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills a process it does not own (an agent a CLI autostarted) when dropped,
/// so a failing test leaves nothing running.
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) with a pid the test learned from the agent itself.
        unsafe {
            libc::kill(self.0 as i32, libc::SIGKILL);
        }
    }
}

/// Raises this process's open-file soft limit (tests and benchmarks open
/// thousands of connections).
pub fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
