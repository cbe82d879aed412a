//! The admin listener: small HTTP answers about the running gateway, served on the same loop.
//! `GET /` (the status page, see [`super::status`]) and its `GET /status` (JSON),
//! `GET /healthz`, `GET /stats` (JSON: connections, upgrades, buffers in flight) and
//! `GET /metrics` (Prometheus text format, see [`super::metrics`]); `POST /reload` loads the
//! config again and says whether it was applied. With `admin.token-file`, everything but
//! `/healthz` and `/metrics` needs the token; POST and DELETE refuse other sites' pages.

use super::Gateway;
use super::cx::Next;
use crate::http::head::RequestHead;
use crate::json::write::quoted;
use std::net::SocketAddr;

impl Gateway {
    /// Answers a request on the admin listener. Its answer may read every connection and
    /// reload the config, so the loop runs it, not a step of the connection.
    pub(super) fn admin_request(&mut self, key: usize, head: RequestHead) -> Next {
        let Some(c) = self.conns.get_mut(key) else {
            return Next::Stay;
        };
        // The request's own buffer is not part of what the answer reports.
        if let Some(id) = c.up.buf.take() {
            self.cx.pool.give(id);
        }
        c.up.head = 0;
        c.up.out = 0;
        c.up.end = 0;
        let local = c.client.local_addr().ok();
        let reply = match self.admin_refusal(local, &head) {
            Some(refusal) => refusal,
            None => self.admin_answer(&head).into_bytes(),
        };
        let Some(c) = self.conns.get_mut(key) else {
            return Next::Stay;
        };
        self.cx.answer(key, c, &reply)
    }

