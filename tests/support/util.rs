//! Free ports, bounded polling, temp dirs, log tails and child processes
//! that cannot outlive the test.

use std::fs::{self, File};
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Returns `n` distinct loopback ports that were free a moment ago (all bound
/// to 127.0.0.1:0 at once, then released). Another process may grab one
/// before we use it, so callers retry their whole start-up on a bind failure.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

/// Calls `f` until it returns `Some`, backing off from 10 ms to 200 ms
/// between calls; returns `None` once `timeout` has passed.
pub fn poll_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// The last `lines` lines of a text file, or a note saying why there are none.
pub fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// A directory under the system temp dir, removed on drop unless
/// `KEYWAY_KEEP_TMP` is set (for post-mortems).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh, uniquely named directory `keyway-<prefix>-...`.
    pub fn new(prefix: &str) -> TempDir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "keyway-{prefix}-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("KEYWAY_KEEP_TMP").is_some() {
            eprintln!("keeping {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Makes the child receive SIGKILL when the thread that spawned it exits, a
/// safety net for when `Drop` never runs (the test process is killed).
///
/// Linux ties this to the spawning *thread*: spawn children from the test's
/// own thread, not from a short-lived helper thread.
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nobody would kill us.
            if libc::getppid() != parent {
                return Err(io::Error::other("parent exited before exec"));
            }
            Ok(())
        });
    }
    cmd
}

/// True while `pid` names a live (non-zombie) process whose command line
/// contains `needle`.
pub fn process_running(pid: u32, needle: &str) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let zombie = fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true);
    !zombie && String::from_utf8_lossy(&cmdline).contains(needle)
}

/// Runs `cmd` to completion within `timeout`, returning its exit status
/// (`None` if it had to be killed at the timeout) and its stdout+stderr.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> (Option<ExitStatus>, String) {
    let dir = TempDir::new("cmd");
    let out_path = dir.path().join("out");
    let out = File::create(&out_path).expect("create output file");
    let mut child = die_with_parent(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("dup output file")))
            .stderr(Stdio::from(out)),
    )
    .spawn()
    .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let status = poll_until(timeout, || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut output = fs::read_to_string(&out_path).unwrap_or_default();
    if status.is_none() {
        output.push_str(&format!("\n<killed after {timeout:?}>"));
    }
    (status, output)
}

/// Raises this process's open-files soft limit to its hard limit, so tests
/// with hundreds of sockets fit; children spawned afterwards (keyway)
/// inherit it.
pub fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit on a properly initialised struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
