//! Backend target URLs (`target-url` after substitution).

use std::fmt;
use std::net::Ipv6Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Ws,
    Wss,
    Http,
    Https,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        if self.tls() { 443 } else { 80 }
    }
    pub fn tls(self) -> bool {
        matches!(self, Scheme::Wss | Scheme::Https)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A parsed absolute URL of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    pub scheme: Scheme,
    /// Host name or IP literal; an IPv6 literal is kept without its brackets, so this is what
    /// name resolution, address parsing and SNI take.
    pub host: String,
    pub port: u16,
    /// Path and query as written, starting with `/` (`/` when the URL has no path).
    pub path_and_query: String,
}

impl TargetUrl {
    /// Parses `scheme://host[:port][/path][?query]` for the schemes ws, wss, http and https
    /// (case-insensitive). Userinfo, fragments, an empty host, a bad port and characters that
    /// cannot go into a request line are rejected; nothing is percent-decoded.
    pub fn parse(s: &str) -> Result<TargetUrl, String> {
        let s = s.trim();
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(format!("'{s}' is not an absolute URL"));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(format!("unsupported scheme '{scheme}' in '{s}'")),
        };
        if let Some(b) = rest.bytes().find(|b| !(0x21..=0x7e).contains(b)) {
            return Err(format!("character 0x{b:02x} not allowed in URL '{s}'"));
        }
        if rest.contains('#') {
            return Err(format!("URL '{s}' has a fragment"));
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if authority.contains('@') {
            return Err(format!(
                "URL '{s}' has userinfo; use username and password instead"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((addr, after)) = v6.split_once(']') else {
                return Err(format!("unclosed '[' in '{s}'"));
            };
            if addr.parse::<Ipv6Addr>().is_err() {
                return Err(format!("bad IPv6 address '{addr}' in '{s}'"));
            }
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return Err(format!("junk after ']' in '{s}'")),
                },
            };
            (addr, port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(format!("URL '{s}' has no host"));
        }
        if !authority.starts_with('[')
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        {
            return Err(format!("bad host '{host}' in '{s}'"));
        }
        let port = match port {
            // An empty port means the default one (RFC 3986 §3.2.3).
            None | Some("") => scheme.default_port(),
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("bad port '{p}' in '{s}'")),
            },
        };
        let path_and_query = if tail.starts_with('/') {
            tail.to_owned()
        } else {
            format!("/{tail}")
        };
        Ok(TargetUrl {
            scheme,
            host: host.to_owned(),
            port,
            path_and_query,
        })
    }

    pub fn tls(&self) -> bool {
        self.scheme.tls()
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(&self.path_and_query, |(p, _)| p)
    }

    /// The query without `?`; `None` when there is no `?`.
    pub fn query(&self) -> Option<&str> {
        self.path_and_query.split_once('?').map(|(_, q)| q)
    }

    /// Whether `other` is the same origin: TLS or not (ws and http are the same transport),
    /// host (case-insensitive) and port, a default port being equal to the explicit one.
    pub fn same_origin(&self, other: &TargetUrl) -> bool {
        self.tls() == other.tls()
            && self.port == other.port
            && self.host.eq_ignore_ascii_case(&other.host)
    }

    /// Where a redirect's `Location` points from this target: an absolute URL, one without a
    /// scheme (`//host/path`, the scheme is kept), an absolute path or a path relative to this
    /// target's. A fragment is dropped; it never goes to a server.
    pub fn follow(&self, location: &str) -> Result<TargetUrl, String> {
        let location = location.trim();
        let location = location.split_once('#').map_or(location, |(l, _)| l);
        if location.starts_with("//") {
            return TargetUrl::parse(&format!("{}:{location}", self.scheme.as_str()));
        }
        let scheme_end = location.find([':', '/', '?']);
        let has_scheme = location.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme_end.is_some_and(|i| location[i..].starts_with(':'));
        if has_scheme {
            return TargetUrl::parse(location);
        }
        let path_and_query = if location.starts_with('/') {
            location.to_string()
        } else if location.starts_with('?') || location.is_empty() {
            format!("{}{location}", self.path())
        } else {
            // A relative path replaces the last segment of this target's path.
            let path = self.path();
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        Ok(TargetUrl {
            path_and_query,
            ..self.clone()
        })
    }

    /// The value for the `Host` header: the host, bracketed if IPv6, with `:port` only when
    /// the port is not the scheme's default. This is what browsers and HTTP clients send, and
    /// some backends compare `Host` (or a derived origin) literally.
    pub fn host_header(&self) -> HostHeader<'_> {
        HostHeader(self)
    }
}

/// Formats a [`TargetUrl`]'s `Host` value without allocating.
#[derive(Debug, Clone, Copy)]
pub struct HostHeader<'a>(&'a TargetUrl);

