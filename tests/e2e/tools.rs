//! The whole toolchain on one login: real git cloning over smart HTTP, real
//! cargo resolving from a sparse registry that requires auth, and a real
//! Kubernetes client library running regent as its exec plugin, each
//! against a server that accepts only tokens the IdP says are active. The
//! APIs are added with `regent api add` and found by discovery (RFC 9728).

use regent_tests::apis::{self, Apis};
use regent_tests::{Agent, AgentOptions, Idp, IdpOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Adds the API `name` at `url` with its auth discovered, and logs in.
async fn add_and_login(agent: &Agent, name: &str, url: &str) {
    let out = agent.regent(&["api", "add", name, url]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("how it wants to be authorized"),
        "{}",
        out.stderr
    );
    crate::device_login(agent, Some(name), "alice").await;
}

/// What the fixture saw for `api`, as (scheme, active, status).
async fn seen(apis: &Apis, api: &str) -> Vec<(String, bool, u64)> {
    apis.seen()
        .await
        .iter()
        .filter(|e| e["api"] == api)
        .map(|e| {
            (
                e["scheme"].as_str().unwrap().to_string(),
                e["active"].as_bool().unwrap(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The tool asked without a token first (401: that is how it learns a
/// server wants one), then sent `scheme` with an active token every time.
fn assert_authenticated_after_a_401(s: &[(String, bool, u64)], scheme: &str) {
    let anonymous = s.iter().take_while(|e| e.0 == "none").count();
    assert!(anonymous >= 1, "{s:?}");
    assert!(s[..anonymous].iter().all(|e| e.2 == 401), "{s:?}");
    assert!(s.len() > anonymous, "never authenticated: {s:?}");
    assert!(
        s[anonymous..]
            .iter()
            .all(|e| *e == (scheme.to_string(), true, 200)),
        "{s:?}"
    );
}

fn git_clone(agent: &Agent, git: &apis::Git, url: &str, dest: &Path) -> regent_tests::CmdOut {
    let helper = format!("!{} git-credential", regent_tests::bin("regent").display());
    let mut cmd = Command::new(&git.path);
    cmd.envs(agent.env())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["-c", "credential.helper=", "-c"])
        .arg(format!("credential.helper={helper}"))
        .args(["clone", "-q", url])
        .arg(dest);
    regent_tests::output_within(cmd, Duration::from_secs(60), "git clone").into()
}

#[tokio::test]
async fn real_git_clones_over_smart_http_with_the_agents_token() {
    let gits = apis::gits();
    let (Some(new), Some(old)) = (
        gits.iter().find(|g| g.has_authtype()),
        gits.iter().find(|g| !g.has_authtype()),
    ) else {
        return regent_tests::missing(
            "a git 2.46+ and an older git",
            &format!("found {gits:?}; Debian's git is older, the machine's /usr/local one newer"),
        );
    };
    let idp = Idp::start(IdpOptions::default());
    let root = tempfile::tempdir().unwrap();
    apis::bare_repo(new, root.path(), "app", "hello from the forge\n");
    let apis = Apis::start(&idp.issuer, root.path());
    let agent = Agent::start(AgentOptions::default()).await;
    add_and_login(&agent, "forge", &apis.api("git")).await;
    let list: Value =
        serde_json::from_str(&agent.regent(&["api", "list", "--json"]).stdout).unwrap();
    assert_eq!(list["apis"][0]["name"], "forge", "{list}");
    assert_eq!(list["apis"][0]["kind"], "api", "{list}");
    let repo = format!("{}/app.git", apis.api("git"));

    // git 2.46+: asked after the server's 401, regent answers authtype=Bearer.
    apis.reset().await;
    let dest = root.path().join("bearer");
    let out = git_clone(&agent, new, &repo, &dest);
    assert_eq!(out.code, 0, "git {:?}: {}", new.version, out.stderr);
    assert_eq!(
        std::fs::read_to_string(dest.join("README")).unwrap(),
        "hello from the forge\n"
    );
    let s = seen(&apis, "git").await;
    assert_authenticated_after_a_401(&s, "bearer");
    assert!(
        s.len() >= 3,
        "info/refs and the pack, with the token: {s:?}"
    );

    // An older git: the token as the password of Basic, which forges take.
    apis.reset().await;
    let dest = root.path().join("basic");
    let out = git_clone(&agent, old, &repo, &dest);
    assert_eq!(out.code, 0, "git {:?}: {}", old.version, out.stderr);
    assert!(dest.join("README").exists());
    assert_authenticated_after_a_401(&seen(&apis, "git").await, "basic");

    // A second API on the forge's host: git naming only the host is
    // ambiguous, and regent says how git names the path.
    let out = agent.regent(&[
        "api",
        "add",
        "crates",
        &apis.api("cargo"),
        "--issuer",
        &idp.issuer,
        "--client-id",
        regent_tests::idp::CLIENT_ID,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = git_clone(&agent, new, &repo, &root.path().join("ambiguous"));
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("credential.useHttpPath"),
        "{}",
        out.stderr
    );
    let mut cmd = Command::new(&new.path);
    cmd.envs(agent.env())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["-c", "credential.helper=", "-c"])
        .arg(format!(
            "credential.helper=!{} git-credential",
            regent_tests::bin("regent").display()
        ))
        .args(["-c", "credential.useHttpPath=true", "clone", "-q", &repo])
        .arg(root.path().join("with-path"));
    let out: regent_tests::CmdOut =
        regent_tests::output_within(cmd, Duration::from_secs(60), "git clone").into();
    assert_eq!(out.code, 0, "{}", out.stderr);

    let out = agent.regent(&["api", "remove", "crates"]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Logged out: git fails without asking anyone, and stderr says what to run.
    let out = agent.regent(&["logout", "forge"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = git_clone(&agent, new, &repo, &root.path().join("none"));
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("regent login forge"), "{}", out.stderr);
}

/// Where rustup keeps the toolchains (the tests give cargo another HOME).
fn rustup_home() -> PathBuf {
    std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".rustup"))
}

#[tokio::test]
async fn real_cargo_resolves_from_a_sparse_registry_that_requires_auth() {
    let idp = Idp::start(IdpOptions::default());
    let root = tempfile::tempdir().unwrap();
    let apis = Apis::start(&idp.issuer, root.path());
    let agent = Agent::start(AgentOptions::default()).await;
    let out = agent.regent(&["api", "add", "crates", &apis.api("cargo")]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    // cargo's config, as README gives it: regent is the registry's provider.
    let cargo_home = root.path().join("cargo-home");
    std::fs::create_dir_all(&cargo_home).unwrap();
    let index = format!("sparse+{}/cargo/index/", apis.url);
    std::fs::write(
        cargo_home.join("config.toml"),
        format!(
            "[registries.corp]\nindex = \"{index}\"\ncredential-provider = [\"{}\"]\n",
            regent_tests::bin("regent").display()
        ),
    )
    .unwrap();
    let project = root.path().join("app");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\ndemo = { version = \"0.1\", registry = \"corp\" }\n",
    )
    .unwrap();
    std::fs::write(project.join("src/lib.rs"), "").unwrap();
    let cargo = || {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.envs(agent.env())
            .env("CARGO_HOME", &cargo_home)
            .env("RUSTUP_HOME", rustup_home())
            .env("CARGO_TERM_COLOR", "never")
            .current_dir(&project)
            .arg("generate-lockfile");
        let out: regent_tests::CmdOut =
            regent_tests::output_within(cmd, Duration::from_secs(120), "cargo generate-lockfile")
                .into();
        out
    };

    // No login yet: cargo fails, and says what regent said.
    let out = cargo();
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("regent login crates"), "{}", out.stderr);

    crate::device_login(&agent, Some("crates"), "alice").await;
    apis.reset().await;
    let out = cargo();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lock = std::fs::read_to_string(project.join("Cargo.lock")).unwrap();
    assert!(lock.contains("name = \"demo\""), "{lock}");
    assert!(lock.contains(&format!("source = \"{index}\"")), "{lock}");
    // config.json asked without a token (401), then every request with one.
    let s = seen(&apis, "cargo").await;
    assert_authenticated_after_a_401(&s, "bearer");
    assert!(s.len() >= 3, "{s:?}");
}

/// The Python the Kubernetes client is installed into (scripts/setup).
fn kube_python() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("kube/.venv/bin/python");
    Command::new(&p)
        .args(["-c", "import kubernetes"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| p)
}

#[tokio::test]
async fn a_real_kubernetes_client_runs_regent_as_its_exec_plugin() {
    let Some(python) = kube_python() else {
        return regent_tests::missing(
            "the Python kubernetes client",
            "scripts/setup installs it into tests/kube/.venv",
        );
    };
    let idp = Idp::start(IdpOptions::default());
    let root = tempfile::tempdir().unwrap();
    let apis = Apis::start(&idp.issuer, root.path());
    let agent = Agent::start(AgentOptions::default()).await;
    add_and_login(&agent, "cluster", &apis.api("k8s")).await;
    // The kubeconfig README gives, without a name: the cluster's server picks
    // the resource (provideClusterInfo).
    let kubeconfig = root.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: corp\n  cluster:\n    server: {}\n\
             users:\n- name: corp\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n\
             \x20     command: {}\n      args: [kube-credential]\n      provideClusterInfo: true\n\
             \x20     interactiveMode: Never\ncontexts:\n- name: corp\n  context: {{cluster: corp, user: corp}}\n\
             current-context: corp\n",
            apis.api("k8s"),
            regent_tests::bin("regent").display()
        ),
    )
    .unwrap();
    let script = "import json, sys\n\
                  from kubernetes import client, config\n\
                  config.load_kube_config(sys.argv[1])\n\
                  names = [n.metadata.name for n in client.CoreV1Api().list_namespace().items]\n\
                  print(json.dumps(names))\n";
    apis.reset().await;
    let mut cmd = Command::new(&python);
    cmd.envs(agent.env()).arg("-c").arg(script).arg(&kubeconfig);
    let out: regent_tests::CmdOut =
        regent_tests::output_within(cmd, Duration::from_secs(60), "the kubernetes client").into();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let names: Vec<String> = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(names, ["default", "regent"]);
    let s = seen(&apis, "k8s").await;
    assert_eq!(s, [("bearer".to_string(), true, 200)]);
}
