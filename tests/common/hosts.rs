//! Host names of the test's own making, seen by the gateway alone: the gateway runs in a user
//! and mount namespace (`unshare -rm`) where `hosts` is bind-mounted over /etc/hosts. Its
//! network is the test's, so it listens and connects on the same loopback as always.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::conf::TempConf;
use super::gateway::{Gateway, wsgate_bin};

/// Writes `hosts` (an /etc/hosts text) into `conf` and returns the program and arguments that
/// run the gateway with it, or `None` (with a notice) where namespaces are not available or
/// the system's resolver does not give `name` the addresses `want`, in that order.
pub fn gateway_with_hosts(
    conf: &TempConf,
    hosts: &str,
    name: &str,
    want: &[&str],
) -> Option<(PathBuf, Vec<String>)> {
    let file = conf.write("hosts", hosts);
    let check = Command::new("unshare")
        .args(["-rm", "sh", "-c"])
        .arg(format!(
            "mount --bind {} /etc/hosts && getent ahosts {name}",
            file.display()
        ))
        .output();
    let seen: Vec<String> = match &check {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("STREAM"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    if seen != want {
        super::skip_note(&format!(
            "cannot give the gateway its own /etc/hosts (unshare -rm; {name} -> {seen:?}, \
             wanted {want:?}): {check:?}"
        ));
        return None;
    }
    let script = format!(
        "mount --bind {} /etc/hosts && exec \"$0\" \"$@\"",
        file.display()
    );
    Some((
        PathBuf::from("unshare"),
        vec![
            "-rm".into(),
            "sh".into(),
            "-c".into(),
            script,
            wsgate_bin().display().to_string(),
        ],
    ))
}

/// Starts the gateway of `config` under `program` (from `gateway_with_hosts`).
pub fn start(program: &(PathBuf, Vec<String>), config: &Path) -> Gateway {
    Gateway::builder(config)
        .program(&program.0, &program.1)
        .start()
}
