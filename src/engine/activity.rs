//! Where activity records go, and the hooks that feed them from the path of a connection.
//!
//! Records are appended to one bounded in-memory ring and written out once per loop turn, so
//! a transaction costs no system call of its own. The ring never holds more than
//! [`MAX_PENDING`] bytes, nor takes more room than that, and a partial write moves no bytes. When standard output is a pipe or a socket
//! (journald, a container runtime), only what it can take without waiting is written: a slow
//! reader then fills the buffer instead of stalling the loop, and records beyond the bound are
//! dropped and counted. The descriptor itself stays blocking, since standard error often shares
//! it. A file is opened for appending and reopened on SIGUSR1, after logrotate renamed it.

use super::conn::{Conn, Phase, flag};
use super::cx::Cx;
use super::metrics::Failure;
use crate::activity::{Closer, Record};
use crate::http::head::RequestHead;
use crate::model::{ActivityOutput, ApiIdx, LogContent};
use crate::policy::preflow::Caller;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::time::Instant;

/// Bytes of records waiting to be written at most: a record that would go beyond is dropped.
const MAX_PENDING: usize = 4 << 20;
/// Room kept by the ring once it is empty again, and by the record being written.
const KEEP_CAPACITY: usize = 64 << 10;

enum Out {
    /// `pipe`: a pipe or a socket, written only as far as it is ready.
    Stdout {
        pipe: bool,
    },
    File {
        path: PathBuf,
        file: File,
    },
    Off,
}

pub struct Sink {
    out: Out,
    /// Records not written yet, oldest first.
    buf: VecDeque<u8>,
    /// The record being written, which joins `buf` whole or not at all.
    record: Vec<u8>,
    /// Records written to the buffer, and records dropped because it was full.
    pub records: u64,
    pub dropped: u64,
    /// A write error or a full buffer was reported (once until writing works again).
    warned: bool,
}

