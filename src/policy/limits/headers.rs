//! The limit response headers of spec §3.9 and the 429 extras of §7 #13.

use std::io::Write;

/// Writes `<prefix>-Limit: name=a,10;name=b,1000;` and `<prefix>-Remaining: name=a,9;...` as two
/// header lines (CRLF-terminated), entries in the order given. Nothing for no entries. `prefix`
/// is `X-RateLimit`, `X-BurstLimit` or `X-CountLimit`; an entry is (name, limit, remaining).
pub fn write_limit_headers(out: &mut Vec<u8>, kind_prefix: &str, entries: &[(&str, u64, u64)]) {
    if entries.is_empty() {
        return;
    }
    for (suffix, remaining) in [("-Limit: ", false), ("-Remaining: ", true)] {
        put_text(out, kind_prefix);
        out.extend_from_slice(suffix.as_bytes());
        for &(name, limit, left) in entries {
            put_entry(out, name, if remaining { left } else { limit });
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes `Retry-After: <secs>` and `<prefix>-Reset: name=<name>,<secs>;` for a 429 caused by a
/// rate or burst limit (spec §7 #13).
pub fn write_retry_headers(out: &mut Vec<u8>, kind_prefix: &str, name: &str, reset_in_secs: u64) {
    let _ = write!(out, "Retry-After: {reset_in_secs}\r\n");
    put_text(out, kind_prefix);
    out.extend_from_slice(b"-Reset: ");
    put_entry(out, name, reset_in_secs);
    out.extend_from_slice(b"\r\n");
}

fn put_entry(out: &mut Vec<u8>, name: &str, n: u64) {
    out.extend_from_slice(b"name=");
    put_text(out, name);
    let _ = write!(out, ",{n};");
}

/// Copies text into a header value without control bytes, so a name can never end the line.
fn put_text(out: &mut Vec<u8>, s: &str) {
    out.extend(
        s.bytes()
            .filter(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry() {
        let mut out = Vec::new();
        write_limit_headers(&mut out, "X-RateLimit", &[("default", 100, 92)]);
        assert_eq!(
            out,
            b"X-RateLimit-Limit: name=default,100;\r\nX-RateLimit-Remaining: name=default,92;\r\n"
        );
    }

    #[test]
    fn several_entries_in_order() {
        let mut out = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        write_limit_headers(&mut out, "X-BurstLimit", &[("a", 10, 9), ("b", 1000, 0)]);
        assert_eq!(
            out,
            &b"HTTP/1.1 101 Switching Protocols\r\n\
               X-BurstLimit-Limit: name=a,10;name=b,1000;\r\n\
               X-BurstLimit-Remaining: name=a,9;name=b,0;\r\n"[..]
        );
    }

    #[test]
    fn count_prefix_and_nothing_for_no_entries() {
        let mut out = Vec::new();
        write_limit_headers(&mut out, "X-CountLimit", &[]);
        assert!(out.is_empty());
        write_limit_headers(&mut out, "X-CountLimit", &[("conns", 5, 0)]);
        assert_eq!(
            out,
            b"X-CountLimit-Limit: name=conns,5;\r\nX-CountLimit-Remaining: name=conns,0;\r\n"
        );
    }

    #[test]
    fn retry_headers() {
        let mut out = Vec::new();
        write_retry_headers(&mut out, "X-RateLimit", "per-min", 17);
        assert_eq!(
            out,
            b"Retry-After: 17\r\nX-RateLimit-Reset: name=per-min,17;\r\n"
        );
    }

    #[test]
    fn control_bytes_in_names_are_dropped() {
        let mut out = Vec::new();
        write_limit_headers(&mut out, "X-RateLimit", &[("a\r\nSet-Cookie: x", 1, 0)]);
        assert_eq!(
            out,
            b"X-RateLimit-Limit: name=aSet-Cookie: x,1;\r\nX-RateLimit-Remaining: name=aSet-Cookie: x,0;\r\n"
        );
    }
}
