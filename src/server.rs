//! Start-up and shutdown: the control thread (topology refresh, signals) and
//! the workers. One shutdown path: stop accepting, let clients finish within
//! a grace period, exit.

use std::io;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::info;

use crate::cluster::{refresh, ClusterView};
use crate::config::Config;
use crate::worker::{spawn_workers, Shared};

/// Runs keyway until SIGINT or SIGTERM. Fails only when start-up fails
/// (e.g. the listen address is taken); an unreachable cluster is not an
/// error: keyway serves `-CLUSTERDOWN` and keeps retrying.
pub fn run(config: Config) -> io::Result<()> {
    crate::metrics::describe();
    let config = Arc::new(config);
    let view = ClusterView::new();
    let shared = Shared::new(view.clone(), config.clone());
    let (stop, stopped) = watch::channel(false);
    let workers = spawn_workers(shared, stopped)?;

    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    control.block_on(async {
        tokio::spawn(refresh::run(view, config));
        wait_for_signal().await
    })?;
    info!("shutting down: no new clients; waiting for connected ones");
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.join();
    }
    info!("keyway stopped");
    Ok(())
}

async fn wait_for_signal() -> io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
