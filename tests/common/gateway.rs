//! Runs the `wsgate` binary as a child process and reads its listeners and log from stderr.
//!
//! The gateway logs `listening on <ADDR> (<kind>)` for every bound listener (kind `plain`, `tls`,
//! `admin` or `echo`). `start` waits for the listeners the config declares, then the log keeps
//! being collected so tests can search it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use super::DEADLINE;
use super::proc::{Proc, tail};

/// Path of the gateway binary under test.
pub fn wsgate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wsgate"))
}

pub const DEFAULT_RUST_LOG: &str = "info,wsgate=debug";

/// Listener kinds found in the log, in the order they appeared.
pub fn parse_listeners(log: &str) -> Vec<(String, SocketAddr)> {
    let mut found = Vec::new();
    for line in log.lines() {
        let Some(i) = line.find("listening on ") else {
            continue;
        };
        let rest = &line[i + "listening on ".len()..];
        let Some((addr, rest)) = rest.split_once(" (") else {
            continue;
        };
        let Some((kind, _)) = rest.split_once(')') else {
            continue;
        };
        if let Ok(addr) = addr.trim().parse::<SocketAddr>() {
            found.push((kind.to_string(), addr));
        }
    }
    found
}

/// Expected listener kinds from a config file and command line. `listener` stands for either
/// `plain` or `tls`. Best effort: tests with unusual configs call `GatewayBuilder::expect`.
fn expected_from_config(conf: &Path, args: &[String]) -> Vec<String> {
    let mut expect = Vec::new();
    let text = std::fs::read_to_string(conf).unwrap_or_default();
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap_or(serde_yaml::Value::Null);
    let listen_args = args.iter().filter(|a| *a == "--listen").count();
    let listed: Vec<bool> = yaml
        .get("listeners")
        .and_then(|l| l.as_sequence())
        .map(|list| {
            list.iter()
                .map(|l| l.get("tls").is_some_and(|t| !t.is_null()))
                .collect()
        })
        .unwrap_or_default();
    if listen_args > 0 {
        // `--listen` replaces the plain listeners; the config's TLS listeners stay.
        expect.extend(std::iter::repeat_n("listener".to_string(), listen_args));
        expect.extend(listed.iter().filter(|t| **t).map(|_| "tls".to_string()));
    } else {
        for tls in listed {
            expect.push(if tls { "tls" } else { "plain" }.to_string());
        }
    }
    // `--tls-listen ADDR` adds a TLS listener.
    let tls_listen_args = args.iter().filter(|a| *a == "--tls-listen").count();
    expect.extend(std::iter::repeat_n("tls".to_string(), tls_listen_args));
    if args.iter().any(|a| a == "--admin") || yaml.get("admin").is_some_and(|a| !a.is_null()) {
        expect.push("admin".to_string());
    }
    if yaml.get("echo-backend").is_some_and(|a| !a.is_null()) {
        expect.push("echo".to_string());
    }
    expect
}

/// True when every expected kind has its own distinct listener line.
fn covers(seen: &[(String, SocketAddr)], expect: &[String]) -> bool {
    let mut used = vec![false; seen.len()];
    for want in expect {
        let hit = seen.iter().enumerate().position(|(i, (kind, _))| {
            !used[i] && (kind == want || (want == "listener" && (kind == "plain" || kind == "tls")))
        });
        match hit {
            Some(i) => used[i] = true,
            None => return false,
        }
    }
    true
}

pub struct GatewayBuilder {
    /// `None` runs without `--config` (the `echo` subcommand).
    conf: Option<PathBuf>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    rust_log: String,
    expect: Option<Vec<String>>,
    deadline: Duration,
    program: Option<(PathBuf, Vec<String>)>,
}

