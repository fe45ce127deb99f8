//! The `keyway` binary: flags → config → logging → [`keyway::server::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use keyway::config::{Config, LogFormat, Overrides};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter};

/// A Redis Cluster proxy: plain Redis clients on one address, a whole Redis
/// Cluster behind it.
#[derive(Parser, Debug)]
#[command(name = "keyway", version, about)]
struct Args {
    /// Config file (TOML); see conf/keyway.toml for every key.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:6380 (overrides proxy.listen).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Seed nodes, host:port[,host:port...] (overrides cluster.seeds).
    #[arg(long, value_name = "SEEDS")]
    cluster: Option<String>,
    /// Worker threads (overrides proxy.workers; default: one per core).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Log filter: error, warn, info, debug, trace (overrides proxy.log_level).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Admin HTTP endpoint (/metrics, /health/*), e.g. 127.0.0.1:9736; ""
    /// turns it off (overrides admin.listen).
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let overrides = Overrides {
        listen: args.listen,
        cluster: args.cluster,
        workers: args.workers,
        log_level: args.log_level,
        admin_listen: args.admin_listen,
        // The environment keeps the password out of files and `ps`.
        cluster_password: std::env::var("KEYWAY_CLUSTER_PASSWORD").ok(),
        password: std::env::var("KEYWAY_PASSWORD").ok(),
    };
    let config = match Config::load(args.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("keyway: {e}");
            return ExitCode::from(2);
        }
    };
    // The filter sits behind a reload handle: SIGHUP may change the level.
    let (filter, filter_handle) = reload::Layer::new(EnvFilter::new(&config.live.log_level));
    let json = config.startup.log_format == LogFormat::Json;
    let text = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    let json = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_target(false)
            .with_current_span(true)
            .with_span_list(false)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .init();
    let path = args.config.clone();
    let reload = keyway::server::Reload {
        read_config: Box::new(move || Config::load(path.as_deref(), &overrides)),
        set_log_level: Box::new(move |level| {
            let _ = filter_handle.reload(EnvFilter::new(level));
        }),
    };
    match keyway::server::run(config, reload) {
        Ok(()) => ExitCode::SUCCESS,
        // Start-up failed (an address taken): a configuration problem.
        Err(e) => {
            eprintln!("keyway: {e}");
            ExitCode::from(2)
        }
    }
}
