//! `regent agent status|stop|restart|reload|logs`: the running agent,
//! whoever started it. Under systemd these go through `systemctl --user`
//! and the journal; an agent regent started (or one started by hand) is
//! found through its lock record, stopped with SIGTERM and waited for.

use super::args::AgentCommand;
use super::{autostart, output, Failure, Result};
use regent_client::AgentClient;
use regent_proto::AgentRecord;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a stopping agent may drain before regent gives up waiting.
const STOP_WAIT: Duration = Duration::from_secs(20);

pub async fn run(agent: &AgentClient, cmd: AgentCommand) -> Result {
    let running = regent_client::locate::running_agent();
    match cmd {
        AgentCommand::Status { json } => status(agent, running.as_ref(), json).await,
        AgentCommand::Stop => match running {
            None => {
                println!("No agent runs.");
                Ok(())
            }
            Some(r) if r.systemd => {
                systemctl(&["stop", "regentd.service"])?;
                println!(
                    "Stopped systemd's agent (pid {}); its socket stays, so the next regent command starts it again.",
                    r.pid
                );
                Ok(())
            }
            Some(r) => {
                stop(&r)?;
                println!(
                    "Stopped the agent (pid {}); its tokens are in the store.",
                    r.pid
                );
                Ok(())
            }
        },
        AgentCommand::Restart => {
            // A config that does not parse would leave no agent at all: refused first.
            check_config()?;
            match &running {
                Some(r) if r.systemd => {
                    systemctl(&["restart", "regentd.service"])?;
                }
                Some(r) => {
                    stop(r)?;
                    // As it was started: the same store, socket and settings.
                    autostart::start_with(agent, &r.args).await?;
                }
                None => autostart::start(agent).await?,
            }
            let h = agent.health().await?;
            println!(
                "The agent runs again (pid {}{}).",
                h.pid,
                if h.systemd { ", under systemd" } else { "" }
            );
            Ok(())
        }
        AgentCommand::Reload => {
            if running.is_none() && !regent_client::locate::answers(agent.socket()) {
                return Err(Failure::Other(
                    "no agent runs, so there is nothing to reload; the next regent command starts one with the file as it is".into(),
                ));
            }
            let r = agent.reload().await?;
            println!(
                "Reloaded {}: {} {} configured.",
                regent_proto::paths::config_file().display(),
                r.resources,
                if r.resources == 1 {
                    "resource"
                } else {
                    "resources"
                }
            );
            Ok(())
        }
        AgentCommand::Logs { follow, lines } => logs(running.as_ref(), follow, lines),
    }
}

/// `regentd --check-config`: an error with its reason when the file does not parse.
fn check_config() -> Result {
    let out = Command::new(autostart::regentd_path())
        .arg("--check-config")
        .output()
        .map_err(|e| Failure::Other(format!("cannot run regentd --check-config: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr);
    Err(Failure::Other(format!(
        "not restarted: {}; the running agent is left as it is",
        why.trim().trim_start_matches("regentd: ")
    )))
}

async fn status(agent: &AgentClient, running: Option<&AgentRecord>, json: bool) -> Result {
    let health = match running {
        Some(_) => Some(agent.health().await?),
        // An agent not found by its lock may still answer (another state dir).
        None => agent.health().await.ok(),
    };
    if json {
        output::print_json(&serde_json::json!({
            "running": health.is_some(),
            "agent": health,
            "socket": agent.socket(),
            "log": log_file(),
        }));
        return Ok(());
    }
    let Some(h) = health else {
        println!(
            "No agent runs. The next regent command starts one{}.",
            if socket_unit_active() {
                " (systemd listens on its socket)"
            } else {
                ""
            }
        );
        return Ok(());
    };
    println!("regentd {}, pid {}", h.version, h.pid);
    if let Some(t) = h.started_at {
        let up = (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0) as u64;
        println!("  up            {}", output::human(up));
    }
    println!(
        "  started by    {}",
        if h.systemd {
            "systemd (regentd.socket)"
        } else {
            "regent (autostart) or by hand"
        }
    );
    println!("  socket        {}", agent.socket().display());
    println!("  store         {}", output::store_line(&h));
    if h.systemd {
        println!("  log           journalctl --user -u regentd (or: regent agent logs)");
    } else {
        println!("  log           {}", log_file().display());
    }
    if let Some(names) = output::waiting_logins(&h) {
        println!("  waiting       logins of {names}");
    }
    Ok(())
}

/// SIGTERM to an agent systemd does not run, then waits until it has let go
/// of its lock (drained, nothing half-written).
pub fn stop(running: &AgentRecord) -> Result {
    // SAFETY: kill(2) on the pid the kernel names as the lock's holder.
    if unsafe { libc::kill(running.pid as i32, libc::SIGTERM) } != 0 {
        return Err(Failure::Other(format!(
            "cannot stop the running agent (pid {}): {}",
            running.pid,
            std::io::Error::last_os_error()
        )));
    }
    let deadline = Instant::now() + STOP_WAIT;
    while regent_client::locate::running_agent().is_some_and(|r| r.pid == running.pid) {
        if Instant::now() > deadline {
            return Err(Failure::Other(format!(
                "the agent (pid {}) did not stop within {} s",
                running.pid,
                STOP_WAIT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Where an agent regent starts logs.
fn log_file() -> std::path::PathBuf {
    regent_proto::paths::state_dir().join("agent.log")
}

fn logs(running: Option<&AgentRecord>, follow: bool, lines: usize) -> Result {
    let journal = running.is_some_and(|r| r.systemd)
        || (running.is_none() && socket_unit_active() && !log_file().exists());
    let n = lines.to_string();
    let mut cmd = if journal {
        let mut c = Command::new("journalctl");
        c.args(["--user", "-u", "regentd.service", "-n", &n, "--no-pager"]);
        if follow {
            c.arg("-f");
        }
        c
    } else {
        let path = log_file();
        if !path.exists() {
            return Err(Failure::Other(format!(
                "no log yet at {} (an agent regent starts logs there; one started by hand logs to its stderr)",
                path.display()
            )));
        }
        let mut c = Command::new("tail");
        c.args(["-n", &n]);
        if follow {
            c.arg("-F");
        }
        c.arg(path);
        c
    };
    let program = if journal { "journalctl" } else { "tail" };
    // The log quotes what servers said: each line is shown with control characters escaped.
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Failure::Other(format!("cannot run {program}: {e}")))?;
    if let Some(out) = child.stdout.take() {
        use std::io::{BufRead, Write};
        let mut stdout = std::io::stdout().lock();
        for line in std::io::BufReader::new(out).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line);
            if writeln!(stdout, "{}", regent_client::text::printable(&line)).is_err() {
                break;
            }
            let _ = stdout.flush();
        }
    }
    let status = child
        .wait()
        .map_err(|e| Failure::Other(format!("cannot run {program}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::Other(format!("{program} failed ({status})")))
    }
}

/// Whether systemd listens on the agent's socket for the user.
fn socket_unit_active() -> bool {
    Command::new("systemctl")
        .args(["--user", "is-active", "--quiet", "regentd.socket"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn systemctl(args: &[&str]) -> Result {
    let out = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .output()
        .map_err(|e| Failure::Other(format!("cannot run systemctl: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Failure::Other(format!(
            "systemctl --user {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
