//! `regent ssh` and `regent forward`: lend the agent's tokens to a machine
//! you ssh to. `regent ssh` runs your `ssh` with an OpenSSH stream-local
//! forward (`-R`) of the agent's forwarding socket to
//! `/tmp/regent-fwd-<random>.sock` on the remote side — a path the remote
//! `regent` finds without help (sshd creates it as you, 0600; nothing about
//! the remote user, home or runtime directory has to be known in advance),
//! removed by the remote shell when the session ends (sshd never removes
//! it). `SetEnv REGENT_SOCKET` is sent too, for servers that accept it.

use super::args::ForwardCommand;
use super::{output, Failure, Result};
use regent_client::AgentClient;
use regent_proto::{ForwardSession, PutForward};
use std::io::{BufRead, IsTerminal, Write};
use std::process::{Command, Stdio};

/// `ssh` options that take a value (so the destination is told from them).
const WITH_VALUE: &[&str] = &[
    "-B", "-b", "-c", "-D", "-E", "-e", "-F", "-I", "-i", "-J", "-L", "-l", "-m", "-O", "-o", "-p",
    "-Q", "-R", "-S", "-W", "-w",
];

pub async fn forward(agent: &AgentClient, cmd: ForwardCommand) -> Result {
    match cmd {
        ForwardCommand::List { json } => {
            let list = agent.forwards().await?;
            if json {
                output::print_json(&serde_json::to_value(&list).unwrap_or_default());
                return Ok(());
            }
            if list.resources.is_empty() {
                println!(
                    "Nothing is forwardable. Allow a resource with: regent forward allow NAME"
                );
                return Ok(());
            }
            for r in &list.resources {
                let f = r.forward.as_ref().expect("listed as forwardable");
                let used = match &f.last_use {
                    Some(u) => {
                        let ago = (time::OffsetDateTime::now_utc() - u.at)
                            .whole_seconds()
                            .max(0);
                        format!("last lent {} ago, to {}", output::human(ago as u64), u.via)
                    }
                    None => "not lent yet".into(),
                };
                println!(
                    "{}  {}{}",
                    r.name,
                    if f.confirm { "asks per session, " } else { "" },
                    used
                );
            }
            for s in &list.sessions {
                println!("session: ssh pid {} to {}", s.ssh_pid, s.host);
            }
            Ok(())
        }
        ForwardCommand::Relay { .. } => unreachable!("run without an agent"),
        ForwardCommand::Allow { names, confirm } => {
            for name in names {
                agent
                    .put_forward(
                        &name,
                        &PutForward {
                            forwardable: true,
                            confirm,
                        },
                    )
                    .await?;
                println!(
                    "{name} is forwardable{}: regent ssh lends its tokens (never a login) to the machines you ssh to.",
                    if confirm { ", with a yes per session" } else { "" }
                );
            }
            Ok(())
        }
        ForwardCommand::Deny { names } => {
            for name in names {
                agent
                    .put_forward(
                        &name,
                        &PutForward {
                            forwardable: false,
                            confirm: false,
                        },
                    )
                    .await?;
                println!("{name} is no longer forwardable.");
            }
            Ok(())
        }
    }
}

/// The destination among `ssh` arguments: the first word that is neither an
/// option nor an option's value.
fn destination(args: &[String]) -> Option<&str> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" {
            return None;
        }
        if a.starts_with('-') {
            i += if WITH_VALUE.contains(&a) { 2 } else { 1 };
            continue;
        }
        return Some(a);
    }
    None
}

/// `'s'` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The remote command: the relay started where the remote side has a
/// `regent` (on sshd's PATH, or in ~/.local/bin or ~/.cargo/bin), the user's
/// command (or a login shell), then the relay stopped and the sockets
/// removed, also when the session hangs up or is killed. Without a remote
/// `regent` (or one too old for the relay) helpers use the forward itself.
fn remote_command(path: &str, command: &[String]) -> String {
    let run = if command.is_empty() {
        "\"${SHELL:-/bin/sh}\" -l".to_string()
    } else {
        command.join(" ")
    };
    let relay = regent_client::locate::relay_of(std::path::Path::new(path));
    let relay = relay.display();
    // The user's command in a subshell of its own lines: a trailing newline or
    // comment, `set -e` or `exit` in it cannot skip the cleanup.
    let script = format!(
        "regent_end() {{ [ -z \"$regent_relay\" ] || {{ kill \"$regent_relay\"; \
         wait \"$regent_relay\"; }} 2>/dev/null; rm -f {path} {relay}; }}; regent_relay=; \
         trap 'regent_end; exit 129' HUP; trap 'regent_end; exit 143' TERM; \
         trap 'regent_end; exit 130' INT; \
         for b in \"$(command -v regent)\" \"$HOME/.local/bin/regent\" \"$HOME/.cargo/bin/regent\"; do \
         if [ -x \"$b\" ]; then \"$b\" forward relay {path} </dev/null >/dev/null 2>&1 & \
         regent_relay=$!; break; fi; done; (\n{run}\n); s=$?; regent_end; exit $s"
    );
    format!("sh -c {}", quote(&script))
}

/// Asks on the terminal; no terminal is a no.
fn ask(question: &str) -> bool {
    let Ok(mut tty) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    else {
        return false;
    };
    let _ = write!(tty, "{question}");
    let mut line = String::new();
    let _ = std::io::BufReader::new(&tty).read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}

