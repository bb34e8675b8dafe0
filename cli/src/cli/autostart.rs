//! Starting the agent when none answers: detached, logging to
//! `$XDG_STATE_HOME/regent/agent.log`, exactly one for concurrent callers
//! (they queue on a lock file, and the later ones find it running).

use super::Failure;
use regent_client::AgentClient;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the CLI waits for a new agent (or for another CLI starting one).
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether autostart is on (`REGENT_NO_AUTOSTART` unset or empty).
pub fn enabled() -> bool {
    std::env::var_os("REGENT_NO_AUTOSTART").is_none_or(|v| v.is_empty())
}

/// Whether nothing listens at `socket` (missing, or a dead agent's leftover).
pub fn nobody_listens(socket: &Path) -> bool {
    match std::os::unix::net::UnixStream::connect(socket) {
        Ok(_) => false,
        Err(e) => matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused),
    }
}

/// Starts `regentd` for `socket` and waits until it answers.
pub async fn start(agent: &AgentClient) -> Result<(), Failure> {
    start_with(agent, &[]).await
}

/// [`start`], with `args` for regentd (a restart gives those the agent had).
pub async fn start_with(agent: &AgentClient, args: &[String]) -> Result<(), Failure> {
    let socket = agent.socket().to_path_buf();
    let state = regent_proto::paths::state_dir();
    let fail = |what: String| {
        Failure::Client(regent_client::ClientError::Unreachable {
            socket: socket.clone(),
            reason: what,
        })
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&state)
        .map_err(|e| fail(format!("cannot create {}: {e}", state.display())))?;
    let log_path = state.join("agent.log");
    let lock_path = state.join("autostart.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| fail(format!("cannot open {}: {e}", lock_path.display())))?;
    let deadline = Instant::now() + START_TIMEOUT;
    // One starter at a time; the others wait here and then find it running.
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(fail(format!(
                "another regent is starting the agent for too long (lock {})",
                lock_path.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !nobody_listens(&socket) {
        return wait_ready(agent, None, &log_path, 0, deadline).await;
    }
    // One agent per user: never a second one beside a running agent.
    if let Some(running) = regent_client::locate::running_agent() {
        if running.socket == socket {
            return wait_ready(agent, None, &log_path, 0, deadline).await;
        }
        return Err(fail(format!(
            "the agent of this user (regentd, pid {}) serves on {}, and a second one would race it on \
             refresh-token rotation; use that socket (drop --socket, or unset REGENT_SOCKET)",
            running.pid,
            running.socket.display()
        )));
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| fail(format!("cannot open {}: {e}", log_path.display())))?;
    // Where this start's lines begin, to show why it failed if it does.
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let err_log = log.try_clone().map_err(|e| fail(e.to_string()))?;
    let mut cmd = Command::new(regentd_path());
    // A CLI run by a systemd unit must not lend that unit's notify socket,
    // journal stream or activation sockets to the agent it starts.
    for var in [
        "NOTIFY_SOCKET",
        "JOURNAL_STREAM",
        "LISTEN_PID",
        "LISTEN_FDS",
        "LISTEN_FDNAMES",
    ] {
        cmd.env_remove(var);
    }
    if !args
        .iter()
        .any(|a| a == "--socket" || a.starts_with("--socket="))
    {
        cmd.arg("--socket").arg(&socket);
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log);
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; the agent leaves our session and terminal.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        fail(format!(
            "cannot start regentd ({e}); install it next to regent or on PATH"
        ))
    })?;
    let pid = child.id();
    wait_ready(agent, Some(child), &log_path, log_start, deadline).await?;
    eprintln!(
        "regent: started the agent (regentd, pid {pid}); its log: {}",
        log_path.display()
    );
    Ok(())
}

async fn wait_ready(
    agent: &AgentClient,
    mut child: Option<std::process::Child>,
    log: &Path,
    log_start: u64,
    deadline: Instant,
) -> Result<(), Failure> {
    loop {
        let probe = tokio::time::timeout(Duration::from_secs(1), agent.health()).await;
        if matches!(probe, Ok(Ok(_))) {
            return Ok(());
        }
        if let Some(c) = child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                let why = start_error(log, log_start)
                    .map(|e| format!("regentd could not start: {e}"))
                    .unwrap_or_else(|| format!("regentd exited at start ({status})"));
                return Err(Failure::Client(regent_client::ClientError::Unreachable {
                    socket: agent.socket().to_path_buf(),
                    reason: format!("{why}\n(its log: {})", log.display()),
                }));
            }
        }
        if Instant::now() > deadline {
            return Err(Failure::Client(regent_client::ClientError::Unreachable {
                socket: agent.socket().to_path_buf(),
                reason: format!(
                    "regentd did not answer within {}s; see {}",
                    START_TIMEOUT.as_secs(),
                    log.display()
                ),
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What regentd said when it gave up, from its log since `start`: the
/// lines from its last `regentd: ` line on (a config error names its line).
fn start_error(log: &Path, start: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(log).ok()?;
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut text = String::new();
    f.take(64 * 1024).read_to_string(&mut text).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.iter().rposition(|l| l.starts_with("regentd: "))?;
    let msg = lines[first..].join("\n");
    let msg = msg["regentd: ".len()..].trim();
    (!msg.is_empty()).then(|| msg.to_string())
}

/// `regentd` next to this `regent`, else from `PATH`.
pub fn regentd_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok())
        .map(|p| p.with_file_name("regentd"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("regentd"))
}

use std::os::unix::fs::DirBuilderExt;
