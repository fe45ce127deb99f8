//! One-shot queries for the control path (topology, `COMMAND`): connect,
//! send one command, decode the whole reply, close. Never on the data path.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

use crate::config::ClusterAuth;
use crate::protocol::{decode, encode, Limits, Protocol, Value};

use super::connect::{connect, ConnectOptions};

/// Sends `args` to `addr` (authenticating with `auth`) and returns the decoded reply (an error reply is
/// `Ok(Value::Error)`); fails on I/O errors, bad replies, or after `timeout`.
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
    let mut out = BytesMut::new();
    encode::command(&mut out, args);
    stream.write_all(&mut out).await?;
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        match decode(&buf, &options.limits) {
            Ok(Some((value, _))) => return Ok(value),
            Ok(None) => {}
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        }
        stream.readable().await?;
        buf.reserve(16 * 1024);
        if stream.read_some(&mut buf)? == Some(0) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the reply",
            ));
        }
    }
}
