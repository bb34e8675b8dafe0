//! What a resource's name and URL must be: pure checks of config values,
//! used where the file is read and where the API changes it.

/// Checks a resource name: 1 to 64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok_len = (1..=64).contains(&name.len());
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok_len && ok_first && ok_chars {
        Ok(())
    } else {
        Err(format!(
            "invalid name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ))
    }
}

/// Checks a resource URL: http(s), with a host, no credentials.
pub fn validate_url(url: &str) -> Result<(), String> {
    if url.chars().any(char::is_control) {
        return Err(format!("invalid URL {url:?}: it has control characters"));
    }
    let u = url::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    if !matches!(u.scheme(), "https" | "http") || u.host().is_none() {
        return Err(format!(
            "invalid URL {url:?}: it must be an http(s) URL with a host"
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("a URL must not carry credentials; configure auth instead".into());
    }
    Ok(())
}

/// Refuses sending a token in cleartext: a resource with auth on `http`
/// must be on a loopback host (as for issuers).
pub fn check_cleartext(name: &str, url: &str, has_auth: bool) -> Result<(), String> {
    let Ok(u) = url::Url::parse(url) else {
        return Ok(()); // validate_url says why
    };
    let loopback = match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if has_auth && u.scheme() == "http" && !loopback {
        return Err(format!(
            "{name} at {url} would get your token over cleartext http; use https (http only on a loopback host)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        assert!(validate_name("corp-registry.v2_a").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name(&"a".repeat(65)).is_err());
        assert!(validate_url("https://r.example/api").is_ok());
        assert!(validate_url("ftp://r.example").is_err());
        assert!(validate_url("https://u:p@r.example").is_err());
        assert!(validate_url("not a url").is_err());
        assert!(check_cleartext("r", "http://r.example", true).is_err());
        assert!(check_cleartext("r", "http://r.example", false).is_ok());
        assert!(check_cleartext("r", "http://127.0.0.1:8080", true).is_ok());
        assert!(check_cleartext("r", "http://localhost/x", true).is_ok());
        assert!(check_cleartext("r", "https://r.example", true).is_ok());
    }
}