    fn admin_answer(&mut self, head: &RequestHead) -> String {
        let (status, body) = match (head.method(), head.path()) {
            ("GET", "/") => (200, super::status::PAGE.to_string()),
            ("GET", "/status") => (200, self.status_json()),
            ("GET", "/healthz") => (200, "ok\n".to_string()),
            ("GET", "/stats") => (200, self.stats_json()),
            ("GET", "/metrics") => (200, self.metrics_text()),
            ("GET", "/limits") => (200, self.limits_json()),
            ("POST", "/reload") => {
                let outcome = self.reload();
                let status = if outcome.applied { 200 } else { 422 };
                (status, super::reload::outcome_json(&outcome))
            }
            ("DELETE", p) if p.starts_with("/limits/") => {
                // /limits/NAME resets every key of that limit, /limits/NAME/KEY one key.
                let rest = &p["/limits/".len()..];
                let (name, key_text) = match rest.split_once('/') {
                    Some((n, k)) => (n, Some(percent_decode(k))),
                    None => (rest, None),
                };
                let n = self
                    .cx
                    .counters
                    .reset(&percent_decode(name), key_text.as_deref());
                (200, format!("{{\"reset\":{n}}}\n"))
            }
            ("POST", "/clock/advance") if self.test_clock => {
                let secs = head
                    .query()
                    .and_then(|q| q.strip_prefix("seconds="))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                self.clock_offset += secs;
                self.cx.now_secs += secs;
                (200, format!("{{\"offset\":{}}}\n", self.clock_offset))
            }
            (_, "/" | "/status" | "/healthz" | "/stats" | "/limits" | "/metrics" | "/reload") => {
                (405, "method not allowed\n".to_string())
            }
            _ => (404, "not found\n".to_string()),
        };
        let (kind, page_policy) = if body.starts_with('{') {
            ("application/json", "")
        } else if body.starts_with("# HELP") {
            ("text/plain; version=0.0.4; charset=utf-8", "")
        } else if body.starts_with("<!DOCTYPE html>") {
            // The page draws the JSON of its own origin only, and no other site may frame it.
            ("text/html; charset=utf-8", PAGE_POLICY)
        } else {
            ("text/plain", "")
        };
        // Every answer is the state of the moment.
        let reply = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {kind}\r\n{page_policy}Cache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            crate::http::response::reason(status),
            body.len()
        );
        reply
    }

    /// The answer to a request that the admin listener must not serve: a state-changing
    /// request from a page of another site (403), or, with a token, one without it (401).
    /// `/healthz` and `/metrics` stay open for health checks and scrapers.
    fn admin_refusal(&mut self, local: Option<SocketAddr>, head: &RequestHead) -> Option<Vec<u8>> {
        let changes_state = matches!(head.method(), "POST" | "DELETE");
        if changes_state
            && let Some(origin) = head.header("origin")
            && !own_origin(local, origin)
        {
            let mut out = Vec::new();
            let txn = self.cx.txn.next();
            crate::http::response::error(
                &mut out,
                403,
                "Cross-site requests cannot change the gateway: the Origin is not this admin listener.",
                &txn,
                &[],
            );
            return Some(out);
        }
        let token = self.cx.model.settings.admin_token.as_ref()?;
        if matches!(head.path(), "/healthz" | "/metrics") {
            return None;
        }
        let authorized = head
            .header("authorization")
            .is_some_and(|a| crate::http::auth::carries_token(a, token.0.as_bytes()));
        if authorized {
            return None;
        }
        let mut out = Vec::new();
        let txn = self.cx.txn.next();
        crate::http::response::error(
            &mut out,
            401,
            "The admin listener needs Authorization: Bearer <token>, or Basic with the token as the password.",
            &txn,
            // Basic too, so that a browser opening the status page shows its login dialog.
            &[
                ("WWW-Authenticate", "Bearer realm=\"wsgate admin\""),
                (
                    "WWW-Authenticate",
                    "Basic realm=\"wsgate admin\", charset=\"UTF-8\"",
                ),
            ],
        );
        Some(out)
    }

    /// Every live counter: limit, key, window, value and maximum.
    fn limits_json(&self) -> String {
        let mut out = String::from("[");
        for (i, v) in self
            .cx
            .counters
            .snapshot(self.cx.now_secs)
            .iter()
            .enumerate()
        {
            if i > 0 {
                out.push(',');
            }
            let window = v
                .window_start
                .map(|w| w.to_string())
                .unwrap_or_else(|| "null".to_string());
            out.push_str(&format!(
                "{{\"limit\":{},\"kind\":\"{:?}\",\"key\":{},\"window_start\":{window},\"value\":{},\"max\":{}}}",
                quoted(&v.limit),
                v.kind,
                quoted(&v.key),
                v.value,
                v.max
            ));
        }
        out.push_str("]\n");
        out
    }

    fn stats_json(&self) -> String {
        let s = &self.cx.stats;
        // Requests are counted once, in the metrics: `/stats` and `/metrics` cannot disagree.
        let m = &self.cx.metrics;
        // Bytes held in gateway buffers, per connection at most two buffers.
        let mut buffered = 0u64;
        let mut max_conn = 0u64;
        let mut open = 0usize;
        for (_, c) in self.conns.iter() {
            if c.has(super::conn::flag::ADMIN) {
                continue;
            }
            open += 1;
            let b = (c.up.end - c.up.head) as u64 + (c.down.end - c.down.head) as u64;
            buffered += b;
            max_conn = max_conn.max(b);
        }
        format!(
            concat!(
                "{{\"accepted\":{},\"open\":{},\"upgraded\":{},\"upgrades_total\":{},",
                "\"upgrades_failed\":{},\"calls\":{},\"buffers_in_use\":{},\"buffers_idle\":{},",
                "\"buffer_size\":{},\"buffered_bytes\":{},\"max_buffered_per_connection\":{},",
                "\"connection_state_bytes\":{},\"pending\":{},\"pending_networks\":{},",
                "\"refused_pending\":{}}}\n"
            ),
            s.accepted,
            open,
            s.upgraded,
            m.upgrades,
            m.failed.iter().sum::<u64>(),
            m.calls.iter().sum::<u64>(),
            self.cx.pool.in_use(),
            self.cx.pool.idle(),
            self.cx.pool.buf_size(),
            buffered,
            max_conn,
            std::mem::size_of::<super::conn::Conn>(),
            self.cx.pending.total(),
            self.cx.pending.networks(),
            s.refused_pending,
        )
    }
}

/// Whether an `Origin` names the address the admin connection reached (`local`) (or `localhost` at its
/// port, for a loopback address). Never the request's `Host`: a page of a name that
/// resolves to this address sends a matching `Host` and `Origin` of its own.
fn own_origin(local: Option<SocketAddr>, origin: &str) -> bool {
    let Some((host, port)) = crate::http::auth::origin_host_port(origin) else {
        return false;
    };
    let Some(local) = local else {
        return false;
    };
    if port != local.port() {
        return false;
    }
    let ip = local.ip().to_canonical();
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|h| h.to_canonical() == ip)
        || (host == "localhost" && ip.is_loopback())
}

/// The status page's headers: its inline script and style run, it fetches from its own origin
/// only, and no page of another site can frame it.
const PAGE_POLICY: &str = "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'\r\nX-Frame-Options: DENY\r\n";

/// `%XX` escapes in a path segment (limit keys contain `:` and `=`, which clients may encode).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
