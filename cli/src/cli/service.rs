//! `regent service install|uninstall`: the systemd user units, written for
//! the regentd installed next to this regent.

use super::autostart::regentd_path;
use super::{Failure, Result};
use std::path::PathBuf;
use std::process::Command;

const SOCKET_UNIT: &str = include_str!("../../../systemd/regentd.socket");
const SERVICE_UNIT: &str = include_str!("../../../systemd/regentd.service");

/// Where the unit template expects regentd; replaced by the installed path.
const TEMPLATE_REGENTD: &str = "/usr/local/bin/regentd";

fn unit_dir() -> PathBuf {
    regent_proto::paths::config_home()
        .join("systemd")
        .join("user")
}

/// Writes the units; with `enable`, reloads systemd and enables the socket.
pub fn install(enable: bool) -> Result {
    let regentd = regentd_path();
    if !regentd.is_absolute() {
        return Err(Failure::Other(
            "cannot find regentd next to regent; install both in the same directory".into(),
        ));
    }
    let dir = unit_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Other(format!("cannot create {}: {e}", dir.display())))?;
    // The template names regentd by its default path (ExecStart, ExecReload).
    let service = SERVICE_UNIT.replace(TEMPLATE_REGENTD, &regentd.display().to_string());
    for (name, text) in [
        ("regentd.socket", SOCKET_UNIT.to_string()),
        ("regentd.service", service),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| Failure::Other(format!("cannot write {}: {e}", path.display())))?;
        println!("wrote {}", path.display());
    }
    proxy_note();
    let steps: [&[&str]; 2] = [&["daemon-reload"], &["enable", "--now", "regentd.socket"]];
    if enable {
        take_over_from_autostarted()?;
        for args in steps {
            systemctl(args)?;
        }
        println!("regentd.socket is enabled: systemd starts the agent on first use.");
    } else {
        println!("Enable it with:");
        for args in steps {
            println!("  systemctl --user {}", args.join(" "));
        }
    }
    Ok(())
}

/// systemd's user manager starts the agent without this shell's
/// environment: a proxy set only there would be lost. Said, with where to
/// put it so that every agent has it (the config's `[network]`).
fn proxy_note() {
    let config = regent_proto::paths::config_file();
    let in_config = regent_net::NetworkConfig::read(&config)
        .map(|n| n.proxy.is_some())
        .unwrap_or(false);
    let in_env: Vec<String> = regent_net::PROXY_ENV
        .iter()
        .filter(|k| std::env::var(k).is_ok_and(|v| !v.is_empty()))
        .map(|k| k.to_string())
        .collect();
    if !in_config && !in_env.is_empty() {
        println!(
            "note: this shell sets {}, which the service will not see (systemd starts it without \
             your shell's environment). Put the proxy in {} so every agent uses it:\n  \
             [network]\n  proxy = \"http://proxy.example:3128\"\n  no_proxy = \"localhost,.corp.example\"",
            in_env.join(", "),
            config.display()
        );
    }
}

/// Stops an agent that is not systemd's (autostarted, or started by hand)
/// and waits until it has drained and let go of its lock: one agent per
/// user, and from now on systemd's.
fn take_over_from_autostarted() -> Result {
    let Some(running) = regent_client::locate::running_agent() else {
        return Ok(());
    };
    if running.systemd {
        return Ok(());
    }
    println!(
        "Stopping the agent that runs now (regentd, pid {}), so that systemd's takes over…",
        running.pid
    );
    super::agent::stop(&running)?;
    println!("It stopped; its tokens are in the store for systemd's agent.");
    Ok(())
}

/// Stops, disables and removes the units.
pub fn uninstall() -> Result {
    let dir = unit_dir();
    let units = ["regentd.socket", "regentd.service"];
    if which("systemctl") {
        // Best effort: the units may not be loaded (no user manager, never enabled).
        let _ = Command::new("systemctl")
            .args(["--user", "disable", "--now"])
            .args(units)
            .status();
    }
    let mut removed = 0;
    for name in units {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                println!("removed {}", path.display());
                removed += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Failure::Other(format!(
                    "cannot remove {}: {e}",
                    path.display()
                )))
            }
        }
    }
    if removed == 0 {
        println!("No regent units were installed in {}.", dir.display());
    } else if which("systemctl") {
        let _ = Command::new("systemctl")
            .args(["--user", "daemon-reload"])
            .status();
    }
    Ok(())
}

fn systemctl(args: &[&str]) -> Result {
    let status = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .status()
        .map_err(|e| Failure::Other(format!("cannot run systemctl: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::Other(format!(
            "systemctl --user {} failed ({status})",
            args.join(" ")
        )))
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}
