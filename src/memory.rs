//! What an idle relayed WebSocket holds in wsgate's memory, part by part (test-only).
//!
//! The unit-test binary runs on a counting allocator that keeps, per thread, the blocks and
//! bytes still allocated, both as asked for and as glibc's malloc really takes them (its usable
//! size plus the 8-byte size field of each chunk, which is what a box costs in RSS). Counting
//! per thread keeps the tests that run beside these out of their figures. What the kernel holds
//! for a socket is not here: `bench/density.sh` measures the process as a whole.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

#[global_allocator]
static ALLOC: Counting = Counting;

/// Heap still allocated by one thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heap {
    pub blocks: isize,
    /// As the callers asked for them.
    pub asked: isize,
    /// As malloc took them: whole chunks with their headers.
    pub chunks: isize,
}

impl std::ops::Sub for Heap {
    type Output = Heap;
    fn sub(self, o: Heap) -> Heap {
        Heap {
            blocks: self.blocks - o.blocks,
            asked: self.asked - o.asked,
            chunks: self.chunks - o.chunks,
        }
    }
}

thread_local! {
    static LIVE: Cell<Heap> = const {
        Cell::new(Heap {
            blocks: 0,
            asked: 0,
            chunks: 0,
        })
    };
}

/// The chunk glibc's malloc gave for `p`: its usable size and its size field.
fn chunk(p: *mut u8) -> isize {
    // SAFETY: `p` came from the system allocator and is still allocated.
    unsafe { libc::malloc_usable_size(p.cast()) as isize + 8 }
}

fn note(blocks: isize, asked: isize, chunks: isize) {
    // A thread being torn down has no counters any more; its last frees go uncounted.
    let _ = LIVE.try_with(|l| {
        let h = l.get();
        l.set(Heap {
            blocks: h.blocks + blocks,
            asked: h.asked + asked,
            chunks: h.chunks + chunks,
        });
    });
}

// SAFETY: every call goes to `System` unchanged; only counters are updated around it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            note(1, l.size() as isize, chunk(p));
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            note(1, l.size() as isize, chunk(p));
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note(-1, -(l.size() as isize), -chunk(p));
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let old = chunk(p);
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            note(0, new as isize - l.size() as isize, chunk(q) - old);
        }
        q
    }
}

/// The heap this thread holds now.
pub fn live() -> Heap {
    LIVE.with(Cell::get)
}

