//! Queries for the control path (topology, `COMMAND`, replication
//! offsets): send one command, decode the whole reply; one-shot
//! ([`query`]: connect, ask, close) or over a kept [`Link`]. Never on the
//! data path.

use std::io;
use std::time::Duration;

use crate::config::NodeAccess;
use crate::net::Stream;
use crate::protocol::{decode, Limits, Protocol, Value};

use super::connect::{connect, round_trip, Cause, ConnectOptions};

/// Sends `args` to `addr` (connecting with `access`) and returns the
/// decoded reply (an error reply is `Ok(Value::Error)`); fails on I/O
/// errors, bad replies, or after `timeout`.
pub async fn query(
    addr: &str,
    args: &[&[u8]],
    timeout: Duration,
    access: &NodeAccess,
) -> io::Result<Value> {
    Link::new(addr).query(args, timeout, access).await
}

/// A control connection to one node kept open between queries (for
/// questions asked every second or so): opened by the first query, and
/// again by the next query after one failed or timed out.
pub struct Link {
    addr: String,
    stream: Option<Stream>,
}

impl Link {
    /// A link to `addr`, not connected yet.
    pub fn new(addr: &str) -> Link {
        Link {
            addr: addr.to_string(),
            stream: None,
        }
    }

    /// Like [`query`], over this link's connection.
    pub async fn query(
        &mut self,
        args: &[&[u8]],
        timeout: Duration,
        access: &NodeAccess,
    ) -> io::Result<Value> {
        tokio::time::timeout(timeout, self.query_inner(args, timeout, access))
            .await
            .unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {timeout:?}"),
                ))
            })
    }

    async fn query_inner(
        &mut self,
        args: &[&[u8]],
        timeout: Duration,
        access: &NodeAccess,
    ) -> io::Result<Value> {
        let limits = Limits::default();
        // Taken out while the query runs: a query that fails or is cut
        // by the timeout drops it (a late reply would answer the next one).
        let stream = match self.stream.take() {
            Some(stream) => stream,
            None => {
                let options = ConnectOptions {
                    protocol: Protocol::Resp2,
                    timeout,
                    limits,
                    access: access.clone(),
                    readonly: false,
                };
                // The caller names the node; the error names the step.
                connect(&self.addr, &options)
                    .await
                    .map_err(|e| io::Error::other(format!("{} failed: {}", e.step, e.cause)))?
            }
        };
        let reply = round_trip(&stream, args, limits)
            .await
            .map_err(|cause| match cause {
                Cause::Io(e) => e,
                other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
            })?;
        // `round_trip` found one whole, well-framed reply.
        let value = decode(&reply, &limits)
            .ok()
            .flatten()
            .map(|(value, _)| value)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "a reply keyway cannot decode")
            })?;
        self.stream = Some(stream);
        Ok(value)
    }
}
