//! External tools some tests check keyway's output with (e.g. `promtool`):
//! whether one is installed, a missing one failing the test under CI
//! (the `CI` environment variable set) and skipped with a printed note
//! elsewhere, and running one with input on its stdin.

use super::util::{die_with_parent, poll_until};

use std::io::{Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// Whether `tool --version` runs and succeeds.
pub fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `tool` is there for the test to use; a missing one fails the
/// test when `CI` is set, and is a printed `SKIPPED` note otherwise
/// (`package` is the Debian package that has it).
pub fn required(tool: &str, package: &str) -> bool {
    if installed(tool) {
        return true;
    }
    let note = format!("{tool} is not installed (Debian package {package})");
    assert!(std::env::var_os("CI").is_none(), "{note}, and CI is set");
    eprintln!("SKIPPED: {note}");
    false
}

/// Runs `tool args...` with `input` on its stdin, killed after `timeout`;
/// returns its exit status (`None` when killed) and its stdout+stderr.
pub fn run_with_stdin(
    tool: &str,
    args: &[&str],
    input: &[u8],
    timeout: Duration,
) -> (Option<ExitStatus>, String) {
    let mut cmd = Command::new(tool);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = die_with_parent(&mut cmd)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    // Fed and drained by threads of their own, so a tool that writes
    // before it has read everything cannot deadlock with us.
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            out
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let status = poll_until(timeout, || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = feeder.join();
    let mut output = stdout.join().unwrap_or_default();
    output.extend(stderr.join().unwrap_or_default());
    (status, String::from_utf8_lossy(&output).into_owned())
}