impl fmt::Display for HostHeader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = self.0;
        if u.host.contains(':') {
            write!(f, "[{}]", u.host)?;
        } else {
            f.write_str(&u.host)?;
        }
        if u.port != u.scheme.default_port() {
            write!(f, ":{}", u.port)?;
        }
        Ok(())
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.host_header(),
            self.path_and_query
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> TargetUrl {
        TargetUrl::parse(s).unwrap()
    }

    #[test]
    fn schemes_and_default_ports() {
        let u = p("ws://backend/chat");
        assert_eq!((u.scheme, u.port, u.tls()), (Scheme::Ws, 80, false));
        let u = p("WSS://backend/chat");
        assert_eq!((u.scheme, u.port, u.tls()), (Scheme::Wss, 443, true));
        let u = p("http://backend");
        assert_eq!((u.scheme, u.port, u.tls()), (Scheme::Http, 80, false));
        let u = p("https://backend:8443/x");
        assert_eq!((u.scheme, u.port, u.tls()), (Scheme::Https, 8443, true));
        assert_eq!(p("http://h:/x").port, 80);
    }

    #[test]
    fn paths_and_queries() {
        assert_eq!(p("http://h").path_and_query, "/");
        assert_eq!(p("http://h?a=1").path_and_query, "/?a=1");
        let u = p("http://h:81/a/b?c=d&e");
        assert_eq!(u.path_and_query, "/a/b?c=d&e");
        assert_eq!((u.path(), u.query()), ("/a/b", Some("c=d&e")));
        assert_eq!(p("http://h/a").query(), None);
        // Nothing is decoded.
        assert_eq!(p("http://h/a%20b?x=%2F").path_and_query, "/a%20b?x=%2F");
    }

    #[test]
    fn ipv6_literals() {
        let u = p("wss://[::1]:9443/s");
        assert_eq!((u.host.as_str(), u.port), ("::1", 9443));
        assert_eq!(u.host_header().to_string(), "[::1]:9443");
        let u = p("http://[2001:db8::7]");
        assert_eq!(u.host_header().to_string(), "[2001:db8::7]");
        assert_eq!(u.to_string(), "http://[2001:db8::7]/");
    }

    #[test]
    fn host_header_writes_port_only_when_not_default() {
        assert_eq!(p("ws://b.example/x").host_header().to_string(), "b.example");
        assert_eq!(
            p("wss://b.example:443/x").host_header().to_string(),
            "b.example"
        );
        assert_eq!(
            p("ws://b.example:443/x").host_header().to_string(),
            "b.example:443"
        );
        assert_eq!(
            p("https://b.example:80/").host_header().to_string(),
            "b.example:80"
        );
        assert_eq!(
            p("http://10.0.0.1:8080").host_header().to_string(),
            "10.0.0.1:8080"
        );
    }

    #[test]
    fn origins_compare_transport_host_and_port() {
        let a = p("https://api.example/x");
        assert!(a.same_origin(&p("https://API.example:443/y?z")));
        assert!(
            a.same_origin(&p("wss://api.example/")),
            "wss is https's transport"
        );
        assert!(!a.same_origin(&p("http://api.example:443/")), "scheme");
        assert!(!a.same_origin(&p("https://api.example:8443/")), "port");
        assert!(!a.same_origin(&p("https://other.example/")), "host");
        assert!(p("http://h/").same_origin(&p("ws://h:80/")));
    }

    #[test]
    fn redirect_locations() {
        let at = p("https://h:8443/a/b/c?q=1");
        let to = |l: &str| at.follow(l).map(|t| t.to_string());
        assert_eq!(to("/x?y").unwrap(), "https://h:8443/x?y");
        assert_eq!(to("d").unwrap(), "https://h:8443/a/b/d");
        assert_eq!(to("?r=2").unwrap(), "https://h:8443/a/b/c?r=2");
        assert_eq!(to("/x#frag").unwrap(), "https://h:8443/x");
        assert_eq!(to("//other:81/p").unwrap(), "https://other:81/p");
        assert_eq!(to("http://e.example/p").unwrap(), "http://e.example/p");
        assert_eq!(to("HTTP://e.example").unwrap(), "http://e.example/");
        assert!(to("ftp://e.example/").is_err());
        assert!(to("http://u@e.example/").is_err());
        // A colon after the first slash is part of a path, not a scheme.
        assert_eq!(to("/p:q").unwrap(), "https://h:8443/p:q");
    }

    #[test]
    fn rejections() {
        for bad in [
            "",
            "backend/chat",
            "ftp://h/",
            "http://",
            "http:///x",
            "http://:80/x",
            "http://user:pw@h/",
            "http://u@h/",
            "http://h/x#frag",
            "http://h:0/",
            "http://h:65536/",
            "http://h:8o/",
            "http://h:+80/",
            "http://h:-1/",
            "http://h/a b",
            "http://h/\u{e9}",
            "http://h/a\r\nX: y",
            "http://[::1/",
            "http://[::1]x/",
            "http://[zz::1]/",
            "http://[]/",
            "http://ho st/",
            "http://h%41/",
        ] {
            assert!(TargetUrl::parse(bad).is_err(), "{bad:?}");
        }
    }
}