impl GatewayBuilder {
    /// Runs `program prefix_args... --config FILE args...` instead of the wsgate binary (the
    /// harness self-test uses a stand-in).
    pub fn program<S: AsRef<str>>(mut self, program: impl AsRef<Path>, prefix_args: &[S]) -> Self {
        self.program = Some((
            program.as_ref().to_path_buf(),
            prefix_args.iter().map(|a| a.as_ref().to_string()).collect(),
        ));
        self
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Self {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// `--property NAME=VALUE`.
    pub fn property(self, name: &str, value: &str) -> Self {
        self.arg("--property").arg(format!("{name}={value}"))
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.envs.push((k.to_string(), v.to_string()));
        self
    }

    /// `RUST_LOG` for the gateway (default `info,wsgate=debug`).
    pub fn rust_log(mut self, filter: &str) -> Self {
        self.rust_log = filter.to_string();
        self
    }

    /// The listener kinds to wait for, instead of those read from the config.
    pub fn expect(mut self, kinds: &[&str]) -> Self {
        self.expect = Some(kinds.iter().map(|k| k.to_string()).collect());
        self
    }

    /// How long to wait for the listeners (default 20 s).
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    /// Starts the gateway and waits for its listeners; panics with the log on failure.
    pub fn start(self) -> Gateway {
        match self.try_start() {
            Ok(gw) => gw,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts the gateway and waits for its listeners; on failure returns a message with the
    /// exit status and the log so far (the process is stopped).
    pub fn try_start(self) -> Result<Gateway, String> {
        let expect = self.expect.clone().unwrap_or_else(|| match &self.conf {
            Some(conf) => expected_from_config(conf, &self.args),
            None => Vec::new(),
        });
        let mut cmd = match &self.program {
            Some((p, prefix)) => {
                let mut c = Command::new(p);
                c.args(prefix);
                c
            }
            None => Command::new(wsgate_bin()),
        };
        if let Some(conf) = &self.conf {
            cmd.arg("--config").arg(conf);
        }
        cmd.args(&self.args);
        cmd.env("RUST_LOG", &self.rust_log);
        // The log is parsed: no colour codes around the addresses.
        cmd.env("RUST_LOG_STYLE", "never");
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn("wsgate", cmd).map_err(|e| format!("spawn wsgate: {e}"))?;
        let ready = proc.streams().wait_until(self.deadline, |s| {
            s.stderr_eof || covers(&parse_listeners(&s.stderr), &expect)
        });
        let log = proc.stderr();
        let listeners = parse_listeners(&log);
        if ready && covers(&listeners, &expect) {
            return Ok(Gateway {
                proc,
                conf: self.conf.unwrap_or_default(),
                listeners: std::sync::Mutex::new(listeners),
            });
        }
        let status = if ready {
            proc.wait_exit(Duration::from_secs(5))
        } else {
            None
        };
        let what = match status {
            Some(s) => format!("wsgate exited ({s}) before listening"),
            None if ready => "wsgate closed stderr before listening".to_string(),
            None => format!(
                "wsgate did not log its listeners within {:?}",
                self.deadline
            ),
        };
        proc.kill();
        Err(format!(
            "{what}; expected {expect:?}, saw {listeners:?}\nconfig {}\n--- stderr ---\n{}",
            self.conf
                .as_deref()
                .unwrap_or(Path::new("(none)"))
                .display(),
            tail(&log, 200)
        ))
    }
}

pub struct Gateway {
    proc: Proc,
    conf: PathBuf,
    /// Listener lines seen so far; refreshed from the log only when a kind is missing, so
    /// `addr`/`url` stay cheap in loops over thousands of connections.
    listeners: std::sync::Mutex<Vec<(String, SocketAddr)>>,
}

impl Gateway {
    /// Starts `wsgate --config conf extra_args...` and waits for the listeners the config declares.
    pub fn start(conf: impl AsRef<Path>, extra_args: &[&str]) -> Gateway {
        Gateway::builder(conf).args(extra_args).start()
    }

    /// `wsgate echo --listen 127.0.0.1:0`, the built-in echo backend alone; `addr("echo")`.
    pub fn start_echo() -> Gateway {
        let mut b = Gateway::builder("");
        b.conf = None;
        b.args(&["echo", "--listen", "127.0.0.1:0"])
            .expect(&["echo"])
            .start()
    }

    pub fn builder(conf: impl AsRef<Path>) -> GatewayBuilder {
        GatewayBuilder {
            conf: Some(conf.as_ref().to_path_buf()),
            args: Vec::new(),
            envs: Vec::new(),
            rust_log: DEFAULT_RUST_LOG.to_string(),
            expect: None,
            deadline: DEADLINE,
            program: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Every listener logged so far: (kind, address).
    pub fn listeners(&self) -> Vec<(String, SocketAddr)> {
        let fresh = parse_listeners(&self.log());
        *self.listeners.lock().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        fresh
    }

    /// All addresses of one kind, in log order.
    pub fn addrs(&self, kind: &str) -> Vec<SocketAddr> {
        let pick = |l: &[(String, SocketAddr)]| -> Vec<SocketAddr> {
            l.iter()
                .filter(|(k, _)| k == kind)
                .map(|(_, a)| *a)
                .collect()
        };
        let cached = pick(&self.listeners.lock().unwrap_or_else(|e| e.into_inner()));
        if cached.is_empty() {
            pick(&self.listeners())
        } else {
            cached
        }
    }

    /// The first address of a kind (`plain`, `tls`, `admin`, `echo`); panics if there is none.
    pub fn addr(&self, kind: &str) -> SocketAddr {
        match self.addrs(kind).first() {
            Some(a) => *a,
            None => panic!(
                "no {kind} listener in the wsgate log; listeners {:?}",
                self.listeners()
            ),
        }
    }

    /// `ws://<first plain listener><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr("plain"), path)
    }

    /// The whole stderr log so far.
    pub fn log(&self) -> String {
        self.proc.stderr()
    }

    pub fn stdout(&self) -> String {
        self.proc.stdout()
    }

    /// Waits until at least `n` lines of standard output (the activity log when it goes to
    /// stdout) contain `pattern`; false after `timeout`.
    pub fn wait_stdout_count(&self, pattern: &str, n: usize, timeout: Duration) -> bool {
        self.proc.streams().wait_until(timeout, |s| {
            // Only complete lines count.
            let complete = s.stdout.rfind('\n').map_or("", |i| &s.stdout[..i]);
            complete.lines().filter(|l| l.contains(pattern)).count() >= n
        })
    }

    pub fn log_contains(&self, pattern: &str) -> bool {
        self.log().contains(pattern)
    }

    /// Number of log lines containing `pattern`.
    pub fn log_count(&self, pattern: &str) -> usize {
        self.log().lines().filter(|l| l.contains(pattern)).count()
    }

    /// Waits until the log contains `pattern`; false after `timeout`.
    pub fn wait_log(&self, pattern: &str, timeout: Duration) -> bool {
        self.wait_log_count(pattern, 1, timeout)
    }

    /// Waits until at least `n` log lines contain `pattern`; false after `timeout`.
    pub fn wait_log_count(&self, pattern: &str, n: usize, timeout: Duration) -> bool {
        // Scan only what arrived since the last wake-up: logs of big tests run to megabytes.
        let (mut scanned, mut found) = (0usize, 0usize);
        self.proc.streams().wait_until(timeout, |s| {
            let complete = s.stderr[scanned..]
                .rfind('\n')
                .map_or(scanned, |i| scanned + i + 1);
            found += s.stderr[scanned..complete]
                .lines()
                .filter(|l| l.contains(pattern))
                .count();
            scanned = complete;
            found >= n
        })
    }

    /// Like `wait_log` with the default deadline, panicking with the log when it times out.
    pub fn expect_log(&self, pattern: &str) {
        if !self.wait_log(pattern, DEADLINE) {
            panic!(
                "wsgate log has no {pattern:?} after {DEADLINE:?}\n--- stderr ---\n{}",
                tail(&self.log(), 200)
            );
        }
    }

    /// Open file descriptors of the gateway process (entries in /proc/PID/fd).
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or_else(|e| panic!("read /proc/{}/fd: {e}", self.pid()))
    }

    /// Resident set size in KiB (VmRSS of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS")
    }

    /// A `kB` field of /proc/PID/status, such as `VmRSS` or `VmHWM`.
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_else(|e| panic!("read /proc/{}/status: {e}", self.pid()));
        status
            .lines()
            .find_map(|l| {
                let v = l.strip_prefix(field)?.strip_prefix(':')?;
                v.trim().trim_end_matches("kB").trim().parse().ok()
            })
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }

    /// Sends a signal by name (`TERM`, `HUP`, `INT`, ...) to the gateway.
    pub fn signal(&mut self, sig: &str) {
        self.proc.signal(sig);
    }

    /// The exit status once the process has exited, without waiting.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.proc.try_status()
    }

    /// Waits up to `timeout` for the gateway to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.wait_exit(timeout)
    }

    /// SIGTERM, wait up to 20 s, then SIGKILL. Returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.proc.stop(DEADLINE)
    }

    /// Like `stop` with a chosen grace before SIGKILL.
    pub fn stop_within(&mut self, grace: Duration) -> ExitStatus {
        self.proc.stop(grace)
    }
}

/// The result of running the binary to completion.
#[derive(Debug)]
pub struct RunOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `wsgate ARGS...` (for example `check --config FILE`) to completion within the default
/// deadline; panics if it does not finish.
pub fn run_wsgate<S: AsRef<str>>(args: &[S]) -> RunOutput {
    let mut cmd = Command::new(wsgate_bin());
    cmd.args(args.iter().map(|a| a.as_ref()));
    cmd.env("RUST_LOG", "info").env("RUST_LOG_STYLE", "never");
    let mut proc = Proc::spawn("wsgate", cmd).expect("spawn wsgate");
    let started = Instant::now();
    let status = proc.wait_exit(DEADLINE).unwrap_or_else(|| {
        panic!(
            "wsgate {:?} still running after {:?}",
            args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
            started.elapsed()
        )
    });
    RunOutput {
        status,
        stdout: proc.stdout(),
        stderr: proc.stderr(),
    }
}
