//! regent's benchmarks: run with `scripts/bench` (release build). Prints the
//! figures BENCHMARKS.md records. Every figure comes from this one run, so
//! ratios compare like with like on a noisy machine.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use regent_proto::{InvalidateRequest, LoginFlow, LoginRequest, LoginState};
use regent_tests::keyring::SecretService;
use regent_tests::{forms, Agent, AgentOptions, Idp, IdpOptions};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(socket: &Path) -> Sender {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

async fn token_request(sender: &mut Sender, body: &Bytes) -> u16 {
    let req = Request::post("http://agent/v1/token")
        .header("host", "agent")
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))
        .unwrap();
    sender.ready().await.expect("ready");
    let resp = sender.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Item 1: `/v1/token` through the socket, N keep-alive connections, for `secs`.
async fn token_throughput(socket: &Path, conns: usize, secs: f64) {
    let body = Bytes::from_static(br#"{"registry":"reg0"}"#);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let mut s = connect(socket).await;
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            while Instant::now() < deadline {
                let t = Instant::now();
                let status = token_request(&mut s, &body).await;
                assert_eq!(status, 200);
                lat.push(t.elapsed().as_micros() as u32);
            }
            lat
        }));
    }
    let start = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    println!(
        "  {conns:>3} connections: {:>8.0} req/s   p50 {:>5} us   p99 {:>5} us   max {:>6} us   ({} requests)",
        all.len() as f64 / elapsed,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(0),
        all.len()
    );
}

/// Rounds of item 2.
const ROUNDS: usize = 400;

/// A command of item 2: its label, and how to make it.
type Candidate = (String, Box<dyn Fn() -> Command>);

/// Runs every command once per round, `rounds` times (after 20 warm-up
/// rounds), the order turning each round so no command always runs after the
/// same one: a noisy machine then disturbs all alike. Sorted wall times, in
/// microseconds, per command.
fn paired(commands: &[Candidate], rounds: usize) -> Vec<Vec<u128>> {
    let mut times = vec![Vec::with_capacity(rounds); commands.len()];
    for round in 0..rounds + 20 {
        for k in 0..commands.len() {
            let i = (round + k) % commands.len();
            let mut cmd = (commands[i].1)();
            cmd.stdout(std::process::Stdio::null());
            let t = Instant::now();
            let status = cmd.status().unwrap();
            let us = t.elapsed().as_micros();
            assert!(status.success(), "{} failed", commands[i].0);
            if round >= 20 {
                times[i].push(us);
            }
        }
    }
    for t in &mut times {
        t.sort_unstable();
    }
    times
}

/// The static-pie regent scripts/bench builds (`target/static/...`), if there.
fn static_regent() -> Option<std::path::PathBuf> {
    let p = regent_tests::target_dir().parent()?.join(format!(
        "static/{}/release/regent",
        std::env::consts::ARCH.to_owned() + "-unknown-linux-gnu"
    ));
    p.exists().then_some(p)
}

/// oidc-agent (Debian's oidc-agent-cli) with an account at the test IdP, so
/// `oidc-token` can be timed beside `regent token`: its own login (a device
/// grant approved on the IdP's forms), handed to `oidc-gen` as a refresh token.
#[derive(Clone)]
struct OidcAgent {
    home: std::sync::Arc<tempfile::TempDir>,
    sock: String,
    pid: u32,
}

