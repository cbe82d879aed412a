//! Headless Chromium as an independent peer for the admin listener's status page: it loads the
//! page, runs its script against the gateway and gives back the DOM it rendered, or a
//! screenshot. `tests/peers/setup-chromium.sh` installs Debian's `chromium` when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::DEADLINE;
use super::proc::{Proc, tail};
use super::python::peers_dir;

/// The browser's own clock budget for a page: it runs the page's timers in virtual time and
/// waits for the page's fetches while doing so, so that a dump holds what the page drew from
/// its first answers. It is not a wait on the gateway: each test has the state in place first.
const VIRTUAL_TIME_MS: u32 = 5000;

/// The path of `chromium`, or `None` (with a printed reason) when it cannot be installed here.
pub fn chromium() -> Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        let mut cmd = Command::new("bash");
        cmd.arg(peers_dir().join("setup-chromium.sh"));
        let mut proc = Proc::spawn("setup-chromium.sh", cmd).expect("run setup-chromium.sh");
        // apt-get may download a hundred megabytes.
        let status = proc
            .wait_exit(Duration::from_secs(900))
            .expect("tests/peers/setup-chromium.sh did not finish in 900 s");
        match status.code() {
            Some(0) => {
                let out = proc.stdout();
                let path = PathBuf::from(out.lines().last().unwrap_or_default().trim());
                assert!(path.exists(), "setup-chromium.sh printed {path:?}");
                Some(path)
            }
            Some(3) => {
                super::skip_note(&format!(
                    "headless Chromium unavailable: {}",
                    proc.stderr().trim()
                ));
                None
            }
            _ => panic!(
                "tests/peers/setup-chromium.sh failed ({status})\n{}",
                tail(&proc.stderr(), 40)
            ),
        }
    })
    .clone()
}

/// Runs Chromium headless on `url` with `extra` arguments; returns its stdout. Each run has a
/// profile directory of its own, so runs in parallel do not share a login or a cache.
fn run(chromium: &Path, url: &str, extra: &[String]) -> String {
    let profile = tempdir();
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        &format!("--user-data-dir={}", profile.display()),
        &format!("--virtual-time-budget={VIRTUAL_TIME_MS}"),
    ]);
    cmd.args(extra).arg(url);
    let mut proc = Proc::spawn("chromium", cmd).expect("start chromium");
    let status = proc
        .wait_exit(3 * DEADLINE)
        .unwrap_or_else(|| panic!("chromium did not finish on {url}"));
    let out = proc.stdout();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        status.success(),
        "chromium on {url}: {status}\n{}",
        tail(&proc.stderr(), 30)
    );
    out
}

/// The DOM of `url` once its script has run.
pub fn dump_dom(chromium: &Path, url: &str) -> String {
    run(chromium, url, &["--dump-dom".to_string()])
}

/// A PNG of `url` at `width` x `height` CSS pixels, written to `png`.
pub fn screenshot(chromium: &Path, url: &str, png: &Path, width: u32, height: u32) {
    run(
        chromium,
        url,
        &[
            format!("--window-size={width},{height}"),
            format!("--screenshot={}", png.display()),
        ],
    );
    assert!(png.exists(), "no screenshot at {}", png.display());
}

/// The table row (`<tr ...>...</tr>`) whose opening tag holds `attrs`, as serialised.
pub fn row<'a>(dom: &'a str, attrs: &str) -> Option<&'a str> {
    let at = dom.find(attrs)?;
    let start = dom[..at].rfind("<tr")?;
    let end = at + dom[at..].find("</tr>")? + "</tr>".len();
    Some(&dom[start..end])
}

fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "wsgate-chromium-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).expect("chromium profile dir");
    d
}
