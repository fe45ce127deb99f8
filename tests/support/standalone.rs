//! One standalone `redis-server` (no cluster, no persistence) on a free
//! loopback port, configured with ACL `user` lines and an optional
//! `requirepass`: the reference that keyway's client authentication is
//! compared with, reply for reply.
//!
//! Killed and reaped on `Drop` (also when the test panics); the child also
//! carries `PR_SET_PDEATHSIG` in case the test process itself is killed.

use super::cluster::require_redis;
use super::resp::{encode, read_reply, RawClient};
use super::util::{die_with_parent, free_ports, poll_until, tail, TempDir};
use super::OP_TIMEOUT;
use std::fs::File;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running standalone redis-server owned by one test.
pub struct Standalone {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl Standalone {
    /// Starts redis-server with the directive `user LINE` for each of
    /// `users` (keyway's `auth.users` syntax: an ACL line without the word
    /// `user`) and `requirepass` = `password` when given, and waits until
    /// it answers. Retries on fresh ports if one was taken meanwhile;
    /// panics with the log tail otherwise (e.g. an ACL line it refuses).
    pub fn start(users: &[&str], password: Option<&str>) -> Standalone {
        let mut conf = String::new();
        if let Some(password) = password {
            conf.push_str(&format!("requirepass {password}\n"));
        }
        for line in users {
            conf.push_str(&format!("user {line}\n"));
        }
        Standalone::start_conf(&conf)
    }

    /// Starts redis-server with its users in `acl_file` (`aclfile`
    /// directive: `ACL SAVE` writes it, `ACL LOAD` reads it).
    pub fn start_with_acl_file(acl_file: &Path) -> Standalone {
        Standalone::start_conf(&format!("aclfile {}\n", acl_file.display()))
    }

    /// Starts redis-server with `conf` after the harness's own directives.
    fn start_conf(conf: &str) -> Standalone {
        require_redis();
        let mut failures = Vec::new();
        for _attempt in 0..3 {
            match Standalone::try_start(conf) {
                Ok(server) => return server,
                Err(e) if e.contains("Address already in use") => failures.push(e),
                Err(e) => panic!("{e}"),
            }
        }
        panic!(
            "redis-server could not bind a port:\n{}",
            failures.join("\n")
        );
    }

    fn try_start(extra: &str) -> Result<Standalone, String> {
        let dir = TempDir::new("standalone");
        let port = free_ports(1)[0];
        let mut conf = format!(
            "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndaemonize no\n\
             dir {}\nlogfile {}\n",
            dir.path().display(),
            dir.path().join("redis.log").display()
        );
        conf.push_str(extra);
        let conf_path = dir.path().join("redis.conf");
        std::fs::write(&conf_path, conf).expect("write redis.conf");
        let out = File::create(dir.path().join("stdout")).expect("create stdout file");
        let mut cmd = Command::new("redis-server");
        cmd.arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("dup stdout file")))
            .stderr(Stdio::from(out));
        let child = die_with_parent(&mut cmd)
            .spawn()
            .map_err(|e| format!("cannot spawn redis-server: {e}"))?;
        let mut server = Standalone {
            child: Some(child),
            port,
            dir,
        };
        server.wait_answering()?;
        Ok(server)
    }

    /// Waits until a PING gets any reply (`+PONG`, or `-NOAUTH` with a
    /// password), or the process exits.
    fn wait_answering(&mut self) -> Result<(), String> {
        let addr = self.addr();
        let up = poll_until(Duration::from_secs(10), || {
            if let Some(status) = self.child.as_mut()?.try_wait().ok().flatten() {
                return Some(Err(format!("redis-server exited: {status}")));
            }
            let stream =
                TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(1)).ok()?;
            stream.set_read_timeout(Some(OP_TIMEOUT)).ok()?;
            (&stream).write_all(&encode(&[b"PING"])).ok()?;
            read_reply(&mut BufReader::new(stream)).ok().map(|_| Ok(()))
        });
        match up {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(format!("{e}\n{}", self.log_tail(20))),
            None => Err(format!(
                "redis-server on {addr} did not answer within 10s\n{}",
                self.log_tail(20)
            )),
        }
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A [`RawClient`] connected to the server, with [`OP_TIMEOUT`].
    pub fn raw_client(&self) -> RawClient {
        RawClient::connect(&self.addr(), OP_TIMEOUT)
    }

    /// The last `lines` lines of the server's log and stdout.
    pub fn log_tail(&self, lines: usize) -> String {
        format!(
            "--- standalone redis-server {} (tail) ---\n{}\n{}",
            self.port,
            tail(&self.dir.path().join("redis.log"), lines),
            tail(&self.dir.path().join("stdout"), lines)
        )
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
