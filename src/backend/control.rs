//! One-shot queries for the control path (topology, `COMMAND`): connect,
//! send one command, decode the whole reply, close. Never on the data path.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ClusterAuth;
use crate::protocol::{decode, Limits, Protocol, Value};

use super::connect::{connect, round_trip, Cause, ConnectOptions};

/// Sends `args` to `addr` (authenticating with `auth`) and returns the
/// decoded reply (an error reply is `Ok(Value::Error)`); fails on I/O
/// errors, bad replies, or after `timeout`.
pub async fn query(
    addr: &str,
    args: &[&[u8]],
    timeout: Duration,
    auth: Option<&Arc<ClusterAuth>>,
) -> io::Result<Value> {
    tokio::time::timeout(timeout, query_inner(addr, args, timeout, auth))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {timeout:?}"),
            )
        })?
}

async fn query_inner(
    addr: &str,
    args: &[&[u8]],
    timeout: Duration,
    auth: Option<&Arc<ClusterAuth>>,
) -> io::Result<Value> {
    let options = ConnectOptions {
        protocol: Protocol::Resp2,
        timeout,
        limits: Limits::default(),
        auth: auth.cloned(),
    };
    // The caller names the node; the error names the step.
    let stream = connect(addr, &options)
        .await
        .map_err(|e| io::Error::other(format!("{} failed: {}", e.step, e.cause)))?;
    let reply = round_trip(&stream, args, options.limits)
        .await
        .map_err(|cause| match cause {
            Cause::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        })?;
    // `round_trip` found one whole, well-framed reply.
    decode(&reply, &options.limits)
        .ok()
        .flatten()
        .map(|(value, _)| value)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a reply keyway cannot decode"))
}