impl OidcAgent {
    async fn start(idp: &Idp) -> Option<OidcAgent> {
        for tool in ["oidc-agent", "oidc-gen", "oidc-token"] {
            if !std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                return None;
            }
        }
        let home = tempfile::tempdir().unwrap();
        let http = reqwest::Client::new();
        let basic = ("regent-basic", Some("basic-secret"));
        let auth: serde_json::Value = http
            .post(format!("{}/device/auth", idp.issuer))
            .basic_auth(basic.0, basic.1)
            .form(&[("scope", "openid offline_access")])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        regent_tests::forms::approve_device(
            auth["verification_uri"].as_str()?,
            auth["user_code"].as_str()?,
            "alice",
        )
        .await
        .ok()?;
        let tokens: serde_json::Value = http
            .post(format!("{}/token", idp.issuer))
            .basic_auth(basic.0, basic.1)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", auth["device_code"].as_str()?),
            ])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let rt = tokens["refresh_token"].as_str()?.to_string();
        let out = std::process::Command::new("oidc-agent")
            .env("HOME", home.path())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let var = |name: &str| {
            text.split(';').find_map(|p| {
                p.trim()
                    .strip_prefix(&format!("{name}="))
                    .map(str::to_string)
            })
        };
        let (sock, pid) = (var("OIDC_SOCK")?, var("OIDCD_PID")?.parse().ok()?);
        let agent = OidcAgent {
            home: std::sync::Arc::new(home),
            sock,
            pid,
        };
        let gen = std::process::Command::new("oidc-gen")
            .args([
                "bench",
                &format!("--iss={}", idp.issuer),
                "--client-id=regent-basic",
                "--client-secret=basic-secret",
                &format!("--rt={rt}"),
                "--scope=openid offline_access",
                "--pw-env",
                "--confirm-default",
                "--prompt=none",
            ])
            .env("HOME", agent.home.path())
            .env("OIDC_SOCK", &agent.sock)
            .env("OIDC_ENCRYPTION_PW", "bench")
            .output()
            .ok()?;
        let ok = agent.token_command().output().ok()?.status.success();
        if !ok {
            println!(
                "  (oidc-gen did not set up an account: {})",
                String::from_utf8_lossy(&gen.stderr).trim()
            );
            return None;
        }
        Some(agent)
    }

    fn token_command(&self) -> Command {
        let mut c = Command::new("oidc-token");
        c.arg("bench")
            .env("HOME", self.home.path())
            .env("OIDC_SOCK", &self.sock);
        c
    }
}

impl Drop for OidcAgent {
    fn drop(&mut self) {
        if std::sync::Arc::strong_count(&self.home) == 1 {
            regent_tests::idp::signal(self.pid, libc::SIGTERM);
        }
    }
}

