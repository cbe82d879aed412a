//! Replays the kept fuzz corpus (tests/fuzz/corpus/TARGET/) and the inputs that once made a target
//! fail (tests/fuzz/regressions/TARGET/, kept apart because minimising the corpus may drop them)
//! through the same checks the libFuzzer targets run (src/fuzz_checks), on the stable toolchain
//! and without libFuzzer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use wsgate::fuzz_checks;

/// The files of `tests/fuzz/KIND/TARGET`, sorted; none when the directory does not exist.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|entry| entry.expect("read a corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every kept input of one target and fails naming each file that panics.
fn replay(target: &str, check: fn(&[u8])) {
    let corpus = inputs("corpus", target);
    assert!(
        !corpus.is_empty(),
        "tests/fuzz/corpus/{target} holds no inputs"
    );
    let files = [corpus, inputs("regressions", target)].concat();
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
fn json() {
    replay("json", fuzz_checks::json::parse_and_validate);
}

#[test]
fn config() {
    replay("config", fuzz_checks::config::load);
}