impl Sink {
    pub fn open(output: &ActivityOutput) -> io::Result<Sink> {
        let out = match output {
            ActivityOutput::Off => Out::Off,
            ActivityOutput::Stdout => Out::Stdout {
                pipe: stdout_is_pipe(),
            },
            ActivityOutput::File(path) => Out::File {
                file: open_append(path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("activity log file {}: {e}", path.display()),
                    )
                })?,
                path: path.clone(),
            },
        };
        Ok(Sink {
            out,
            buf: VecDeque::new(),
            record: Vec::new(),
            records: 0,
            dropped: 0,
            warned: false,
        })
    }

    pub fn enabled(&self) -> bool {
        !matches!(self.out, Out::Off)
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Appends one record with `write`, or drops it when it does not fit in what is left of
    /// [`MAX_PENDING`].
    pub fn push(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.buf.len() >= MAX_PENDING {
            return self.drop_one();
        }
        self.record.clear();
        write(&mut self.record);
        let need = self.buf.len() + self.record.len();
        if need > MAX_PENDING {
            return self.drop_one();
        }
        if need > self.buf.capacity() {
            // Doubling, but never past the bound (a plain `extend` could double to twice it).
            let room = (2 * self.buf.capacity()).clamp(need, MAX_PENDING);
            self.buf.reserve_exact(room - self.buf.len());
        }
        self.buf.extend(&self.record);
        if self.record.capacity() > KEEP_CAPACITY {
            self.record = Vec::new();
        }
        self.records += 1;
    }

    fn drop_one(&mut self) {
        self.dropped += 1;
        if !self.warned {
            self.warned = true;
            log::warn!(
                "activity log: {} bytes not written yet, dropping records until the output catches up",
                self.pending()
            );
        }
    }

    /// Writes what the output takes now, without waiting.
    pub fn flush(&mut self) {
        self.write_out(false);
    }

    /// Writes everything, waiting if it must (at exit).
    pub fn flush_all(&mut self) {
        self.write_out(true);
    }

    fn write_out(&mut self, wait: bool) {
        if self.pending() == 0 {
            return;
        }
        let result = loop {
            // The oldest bytes, up to the ring's wrap.
            let chunk = self.buf.as_slices().0;
            if chunk.is_empty() {
                break Ok(());
            }
            let r = match &mut self.out {
                Out::Off => Ok(chunk.len()),
                Out::File { file, .. } => file.write(chunk),
                Out::Stdout { pipe } => {
                    let mut chunk = chunk;
                    if *pipe && !wait {
                        if !stdout_ready() {
                            break Err(io::Error::from(io::ErrorKind::WouldBlock));
                        }
                        // A ready pipe takes PIPE_BUF bytes without waiting, a ready Unix
                        // socket far more.
                        chunk = &chunk[..chunk.len().min(libc::PIPE_BUF)];
                    }
                    // SAFETY: fd 1 stays open for the life of the process; ManuallyDrop keeps
                    // this handle from closing it.
                    let mut f = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
                    f.write(chunk)
                }
            };
            match r {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                // Drops the written bytes from the front: no byte moves.
                Ok(n) => drop(self.buf.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok(()) => {
                self.warned = false;
                self.buf.shrink_to(KEEP_CAPACITY);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                if !self.warned {
                    self.warned = true;
                    log::error!("activity log: write failed, records lost: {e}");
                }
                self.dropped += 1;
                self.buf.clear();
            }
        }
    }

    /// SIGUSR1: what is pending goes to the old file, then the file is opened again by name.
    pub fn reopen(&mut self) {
        let Out::File { path, .. } = &self.out else {
            log::info!("SIGUSR1: the activity log is not written to a file; nothing to reopen");
            return;
        };
        let path = path.clone();
        self.flush();
        match open_append(&path) {
            Ok(file) => {
                self.out = Out::File {
                    path: path.clone(),
                    file,
                };
                log::info!("activity log reopened: {}", path.display());
            }
            Err(e) => log::error!(
                "activity log: cannot reopen {}: {e}; still writing to the old file",
                path.display()
            ),
        }
    }
}

fn open_append(path: &std::path::Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// Whether standard output is a pipe or a socket, whose reader may be slow. A terminal or a
/// file is written as it is.
fn stdout_is_pipe() -> bool {
    // SAFETY: fstat on fd 1 into a zeroed stat buffer.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(1, &mut st) != 0 {
            return false;
        }
        let kind = st.st_mode & libc::S_IFMT;
        kind == libc::S_IFIFO || kind == libc::S_IFSOCK
    }
}

/// Whether standard output can take bytes now.
fn stdout_ready() -> bool {
    let mut p = libc::pollfd {
        fd: 1,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: poll on one pollfd that lives on the stack, without waiting.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    // An error or hang-up is "ready": the write that follows reports it.
    n > 0
}

/// Counts bytes read from the client into the connection's record, if it has one.
pub(super) fn count_in(record: &mut Option<Box<Record>>, n: usize) {
    if let Some(r) = record.as_deref_mut() {
        r.bytes_in += n as u64;
    }
}

/// Counts bytes queued for the client into the connection's record, if it has one.
pub(super) fn count_out(record: &mut Option<Box<Record>>, n: usize) {
    if let Some(r) = record.as_deref_mut() {
        r.bytes_out += n as u64;
    }
}

/// The head of an answer queued for the client.
pub(super) fn head_out(record: &mut Option<Box<Record>>, head: &[u8], now: Instant) {
    if let Some(r) = record.as_deref_mut() {
        r.bytes_out += head.len() as u64;
        r.response_head(head, now);
    }
}

/// The head of an answer the gateway built, with the status and transaction id it wrote.
pub(super) fn own_head_out(
    record: &mut Option<Box<Record>>,
    status: u16,
    txn: &str,
    head: &[u8],
    now: Instant,
) {
    if let Some(r) = record.as_deref_mut() {
        r.bytes_out += head.len() as u64;
        r.own_head(status, txn, head, now);
    }
}

/// Notes who ends a WebSocket connection first.
pub(super) fn closing(
    record: &mut Option<Box<Record>>,
    by: Closer,
    code: u16,
    limit: Option<&str>,
) {
    if let Some(r) = record.as_deref_mut() {
        r.closing(by, code, limit);
    }
}

impl Cx {
    /// A proxy client's request head was read (before routing).
    pub(super) fn request_started(&mut self, c: &mut Conn, head: &RequestHead) {
        c.activity = None;
        if head.header("upgrade").is_some() {
            c.set(flag::UPGRADE_ASKED);
        } else {
            c.clear(flag::UPGRADE_ASKED);
        }
    }

    /// The request is for `api`: its record starts if the API logs activity.
    pub(super) fn request_routed(&mut self, c: &mut Conn, api: ApiIdx, head: &RequestHead) {
        let log = &self.model.apis[api as usize].activity_log;
        let wanted = self.activity.enabled()
            && log.enabled
            && (log.success != LogContent::None || log.error != LogContent::None);
        if !wanted {
            return;
        }
        let trusted = &self.model.settings.trusted_proxies;
        let peer = c.peer.ip();
        let forwarded_for = crate::http::forwarded::trusted(trusted, peer).then(|| {
            crate::http::forwarded::client_address(trusted, peer, head.headers("x-forwarded-for"))
        });
        let record = Record::new(&self.model, api, head, forwarded_for, self.now);
        c.activity = Some(Box::new(record));
    }

    /// The gateway's own final answer (`bytes`, head and body) is queued for the client: the
    /// request's transaction ends here.
    pub(super) fn answered(&mut self, c: &mut Conn, bytes: &[u8]) {
        let status = status_of(bytes);
        if status >= 400 && !c.has(flag::ADMIN) {
            self.metrics.refused(status);
        }
        if c.has(flag::UPGRADE_ASKED) {
            c.clear(flag::UPGRADE_ASKED);
            let why = if status >= 500 {
                Failure::BackendError
            } else {
                Failure::Rejected
            };
            self.metrics.upgrade_failed(why);
        }
        if let Some(r) = c.activity.as_deref_mut() {
            r.response_head(bytes, self.now);
            r.bytes_out += bytes.len() as u64;
        }
        self.activity_end(c);
    }

    /// A limit refuses the request with `status`, about to be answered: an upgrade it asked for
    /// failed because of that limit (unless a catch turned the refusal into another answer).
    pub(super) fn refused_by_limit(&mut self, c: &mut Conn, status: u16) {
        if c.has(flag::UPGRADE_ASKED) && matches!(status, 429 | 503) {
            c.clear(flag::UPGRADE_ASKED);
            self.metrics.upgrade_failed(Failure::Limit);
        }
    }

    /// Writes the connection's record, if it has one, and drops it.
    pub(super) fn activity_end(&mut self, c: &mut Conn) {
        let Some(record) = c.activity.take() else {
            return;
        };
        if record.content(&c.model) == LogContent::None {
            return;
        }
        let (model, peer, now) = (&c.model, c.peer, self.now);
        self.activity
            .push(|out| record.write(model, peer, now, out));
    }

    /// The end of a connection, for the metrics and the activity log.
    pub(super) fn connection_ended(&mut self, c: &mut Conn) {
        let waiting = matches!(
            c.phase,
            Phase::FirstHead
                | Phase::Head
                | Phase::Resolving
                | Phase::Connecting
                | Phase::BackendHead
        );
        if c.has(flag::UPGRADE_ASKED) && waiting {
            c.clear(flag::UPGRADE_ASKED);
            self.metrics.upgrade_failed(Failure::Aborted);
        }
        self.metrics
            .connection_closed(c.listener, c.phase == Phase::Open);
        if c.phase == Phase::Open {
            self.metrics.websocket_closed(&c.model, c.api);
            let gone = if c.has(flag::CLIENT_EOF) {
                Closer::Client
            } else {
                Closer::Gateway
            };
            closing(&mut c.activity, gone, 1006, None);
        }
        self.activity_end(c);
    }

    /// A plain call is over: its answer went to the client.
    pub(super) fn call_ended(&mut self, c: &mut Conn) {
        self.metrics.call_done(&c.model, c.api);
        self.activity_end(c);
    }
}

/// The client was identified (or the API is keyless).
pub(super) fn request_identified(c: &mut Conn, caller: &Caller) {
    if let Some(r) = c.activity.as_deref_mut() {
        r.caller(caller.app, caller.plan);
    }
}

/// Notes who ends an open WebSocket first, and with which code.
pub(super) fn note_close(c: &mut Conn, by: Closer, code: u16) {
    closing(&mut c.activity, by, code, None);
}

/// The status code of an HTTP/1.x answer's first line (0 if it has none).
fn status_of(bytes: &[u8]) -> u16 {
    bytes
        .get(9..12)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_buffer_drops_records_and_counts_them_until_it_drains() {
        let mut sink = Sink::open(&ActivityOutput::Off).expect("sink");
        let line = vec![b'x'; 1000];
        for _ in 0..(MAX_PENDING / 1000 + 10) {
            sink.push(|out| out.extend_from_slice(&line));
        }
        // Only whole records that fit go in.
        assert_eq!(sink.pending(), MAX_PENDING / 1000 * 1000);
        assert_eq!(sink.records, (MAX_PENDING / 1000) as u64);
        assert_eq!(sink.dropped, 10);
        assert!(sink.buf.capacity() <= MAX_PENDING);
        sink.flush();
        assert_eq!(sink.pending(), 0);
        sink.push(|out| out.extend_from_slice(&line));
        assert_eq!((sink.pending(), sink.dropped), (1000, 10));
    }

    /// A sink writing into a non-blocking pipe that takes only part of what is pending, while
    /// records keep coming: the ring never takes more room than the bound, even when partial
    /// writes and new records alternate at the bound, and the reader gets every record it kept
    /// once, in order.
    #[test]
    fn partial_writes_keep_the_bound_and_the_order() {
        use std::io::Read;
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two descriptors, owned by the Files below.
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) },
            0
        );
        // SAFETY: each descriptor was just created and is owned by exactly one File.
        let (mut reader, writer) =
            unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        let mut sink = Sink::open(&ActivityOutput::Off).expect("sink");
        sink.out = Out::File {
            path: PathBuf::new(),
            file: writer,
        };
        let mut kept = Vec::new();
        let mut got = Vec::new();
        let mut drain_pipe = |got: &mut Vec<u8>| {
            let mut chunk = [0u8; 1 << 16];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&chunk[..n]);
            }
        };
        let mut i = 0u32;
        for _ in 0..40 {
            // Fill up to the bound (one record dropped), then let the pipe take what it can.
            let before = sink.dropped;
            while sink.dropped == before {
                let line = format!("{i:08} {}\n", "r".repeat(90 + (i % 7) as usize));
                i += 1;
                sink.push(|out| out.extend_from_slice(line.as_bytes()));
                if sink.dropped == before {
                    kept.extend_from_slice(line.as_bytes());
                }
                assert!(sink.pending() <= MAX_PENDING);
                assert!(
                    sink.buf.capacity() <= MAX_PENDING,
                    "the ring took {} bytes of room",
                    sink.buf.capacity()
                );
            }
            sink.flush();
            assert!(sink.pending() < MAX_PENDING, "the pipe took nothing");
            drain_pipe(&mut got);
        }
        while sink.pending() > 0 {
            sink.flush();
            drain_pipe(&mut got);
        }
        assert!(got == kept, "records lost, repeated or out of order");
    }
}
