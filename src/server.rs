//! Start-up, reload and shutdown: the shared state, the worker threads
//! (each with its own runtime, listener and [`Worker`]), and the control
//! thread (topology refresh, signals).
//!
//! SIGHUP reloads the configuration: the live keys are swapped whole (each
//! request, connection or refresh reads them when it starts; the backend
//! password file is read again at each connect; the log filter is
//! replaced), the users are rebuilt from
//! `[auth]` (replacing `ACL SETUSER` changes; clients of users that are
//! gone are disconnected), and keys read only at start-up are reported as
//! needing a restart. A file that does not validate changes nothing.
//!
//! The admin endpoint ([`crate::admin`]) runs on the control thread.
//!
//! One shutdown path, in phases: on SIGINT/SIGTERM `/health/ready`
//! answers 503 at once; after `proxy.drain_delay_s` every listener
//! closes, and every session is told to drain (the client registry's
//! [`Stop::Drain`](crate::registry::Stop)): it reads no more, answers what
//! it already received, and closes; an idle client closes at once. Clients
//! still waiting when `proxy.shutdown_grace_s` ends are closed then.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use tokio::sync::watch;
use tracing::{info, info_span, warn, Instrument};

use crate::admin;
use crate::cluster::{refresh, ClusterView};
use crate::config::{Config, ConfigError};
use crate::frontend::listener::{self, Listeners};
use crate::frontend::session;
use crate::tls::{ClusterTls, ServerTls};
use crate::wake::{LocalNotify, NotifyOnDrop};
use crate::worker::{Shared, Worker};

/// What a SIGHUP reload needs from the binary: where to read the
/// configuration from (the file and flags keyway started with), and how to
/// change the log filter of the running process.
pub struct Reload {
    /// Reads and checks the configuration again.
    pub read_config: Box<dyn Fn() -> Result<Config, ConfigError> + Send>,
    /// Applies a new `proxy.log_level` (already checked).
    pub set_log_level: Box<dyn Fn(&str) + Send>,
}

/// Runs keyway until SIGINT or SIGTERM, reloading on SIGHUP. Fails only
/// when start-up fails (e.g. the listen address is taken); an unreachable
/// cluster is not an error: keyway serves `-CLUSTERDOWN` and keeps
/// retrying.
pub fn run(mut config: Config, reload: Reload) -> io::Result<()> {
    let admin = match config.startup.admin_listen {
        Some(addr) => Some(bind_admin(addr)?),
        None => None,
    };
    let tls_listener = config
        .startup
        .tls
        .as_ref()
        .map(|tls| ServerTls::load(tls.files.clone()).map(Arc::new))
        .transpose()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("tls: {e}")))?;
    config.live.cluster_tls = config
        .startup
        .cluster_tls
        .as_ref()
        .map(|tls| ClusterTls::load(tls.files.clone(), tls.server_name.clone()).map(Arc::new))
        .transpose()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("cluster.tls: {e}")))?;
    let view = ClusterView::new();
    let shared = Shared::new(view.clone(), config, tls_listener);
    let (stop, stopped) = watch::channel(false);
    let workers = spawn_workers(shared.clone(), stopped)?;

    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    control.block_on(async {
        tokio::spawn(refresh::run(
            view,
            shared.live.clone(),
            shared.startup.seeds.clone(),
            shared.node_losses.clone(),
        ));
        if shared.tls_listener.is_some() || shared.live.load().cluster_tls.is_some() {
            tokio::spawn(crate::tls::watch(
                shared.tls_listener.clone(),
                shared.live.load().cluster_tls.clone(),
                shared.startup.tls_reload_interval,
            ));
        }
        if let Some((listener, handle)) = admin {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            tokio::spawn(admin::serve(listener, shared.clone(), handle));
        }
        wait_for_signal(|| apply_reload(&shared, &reload)).await?;
        // Load balancers see the 503 and stop sending new clients first.
        shared.stopping.store(true, Ordering::Release);
        let delay = shared.live.load().drain_delay;
        if !delay.is_zero() {
            info!(
                ?delay,
                "draining: /health/ready answers 503; listeners close after the delay"
            );
            tokio::time::sleep(delay).await;
        }
        let grace = shared.live.load().shutdown_grace;
        info!(
            ?grace,
            "shutting down: no new clients; connected ones finish what they sent"
        );
        let _ = stop.send(true);
        shared.registry.drain();
        // Waited for off this thread, so that the admin endpoint (503) and
        // the refresh task keep serving the workers' drain until the end.
        let joined = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        });
        let _ = joined.await;
        io::Result::Ok(())
    })?;
    info!("keyway stopped");
    Ok(())
}

/// Waits for SIGINT or SIGTERM, calling `on_hangup` at each SIGHUP.
async fn wait_for_signal(on_hangup: impl Fn()) -> io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => return r,
            _ = term.recv() => return Ok(()),
            _ = hangup.recv() => on_hangup(),
        }
    }
}

