//! Drives the provider's own HTML forms over HTTP with a cookie jar, as a
//! person in a browser would: device code entry, login, consent.

use anyhow::{anyhow, bail, Context};
use reqwest::redirect::Policy;
use std::collections::BTreeMap;
use url::Url;

/// A browser-like HTTP session (cookies, no automatic redirects).
pub struct Session {
    http: reqwest::Client,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            http: crate::tls::client_builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .build()
                .unwrap(),
        }
    }
}

/// A fetched page.
pub struct Page {
    /// Where it came from.
    pub url: Url,
    /// HTTP status.
    pub status: u16,
    /// `Location`, resolved, for redirects.
    pub location: Option<Url>,
    /// The body.
    pub body: String,
}

impl Session {
    /// GET `url`.
    pub async fn get(&self, url: &Url) -> anyhow::Result<Page> {
        let r = self.http.get(url.clone()).send().await?;
        page(url, r).await
    }

    /// Submits the first form of `page`: its hidden fields plus `fields`.
    pub async fn submit(&self, page: &Page, fields: &[(&str, &str)]) -> anyhow::Result<Page> {
        let action = attr_after(&page.body, "<form", "action")
            .map(|a| page.url.join(&html_unescape(&a)))
            .transpose()?
            .unwrap_or_else(|| page.url.clone());
        let mut form: BTreeMap<String, String> = hidden_inputs(&page.body);
        for (k, v) in fields {
            form.insert(k.to_string(), v.to_string());
        }
        let r = self.http.post(action.clone()).form(&form).send().await?;
        page_from(&action, r).await
    }

    /// Follows redirects from `url`; at each provider prompt, logs in as
    /// `user` or gives consent. Returns the first page that is neither
    /// (or the first redirect that leaves the provider, unfollowed).
    pub async fn complete_interaction(&self, start: Url, user: &str) -> anyhow::Result<Page> {
        let origin = start.origin();
        let mut next = self.get(&start).await?;
        for _ in 0..20 {
            if let Some(loc) = next.location.clone() {
                if loc.origin() != origin {
                    return Ok(next);
                }
                next = self.get(&loc).await?;
                continue;
            }
            match prompt_of(&next.body).as_deref() {
                Some("login") => {
                    next = self
                        .submit(&next, &[("login", user), ("password", "any-password")])
                        .await?
                }
                Some("consent") => next = self.submit(&next, &[]).await?,
                _ => return Ok(next),
            }
        }
        bail!("too many steps in the provider's interaction")
    }
}

impl Session {
    /// Walks an authorization request through the provider's login and
    /// consent forms as `user`; returns the redirect back to the client
    /// (the loopback callback URL), without following it.
    pub async fn authorize(&self, authorize_url: &str, user: &str) -> anyhow::Result<Url> {
        let start = Url::parse(authorize_url)?;
        let page = self.complete_interaction(start, user).await?;
        page.location.ok_or_else(|| {
            anyhow!(
                "the provider did not redirect back: {}",
                snippet(&page.body)
            )
        })
    }

    /// Like [`Session::authorize`], but the user logs in and then refuses
    /// consent (the provider's "abort"); returns the redirect back.
    pub async fn deny(&self, authorize_url: &str, user: &str) -> anyhow::Result<Url> {
        let start = Url::parse(authorize_url)?;
        let origin = start.origin();
        let mut next = self.get(&start).await?;
        for _ in 0..20 {
            if let Some(loc) = next.location.clone() {
                if loc.origin() != origin {
                    return Ok(loc);
                }
                next = self.get(&loc).await?;
                continue;
            }
            match prompt_of(&next.body).as_deref() {
                Some("login") => {
                    next = self
                        .submit(&next, &[("login", user), ("password", "any-password")])
                        .await?
                }
                Some("consent") => {
                    let abort = Url::parse(&format!(
                        "{}/abort",
                        next.url.as_str().trim_end_matches('/')
                    ))?;
                    next = self.get(&abort).await?;
                }
                _ => bail!("unexpected page: {}", snippet(&next.body)),
            }
        }
        bail!("too many steps in the provider's interaction")
    }
}

async fn page(url: &Url, r: reqwest::Response) -> anyhow::Result<Page> {
    page_from(url, r).await
}

async fn page_from(url: &Url, r: reqwest::Response) -> anyhow::Result<Page> {
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(|l| url.join(l))
        .transpose()?;
    let body = r.text().await?;
    Ok(Page {
        url: url.clone(),
        status,
        location,
        body,
    })
}

/// Approves a device login the way a person would on another device: opens
/// the verification page, enters the code, logs in as `user`, consents.
pub async fn approve_device(
    verification_uri: &str,
    user_code: &str,
    user: &str,
) -> anyhow::Result<()> {
    let s = Session::default();
    let entry = s.get(&Url::parse(verification_uri)?).await?;
    anyhow::ensure!(entry.status == 200, "device page answered {}", entry.status);
    let confirmed = s
        .submit(&entry, &[("user_code", user_code), ("confirm", "yes")])
        .await?;
    let next = confirmed
        .location
        .ok_or_else(|| anyhow!("the code was not accepted: {}", snippet(&confirmed.body)))?;
    let done = s.complete_interaction(next, user).await?;
    anyhow::ensure!(
        done.body.contains("Sign-in Success"),
        "the device login did not succeed: {}",
        snippet(&done.body)
    );
    Ok(())
}

fn prompt_of(body: &str) -> Option<String> {
    input_value(body, "prompt")
}

/// Hidden inputs of the first form.
fn hidden_inputs(body: &str) -> BTreeMap<String, String> {
    let form = body.split("</form>").next().unwrap_or(body);
    let mut out = BTreeMap::new();
    for tag in form.split("<input").skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        if !tag.contains("type=\"hidden\"") {
            continue;
        }
        if let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value")) {
            out.insert(n, html_unescape(&v));
        }
    }
    out
}

fn input_value(body: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\"");
    body.split("<input")
        .skip(1)
        .map(|t| t.split('>').next().unwrap_or(""))
        .find(|t| t.contains(&needle))
        .and_then(|t| attr(t, "value"))
        .map(|v| html_unescape(&v))
}

fn attr_after(body: &str, tag: &str, name: &str) -> Option<String> {
    let start = body.find(tag)?;
    let rest = &body[start..];
    let end = rest.find('>')?;
    attr(&rest[..end], name)
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let i = tag.find(&needle)? + needle.len();
    let j = tag[i..].find('"')?;
    Some(tag[i..i + j].to_string())
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x2F;", "/")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

fn snippet(body: &str) -> String {
    body.chars().take(400).collect()
}

/// Context helper for test code.
pub fn ctx<T>(r: anyhow::Result<T>, what: &str) -> T {
    r.context(what.to_string()).unwrap()
}
