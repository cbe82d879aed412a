//! Signals reach the loop through a pipe: the handler only writes the signal number to it,
//! which is safe in a signal handler, and the loop reads it like any other event.

use mio::unix::pipe;
use mio::{Interest, Registry, Token};
use std::io::Read;
use std::sync::atomic::{AtomicI32, Ordering};

static PIPE_FD: AtomicI32 = AtomicI32::new(-1);

pub enum Signal {
    /// SIGTERM or SIGINT.
    Terminate,
    /// SIGHUP: load the config again.
    Reload,
    /// SIGUSR1: log files were rotated and are opened again.
    ReopenLogs,
}

pub struct Signals {
    rx: pipe::Receiver,
    _tx: pipe::Sender,
}

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = PIPE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
        unsafe {
            libc::write(fd, &b as *const u8 as *const libc::c_void, 1);
        }
    }
}

impl Signals {
    pub fn install(registry: &Registry, token: Token) -> std::io::Result<Signals> {
        let (tx, mut rx) = pipe::new()?;
        registry.register(&mut rx, token, Interest::READABLE)?;
        use std::os::fd::AsRawFd;
        PIPE_FD.store(tx.as_raw_fd(), Ordering::Relaxed);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1] {
            // SAFETY: installs a handler that only calls write(2); the sigaction struct is
            // zeroed and then filled in before use.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        // A peer that vanishes must not kill the process when we write to it.
        // SAFETY: ignoring SIGPIPE has no preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        Ok(Signals { rx, _tx: tx })
    }

    pub fn drain(&mut self) -> Vec<Signal> {
        let mut out = Vec::new();
        let mut b = [0u8; 16];
        while let Ok(n) = self.rx.read(&mut b) {
            if n == 0 {
                break;
            }
            for &s in &b[..n] {
                match s as i32 {
                    libc::SIGTERM | libc::SIGINT => out.push(Signal::Terminate),
                    libc::SIGHUP => out.push(Signal::Reload),
                    libc::SIGUSR1 => out.push(Signal::ReopenLogs),
                    _ => {}
                }
            }
        }
        out
    }
}
