//! The Python `websockets` peers of `tests/peers/`: installed once per test binary by
//! `tests/peers/setup.sh`, then run as child processes.

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
}

impl Drop for PyEcho {
    fn drop(&mut self) {
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
