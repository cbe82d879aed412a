//! Sockets by the thousand for the fault and adversary tests: connecting from a chosen source
//! address (all of 127.0.0.0/8 answers on loopback, and each source address has its own ~28,000
//! ephemeral ports), fixed kernel buffer sizes, resets instead of closes, what the kernel holds
//! for sockets, and the seed's config with its limit values raised for load.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::time::{Duration, Instant};

use tungstenite::Message;

use super::client::{Ws, recv_data};
use super::conf::{GatewayYaml, TempConf};
use super::gateway::Gateway;
use super::limits::{seed_yaml, write_conf};

/// The `i`-th of 16 loopback source addresses, 127.0.0.2 to 127.0.0.17.
pub fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (i % 16) as u8)
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of the size passed; `fd` is an open socket.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn sockaddr(ip: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all zeroes is a valid value.
    let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_port = port.to_be();
    a.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
    a
}

/// A blocking TCP connection to `dst` from `src` (any port), with a fixed receive buffer of
/// `rcvbuf` bytes when given (set before connecting, so the window matches it).
pub fn connect_from(
    src: Option<Ipv4Addr>,
    dst: SocketAddr,
    rcvbuf: Option<usize>,
) -> io::Result<TcpStream> {
    let SocketAddr::V4(dst) = dst else {
        return Err(io::Error::other("connect_from: IPv4 only"));
    };
    // SAFETY: a plain socket(2) call; the descriptor is owned by the TcpStream right after.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nobody else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    if let Some(n) = rcvbuf {
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &(n as libc::c_int))?;
    }
    if let Some(ip) = src {
        // The port is chosen at connect time, per destination: many more connections per
        // source address than with a port reserved at bind time.
        setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &1 as &libc::c_int,
        )?;
        let a = sockaddr(ip, 0);
        // SAFETY: `a` is a valid sockaddr_in of the size passed.
        let r = unsafe {
            libc::bind(
                fd,
                &a as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let a = sockaddr(*dst.ip(), dst.port());
    loop {
        // SAFETY: as for bind.
        let r = unsafe {
            libc::connect(
                fd,
                &a as *const libc::sockaddr_in as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return Ok(stream);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A fixed kernel send buffer (`SO_SNDBUF`; the kernel doubles the value for its bookkeeping).
pub fn set_send_buffer(s: &TcpStream, bytes: usize) -> io::Result<()> {
    setsockopt(
        s.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_SNDBUF,
        &(bytes as libc::c_int),
    )
}

/// Closes `s` with a TCP reset instead of a FIN (`SO_LINGER` with a zero timeout).
pub fn reset(s: TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let _ = setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, &l);
    drop(s);
}

/// The kernel's memory for TCP sockets, machine-wide, in KiB (`mem` of /proc/net/sockstat,
/// in pages). Other programs' sockets count too: a figure to print, not to assert on.
/// One socket's kernel memory as `ss -m` shows it.
#[derive(Debug, Clone, Copy)]
pub struct SocketMemory {
    pub local_port: u16,
    pub remote_port: u16,
    /// Bytes received and not read yet (`r`), and the receive buffer's limit (`rb`).
    pub received: u64,
    pub receive_limit: u64,
    /// Bytes queued to send (`w`), and the send buffer's limit (`tb`).
    pub queued: u64,
    pub send_limit: u64,
}

/// The established TCP sockets on loopback whose local or remote port is one of `ports`, with
/// their kernel memory, from `ss -tmn` (iproute2). Machine-wide figures would also count the
/// sockets of tests running beside this one; these are exactly the sockets asked for.
pub fn socket_memory(ports: &[u16]) -> Vec<SocketMemory> {
    let out = std::process::Command::new("ss")
        .args(["-tmnH", "state", "established"])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let port = |addr: &str| addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
    let mut found = Vec::new();
    let mut current: Option<(u16, u16)> = None;
    for line in text.lines() {
        if let Some(at) = line.find("skmem:(") {
            let Some((local_port, remote_port)) = current.take() else {
                continue;
            };
            let inner = &line[at + 7..];
            let inner = &inner[..inner.find(')').unwrap_or(inner.len())];
            let field = |name: &str| {
                inner
                    .split(',')
                    .find_map(|f| f.strip_prefix(name)?.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            found.push(SocketMemory {
                local_port,
                remote_port,
                received: field("r"),
                receive_limit: field("rb"),
                queued: field("w"),
                send_limit: field("tb"),
            });
            continue;
        }
        // "Recv-Q Send-Q Local:Port Peer:Port" (the state column is left out with a state filter).
        let cols: Vec<&str> = line.split_whitespace().collect();
        current = match cols.as_slice() {
            [_, _, local, peer, ..] => port(local).zip(port(peer)),
            _ => None,
        };
        if let Some((l, r)) = current
            && !ports.contains(&l)
            && !ports.contains(&r)
        {
            current = None;
        }
    }
    found
}

pub fn kernel_tcp_kib() -> u64 {
    let text = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let pages: u64 = text
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| {
            let mut it = l.split_whitespace();
            while let Some(w) = it.next() {
                if w == "mem" {
                    return it.next()?.parse().ok();
                }
            }
            None
        })
        .unwrap_or(0);
    pages * 4
}

/// Round-trip times of `n` small text messages on `ws`, each echo checked.
pub fn echo_times(ws: &mut Ws, n: usize, tag: &str) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let msg = Message::text(format!("{tag} {i}"));
            let t = Instant::now();
            ws.send(msg.clone()).expect("send");
            let got = recv_data(ws).expect("echo");
            let dt = t.elapsed();
            assert_eq!(got, msg, "{tag}: echo {i} differs");
            dt
        })
        .collect()
}

/// The `p`-th percentile (0..=100) of `v`.
pub fn percentile(v: &[Duration], p: usize) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[((s.len() - 1) * p / 100).min(s.len() - 1)]
}

/// The seed's count limit, its value replaced (the seed's is 2).
pub fn count_value_edit(value: u64) -> (String, String) {
    (
        "          auto-decrement: true\n          value: 2\n".to_string(),
        format!("          auto-decrement: true\n          value: {value}\n"),
    )
}

/// The seed's message limits raised out of reach: every message is still counted.
pub const RAISED_MESSAGE_LIMITS: [(&str, &str); 2] = [
    ("- value: 3/1minute\n", "- value: 100000000/1minute\n"),
    ("- value: 5/1minute\n", "- value: 100000000/1minute\n"),
];

/// The gateway on the seed's API and Product YAML (conf/), the count limit set to
/// `count_value` connections per application and the message limits raised out of reach, with
/// applications A and B (`limits::A`, `limits::B`), `yaml`'s bounds and `api_edits` applied.
pub fn start_seed(
    yaml: impl FnOnce(GatewayYaml) -> GatewayYaml,
    count_value: u64,
    api_edits: &[(&str, &str)],
    target: &str,
) -> (TempConf, Gateway) {
    let conf = TempConf::new();
    let (from, to) = count_value_edit(count_value);
    let mut edits = vec![(from.as_str(), to.as_str())];
    edits.extend(RAISED_MESSAGE_LIMITS);
    let path = write_conf(&conf, &yaml(seed_yaml(target)), &edits, api_edits);
    // Info level: a debug line per connection would make the log of a churn hundreds of MB.
    // `WSGATE_LOAD_LOG=debug` shows them when a failure needs them.
    let level = std::env::var("WSGATE_LOAD_LOG").unwrap_or_else(|_| "info".into());
    let gw = Gateway::builder(&path).rust_log(&level).start();
    (conf, gw)
}