/// Runs `f` and says what it left allocated on this thread, its result included.
pub fn kept<T>(f: impl FnOnce() -> T) -> (T, Heap) {
    let before = live();
    let out = f();
    (out, live() - before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::Record;
    use crate::engine::conn::{Conn, ConnLimits, MessageLimit};
    use crate::model::{ApiIdx, LimitKind, Model};
    use crate::policy::limits::{Consumer, Counters, Held, Lookup, Slot};
    use std::time::Instant;

    fn seed() -> Model {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/gateway.yaml");
        crate::config::load(&path, &Default::default())
            .expect("the seed loads")
            .model
    }

    const NOW: u64 = 1_800_000_000;

    /// The counter of the seed's limit `name` for the demo application on the seed API.
    fn slot(model: &Model, counters: &mut Counters, api: ApiIdx, name: &str) -> (Slot, bool) {
        let app = model
            .applications
            .iter()
            .position(|a| a.client_id == "demo-client-id")
            .map(|i| i as u32);
        let who = Consumer {
            app,
            remote_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            api,
            dynamic: None,
        };
        for (idx, def) in model.limits.iter().enumerate() {
            if def.name != name {
                continue;
            }
            if let Lookup::Counter(s) = counters.slot_in(None, idx as u32, &who, NOW) {
                return (s, def.kind == LimitKind::Count);
            }
        }
        panic!("the seed has no counter for {name}");
    }

    /// Every part an idle proxied `ws` connection on the seed API holds: its count limit,
    /// both message limits and its activity record. The table is printed with
    /// `--nocapture`; each part has its own bound.
    #[test]
    fn idle_websocket_by_parts() {
        let model = seed();
        let api = model
            .apis
            .iter()
            .position(|a| a.name == "test-yahel-websocket-api")
            .expect("the seed API") as ApiIdx;

        // The slab holds a `Conn` per key, and its entries are all alike.
        let (slab, h) = kept(|| slab::Slab::<Conn>::with_capacity(1024));
        let entry = h.asked / 1024;
        drop(slab);

        // The limit box, as the handshake builds it: the count limit held, the two message
        // limits resolved once.
        let mut counters = Counters::new(&model, model.settings.bounds.max_limit_keys);
        let (count, is_count) = slot(&model, &mut counters, api, "websocket-connections");
        assert!(is_count);
        let msgs: Vec<MessageLimit> = [
            ("websocket-request-ratelimit", true),
            ("websocket-response-ratelimit", false),
        ]
        .iter()
        .map(|&(name, upstream)| MessageLimit {
            slot: slot(&model, &mut counters, api, name).0,
            weight: 1,
            upstream,
            is_client: true,
        })
        .collect();
        // The first connection of the application makes the shared profile; the one measured
        // is a later one, which only takes a reference.
        let (first, shared) = kept(|| counters.intern_profile(&msgs).unwrap());
        let (limits, limits_heap) = kept(|| {
            let mut held = Held::new();
            held.push(count, 1);
            Box::new(ConnLimits {
                held,
                profile: counters.intern_profile(&msgs),
                retired: Vec::new(),
            })
        });

        // The activity record once the 101 is out: the request's headers are dropped then,
        // as the seed logs them only on an error.
        let request = b"GET /test-yahel-websocket-api/ HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
            Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-IBM-Client-Id: demo-client-id\r\n\r\n";
        let (head, _) = crate::http::head::parse_request(request)
            .expect("a valid head")
            .expect("a whole head");
        let reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
            X-Global-Transaction-ID: 1567669a0000000000000001\r\n\r\n";
        let now = Instant::now();
        let (record, record_heap) = kept(|| {
            let mut r = Box::new(Record::new(&model, api, &head, None, now));
            r.caller(Some(0), Some(0));
            r.own_head(101, "1567669a0000000000000001", reply, now);
            r
        });

        // One timer entry per connection, in the vector of its wheel slot.
        let n = 16_384;
        let mut wheel = crate::engine::timer::Wheel::new(now);
        let ((), timer_heap) = kept(|| {
            for i in 0..n {
                wheel.insert(crate::engine::timer::Entry {
                    key: i,
                    epoch: 1,
                    at: 1 + (i * 7919) % 36_000,
                });
            }
        });
        let timer = timer_heap.chunks / n as isize;

        let total = entry + limits_heap.chunks + record_heap.chunks + timer;
        println!("idle ws connection on the seed API, bytes:");
        println!(
            "  slab entry (Conn)           {entry:>5}  (Flow {} x2, Decoder {} each)",
            std::mem::size_of::<crate::engine::conn::Flow>(),
            std::mem::size_of::<crate::ws::frame::Decoder>()
        );
        println!(
            "  limits                      {:>5}  ({} blocks, {} asked: ConnLimits {}; the profile of {} MessageLimits, {} B, is shared)",
            limits_heap.chunks,
            limits_heap.blocks,
            limits_heap.asked,
            std::mem::size_of::<ConnLimits>(),
            msgs.len(),
            shared.chunks
        );
        println!(
            "  activity record             {:>5}  ({} blocks, {} asked: Record {})",
            record_heap.chunks,
            record_heap.blocks,
            record_heap.asked,
            std::mem::size_of::<Record>()
        );
        println!(
            "  timer entry (amortised)     {timer:>5}  (Entry {})",
            std::mem::size_of::<crate::engine::timer::Entry>()
        );
        println!("  total                       {total:>5}");
        let mut limits = limits;
        counters.release_profile(limits.profile.take().unwrap());
        counters.release_profile(first);
        assert_eq!(counters.profiles_in_use(), 0);
        drop((limits, record, wheel));

        assert!(entry <= 256, "the slab entry grew to {entry}");
        assert!(
            limits_heap.chunks <= 112,
            "the limits grew to {}",
            limits_heap.chunks
        );
        assert!(
            record_heap.chunks <= 192,
            "the record grew to {}",
            record_heap.chunks
        );
        assert!(timer <= 24, "a timer entry grew to {timer}");
    }

    /// What the server side of an idle `wss` connection holds beyond the plain one: the TLS
    /// box of its stream and the rustls session in it, after a handshake and one exchange of
    /// data. The second of two identical connections is the one measured, so that what the
    /// first warms once (the crypto provider, the spare record buffers shared by every
    /// stream of the loop) is not counted.
    #[test]
    fn idle_tls_session_by_parts() {
        use crate::engine::stream::Stream;
        use mio::{Events, Interest, Poll, Token};
        use rustls::pki_types::ServerName;
        use std::io::{ErrorKind, Read, Write};
        use std::sync::Arc;
        use std::time::Duration;

        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let dir = std::env::temp_dir().join(format!("wsgate-memory-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert_file, key_file) = (dir.join("c.pem"), dir.join("k.pem"));
        std::fs::write(&cert_file, cert.cert.pem()).unwrap();
        std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
        let config = crate::tls::server_config(&[crate::model::TlsCert {
            cert_chain: cert_file,
            private_key: key_file,
            server_names: Vec::new(),
        }])
        .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();

        // Waits on the stream's socket while `f` answers `WouldBlock`.
        fn until_ready<T>(
            poll: &mut Poll,
            s: &mut Stream,
            mut f: impl FnMut(&mut Stream) -> std::io::Result<T>,
        ) -> T {
            let mut events = Events::with_capacity(4);
            for _ in 0..1000 {
                match f(s) {
                    Ok(v) => return v,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        poll.poll(&mut events, Some(Duration::from_secs(5)))
                            .unwrap();
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            panic!("no progress");
        }

        // One connection from rustls's own blocking client, through the handshake, a ping from
        // the client and a pong back; returns the server side, idle, and the peer's thread.
        let connect = |poll: &mut Poll| {
            let der = cert.cert.der().clone();
            let peer = std::thread::spawn(move || {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(der).unwrap();
                let cc = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = ServerName::try_from("localhost").unwrap();
                let conn = rustls::ClientConnection::new(Arc::new(cc), name).unwrap();
                let sock = std::net::TcpStream::connect(addr).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, sock);
                tls.write_all(b"ping").unwrap();
                let mut answer = [0u8; 4];
                tls.read_exact(&mut answer).unwrap();
                // Holds the connection open until the server side is measured.
                let _ = tls.read(&mut answer);
            });
            let (sock, _) = listener.accept().unwrap();
            sock.set_nonblocking(true).unwrap();
            let (mut s, h) =
                kept(|| Stream::server(mio::net::TcpStream::from_std(sock), &config).unwrap());
            poll.registry()
                .register(&mut s, Token(0), Interest::READABLE | Interest::WRITABLE)
                .unwrap();
            let mut got = Vec::new();
            while got.len() < 4 {
                let mut buf = [0u8; 64];
                let n = until_ready(poll, &mut s, |s| s.read(&mut buf));
                assert!(n > 0, "peer ended early");
                got.extend_from_slice(&buf[..n]);
            }
            until_ready(poll, &mut s, |s| s.write(b"pong"));
            assert!(until_ready(poll, &mut s, |s| s.flush_tls()));
            assert!(!s.handshaking());
            (s, h, peer)
        };
        let mut poll = Poll::new().unwrap();
        // Dropped without a close_notify, whose record would take a spare buffer with it.
        let (mut first, _, peer) = connect(&mut poll);
        poll.registry().deregister(&mut first).unwrap();
        drop(first);
        peer.join().unwrap();

        let mut poll = Poll::new().unwrap();
        let before = live();
        let (mut s, fresh, peer) = connect(&mut poll);
        let idle = live() - before;
        println!(
            "idle wss server side: {} bytes in {} blocks ({} asked; UnbufferedServerConnection {} of them inline in the stream's TLS box); {} before the handshake",
            idle.chunks,
            idle.blocks,
            idle.asked,
            std::mem::size_of::<rustls::server::UnbufferedServerConnection>(),
            fresh.chunks
        );
        poll.registry().deregister(&mut s).unwrap();
        drop(s);
        peer.join().unwrap();
        assert!(
            idle.chunks <= 4352,
            "an idle TLS session holds {} bytes",
            idle.chunks
        );
    }
}
