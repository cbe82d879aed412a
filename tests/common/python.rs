//! The Python peers of `tests/peers/`: the `websockets` echo and client (installed once per test
//! binary by `tests/peers/setup.sh`) and the HTTP/1.1 echo on the standard library's
//! `http.server`, each run as a child process.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;
use std::time::Duration;

use super::proc::{Proc, tail};
use super::{DEADLINE, repo_root};

pub fn peers_dir() -> PathBuf {
    repo_root().join("tests").join("peers")
}

/// The venv's python with `websockets`, or `None` (with a printed reason) when no Python 3 can
/// be had on this machine. Any other setup failure panics: the peer is required.
pub fn python() -> Option<PathBuf> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| {
        let mut cmd = Command::new("bash");
        cmd.arg(peers_dir().join("setup.sh"));
        let mut proc = Proc::spawn("setup.sh", cmd).expect("run tests/peers/setup.sh");
        // pip may download; give it more than the usual deadline.
        let status = proc
            .wait_exit(Duration::from_secs(300))
            .expect("tests/peers/setup.sh did not finish in 300 s");
        let out = proc.stdout();
        match status.code() {
            Some(0) => {
                let path = PathBuf::from(out.lines().last().unwrap_or_default().trim());
                assert!(
                    path.exists(),
                    "setup.sh printed {path:?}, which does not exist"
                );
                Some(path)
            }
            // Exit 3: no usable Python 3 at all.
            Some(3) => {
                super::skip_note(&format!(
                    "Python peers unavailable: {}",
                    proc.stderr().trim()
                ));
                None
            }
            _ => panic!(
                "tests/peers/setup.sh failed ({status})\n{}\n{}",
                tail(&out, 50),
                tail(&proc.stderr(), 50)
            ),
        }
    })
    .clone()
}

/// `tests/peers/ws_echo.py` on 127.0.0.1 with an ephemeral port; stopped (SIGTERM, then
/// SIGKILL) on drop.
pub struct PyEcho {
    proc: Proc,
    port: u16,
}

