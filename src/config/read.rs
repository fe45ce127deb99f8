//! Which node serves a read (`[read]`): the slot's master, or replicas of
//! its shard. Only commands Redis flags `readonly` ever go to a replica.

use std::time::Duration;

use super::file::ReadSection;
use super::ConfigError;

/// `[read]`, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadSettings {
    /// `read.policy` (with `read.fallback_to_master`).
    pub policy: ReadPolicy,
    /// `read.max_lag_bytes`: replicas further behind their master than
    /// this serve no reads; `None` (0) turns lag sampling off.
    pub max_lag_bytes: Option<u64>,
    /// `read.read_your_writes_ms`: how long a client's reads of a slot it
    /// wrote to stay on the master; `None` (0) turns it off.
    pub read_your_writes: Option<Duration>,
}

impl ReadSettings {
    /// Checks `[read]`.
    pub fn from_section(read: &ReadSection) -> Result<ReadSettings, ConfigError> {
        Ok(ReadSettings {
            policy: ReadPolicy::from_section(read)?,
            max_lag_bytes: read.max_lag_bytes.filter(|&b| b > 0),
            read_your_writes: read
                .read_your_writes_ms
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis),
        })
    }
}

/// `read.policy` (with `read.fallback_to_master`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPolicy {
    /// Every command to the slot's master.
    Master,
    /// Reads to a usable replica of the shard, spread evenly; the master
    /// when none is usable.
    PreferReplica,
    /// Reads to replicas only; with no usable replica, the master if
    /// `fallback` (`read.fallback_to_master`), else an error.
    Replica {
        /// `read.fallback_to_master`.
        fallback: bool,
    },
    /// Reads spread evenly over the master and its usable replicas.
    Any,
}

impl ReadPolicy {
    /// Checks `[read]`.
    pub fn from_section(read: &ReadSection) -> Result<ReadPolicy, ConfigError> {
        let fallback = read.fallback_to_master.unwrap_or(true);
        Ok(match read.policy.as_deref().unwrap_or("master") {
            "master" => ReadPolicy::Master,
            "prefer-replica" => ReadPolicy::PreferReplica,
            "replica" => ReadPolicy::Replica { fallback },
            "any" => ReadPolicy::Any,
            other => {
                return Err(ConfigError::Invalid {
                    key: "read.policy",
                    reason: format!("`{other}` is not one of master, prefer-replica, replica, any"),
                })
            }
        })
    }
}
