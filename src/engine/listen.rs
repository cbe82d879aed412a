//! Listening sockets and accepting connections, within the global connection cap.

use super::Gateway;
use super::conn::{Conn, Flow, Phase, flag};
use super::stream::Stream;
use crate::ws::frame::{Decoder, Role};
use mio::net::TcpListener;
use mio::{Interest, Token};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

pub enum Kind {
    /// Serves the APIs. `secure`: the listener speaks TLS or sits behind a TLS terminator, so
    /// it serves APIs whose schemes are `https`/`wss`.
    Proxy { secure: bool },
    /// The built-in echo backend.
    Echo,
    /// The admin listener.
    Admin,
}

/// Connections the kernel may queue for `accept` on each listener.
const BACKLOG: libc::c_int = 4096;

pub struct Listener {
    pub socket: TcpListener,
    pub addr: SocketAddr,
    pub kind: Kind,
    /// The TLS settings of a listener that terminates TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Listener {
    pub fn bind(
        addr: SocketAddr,
        kind: Kind,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<Listener> {
        let socket = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        // mio listens with a backlog of 128; a burst of connects beyond it (reconnecting
        // clients after a restart) would wait for SYN retransmissions. Listening again only
        // changes the backlog; the kernel caps it at net.core.somaxconn.
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is the listening socket just bound, owned by `socket`.
        unsafe { libc::listen(socket.as_raw_fd(), BACKLOG) };
        let addr = socket.local_addr()?;
        Ok(Listener {
            socket,
            addr,
            kind,
            tls,
        })
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Proxy { .. } if self.tls.is_some() => "tls",
            Kind::Proxy { .. } => "plain",
            Kind::Echo => "echo",
            Kind::Admin => "admin",
        }
    }
}

impl Gateway {
    /// Accepts until the backlog is empty or the connection cap is reached.
    pub(super) fn accept(&mut self, index: usize) {
        if self.stopping.is_some() {
            return;
        }
        let max = self.cx.model.settings.bounds.max_connections;
        // The admin listener stays reachable at the cap: that is when an operator needs it.
        let capped = !matches!(
            self.listeners.get(index).map(|l| &l.kind),
            Some(Kind::Admin)
        );
        loop {
            if capped && self.conns.len() >= max {
                if self.paused {
                    return;
                }
                self.paused = true;
                log::warn!("connection cap of {max} reached: new connections wait in the backlog");
                return;
            }
            let Some(l) = self.listeners.get(index) else {
                return;
            };
            let (tcp, peer) = match l.socket.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors or memory: leave the rest in the backlog for now.
                    log::warn!("accept on {} failed: {e}", l.addr);
                    return;
                }
            };
            // Only API clients are counted: the admin listener is the operator's, and the echo
            // backend's clients are the gateway's own backend connections.
            let pending = matches!(l.kind, Kind::Proxy { .. });
            let limit = self.cx.model.settings.bounds.max_pending_per_address;
            if pending && !self.cx.pending.admit(peer.ip(), limit) {
                self.cx.stats.refused_pending += 1;
                log::debug!(
                    "refused {peer}: {limit} connections of its network have not sent a head yet"
                );
                continue;
            }
            let mut flags = 0;
            match l.kind {
                Kind::Proxy { secure: true } => flags |= flag::SECURE,
                Kind::Proxy { secure: false } => {}
                Kind::Echo => flags |= flag::ECHO,
                Kind::Admin => flags |= flag::ADMIN,
            }
            let _ = tcp.set_nodelay(true);
            if matches!(l.kind, Kind::Proxy { .. }) {
                super::stream::cap_kernel_buffers(
                    &tcp,
                    self.cx.model.settings.bounds.socket_buffer,
                );
            }
            let mut stream = match &l.tls {
                None => Stream::plain(tcp),
                Some(config) => match Stream::server(tcp, config) {
                    Ok(s) => s,
                    Err(e) => {
                        log::warn!("cannot start TLS for {peer}: {e}");
                        if pending {
                            self.cx.pending.release(peer.ip());
                        }
                        continue;
                    }
                },
            };
            let bounds = &self.cx.model.settings.bounds;
            let max_msg = bounds.max_message_size;
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            if let Err(e) = self.poll.registry().register(
                &mut stream,
                Token(key * 2),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("cannot register a connection from {peer}: {e}");
                if pending {
                    self.cx.pending.release(peer.ip());
                }
                continue;
            }
            let epoch = self.next_epoch;
            self.next_epoch = self.next_epoch.wrapping_add(1);
            let c = entry.insert(Conn {
                client: stream,
                backend: None,
                peer,
                phase: if pending {
                    Phase::FirstHead
                } else {
                    Phase::Head
                },
                listener: u16::try_from(index).unwrap_or(u16::MAX),
                flags,
                handshake_queued: false,
                api: 0,
                metrics_row: super::metrics::NO_ROW,
                wsu: 0,
                epoch,
                deadline: 0,
                armed: 0,
                model: self.cx.model.clone(),
                up: Flow::new(Decoder::new(Role::Client, false, max_msg)),
                down: Flow::new(Decoder::new(Role::Server, false, max_msg)),
                hs: None,
                limits: None,
                activity: None,
            });
            // A TLS client first has the handshake timeout; the head timeout starts once the
            // handshake is done (see `read_head`).
            let b = &self.cx.model.settings.bounds;
            let t = if l.tls.is_some() {
                b.handshake_timeout
            } else {
                b.header_timeout
            };
            self.cx.set_timeout(key, c, t);
            self.cx.stats.accepted += 1;
            self.cx
                .metrics
                .accepted(u16::try_from(index).unwrap_or(u16::MAX));
            self.cx.stats.open = self.conns.len();
        }
    }
}
