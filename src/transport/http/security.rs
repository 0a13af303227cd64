//! DNS-rebinding protection: the `Host` and `Origin` headers are checked against allow-lists
//! before anything else. With empty lists and a loopback listen address, only loopback
//! names pass (`localhost`, `127.0.0.1`, `[::1]`, any port); with empty lists and another
//! address, the operator must list the names clients use (until then every `Host` passes and
//! a warning is logged at start).

use super::parse::RequestHead;
use super::Response;
use crate::runtime::Shard;

const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

/// The host part of a `Host` header or an origin's authority, without the port.
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        // [v6]:port
        return match rest.find(']') {
            Some(i) => &authority[..i + 2],
            None => authority,
        };
    }
    authority.split(':').next().unwrap_or(authority)
}

fn allowed(name: &str, list: &[String], loopback_default: bool) -> bool {
    if list.is_empty() {
        return !loopback_default || LOOPBACK_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(name));
    }
    list.iter()
        .any(|h| h == "*" || h.eq_ignore_ascii_case(name))
}

/// Checks Host and Origin; `Err` is the 403 (or 400) to send.
pub fn check(shard: &Shard, head: &RequestHead) -> Result<(), Response> {
    let http = &shard.config.http;
    let loopback = http.listen.ip().is_loopback();
    let Some(host) = head.header("host") else {
        return Err(Response::error(400, "missing Host header"));
    };
    if !allowed(host_name(host), &http.allowed_hosts, loopback) {
        return Err(Response::error(
            403,
            &format!("Host {host:?} is not allowed (http.allowed_hosts)"),
        ));
    }
    if let Some(origin) = head.header("origin") {
        let authority = origin
            .split_once("://")
            .map(|(_, a)| a)
            .unwrap_or(origin)
            .trim_end_matches('/');
        let ok = if http.allowed_origins.is_empty() {
            allowed(host_name(authority), &[], loopback)
        } else {
            http.allowed_origins
                .iter()
                .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        };
        if !ok {
            return Err(Response::error(
                403,
                &format!("Origin {origin:?} is not allowed (http.allowed_origins)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("localhost"), "localhost");
        assert!(allowed("localhost", &[], true));
        assert!(!allowed("evil.example.com", &[], true));
        assert!(allowed("evil.example.com", &[], false));
        assert!(allowed(
            "mcp.example.com",
            &["mcp.example.com".into()],
            false
        ));
        assert!(!allowed(
            "x.example.com",
            &["mcp.example.com".into()],
            false
        ));
    }
}
