//! The admin listener: small HTTP answers about the running gateway, served on the same loop.
//! `GET /healthz` and `GET /stats` (JSON: connections, upgrades, buffers in flight).

use super::Gateway;
use crate::http::head::RequestHead;

impl Gateway {
    pub(super) fn admin_request(&mut self, key: usize, head: RequestHead) {
        let (status, body) = match (head.method(), head.path()) {
            ("GET", "/healthz") => (200, "ok\n".to_string()),
            ("GET", "/stats") => (200, self.stats_json()),
            (_, "/healthz" | "/stats") => (405, "method not allowed\n".to_string()),
            _ => (404, "not found\n".to_string()),
        };
        let kind = if body.starts_with('{') {
            "application/json"
        } else {
            "text/plain"
        };
        let reply = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            crate::http::response::reason(status),
            body.len()
        );
        self.answer(key, reply.as_bytes());
    }

    fn stats_json(&self) -> String {
        let s = &self.stats;
        // Bytes held in gateway buffers, per connection at most two buffers.
        let mut buffered = 0u64;
        let mut max_conn = 0u64;
        for (_, c) in self.conns.iter() {
            let b = (c.up.end - c.up.head) as u64 + (c.down.end - c.down.head) as u64;
            buffered += b;
            max_conn = max_conn.max(b);
        }
        format!(
            concat!(
                "{{\"accepted\":{},\"open\":{},\"upgraded\":{},\"upgrades_total\":{},",
                "\"upgrades_failed\":{},\"buffers_in_use\":{},\"buffers_idle\":{},",
                "\"buffer_size\":{},\"buffered_bytes\":{},\"max_buffered_per_connection\":{},",
                "\"connection_state_bytes\":{}}}\n"
            ),
            s.accepted,
            self.conns.len(),
            s.upgraded,
            s.upgrades_total,
            s.upgrades_failed,
            self.pool.in_use(),
            self.pool.idle(),
            self.pool.buf_size(),
            buffered,
            max_conn,
            std::mem::size_of::<super::conn::Conn>(),
        )
    }
}