impl PyEcho {
    pub fn start(python: &PathBuf) -> PyEcho {
        let mut cmd = Command::new(python);
        cmd.arg(peers_dir().join("ws_echo.py"))
            .args(["--host", "127.0.0.1", "--port", "0"]);
        let proc = Proc::spawn("ws_echo.py", cmd).expect("spawn ws_echo.py");
        let ready = proc
            .streams()
            .wait_until(DEADLINE, |s| s.stdout.contains('\n') || s.stdout_eof);
        let first = proc.stdout().lines().next().unwrap_or_default().to_string();
        let port = match first.trim().parse() {
            Ok(p) if ready => p,
            _ => panic!(
                "ws_echo.py printed no port (got {first:?})\n{}",
                tail(&proc.stderr(), 50)
            ),
        };
        PyEcho { proc, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `ws://127.0.0.1:PORT/`.
    pub fn target_url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    /// The JSON event lines printed so far (connect: path and headers; close: code, reason).
    pub fn events(&self) -> Vec<String> {
        self.proc
            .stdout()
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect()
    }

    /// Waits until at least `n` event lines contain `pattern`.
    pub fn wait_events(&self, pattern: &str, n: usize, timeout: Duration) -> bool {
        self.proc.streams().wait_until(timeout, |s| {
            s.stdout
                .lines()
                .skip(1)
                .filter(|l| l.contains(pattern))
                .count()
                >= n
        })
    }

    pub fn stop(&mut self) -> ExitStatus {
        self.proc.stop(DEADLINE)
    }

    /// SIGKILL: the backend vanishes without closing anything itself.
    pub fn kill(&mut self) -> ExitStatus {
        self.proc.kill()
    }

    /// Sends a signal by name: `STOP` freezes the backend (its kernel still accepts
    /// connections and takes bytes), `CONT` lets it run again.
    pub fn signal(&mut self, sig: &str) {
        self.proc.signal(sig);
    }
}

impl Drop for PyEcho {
    fn drop(&mut self) {
        // A stopped process would sit on SIGTERM until the SIGKILL five seconds later.
        self.proc.signal("CONT");
        self.proc.stop(Duration::from_secs(5));
    }
}

/// Output of one `ws_client.py` run.
#[derive(Debug)]
pub struct PyClientRun {
    pub status: ExitStatus,
    /// The JSON summary line.
    pub summary: String,
    pub stderr: String,
}

impl PyClientRun {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
}

/// Runs `tests/peers/ws_client.py URL ARGS...` to completion (within 60 s; killed otherwise).
/// Useful args: `-H "Name: value"`, `--sizes 1,2,3`, `--repeat N`, `--kind text|binary|mixed`,
/// `--pipeline`, `--close-code N`, `--close-reason S`, `--compression deflate`.
pub fn run_py_client(python: &PathBuf, url: &str, args: &[&str]) -> PyClientRun {
    let mut cmd = Command::new(python);
    cmd.arg(peers_dir().join("ws_client.py"))
        .arg(url)
        .args(args);
    let mut proc = Proc::spawn("ws_client.py", cmd).expect("spawn ws_client.py");
    let status = proc.wait_exit(Duration::from_secs(60)).unwrap_or_else(|| {
        let s = proc.kill();
        eprintln!("ws_client.py killed after 60 s");
        s
    });
    PyClientRun {
        status,
        summary: proc.stdout().trim().to_string(),
        stderr: proc.stderr(),
    }
}

/// `tests/peers/http_echo.py` on 127.0.0.1 with an ephemeral port: an HTTP/1.1 server that answers
/// every request with what it received, as JSON, and prints the same JSON as one stdout line.
/// Stopped (SIGTERM, then SIGKILL) on drop.
pub struct PyHttpEcho {
    proc: Proc,
    port: u16,
}

impl PyHttpEcho {
    /// The backend, or `None` (with a notice) when this machine has no Python 3.
    pub fn start_or_skip() -> Option<PyHttpEcho> {
        match python() {
            Some(py) => Some(PyHttpEcho::start(&py)),
            None => {
                super::skip_note("no Python 3: the invoke tests need tests/peers/http_echo.py");
                None
            }
        }
    }

    pub fn start(python: &PathBuf) -> PyHttpEcho {
        let mut cmd = Command::new(python);
        cmd.arg(peers_dir().join("http_echo.py"))
            .args(["--host", "127.0.0.1", "--port", "0"]);
        let proc = Proc::spawn("http_echo.py", cmd).expect("spawn http_echo.py");
        let ready = proc
            .streams()
            .wait_until(DEADLINE, |s| s.stdout.contains('\n') || s.stdout_eof);
        let first = proc.stdout().lines().next().unwrap_or_default().to_string();
        let port = match first.trim().parse() {
            Ok(p) if ready => p,
            _ => panic!(
                "http_echo.py printed no port (got {first:?})\n{}",
                tail(&proc.stderr(), 50)
            ),
        };
        PyHttpEcho { proc, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash, so that `$(target-url)$(request.path)`
    /// makes a whole URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<SeenHttp> {
        self.proc
            .stdout()
            .lines()
            .skip(1)
            .map(SeenHttp::parse)
            .collect()
    }

    /// Waits until at least `n` requests were answered; false after `timeout`.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> bool {
        self.proc
            .streams()
            .wait_until(timeout, |s| s.stdout.lines().skip(1).count() >= n)
    }

    /// Every request answered so far, once there are at least `n` (the lines arrive through a
    /// pipe, so the last answer a client got may not have been read yet); panics when fewer
    /// than `n` arrive within `DEADLINE`.
    pub fn requests_at_least(&self, n: usize) -> Vec<SeenHttp> {
        if !self.wait_requests(n, DEADLINE) {
            panic!(
                "http_echo.py answered {} requests, expected at least {n}\n{}",
                self.requests().len(),
                tail(&self.stderr(), 30)
            );
        }
        self.requests()
    }

    /// The backend's log (one line per request, and errors).
    pub fn stderr(&self) -> String {
        self.proc.stderr()
    }

    pub fn stop(&mut self) -> ExitStatus {
        self.proc.stop(DEADLINE)
    }
}

impl Drop for PyHttpEcho {
    fn drop(&mut self) {
        self.proc.stop(Duration::from_secs(5));
    }
}

/// One request as `http_echo.py` received it (its JSON line, or the body of its answer).
#[derive(Debug, Clone, Default)]
pub struct SeenHttp {
    pub method: String,
    /// The request target as sent: path and query.
    pub target: String,
    pub path: String,
    /// The query without `?` (empty when there is none).
    pub query: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from chunked encoding when it was chunked.
    pub body: String,
    /// For a chunked request: the chunked body exactly as it arrived.
    pub raw_body: Option<String>,
    /// The port of the connection the request came on (the gateway's side).
    pub peer: u16,
}

impl SeenHttp {
    /// Parses one JSON object of `http_echo.py` (JSON is read with the YAML parser the crate
    /// already has).
    pub fn parse(json: &str) -> SeenHttp {
        let v: serde_yaml::Value = serde_yaml::from_str(json)
            .unwrap_or_else(|e| panic!("not the backend's JSON ({e}): {json:?}"));
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or_else(|| panic!("{k} missing in {json}"))
                .to_string()
        };
        let headers = v
            .get("headers")
            .and_then(|h| h.as_sequence())
            .unwrap_or_else(|| panic!("headers missing in {json}"))
            .iter()
            .map(|pair| {
                let p = pair.as_sequence().expect("a [name, value] pair");
                let text = |i: usize| p[i].as_str().expect("a string").to_string();
                (text(0), text(1))
            })
            .collect();
        SeenHttp {
            method: s("method"),
            target: s("target"),
            path: s("path"),
            query: s("query"),
            version: s("version"),
            headers,
            body: s("body"),
            raw_body: v
                .get("raw_body")
                .and_then(|x| x.as_str())
                .map(str::to_string),
            peer: v
                .get("peer")
                .and_then(|x| x.as_u64())
                .unwrap_or_else(|| panic!("peer missing in {json}")) as u16,
        }
    }

    /// First value of a header, name compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}
