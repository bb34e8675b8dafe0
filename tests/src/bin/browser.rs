//! A headless "user with a browser", for `$BROWSER`: opens the URL it is
//! given, walks the IdP's login and consent forms as `$REGENT_TEST_USER`
//! (default `alice`), and delivers the redirect to the loopback callback,
//! as a person clicking through would. Against an authorization server that
//! redirects at once (the MCP conformance suite's), it just follows.
//! `$REGENT_TEST_BROWSER_LOG`, if set, gets one line per URL opened.

use std::io::Write;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: browser URL");
        std::process::exit(2);
    };
    if let Some(log) = std::env::var_os("REGENT_TEST_BROWSER_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{url}");
        }
    }
    let user = std::env::var("REGENT_TEST_USER").unwrap_or_else(|_| "alice".into());
    let callback = match regent_tests::forms::Session::default()
        .authorize(&url, &user)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("browser: {e:#}");
            std::process::exit(1);
        }
    };
    match reqwest::get(callback.clone()).await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => {
            eprintln!("browser: the callback {callback} answered {}", r.status());
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("browser: cannot deliver the callback {callback}: {e}");
            std::process::exit(1);
        }
    }
}
