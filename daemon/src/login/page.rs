//! The page the browser shows after the redirect: success or a clear
//! failure, never a token, with headers that forbid scripts and framing.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// What the page says.
pub enum Page {
    /// Logged in (to this registry, as this account).
    Success {
        registry: String,
        account: Option<String>,
    },
    /// The login failed; the reason is shown.
    Failure { registry: String, reason: String },
    /// A request that is not this login's callback.
    Rejected { status: StatusCode, reason: String },
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let (status, title, heading, body, ok) = match self {
            Page::Success { registry, account } => (
                StatusCode::OK,
                "Logged in",
                "You are logged in".to_string(),
                format!(
                    "regent is now logged in to <b>{}</b>{}. You can close this tab.",
                    escape(&registry),
                    account
                        .map(|a| format!(" as <b>{}</b>", escape(&a)))
                        .unwrap_or_default()
                ),
                true,
            ),
            Page::Failure { registry, reason } => (
                StatusCode::OK,
                "Login failed",
                "The login did not succeed".to_string(),
                format!(
                    "regent could not log in to <b>{}</b>:</p><p class=\"reason\">{}</p>\
                     <p>Close this tab and run <code>regent login {}</code> again.",
                    escape(&registry),
                    escape(&reason),
                    escape(&registry)
                ),
                false,
            ),
            Page::Rejected { status, reason } => (
                status,
                "Not this login",
                "This is not the login in progress".to_string(),
                escape(&reason),
                false,
            ),
        };
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>regent — {title}</title><style>{CSS}</style></head><body>\
             <main class=\"{}\"><div class=\"mark\">{}</div><h1>{}</h1><p>{body}</p></main></body></html>",
            if ok { "ok" } else { "fail" },
            if ok { "&#10003;" } else { "!" },
            escape(&heading),
        );
        let mut resp = (status, html).into_response();
        let h = resp.headers_mut();
        let set = |h: &mut axum::http::HeaderMap, k, v: &'static str| {
            h.insert(k, HeaderValue::from_static(v));
        };
        set(h, header::CONTENT_TYPE, "text/html; charset=utf-8");
        set(
            h,
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        );
        set(h, header::X_FRAME_OPTIONS, "DENY");
        set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        set(h, header::CACHE_CONTROL, "no-store");
        set(h, header::REFERRER_POLICY, "no-referrer");
        resp
    }
}

const CSS: &str = "\
:root{color-scheme:light dark;--fg:#1d2330;--muted:#5b6475;--bg:#f4f6fa;--card:#fff;--ok:#1a7f4b;--fail:#b42318}\
@media (prefers-color-scheme:dark){:root{--fg:#e8ebf2;--muted:#a3abbb;--bg:#12151c;--card:#1b2029}}\
body{margin:0;min-height:100vh;display:grid;place-items:center;background:var(--bg);color:var(--fg);\
font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif}\
main{background:var(--card);max-width:30rem;margin:1rem;padding:2.5rem 2rem;border-radius:14px;\
box-shadow:0 6px 30px rgba(0,0,0,.08);text-align:center}\
.mark{width:3.5rem;height:3.5rem;margin:0 auto 1rem;border-radius:50%;display:grid;place-items:center;\
font-size:1.9rem;font-weight:700;color:#fff}\
.ok .mark{background:var(--ok)}.fail .mark{background:var(--fail)}\
h1{font-size:1.35rem;margin:.2rem 0 .8rem}p{color:var(--muted);margin:.5rem 0}b{color:var(--fg)}\
.reason{font-family:ui-monospace,monospace;font-size:.9rem;color:var(--fail);word-break:break-word}\
code{font-family:ui-monospace,monospace;background:rgba(127,127,127,.15);padding:.1rem .35rem;border-radius:4px}";

/// HTML-escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
