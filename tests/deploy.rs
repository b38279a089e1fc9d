//! The deployment recipes in `deploy/`, checked as the tools that run
//! them check them.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::process::Command;

const UNIT: &str = include_str!("../deploy/systemd/mediagate.service");

/// `deploy/systemd/mediagate.service` passes `systemd-analyze verify`
/// without a warning (unknown keys, bad values and sandboxing settings
/// systemd does not know are warnings there, not errors), with its binary
/// and config put where this build has them; and the command it starts
/// accepts its arguments.
#[test]
fn the_systemd_unit_verifies_and_its_command_runs() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_mediagate");
    // The config the unit names, made for this run: keys, media, a port.
    let keys = dir.path().join("keys.toml");
    let status = Command::new(bin)
        .args(["keygen", "--out", keys.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(status.status.success());
    let media = dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let config = dir.path().join("mediagate.toml");
    std::fs::write(
        &config,
        format!(
            "keys = \"{}\"\nroot = \"{}\"\nlisten = \"127.0.0.1:0\"\n",
            keys.display(),
            media.display()
        ),
    )
    .unwrap();
    let unit = UNIT
        .replace("/usr/local/bin/mediagate", bin)
        .replace("/etc/mediagate/mediagate.toml", config.to_str().unwrap());
    let path = dir.path().join("mediagate.service");
    std::fs::write(&path, &unit).unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package; .ci/run installs it)");
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{said}");
    assert!(said.trim().is_empty(), "systemd-analyze warns: {said}");
    // ExecStart, checked: its arguments are the command's.
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut words = exec.split_whitespace();
    let checked = Command::new(words.next().unwrap())
        .args(words)
        .arg("--check")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&checked.stdout);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(out.starts_with("configuration ok"), "{out}");
    // ExecReload sends the signal the server reloads on.
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
}
