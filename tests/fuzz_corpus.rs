//! Replays the kept fuzz corpus (fuzz/corpus/TARGET/) through the same checks the libFuzzer
//! targets run (src/fuzz_checks), on the stable toolchain and without libFuzzer: every input
//! that once found new coverage, and every input that once crashed, stays a test.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use wsgate::fuzz_checks;

/// Runs `check` on every file of one target's corpus and fails naming each file that panics.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("read the corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    let mut failed = Vec::new();
    let mut bytes = 0;
    for file in &files {
        let data = std::fs::read(file).expect("read a corpus file");
        bytes += data.len();
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    println!("{target}: {} inputs, {bytes} bytes replayed", files.len());
    assert!(
        failed.is_empty(),
        "{target}: failing inputs:\n{}",
        failed.join("\n")
    );
}

#[test]
fn http_head() {
    replay("http_head", fuzz_checks::http::head);
}

#[test]
fn http_body() {
    replay("http_body", fuzz_checks::http::body);
}

#[test]
fn ws_frame() {
    replay("ws_frame", fuzz_checks::frame::frames);
}

#[test]
fn condition() {
    replay("condition", fuzz_checks::condition::compile);
}

#[test]
fn config() {
    replay("config", fuzz_checks::config::load);
}