fn status_kb(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn device_login(agent: &Agent, registry: &str) {
    let client = agent.client();
    let login = client
        .login(&LoginRequest {
            registry: Some(registry.into()),
            flow: LoginFlow::Device,
            force: false,
        })
        .await
        .unwrap();
    forms::approve_device(
        login.verification_uri.as_deref().unwrap(),
        login.user_code.as_deref().unwrap(),
        "bench",
    )
    .await
    .unwrap();
    let s = client.login_status(&login.id, 30).await.unwrap();
    assert_eq!(s.status, LoginState::Succeeded);
}

async fn agent_with_registries(idp: &Idp, opts: AgentOptions, n: usize) -> Agent {
    let agent = Agent::start(quiet(opts)).await;
    for i in 0..n {
        let out = agent.regent(&[
            "registry",
            "add",
            &format!("reg{i}"),
            &format!("https://registry{i}.example.test"),
            "--issuer",
            &idp.issuer,
            "--client-id",
            regent_tests::idp::CLIENT_ID,
            // A login each, as separate registries at one IdP would have.
            "--own-login",
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    futures::future::join_all((0..n).map(|i| {
        let name = format!("reg{i}");
        let agent = &agent;
        async move { device_login(agent, &name).await }
    }))
    .await;
    agent
}

/// Item 4: refreshes with rotation, end to end (IdP answer + store write), as the caller sees them.
async fn refresh_latency(agent: &Agent, rounds: usize) -> (u128, u128) {
    let client = agent.client();
    let mut times = Vec::new();
    for _ in 0..rounds {
        let t = client.token(&Default::default()).await.unwrap();
        client
            .invalidate(&InvalidateRequest {
                registry: None,
                access_token: t.access_token,
            })
            .await
            .unwrap();
        let start = Instant::now();
        client.token(&Default::default()).await.unwrap();
        times.push(start.elapsed().as_micros());
    }
    times.sort_unstable();
    (times[rounds / 2], times[rounds * 9 / 10])
}

fn quiet(mut opts: AgentOptions) -> AgentOptions {
    opts.env.push(("REGENT_LOG".into(), "warn".into()));
    opts
}

#[tokio::main]
async fn main() {
    regent_tests::raise_nofile_limit();
    let idp = Idp::start(IdpOptions {
        access_ttl: 3600,
        ..Default::default()
    });
    println!(
        "regent benchmarks ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    // `bench forwarded`: item 6 alone.
    if std::env::args().nth(1).as_deref() == Some("forwarded") {
        println!("\n6. {ITEM_6}");
        forwarded_token(&idp).await;
        return;
    }

    // Items 1, 3 and 5 share one agent with 10 registries (memory store: the
    // store is measured in item 4).
    let agent = agent_with_registries(
        &idp,
        AgentOptions {
            store: "memory".into(),
            ..Default::default()
        },
        10,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = agent.pid();
    let rss_idle = status_kb(pid, "VmRSS:");

    println!("\n1. POST /v1/token through the socket, in-process keep-alive clients (3 s each)");
    for conns in [1, 8, 64] {
        token_throughput(&agent.socket, conns, 3.0).await;
    }

    println!("\n3. refresh storm: 1000 concurrent callers on a stale token");
    let mut senders = Vec::new();
    for _ in 0..1000 {
        senders.push(connect(&agent.socket).await);
    }
    let client = agent.client();
    let t = client.token(&Default::default()).await;
    let body = Bytes::from_static(br#"{"registry":"reg1"}"#);
    let stale = client
        .token(&regent_proto::TokenRequest {
            url: None,
            registry: Some("reg1".into()),
            min_valid_secs: None,
            dpop: None,
        })
        .await
        .unwrap();
    drop(t);
    client
        .invalidate(&InvalidateRequest {
            registry: Some("reg1".into()),
            access_token: stale.access_token,
        })
        .await
        .unwrap();
    idp.reset().await;
    let gate = Arc::new(tokio::sync::Barrier::new(1001));
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut s| {
            let gate = gate.clone();
            let body = body.clone();
            tokio::spawn(async move {
                gate.wait().await;
                token_request(&mut s, &body).await
            })
        })
        .collect();
    gate.wait().await;
    let start = Instant::now();
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap() == 200);
    }
    let batch = start.elapsed();
    println!(
        "  {ok}/1000 answered 200 in {:.1} ms; token requests at the IdP: {} (refresh_token grants: {})",
        batch.as_secs_f64() * 1000.0,
        idp.counts().await["token"],
        idp.refreshes().await
    );

    println!("\n5. agent memory and start-up (10 registries)");
    println!("  RSS idle after logins: {} kB", rss_idle);
    println!(
        "  VmHWM after items 1 and 3: {} kB",
        status_kb(pid, "VmHWM:")
    );
    drop(agent);

    // Start-up to ready with 10 registries restored from the store (file store: no keyring noise).
    let mut stored = agent_with_registries(&idp, AgentOptions::default(), 10).await;
    let mut starts = Vec::new();
    for _ in 0..10 {
        stored.kill9();
        let t = Instant::now();
        stored.spawn().await;
        starts.push(t.elapsed().as_micros());
    }
    starts.sort_unstable();
    let restored = stored.client().registries().await.unwrap();
    assert!(restored
        .iter()
        .all(|r| r.auth.as_ref().unwrap().status == regent_proto::AuthState::Authenticated));
    println!(
        "  start to first answer, 10 registries restored (file store): median {:.1} ms, max {:.1} ms",
        starts[5] as f64 / 1000.0,
        starts[9] as f64 / 1000.0
    );
    println!(
        "  RSS right after start: {} kB",
        status_kb(stored.pid(), "VmRSS:")
    );

    println!(
        "\n2. a token as a whole process (cached token), {ROUNDS} paired rounds: each round runs every command once, in turn"
    );
    let env = stored.env();
    let oidc = OidcAgent::start(&idp).await;
    let mut commands: Vec<(String, Box<dyn Fn() -> Command>)> =
        vec![("/bin/true".into(), Box::new(|| Command::new("/bin/true")))];
    let dynamic = regent_tests::bin("regent");
    let static_pie = static_regent();
    for (label, path) in [
        ("regent token (dynamic)", Some(dynamic)),
        ("regent token (static-pie)", static_pie.clone()),
    ] {
        let Some(path) = path else { continue };
        let env = env.clone();
        commands.push((
            label.into(),
            Box::new(move || {
                let mut c = Command::new(&path);
                c.args(["token", "reg0"]).envs(env.clone());
                c
            }),
        ));
    }
    if static_pie.is_none() {
        println!("  (no static-pie regent: scripts/bench builds it into target/static)");
    }
    match &oidc {
        Some(o) => {
            let o = o.clone();
            commands.push((
                "oidc-token (oidc-agent 4)".into(),
                Box::new(move || o.token_command()),
            ));
        }
        None => println!("  (no oidc-agent: apt-get install oidc-agent-cli for the comparison)"),
    }
    // The credential helpers, as their tools run them (stdin where the protocol has one).
    let helper_regent = static_pie
        .clone()
        .unwrap_or_else(|| regent_tests::bin("regent"));
    let inputs = tempfile::tempdir().unwrap();
    let helpers: [(&str, &[&str], Option<&str>); 4] = [
        ("regent headers", &["headers", "reg0"], None),
        ("regent kube-credential", &["kube-credential", "reg0"], None),
        (
            "regent credential-helper get",
            &["credential-helper", "get"],
            Some(r#"{"uri": "https://registry0.example.test/v0.1/servers"}"#),
        ),
        (
            "regent git-credential get",
            &["git-credential", "get"],
            Some("capability[]=authtype\nprotocol=https\nhost=registry0.example.test\npath=org/app.git\n\n"),
        ),
    ];
    for (i, (label, args, stdin)) in helpers.into_iter().enumerate() {
        let (env, path) = (env.clone(), helper_regent.clone());
        let input = stdin.map(|text| {
            let p = inputs.path().join(format!("in{i}"));
            std::fs::write(&p, text).unwrap();
            p
        });
        commands.push((
            label.into(),
            Box::new(move || {
                let mut c = Command::new(&path);
                c.args(args).envs(env.clone());
                if let Some(p) = &input {
                    c.stdin(std::fs::File::open(p).unwrap());
                }
                c
            }),
        ));
    }
    let times = paired(&commands, ROUNDS);
    let mean = |i: usize| times[i].iter().sum::<u128>() as f64 / times[i].len() as f64;
    let median = |i: usize| times[i][times[i].len() / 2];
    for (i, (label, _)) in commands.iter().enumerate() {
        print!(
            "  {label:28} mean {:5.0} us, median {:5} us;  / true {:.2}x",
            mean(i),
            median(i),
            mean(i) / mean(0)
        );
        if let Some(j) = commands
            .iter()
            .position(|(l, _)| l.starts_with("oidc-token"))
        {
            print!(";  / oidc-token {:.2}x", mean(i) / mean(j));
        }
        println!();
    }
    drop(stored);

    println!("\n4. one refresh with rotation, end to end (IdP + store write), 50 rounds");
    let keyutils = agent_with_registries(
        &idp,
        AgentOptions {
            store: "keyutils".into(),
            ..Default::default()
        },
        1,
    )
    .await;
    let (p50, p90) = refresh_latency(&keyutils, 50).await;
    println!(
        "  keyutils:        median {:.2} ms, p90 {:.2} ms",
        p50 as f64 / 1000.0,
        p90 as f64 / 1000.0
    );
    let _ = keyutils.regent(&["logout"]);
    drop(keyutils);
    let memory = agent_with_registries(
        &idp,
        AgentOptions {
            store: "memory".into(),
            ..Default::default()
        },
        1,
    )
    .await;
    let (p50, p90) = refresh_latency(&memory, 50).await;
    println!(
        "  memory (IdP alone): median {:.2} ms, p90 {:.2} ms",
        p50 as f64 / 1000.0,
        p90 as f64 / 1000.0
    );
    drop(memory);
    let ss = SecretService::start();
    let secret = agent_with_registries(
        &idp,
        AgentOptions {
            store: "secret-service".into(),
            env: vec![("DBUS_SESSION_BUS_ADDRESS".into(), ss.bus.clone())],
            ..Default::default()
        },
        1,
    )
    .await;
    let (p50, p90) = refresh_latency(&secret, 50).await;
    println!(
        "  secret-service:  median {:.2} ms, p90 {:.2} ms",
        p50 as f64 / 1000.0,
        p90 as f64 / 1000.0
    );

    drop(secret);

    println!("\n6. {ITEM_6}");
    forwarded_token(&idp).await;
}

/// Item 6's title.
const ITEM_6: &str = "`regent token` and a helper on a machine the agent is forwarded to \
(regent ssh to a real sshd in a network namespace)";

/// Item 6: the same `regent token`, on the laptop and on the remote side of
/// `regent ssh` — through the session's relay, then with the relay stopped
/// (each call a channel of its own) — as loops of N runs timed from inside
/// each side (the ssh session's own start is left out). The machine is
/// noisy and the sides cannot run paired call by call, so R rounds of
/// (laptop loop, remote session) alternate, and the median round's ratios
/// are reported.
async fn forwarded_token(idp: &Idp) {
    const N: usize = 100;
    const R: usize = 5;
    let sshd = match regent_tests::ssh::Sshd::start(Default::default()) {
        Ok(s) => s,
        Err(why) => {
            println!("  skipped: {why}");
            return;
        }
    };
    let agent = agent_with_registries(idp, AgentOptions::default(), 1).await;
    assert_eq!(agent.regent(&["forward", "allow", "reg0"]).code, 0);
    agent.forward_socket().await;
    let regent = regent_tests::bin("regent").display().to_string();
    let local = agent
        .regent_command(&[])
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect::<Vec<_>>();
    let uid = sshd.uid;
    for what in ["token reg0", "headers reg0"] {
        // A loop that prints its own elapsed time, in microseconds.
        let timed = format!(
            "s=$(date +%s%N); i=0; while [ $i -lt {N} ]; do {regent} {what} >/dev/null || exit 1; i=$((i+1)); done; \
             e=$(date +%s%N); echo $(( (e - s) / 1000 ))"
        );
        // One session: the loop once the relay listens, then again with the
        // relay stopped.
        let remote = format!(
            "until [ -n \"$(find /tmp -maxdepth 1 -user {uid} -name 'regent-fwd-*.relay' -type s)\" ]; do sleep 0.01; done; \
             {timed}; pkill -u {uid} -x regent; while pgrep -u {uid} -x regent >/dev/null; do sleep 0.01; done; {timed}"
        );
        let mut rounds = Vec::new();
        for _ in 0..R {
            let mut sh = Command::new("sh");
            sh.args(["-c", &timed]);
            for (k, v) in &local {
                match v {
                    Some(v) => sh.env(k, v),
                    None => sh.env_remove(k),
                };
            }
            let out = sh.output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let l: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            let mut args = vec!["ssh".to_string()];
            args.extend(sshd.ssh_args());
            args.extend(["--".to_string(), remote.clone()]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = agent.regent_command(&args).output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let r: Vec<f64> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim().parse().unwrap())
                .collect();
            let per = |us: f64| us / N as f64;
            rounds.push((per(l), per(r[0]), per(r[1])));
        }
        // The median round by the relay's ratio.
        rounds.sort_by(|a, b| (a.1 / a.0).total_cmp(&(b.1 / b.0)));
        let all: Vec<String> = rounds
            .iter()
            .map(|(l, r, d)| format!("{:.2}/{:.2}", r / l, d / l))
            .collect();
        let (l, relayed, direct) = rounds[R / 2];
        println!(
            "  regent {what} ({R} rounds of {N} runs per side): median round: laptop side {l:.0} us; \
             remote side through the relay {relayed:.0} us ({:.2}x), without it {direct:.0} us ({:.2}x); \
             every round, relay/without: {}",
            relayed / l,
            direct / l,
            all.join(" ")
        );
    }
}