/// Reads the configuration again and applies what may change at run time;
/// reads the TLS files again too.
fn apply_reload(shared: &Shared, reload: &Reload) {
    if let Some(tls) = &shared.tls_listener {
        tls.reload(true);
    }
    let cluster_tls = shared.live.load().cluster_tls.clone();
    if let Some(tls) = &cluster_tls {
        tls.reload(true);
    }
    let mut config = match (reload.read_config)() {
        Ok(config) => config,
        Err(e) => {
            warn!("configuration not reloaded, keeping the running one: {e}");
            crate::metrics::config_reloaded("error");
            return;
        }
    };
    let restart = shared.startup.changed_keys(&config.startup);
    if !restart.is_empty() {
        warn!(keys = %restart.join(", "), "needs restart: keys read only at start-up changed; the running values stay until keyway restarts");
    }
    let users = crate::acl::Users::clone(&config.live.client_auth.users);
    let gone = shared.acl.users().missing_in(&users);
    shared.acl.replace(users);
    let gone: Vec<&str> = gone.iter().map(String::as_str).collect();
    shared.registry.kill_users(&gone);
    let level = config.live.log_level.clone();
    if level != shared.live.load().log_level {
        (reload.set_log_level)(&level);
        info!(%level, "log level changed");
    }
    // The material loaded at start, reloaded above (its files are
    // start-up keys).
    config.live.cluster_tls = cluster_tls;
    shared.live.store(Arc::new(config.live));
    crate::metrics::config_reloaded("ok");
    info!("configuration reloaded (SIGHUP)");
}

/// Binds the admin endpoint (no `SO_REUSEPORT`: a second keyway on the
/// same port must fail, not share it) and installs the metrics recorder
/// it renders.
fn bind_admin(addr: SocketAddr) -> io::Result<(std::net::TcpListener, PrometheusHandle)> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("admin.listen {addr}: {e}")))?;
    listener.set_nonblocking(true)?;
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| io::Error::other(format!("metrics recorder: {e}")))?;
    crate::metrics::describe();
    info!(admin = %listener.local_addr()?, "admin endpoint listening (/metrics, /health/live, /health/ready)");
    Ok((listener, handle))
}

/// Starts `proxy.workers` worker threads serving clients until `shutdown`
/// turns true (and their clients drained). Returns their join handles.
fn spawn_workers(
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut handles = Vec::new();
    let startup = &shared.startup;
    for id in 0..startup.workers.get() {
        // The socket and the runtime are made here, not in the thread, so
        // that any failure (address in use, no file descriptors) stops
        // start-up with an error instead of leaving a worker missing.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _context = runtime.enter();
            let bind = |addr| tokio::net::TcpListener::from_std(listener::bind(addr)?);
            Listeners {
                plain: startup.listen.map(bind).transpose()?,
                tls: match (&startup.tls, &shared.tls_listener) {
                    (Some(tls), Some(material)) => Some((bind(tls.addr)?, material.clone())),
                    _ => None,
                },
            }
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let handle = std::thread::Builder::new()
            .name(format!("keyway-worker-{id}"))
            .spawn(move || run_worker(id, runtime, shared, listener, shutdown))?;
        handles.push(handle);
    }
    let listen = startup
        .listen
        .map_or_else(|| "none".to_string(), |a| a.to_string());
    let tls_listen = startup
        .tls
        .as_ref()
        .map_or_else(|| "none".to_string(), |t| t.addr.to_string());
    info!(%listen, %tls_listen, workers = startup.workers.get(), "keyway accepting clients");
    Ok(handles)
}

fn run_worker(
    id: usize,
    runtime: tokio::runtime::Runtime,
    shared: Arc<Shared>,
    listener: Listeners,
    shutdown: watch::Receiver<bool>,
) {
    let local = tokio::task::LocalSet::new();
    // The future given to `block_on` is polled on every turn of the event
    // loop, woken or not, so it only checks a flag: the accept loop (a
    // select over the listener and the shutdown channel) runs as a task of
    // its own, polled only when woken, and raises the flag when it ends.
    local.block_on(&runtime, async move {
        let worker = Worker::new(shared);
        let ended = Rc::new(LocalNotify::default());
        let raise = NotifyOnDrop(ended.clone());
        let accept = tokio::task::spawn_local(
            async move {
                // Raised also when the loop panics.
                let _raise = raise;
                listener::accept_loop(listener, worker, shutdown, session::serve).await;
            }
            .instrument(info_span!("worker", id)),
        );
        ended.notified().await;
        if let Err(e) = accept.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;
    use std::sync::Mutex;

    fn config(text: &str) -> Config {
        FileConfig::parse(text).unwrap().validate().unwrap()
    }

    #[test]
    fn a_reload_changes_the_log_level_only_when_it_changed_and_a_bad_file_changes_nothing() {
        let shared = Shared::new(ClusterView::new(), config(""), None);
        let levels = Arc::new(Mutex::new(Vec::new()));
        let next = Arc::new(Mutex::new(Some("[proxy]\nlog_level = \"debug\"\n")));
        let reload = Reload {
            read_config: {
                let next = next.clone();
                Box::new(move || match *next.lock().unwrap() {
                    Some(text) => Ok(config(text)),
                    None => Err(ConfigError::Invalid {
                        key: "proxy.log_level",
                        reason: "a bad file".into(),
                    }),
                })
            },
            set_log_level: {
                let levels = levels.clone();
                Box::new(move |level| levels.lock().unwrap().push(level.to_string()))
            },
        };
        apply_reload(&shared, &reload);
        apply_reload(&shared, &reload);
        assert_eq!(*levels.lock().unwrap(), ["debug"]);
        assert_eq!(shared.live.load().log_level, "debug");
        *next.lock().unwrap() = None;
        apply_reload(&shared, &reload);
        assert_eq!(shared.live.load().log_level, "debug");
        assert_eq!(levels.lock().unwrap().len(), 1);
    }
}
