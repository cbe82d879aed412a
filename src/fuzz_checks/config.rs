//! The config loader ([`crate::config::load`]), through the same path as `wsgate check`.

use crate::config::{self, Overrides, Severity};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// The `config` target. The input is a set of files separated by NUL bytes: the first is the
/// gateway config, each later one is a file name on its first line and the file's text after
/// it, so a config can name its products and APIs (names other than plain `[A-Za-z0-9._-]` are
/// skipped). They are written to a fresh directory and loaded as `wsgate check` loads them:
/// the answer must be a model or a list of errors, never a panic. A model must summarise; a
/// refusal must hold at least one error, each with a message.
pub fn load(data: &[u8]) {
    // A path to a device or a kernel file could block or never end; that is the operator's
    // choice of file, not a loader fault.
    for special in [&b"/dev"[..], b"/proc", b"/sys"] {
        if data.windows(special.len()).any(|w| w == special) {
            return;
        }
    }
    let dir = Scratch::new();
    let mut parts = data.split(|&b| b == 0);
    let gateway = dir.path.join("gateway.yaml");
    std::fs::write(&gateway, parts.next().unwrap_or_default()).expect("write gateway.yaml");
    for part in parts {
        let (name, text) = match part.iter().position(|&b| b == b'\n') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &[][..]),
        };
        let plain = |b: &u8| b.is_ascii_alphanumeric() || b"._-".contains(b);
        if name.is_empty() || !name.iter().all(plain) || name.iter().all(|&b| b == b'.') {
            continue;
        }
        let name = std::str::from_utf8(name).expect("checked ASCII");
        std::fs::write(dir.path.join(name), text).expect("write a config file");
    }
    match config::load(&gateway, &Overrides::default()) {
        Ok(loaded) => {
            assert!(
                loaded
                    .warnings
                    .iter()
                    .all(|w| w.severity == Severity::Warning)
            );
            let summary = config::summary(&loaded.model);
            assert!(!summary.is_empty());
            for w in &loaded.warnings {
                assert!(!w.message.is_empty() && !w.to_string().is_empty());
            }
        }
        Err(list) => {
            assert!(list.iter().any(|d| d.severity == Severity::Error));
            for d in &list {
                assert!(!d.message.is_empty() && !d.to_string().is_empty());
            }
        }
    }
}

/// A directory of its own for one load, removed afterwards. Unique per process and call, so
/// replay tests may run in parallel.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("wsgate-fuzz-config-{}-{n}", std::process::id()));
        // A directory left by an earlier process with the same id.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a scratch directory");
        Scratch { path }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
