//! Credentials in request heads, sans-I/O: comparing secrets without leaking where they differ,
//! the `Authorization` header of the admin listener (Bearer, or Basic with the token as the
//! password), and the host and port of an `Origin` header.

use super::url::TargetUrl;
use base64::prelude::*;

/// Whether `given` equals `expected`, in a time that depends on the lengths only, never on
/// where the first differing byte is (a timing probe cannot guess a secret byte by byte).
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    if expected.is_empty() {
        return given.is_empty();
    }
    let mut diff = u8::from(given.len() != expected.len());
    for (i, g) in given.iter().enumerate() {
        // Indexing modulo keeps one load per byte whatever the lengths are.
        diff |= g ^ expected[i % expected.len()];
    }
    std::hint::black_box(diff) == 0
}

/// Whether an `Authorization` header value carries `token`: `Bearer TOKEN`, or
/// `Basic base64(USER:TOKEN)` with any user name (a browser's login dialog sends this). The
/// scheme name is case-insensitive (RFC 9110 §11.1).
pub fn carries_token(authorization: &str, token: &[u8]) -> bool {
    let value = authorization.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return same_secret(rest.as_bytes(), token);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(pair) = BASE64_STANDARD.decode(rest) else {
            return false;
        };
        let password = match pair.iter().position(|&b| b == b':') {
            Some(colon) => &pair[colon + 1..],
            None => return false,
        };
        return same_secret(password, token);
    }
    false
}

/// The host (lower-cased, IPv6 without brackets) and port of an `Origin` header
/// (`scheme://host[:port]`, RFC 6454); the port defaults to the scheme's. `None` for `null`
/// and anything that is not an origin. The authority is read as a target URL's is, so both
/// agree on what a host and a port are.
pub fn origin_host_port(origin: &str) -> Option<(String, u16)> {
    let origin = origin.trim();
    // An origin is the authority alone: no path, query, fragment or userinfo.
    let (_, rest) = origin.split_once("://")?;
    if rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let url = TargetUrl::parse(origin).ok()?;
    Some((url.host.to_ascii_lowercase(), url.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3creT", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"s3crets3cret", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
        assert!(same_secret(b"", b""));
        assert!(!same_secret(b"x", b""));
    }

    #[test]
    fn bearer_and_basic_carry_the_token() {
        let t = b"tok-123";
        assert!(carries_token("Bearer tok-123", t));
        assert!(carries_token("bearer   tok-123 ", t));
        assert!(!carries_token("Bearer tok-124", t));
        assert!(!carries_token("Bearer", t));
        assert!(!carries_token("tok-123", t));
        let basic = |s: &str| format!("Basic {}", BASE64_STANDARD.encode(s));
        assert!(carries_token(&basic("admin:tok-123"), t));
        assert!(carries_token(&basic(":tok-123"), t));
        // A colon in the password belongs to the password.
        assert!(carries_token(&basic("u:a:b"), b"a:b"));
        assert!(!carries_token(&basic("tok-123:x"), t));
        assert!(!carries_token(&basic("tok-123"), t));
        assert!(!carries_token("Basic !!!", t));
        assert!(!carries_token("Digest tok-123", t));
    }

    #[test]
    fn origins() {
        let hp = |h: &str, p| Some((h.to_string(), p));
        assert_eq!(
            origin_host_port("http://127.0.0.1:9090"),
            hp("127.0.0.1", 9090)
        );
        assert_eq!(
            origin_host_port("http://Example.COM"),
            hp("example.com", 80)
        );
        assert_eq!(
            origin_host_port("https://example.com"),
            hp("example.com", 443)
        );
        assert_eq!(origin_host_port("http://[::1]:9090"), hp("::1", 9090));
        assert_eq!(origin_host_port("http://[::1]"), hp("::1", 80));
        assert_eq!(origin_host_port("null"), None);
        assert_eq!(origin_host_port("http://"), None);
        assert_eq!(origin_host_port("http://a:b"), None);
        assert_eq!(origin_host_port("http://a/x"), None);
        assert_eq!(origin_host_port("file://x"), None);
        assert_eq!(origin_host_port("http://[::1]x"), None);
        // What a target URL refuses is no origin either.
        assert_eq!(origin_host_port("http://127.0.0.1:+9090"), None);
        assert_eq!(origin_host_port("http://127.0.0.1:0"), None);
        assert_eq!(origin_host_port("http://[zz]:9090"), None);
        assert_eq!(origin_host_port("http://a b"), None);
        assert_eq!(origin_host_port("http://a?x"), None);
        assert_eq!(origin_host_port("http://a#x"), None);
        assert_eq!(origin_host_port("http://u@a"), None);
    }
}