pub async fn ssh(agent: &AgentClient, args: Vec<String>) -> Result {
    let (ssh_args, command) = match args.iter().position(|a| a == "--") {
        Some(i) => (args[..i].to_vec(), args[i + 1..].to_vec()),
        None => (args, Vec::new()),
    };
    let host = destination(&ssh_args)
        .ok_or_else(|| {
            Failure::Usage(
                "name the machine: regent ssh [SSH_OPTIONS] DESTINATION [-- COMMAND]".into(),
            )
        })?
        .to_string();
    let health = agent.health().await?;
    let list = agent.forwards().await?;
    let local = match (health.forward_socket, list.resources.is_empty()) {
        (_, true) => {
            return Err(Failure::Other(
                "nothing is forwardable yet: allow what the remote machine may use, e.g. regent forward allow corp".into(),
            ))
        }
        (Some(s), false) => s,
        (None, false) => {
            return Err(Failure::Other(
                "the agent serves no forwarding socket (see regent agent logs)".into(),
            ))
        }
    };
    let mut approved = Vec::new();
    for r in &list.resources {
        if r.forward.as_ref().is_some_and(|f| f.confirm) {
            if ask(&format!(
                "Lend {}'s tokens to {host} for this session? [y/N] ",
                r.name
            )) {
                approved.push(r.name.clone());
            } else {
                eprintln!("regent: {} is not lent in this session", r.name);
            }
        }
    }
    let mut bytes = [0u8; 16];
    getrandom(&mut bytes);
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let remote = format!(
        "{}/{}{id}.sock",
        regent_client::locate::FORWARD_DIR,
        regent_client::locate::FORWARD_PREFIX
    );
    let mut cmd = Command::new("ssh");
    cmd.args(["-o", "ExitOnForwardFailure=yes"])
        .arg("-o")
        .arg(format!("SetEnv=REGENT_SOCKET={remote}"))
        .arg("-R")
        .arg(format!("{remote}:{}", local.display()));
    if command.is_empty() && std::io::stdin().is_terminal() {
        cmd.arg("-t");
    }
    cmd.args(&ssh_args)
        .arg(remote_command(&remote, &command))
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::Other(format!("cannot run ssh: {e}")))?;
    let pid = child.id();
    // Told apart from other forwarded requests by the pid of this ssh.
    agent
        .open_session(&ForwardSession {
            ssh_pid: pid,
            host: host.clone(),
            approved,
        })
        .await?;
    // ssh's own messages pass through; a refused forward is recognised.
    let stderr = child.stderr.take().expect("piped");
    let relay = std::thread::spawn(move || {
        let mut refused = false;
        let mut err = std::io::stderr();
        for line in std::io::BufReader::new(stderr)
            .split(b'\n')
            .map_while(|l| l.ok())
        {
            refused |= String::from_utf8_lossy(&line).contains("remote port forwarding failed");
            let _ = err.write_all(&line);
            let _ = err.write_all(b"\n");
        }
        refused
    });
    // Ctrl-C is ssh's to handle (it is sent to the whole process group).
    let _sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .map_err(|e| Failure::Other(e.to_string()))?
        .map_err(|e| Failure::Other(format!("ssh: {e}")))?;
    let refused = relay.join().unwrap_or(false);
    let _ = agent.close_session(pid).await;
    if refused {
        return Err(Failure::Other(format!(
            "{host} refused to forward the agent (its sshd has AllowStreamLocalForwarding no, \
             AllowTcpForwarding no or local, or DisableForwarding): ask its administrator, or log in \
             there instead (regent login NAME --device)"
        )));
    }
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(Failure::Exit(code)),
        None => Err(Failure::Exit(255)),
    }
}

/// Fills `buf` from the kernel's random source.
fn getrandom(buf: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("/dev/urandom is readable");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_destination_is_found_among_ssh_options() {
        assert_eq!(destination(&words("host")), Some("host"));
        assert_eq!(destination(&words("-p 2222 -i key u@h")), Some("u@h"));
        assert_eq!(destination(&words("-A -o X=y host -- ls")), Some("host"));
        assert_eq!(destination(&words("-p 22")), None);
    }

    #[test]
    fn the_remote_command_removes_the_socket_whatever_happens() {
        let c = remote_command("/tmp/regent-fwd-ab.sock", &words("regent token corp"));
        assert!(c.starts_with("sh -c '"), "{c}");
        assert!(
            c.contains("regent token corp\n); s=$?; regent_end; exit $s"),
            "{c}"
        );
        assert!(
            c.contains("rm -f /tmp/regent-fwd-ab.sock /tmp/regent-fwd-ab.relay"),
            "{c}"
        );
        assert!(c.contains("HUP") && c.contains("TERM"), "{c}");
        assert_eq!(quote("it's"), r"'it'\''s'");
        // Run as the remote shell runs it: a script ending in a newline, with
        // `set -e` and a failure, still removes the socket and keeps its status.
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("regent-fwd-x.sock");
        std::fs::write(&sock, "").unwrap();
        let c = remote_command(
            sock.to_str().unwrap(),
            &["set -e\nfalse\necho not reached # a comment\n".to_string()],
        );
        let status = std::process::Command::new("sh")
            .args(["-c", &c])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(1));
        assert!(!sock.exists(), "the socket stayed");
    }
}
