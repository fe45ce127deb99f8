//! Which node serves a read (`[read]`): the slot's master, or replicas of
//! its shard. Only commands Redis flags `readonly` ever go to a replica.

use super::file::ReadSection;
use super::ConfigError;

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
