//! A keyway process in front of a [`Cluster`], plus ways to talk to it:
//! `redis` clients with timeouts, raw sockets, and running keyway to its exit.

use super::cluster::Cluster;
use super::resp::RawClient;
use super::util::{die_with_parent, free_ports, poll_until, run_bounded, tail, TempDir};
use super::OP_TIMEOUT;
use std::fs::File;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// How long keyway may take to start serving before the test panics.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The keyway binary under test: Cargo's `CARGO_BIN_EXE_keyway` when these
/// tests are built inside the keyway crate, else `$KEYWAY_BIN`.
pub fn keyway_bin() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_keyway") {
        return PathBuf::from(p);
    }
    match std::env::var_os("KEYWAY_BIN") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "no keyway binary: build these tests inside the keyway crate \
             (CARGO_BIN_EXE_keyway) or set KEYWAY_BIN=/path/to/keyway"
        ),
    }
}

/// Runs keyway with `args` until it exits (killed after 10 s: it is
/// expected to exit by itself, e.g. on a config error) and returns its
/// status and combined stdout+stderr.
pub fn run_keyway(args: &[&str]) -> (ExitStatus, String) {
    let mut cmd = Command::new(keyway_bin());
    cmd.args(args);
    let (status, output) = run_bounded(&mut cmd, Duration::from_secs(10));
    match status {
        Some(s) => (s, output),
        None => panic!("keyway {args:?} did not exit within 10s; output:\n{output}"),
    }
}

/// How far [`Proxy::spawn`] waits before returning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    /// Until it accepts connections and answers PING with PONG.
    Ping,
    /// Until, in addition, a SET and GET through it succeed.
    Serving,
    /// Like `Serving`, on a connection that first logs in with `AUTH user
    /// password`: a keyway that authenticates its clients answers an
    /// anonymous PING with `-NOAUTH`.
    ServingAs {
        user: &'static str,
        password: &'static str,
    },
}

/// How [`Proxy::launch`] starts keyway, beyond its seeds and flags.
#[derive(Clone, Copy, Debug)]
pub struct Launch<'a> {
    /// The IP keyway listens on (the port is a free one). Clients connect
    /// through 127.0.0.1 whatever it is; `0.0.0.0` also lets a test
    /// connect from another loopback address such as 127.0.0.2, which keyway
    /// must treat as a remote client.
    pub listen_ip: &'a str,
    /// Environment variables set for the keyway process only.
    pub env: &'a [(&'a str, &'a str)],
    /// How far to wait before returning.
    pub ready: Ready,
    /// `--log-level` given on the command line (overriding the config
    /// file's `proxy.log_level`, also at a reload); `None`: the file decides.
    pub log_level: Option<&'a str>,
}

impl Default for Launch<'_> {
    /// 127.0.0.1, no extra environment, [`Ready::Serving`], `--log-level info`.
    fn default() -> Self {
        Launch {
            listen_ip: "127.0.0.1",
            env: &[],
            ready: Ready::Serving,
            log_level: Some("info"),
        }
    }
}

/// A running keyway process, killed on drop.
pub struct Proxy {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
    /// Holds the config file of [`Proxy::start_with_config`].
    config: Option<TempDir>,
}

impl Proxy {
    /// Starts keyway in front of `cluster` and waits until it serves.
    pub fn start(cluster: &Cluster) -> Proxy {
        Proxy::start_with(cluster, &[])
    }

    /// Like [`Proxy::start`], with `toml` as keyway's config file.
    pub fn start_with_config(cluster: &Cluster, toml: &str) -> Proxy {
        Proxy::start_configured(cluster, toml, Launch::default())
    }

    /// Like [`Proxy::start_with_config`], started and waited for as
    /// `launch` says (listen IP, environment, readiness).
    pub fn start_configured(cluster: &Cluster, toml: &str, launch: Launch) -> Proxy {
        let dir = TempDir::new("config");
        let file = dir.path().join("keyway.toml");
        std::fs::write(&file, toml).expect("write keyway.toml");
        let file = file.to_str().expect("utf-8 path");
        let seeds: Vec<String> = cluster.seeds().into_iter().take(3).collect();
        let mut proxy = Proxy::launch(&seeds, &["--config", file], launch);
        proxy.config = Some(dir);
        proxy
    }

