//! The APIs fixture (`node tests/apis/apis.mjs`): git's smart HTTP, a sparse
//! cargo registry and a Kubernetes API server, each behind tokens the test
//! IdP says are active; and the real tools' versions this machine has.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// A running APIs fixture; killed on drop.
pub struct Apis {
    child: Child,
    /// Its base URL, `http://127.0.0.1:PORT`; the APIs are under `/git`,
    /// `/cargo` and `/k8s`.
    pub url: String,
    http: reqwest::Client,
}

impl Apis {
    /// Starts the fixture, serving the bare repositories in `git_root`.
    pub fn start(issuer: &str, git_root: &Path) -> Apis {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/apis/apis.mjs");
        let mut cmd = Command::new("node");
        cmd.arg(script)
            .env("APIS_ISSUER", issuer)
            .env("APIS_GIT_ROOT", git_root);
        let (child, ready) = crate::start_fixture(&mut cmd, "APIs");
        Apis {
            child,
            url: ready["url"].as_str().unwrap().to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// One API's URL: `git`, `cargo` or `k8s`.
    pub fn api(&self, name: &str) -> String {
        format!("{}/{name}", self.url)
    }

    /// Every API request so far: `[{"api", "path", "scheme", "active", "status"}]`.
    pub async fn seen(&self) -> Vec<Value> {
        crate::get_json(&self.http, format!("{}/__test/seen", self.url)).await
    }

    /// Forgets the requests seen so far.
    pub async fn reset(&self) {
        let r = self
            .http
            .post(format!("{}/__test/reset", self.url))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

impl Drop for Apis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A git binary and its version.
#[derive(Clone, Debug)]
pub struct Git {
    /// Where it is.
    pub path: PathBuf,
    /// `(major, minor)`.
    pub version: (u32, u32),
}

impl Git {
    /// Whether it offers helpers `capability[]=authtype` (git 2.46+).
    pub fn has_authtype(&self) -> bool {
        self.version >= (2, 46)
    }
}

/// The gits this machine has (Debian's, and one under /usr/local), newest first.
pub fn gits() -> Vec<Git> {
    let mut found: Vec<Git> = ["/usr/local/bin/git", "/usr/bin/git"]
        .iter()
        .filter_map(|p| {
            let out = Command::new(p).arg("--version").output().ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let v = text.trim().strip_prefix("git version ")?;
            let mut parts = v.split('.').map(|n| n.parse::<u32>().ok());
            Some(Git {
                path: PathBuf::from(p),
                version: (parts.next()??, parts.next()??),
            })
        })
        .collect();
    found.sort_by_key(|g| std::cmp::Reverse(g.version));
    found
}

/// A bare repository `name.git` under `root`, with one commit holding
/// `README` (its text: `text`).
pub fn bare_repo(git: &Git, root: &Path, name: &str, text: &str) {
    let work = root.join(format!("{name}.work"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("README"), text).unwrap();
    let run = |dir: &Path, args: &[&str]| {
        let out = Command::new(&git.path)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", root)
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&work, &["init", "-q", "-b", "main"]);
    run(&work, &["add", "README"]);
    run(&work, &["commit", "-q", "-m", "first"]);
    run(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            &format!("{name}.git"),
        ],
    );
}
