//! Every integration test, in one binary: each module below is one
//! concern, driving a real keyway in front of a real Redis Cluster (see
//! [`support`]). One binary links once, which keeps the suite's build short.

mod support;

mod acl_commands;
mod admin;
mod auth_config;
mod backend_auth;
mod blocking;
mod client_auth;
mod clients;
mod cluster_wide;
mod command_table;
mod config_set;
mod data_types;
mod diagnostics;
mod failover;
mod failover_hold;
mod faults;
mod harness_selftest;
mod info;
mod introspection;
mod isolation;
mod keys;
mod lifecycle;
mod logs;
mod multikey;
mod ops_files;
mod pipelines;
mod protocol_errors;
mod pubsub;
mod queue_workload;
mod redirects;
mod redis_exporter;
mod reload;
mod replica_failures;
mod replica_reads;
mod reshard_pipelines;
mod resp3;
mod scan;
mod single_server;
mod slow_reader;
mod split;
mod tls;
mod transactions;
mod wait;