    /// Like [`Proxy::start`], with extra command-line arguments.
    pub fn start_with(cluster: &Cluster, extra_args: &[&str]) -> Proxy {
        let seeds: Vec<String> = cluster.seeds().into_iter().take(3).collect();
        Proxy::spawn(&seeds, extra_args, Ready::Serving)
    }

    /// Starts `keyway --listen 127.0.0.1:PORT --cluster SEEDS --workers 2
    /// --admin-listen 127.0.0.1:0 --log-level info EXTRA...` (2 workers and
    /// an admin endpoint on a free port unless EXTRA names its own) on a
    /// free port and waits as `ready` says.
    /// Retries on a fresh port if the chosen one was taken meanwhile; panics
    /// with the log tail when keyway exits or is not ready in time.
    pub fn spawn(seeds: &[String], extra_args: &[&str], ready: Ready) -> Proxy {
        Proxy::launch(
            seeds,
            extra_args,
            Launch {
                ready,
                ..Launch::default()
            },
        )
    }

    /// Like [`Proxy::spawn`], listening on `launch.listen_ip`, with
    /// `launch.env` in keyway's environment.
    pub fn launch(seeds: &[String], extra_args: &[&str], launch: Launch) -> Proxy {
        let bin = keyway_bin();
        let mut failures = Vec::new();
        for _attempt in 0..3 {
            let dir = TempDir::new("proxy");
            let log = dir.path().join("keyway.log");
            let port = free_ports(1)[0];
            let out = File::create(&log).expect("create keyway log");
            let mut cmd = Command::new(&bin);
            cmd.args(["--listen", &format!("{}:{port}", launch.listen_ip)])
                .args(["--cluster", &seeds.join(",")])
                .args(extra_args);
            if let Some(level) = launch.log_level {
                cmd.args(["--log-level", level]);
            }
            if !extra_args.contains(&"--workers") {
                cmd.args(["--workers", "2"]);
            }
            // Tests run many keyways at once: each its own admin port.
            if !extra_args.contains(&"--admin-listen") {
                cmd.args(["--admin-listen", "127.0.0.1:0"]);
            }
            cmd.envs(launch.env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::from(out.try_clone().expect("dup log")))
                .stderr(Stdio::from(out));
            let child = die_with_parent(&mut cmd)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", bin.display()));
            let mut proxy = Proxy {
                child: Some(child),
                port,
                log,
                _dir: dir,
                config: None,
            };
            match proxy.wait_ready(launch.ready) {
                Ok(()) => return proxy,
                Err(e) if e.contains("in use") => failures.push(e),
                Err(e) => panic!("{e}"),
            }
        }
        panic!("keyway could not bind a port:\n{}", failures.join("\n"));
    }

    fn wait_ready(&mut self, ready: Ready) -> Result<(), String> {
        let mut last = String::from("never accepted a connection");
        let ok = poll_until(START_TIMEOUT, || {
            if let Some(status) = self.child.as_mut()?.try_wait().ok().flatten() {
                return Some(Err(format!("keyway exited during start-up: {status}")));
            }
            match self.check(ready) {
                Ok(()) => Some(Ok(())),
                Err(e) => {
                    last = e;
                    None
                }
            }
        });
        let why = match ok {
            Some(Ok(())) => return Ok(()),
            Some(Err(e)) => e,
            None => format!("keyway not ready within {START_TIMEOUT:?}: {last}"),
        };
        Err(format!(
            "{why}\n--- keyway log (tail) ---\n{}",
            self.log_tail(40)
        ))
    }

    fn check(&self, ready: Ready) -> Result<(), String> {
        let mut con = self.try_conn().map_err(|e| format!("connect: {e}"))?;
        if let Ready::ServingAs { user, password } = ready {
            redis::cmd("AUTH")
                .arg(user)
                .arg(password)
                .query::<()>(&mut con)
                .map_err(|e| format!("AUTH {user}: {e}"))?;
        }
        let pong: String = redis::cmd("PING")
            .query(&mut con)
            .map_err(|e| format!("PING: {e}"))?;
        if pong != "PONG" {
            return Err(format!("PING answered {pong:?}"));
        }
        if ready != Ready::Ping {
            redis::cmd("SET")
                .arg("keyway:harness:ready")
                .arg("yes")
                .query::<()>(&mut con)
                .map_err(|e| format!("SET: {e}"))?;
            let v: Option<String> = redis::cmd("GET")
                .arg("keyway:harness:ready")
                .query(&mut con)
                .map_err(|e| format!("GET: {e}"))?;
            if v.as_deref() != Some("yes") {
                return Err(format!("GET answered {v:?}"));
            }
        }
        Ok(())
    }

