//! `regent doctor`: the agent's own checks (reachable, version, store,
//! how it was started), then the agent's checks of each resource, printed
//! one line a step with what fixes a step that is not ok.

use super::{output, Failure, Result};
use regent_client::AgentClient;
use regent_proto::{Check, CheckStatus, DoctorRequest};

fn check(step: &str, status: CheckStatus, detail: String, fix: Option<&str>) -> Check {
    Check {
        resource: None,
        step: step.into(),
        status,
        detail,
        fix: fix.map(str::to_string),
    }
}

/// Runs the checks; exit 1 when one failed.
pub async fn run(agent: &AgentClient, name: Option<String>, json: bool) -> Result {
    let mut checks = Vec::new();
    match agent.health().await {
        Err(e) => checks.push(check(
            "agent",
            CheckStatus::Fail,
            output::safe(&e.to_string()),
            Some("any regent command starts one (regent status); under systemd: systemctl --user start regentd.socket"),
        )),
        Ok(h) => {
            checks.push(check(
                "agent",
                CheckStatus::Ok,
                format!("regentd {} (pid {}) answers at {}", h.version, h.pid, agent.socket().display()),
                None,
            ));
            let ours = env!("CARGO_PKG_VERSION");
            checks.push(if h.version == ours {
                check("version", CheckStatus::Ok, format!("regent and regentd are both {ours}"), None)
            } else {
                check(
                    "version",
                    CheckStatus::Warn,
                    format!("regent is {ours}, the agent regentd {}", h.version),
                    Some("regent agent restart (after an upgrade the old agent keeps running)"),
                )
            });
            checks.push(if h.store == "memory" {
                check(
                    "store",
                    CheckStatus::Warn,
                    output::store_line(&h),
                    Some("logins are lost when the agent stops: run a keyring (gnome-keyring) or start regentd with --store file"),
                )
            } else {
                check("store", CheckStatus::Ok, output::store_line(&h), None)
            });
            checks.push(check(
                "service",
                CheckStatus::Ok,
                if h.systemd {
                    "started by systemd's user manager (regentd.socket)".into()
                } else {
                    "started by regent or by hand (regent service install lets systemd start it)".into()
                },
                None,
            ));
            if !h.forwarded {
                let report = agent.doctor(&DoctorRequest { name: name.clone() }).await?;
                checks.extend(report.checks);
            }
        }
    }
    let failed = checks.iter().any(|c| c.status == CheckStatus::Fail);
    if json {
        output::print_json(&serde_json::json!({ "checks": checks, "ok": !failed }));
    } else {
        for c in &checks {
            println!("{}", line(c));
            if let (Some(fix), false) = (&c.fix, c.status == CheckStatus::Ok) {
                println!("      fix: {}", output::safe(fix));
            }
        }
    }
    if failed {
        Err(Failure::Exit(1))
    } else {
        Ok(())
    }
}

/// `ok    corp   tls       idp.corp answered HTTP 200; ...`
pub fn line(c: &Check) -> String {
    let status = match c.status {
        CheckStatus::Ok => "ok",
        CheckStatus::Warn => "warn",
        CheckStatus::Fail => "FAIL",
        CheckStatus::Skip => "skip",
    };
    format!(
        "{status:<5} {:<12} {:<9} {}",
        output::safe(c.resource.as_deref().unwrap_or("-")),
        c.step,
        output::safe(&c.detail)
    )
}
