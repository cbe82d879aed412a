//! The few OS calls std and mio do not offer: bind-before-connect, signal flags, polling stdin,
//! and process CPU time. Linux only; std already links libc, so these need no extra crate.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use std::ffi::{c_int, c_long, c_ulong, c_void};

#[repr(C)]
struct SockAddrIn {
    family: u16,
    port: [u8; 2],
    addr: [u8; 4],
    zero: [u8; 8],
}

#[repr(C)]
struct PollFd {
    fd: c_int,
    events: i16,
    revents: i16,
}

unsafe extern "C" {
    fn signal(signum: c_int, handler: usize) -> usize;
    fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: u32) -> c_int;
    fn bind(fd: c_int, addr: *const SockAddrIn, len: u32) -> c_int;
    fn connect(fd: c_int, addr: *const SockAddrIn, len: u32) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
    fn sysconf(name: c_int) -> c_long;
    fn timerfd_create(clock: c_int, flags: c_int) -> c_int;
    fn timerfd_settime(fd: c_int, flags: c_int, new: *const ITimerSpec, old: *mut c_void) -> c_int;
}

#[repr(C)]
struct TimeSpec {
    sec: i64,
    nsec: i64,
}

#[repr(C)]
struct ITimerSpec {
    interval: TimeSpec,
    value: TimeSpec,
}

const CLOCK_MONOTONIC: c_int = 1;

/// A one-shot timerfd: epoll's own timeout counts in whole milliseconds, too coarse for a
/// sender that must go out every few microseconds.
pub struct Timer(std::fs::File);

impl Timer {
    pub fn new() -> io::Result<Timer> {
        // SAFETY: creates a descriptor that OwnedFd then owns.
        // TFD_NONBLOCK and TFD_CLOEXEC have the values of SOCK_NONBLOCK and SOCK_CLOEXEC.
        let fd = unsafe { timerfd_create(CLOCK_MONOTONIC, SOCK_NONBLOCK | SOCK_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just created and is owned by nothing else.
        Ok(Timer(unsafe { std::fs::File::from_raw_fd(fd) }))
    }

    /// Fires once after `d` (at least 1 ns: zero would disarm it).
    pub fn arm(&self, d: std::time::Duration) {
        let d = d.max(std::time::Duration::from_nanos(1));
        let t = ITimerSpec {
            interval: TimeSpec { sec: 0, nsec: 0 },
            value: TimeSpec {
                sec: d.as_secs() as i64,
                nsec: d.subsec_nanos() as i64,
            },
        };
        // SAFETY: valid descriptor and itimerspec.
        unsafe { timerfd_settime(self.fd(), 0, &t, std::ptr::null_mut()) };
    }

    /// Clears the expiry count so the next expiry wakes epoll again.
    pub fn clear(&self) {
        let mut b = [0u8; 8];
        let _ = io::Read::read(&mut &self.0, &mut b);
    }

    pub fn fd(&self) -> c_int {
        std::os::fd::AsRawFd::as_raw_fd(&self.0)
    }
}

const AF_INET: c_int = 2;
const SOCK_STREAM: c_int = 1;
const SOCK_NONBLOCK: c_int = 0o4000;
const SOCK_CLOEXEC: c_int = 0o2000000;
const IPPROTO_IP: c_int = 0;
const IP_BIND_ADDRESS_NO_PORT: c_int = 24;
const EINPROGRESS: i32 = 115;
const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;
const POLLIN: i16 = 1;
const SC_CLK_TCK: c_int = 2;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// SIGTERM and SIGINT set a flag instead of killing us, so results are still printed.
pub fn catch_stop_signals() {
    let h = on_signal as extern "C" fn(c_int) as usize;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        signal(SIGTERM, h);
        signal(SIGINT, h);
    }
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

fn sockaddr(a: &SocketAddrV4) -> SockAddrIn {
    SockAddrIn {
        family: AF_INET as u16,
        port: a.port().to_be_bytes(),
        addr: a.ip().octets(),
        zero: [0; 8],
    }
}

/// Starts a non-blocking connect to `to`, bound first to `from` when given. The port is left to
/// connect (IP_BIND_ADDRESS_NO_PORT), so each source address gets the full ephemeral range per
/// destination instead of sharing one range across all destinations.
pub fn connect_from(to: SocketAddr, from: Option<SocketAddr>) -> io::Result<mio::net::TcpStream> {
    let Some(from) = from else {
        return mio::net::TcpStream::connect(to);
    };
    let (SocketAddr::V4(to), SocketAddr::V4(from)) = (to, from) else {
        return Err(io::Error::other("--sources supports IPv4 only"));
    };
    // SAFETY: plain socket calls on a descriptor we own; it is closed on every error path and
    // otherwise handed to TcpStream, which closes it on drop.
    unsafe {
        let fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fail = |fd| {
            let e = io::Error::last_os_error();
            close(fd);
            Err(e)
        };
        let one: c_int = 1;
        let len = std::mem::size_of::<SockAddrIn>() as u32;
        if setsockopt(
            fd,
            IPPROTO_IP,
            IP_BIND_ADDRESS_NO_PORT,
            &one as *const c_int as *const c_void,
            4,
        ) != 0
        {
            return fail(fd);
        }
        let f = sockaddr(&from);
        if bind(fd, &f, len) != 0 {
            return fail(fd);
        }
        let t = sockaddr(&to);
        if connect(fd, &t, len) != 0
            && io::Error::last_os_error().raw_os_error() != Some(EINPROGRESS)
        {
            return fail(fd);
        }
        Ok(mio::net::TcpStream::from_raw_fd(fd))
    }
}

/// True once stdin has reached end of file (checked without blocking).
pub fn stdin_closed() -> bool {
    let mut p = PollFd {
        fd: 0,
        events: POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let r = unsafe { poll(&mut p, 1, 0) };
    if r <= 0 || p.revents == 0 {
        return false;
    }
    let mut b = [0u8; 256];
    matches!(io::Read::read(&mut io::stdin(), &mut b), Ok(0) | Err(_))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { sysconf(SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// User plus system CPU seconds of a process (`self` or a pid), from /proc/PID/stat.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields are counted after its closing parenthesis.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}