    /// The address of keyway's admin endpoint (`/metrics`, `/health/*`),
    /// from its start-up log line (text: `admin=ADDR`; JSON:
    /// `"admin":"ADDR"`).
    pub fn admin_addr(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .find_map(|line| {
                if let Some(at) = line.find("\"admin\":\"") {
                    let rest = &line[at + "\"admin\":\"".len()..];
                    return rest.split('"').next().map(str::to_string);
                }
                let at = line.find("admin=")? + "admin=".len();
                line[at..].split_whitespace().next().map(str::to_string)
            })
            .unwrap_or_else(|| panic!("no admin endpoint in keyway's log:\n{log}"))
    }

    /// The address keyway listens on, `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port keyway listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// keyway's process id (panics once it was killed).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("keyway was killed").id()
    }

    /// A plain (non-cluster) `redis::Client` pointed at keyway.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(format!("redis://{}/", self.addr())).expect("valid redis URL")
    }

    fn try_conn(&self) -> redis::RedisResult<redis::Connection> {
        super::cluster::connect(&self.addr(), OP_TIMEOUT)
    }

    /// A synchronous connection to keyway with [`OP_TIMEOUT`] on connect,
    /// reads and writes.
    pub fn conn(&self) -> redis::Connection {
        self.try_conn().unwrap_or_else(|e| {
            panic!(
                "connect to keyway: {e}\n--- keyway log (tail) ---\n{}",
                self.log_tail(40)
            )
        })
    }

    /// A multiplexed async connection to keyway; every request on it times
    /// out after [`OP_TIMEOUT`].
    pub async fn async_conn(&self) -> redis::aio::MultiplexedConnection {
        self.try_async_conn()
            .await
            .unwrap_or_else(|e| panic!("async connect to keyway: {e}"))
    }

    /// Like [`Proxy::async_conn`], returning the error instead of panicking.
    pub async fn try_async_conn(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(OP_TIMEOUT)
            .set_response_timeout(OP_TIMEOUT);
        self.client()
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    /// A raw TCP connection to keyway with [`OP_TIMEOUT`] read/write
    /// timeouts, for malformed-input tests.
    pub fn raw_connect(&self) -> TcpStream {
        super::resp::connect_stream(&self.addr(), OP_TIMEOUT)
    }

    /// A [`RawClient`] on a fresh [`Proxy::raw_connect`] socket.
    pub fn raw_client(&self) -> RawClient {
        RawClient::new(self.raw_connect())
    }

    /// The last `lines` lines of keyway's stdout+stderr.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// Replaces the config file of [`Proxy::start_with_config`] with
    /// `toml` and sends SIGHUP, then waits until keyway logs the reload
    /// (or that it kept the running configuration).
    pub fn reload(&self, toml: &str) {
        let dir = self.config.as_ref().expect("started with a config file");
        std::fs::write(dir.path().join("keyway.toml"), toml).expect("write keyway.toml");
        let before = tail(&self.log, 10_000).matches("configuration ").count();
        // SAFETY: plain kill(2) on our own child's pid, not yet reaped.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, libc::SIGHUP);
        }
        let reloaded = poll_until(Duration::from_secs(10), || {
            (tail(&self.log, 10_000).matches("configuration ").count() > before).then_some(())
        });
        assert!(
            reloaded.is_some(),
            "no reload logged: {}",
            self.log_tail(20)
        );
    }

    /// True while the keyway process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills keyway with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `grace` for keyway to exit by itself;
    /// returns its exit status, or `None` if it had to be killed.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: plain kill(2) on our own child's pid, not yet reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let status = poll_until(grace, || child.try_wait().ok().flatten());
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- keyway log (tail) at test failure ---\n{}",
                self.log_tail(40)
            );
        }
        self.kill();
    }
}
