//! Autobahn|Testsuite through wsgate compared case by case with the same backend tested
//! directly, every group including permessage-deflate (tests/autobahn/run.sh does the work; see
//! its header for the knobs). Groups 12 and 13 make it the longest test by far: about 10
//! minutes per agent on an idle machine, the two agents running at once.

use crate::common;

use std::process::Command;
use std::time::Duration;

use crate::common::proc::Proc;

#[test]
fn autobahn_through_wsgate_matches_direct() {
    let script = common::repo_root().join("tests/autobahn/run.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script).arg(env!("CARGO_BIN_EXE_wsgate"));
    let mut run = Proc::spawn("autobahn/run.sh", cmd).expect("start tests/autobahn/run.sh");
    // The script bounds each suite run itself; this only guards against a hang around it.
    let status = run
        .wait_exit(Duration::from_secs(75 * 60))
        .expect("tests/autobahn/run.sh still running after 75 minutes");
    let output = format!("{}{}", run.stderr(), run.stdout());
    if status.code() == Some(77) {
        common::skip_note("Autobahn: no conformance runner can be installed here");
        return;
    }
    assert!(
        status.success(),
        "tests/autobahn/run.sh failed ({status}):\n{output}"
    );
    println!("{output}");
}
