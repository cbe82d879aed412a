//! A child process whose stdout and stderr are drained by threads into shared buffers, stopped by
//! its process id and never left behind: `Drop` stops it (SIGTERM, 5 s, SIGKILL) and reaps it,
//! also when a test panics.
//!
//! The `Child` is only reaped by this struct, so its pid cannot be reused by another process
//! while a signal may still be sent to it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::sync::Watch;

#[derive(Default)]
pub struct Streams {
    pub stdout: String,
    pub stderr: String,
    pub stdout_eof: bool,
    pub stderr_eof: bool,
}

pub struct Proc {
    name: String,
    pid: u32,
    child: Child,
    status: Option<ExitStatus>,
    streams: Arc<Watch<Streams>>,
}

fn drain(
    source: impl Read + Send + 'static,
    streams: Arc<Watch<Streams>>,
    is_stderr: bool,
    thread_name: String,
) {
    thread::Builder::new()
        .name(thread_name)
        .spawn(move || {
            let mut reader = BufReader::new(source);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        streams.update(|s| {
                            let buf = if is_stderr {
                                &mut s.stderr
                            } else {
                                &mut s.stdout
                            };
                            buf.push_str(&text);
                            if !text.ends_with('\n') {
                                buf.push('\n');
                            }
                        });
                    }
                }
            }
            streams.update(|s| {
                if is_stderr {
                    s.stderr_eof = true
                } else {
                    s.stdout_eof = true
                }
            });
        })
        .expect("spawn drain thread");
}

impl Proc {
    /// Starts `cmd` with stdin closed and stdout/stderr captured. `name` labels diagnostics.
    pub fn spawn(name: &str, mut cmd: Command) -> std::io::Result<Proc> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let streams = Arc::new(Watch::new(Streams::default()));
        drain(
            child.stdout.take().expect("piped stdout"),
            streams.clone(),
            false,
            format!("{name}-stdout"),
        );
        drain(
            child.stderr.take().expect("piped stderr"),
            streams.clone(),
            true,
            format!("{name}-stderr"),
        );
        Ok(Proc {
            name: name.to_string(),
            pid,
            child,
            status: None,
            streams,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn stdout(&self) -> String {
        self.streams.read(|s| s.stdout.clone())
    }

    pub fn stderr(&self) -> String {
        self.streams.read(|s| s.stderr.clone())
    }

    /// Shared stream state, for waiting on output with a custom predicate.
    pub fn streams(&self) -> &Watch<Streams> {
        &self.streams
    }

    /// Sends a signal (a name such as `TERM`, `HUP`, `KILL`) by pid with the `kill` command.
    /// Does nothing once the process has been reaped.
    pub fn signal(&mut self, sig: &str) {
        if self.try_status().is_some() {
            return;
        }
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            // `kill` missing or failed: fall back to std's SIGKILL so nothing is left running.
            let _ = self.child.kill();
        }
    }

    /// The exit status if the process has exited (reaping it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `timeout` for the process to exit and its output to be drained.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.status {
            return Some(s);
        }
        let deadline = Instant::now() + timeout;
        // Both pipes close when the process exits; that wakes us without polling.
        self.streams
            .wait_until(timeout, |s| s.stdout_eof && s.stderr_eof);
        // The pipes may also close while the process lives on (it closed them itself); poll the
        // status until the deadline in that rare case.
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGTERM, then up to `grace` for the exit, then SIGKILL. Returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> ExitStatus {
        self.signal("TERM");
        if let Some(s) = self.wait_exit(grace) {
            return s;
        }
        self.kill()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(s) = self.try_status() {
            return s;
        }
        let _ = self.child.kill();
        let s = self.child.wait().expect("wait for killed child");
        self.status = Some(s);
        s
    }
}

/// The last `n` lines of `text`, for diagnostics that stay readable.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[... {start} earlier lines]\n"));
    }
    for l in &lines[start..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}

impl Drop for Proc {
    fn drop(&mut self) {
        let running = self.try_status().is_none();
        if running {
            // SIGTERM first so a script can stop its own children from its trap.
            self.stop(Duration::from_secs(5));
        }
        if thread::panicking() {
            eprintln!(
                "--- {} (pid {}) stderr{} ---\n{}--- end of {} stderr ---",
                self.name,
                self.pid,
                if running {
                    ", stopped by the harness"
                } else {
                    ""
                },
                tail(&self.stderr(), 200),
                self.name
            );
        }
    }
}
