//! Opening the user's browser: `$BROWSER` when set (a `:`-separated list of
//! commands, `%s` standing for the URL), else the desktop's opener. A
//! command that fails at once (`BROWSER=false`, a missing program) is a
//! failure to open, and the next entry is tried.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a `$BROWSER` command may take to fail before it counts as opened.
const FAIL_FAST: Duration = Duration::from_millis(1500);

/// Opens `url` in a browser. Returns the command if it still runs (a
/// browser that stays up): the caller reaps it at exit.
pub fn open(url: &str) -> Result<Option<Child>, String> {
    if let Some(list) = std::env::var_os("BROWSER").filter(|v| !v.is_empty()) {
        let list = list.to_string_lossy().into_owned();
        let mut last = String::from("$BROWSER is empty");
        for cmd in list.split(':').filter(|c| !c.trim().is_empty()) {
            match spawn(cmd, url) {
                Ok(child) => return Ok(child),
                Err(e) => last = format!("$BROWSER entry {cmd:?}: {e}"),
            }
        }
        return Err(last);
    }
    if std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
        && cfg!(target_os = "linux")
    {
        return Err("no display (use --device for SSH sessions)".into());
    }
    open::that_detached(url)
        .map(|_| None)
        .map_err(|e| e.to_string())
}

fn spawn(cmd: &str, url: &str) -> Result<Option<Child>, String> {
    let mut parts = cmd.split_whitespace();
    let program = parts.next().ok_or("empty command")?;
    let mut args: Vec<String> = parts.map(|a| a.replace("%s", url)).collect();
    if !cmd.contains("%s") {
        args.push(url.to_string());
    }
    let mut child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(None),
            Ok(Some(status)) => return Err(format!("it exited with {status}")),
            Ok(None) if started.elapsed() >= FAIL_FAST => return Ok(Some(child)),
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}
