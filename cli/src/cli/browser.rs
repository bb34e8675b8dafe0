//! Opening the user's browser: `$BROWSER` when set (a `:`-separated list of
//! commands, `%s` standing for the URL), else the desktop's opener.

use std::process::{Command, Stdio};

/// Opens `url` in a browser, without waiting for it to close.
pub fn open(url: &str) -> Result<(), String> {
    if let Some(list) = std::env::var_os("BROWSER").filter(|v| !v.is_empty()) {
        let list = list.to_string_lossy().into_owned();
        let mut last = String::from("$BROWSER is empty");
        for cmd in list.split(':').filter(|c| !c.trim().is_empty()) {
            match spawn(cmd, url) {
                Ok(()) => return Ok(()),
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
    open::that_detached(url).map_err(|e| e.to_string())
}

fn spawn(cmd: &str, url: &str) -> Result<(), String> {
    let mut parts = cmd.split_whitespace();
    let program = parts.next().ok_or("empty command")?;
    let mut args: Vec<String> = parts.map(|a| a.replace("%s", url)).collect();
    if !cmd.contains("%s") {
        args.push(url.to_string());
    }
    Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|_| ())
        .map_err(|e| e.to_string())
}
