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

/// Mean wall time of running `cmd` `n` times, in microseconds (after 20 warm-up runs).
fn process_time(mut cmd: impl FnMut() -> Command, n: usize) -> (f64, u128) {
    for _ in 0..20 {
        cmd().output().unwrap();
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let out = cmd().output().unwrap();
        times.push(t.elapsed().as_micros());
        assert!(out.status.success());
    }
    times.sort_unstable();
    let mean = times.iter().sum::<u128>() as f64 / n as f64;
    (mean, times[n / 2])
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
            registry: Some("reg1".into()),
            min_valid_secs: None,
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
        "\n2. `regent token` as a whole process (cached token) against /bin/true (300 runs each)"
    );
    let regent = regent_tests::bin("regent");
    let env = stored.env();
    let (tok_mean, tok_median) = process_time(
        || {
            let mut c = Command::new(&regent);
            c.args(["token", "reg0"]).envs(env.clone());
            c
        },
        300,
    );
    let (true_mean, true_median) = process_time(|| Command::new("/bin/true"), 300);
    println!(
        "  regent token: mean {:.0} us, median {} us;  /bin/true: mean {:.0} us, median {} us;  ratio (mean) {:.2}x",
        tok_mean, tok_median, true_mean, true_median, tok_mean / true_mean
    );
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
}
