//! `scanhost run`: the agent. Starts the store, the plugins, the sources,
//! the queue with its workers and the API, and stops them in order.
//!
//! Data flows one way: sources -> store -> (events) -> queue -> workers ->
//! plugins -> store -> output files. At start the queue is rebuilt from the
//! store: pending and interrupted scans run again, scheduled retries resume
//! at their time, and a result produced by the plugins loaded now is kept.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;
use tokio::sync::{broadcast, watch};

use crate::api::{self, Api};
use crate::config::Config;
use crate::containerd::Client;
use crate::metrics::Metrics;
use crate::outputs::Outputs;
use crate::plugin_cache::PluginCache;
use crate::plugins::{self, Limits, LivePlugins, Registry, Runtime, TargetKind};
use crate::queue::{self, Queue};
use crate::scan::worker::{self, retry_of};
use crate::sources;
use crate::store::{Event, Store};
use crate::workload::{Kind, Origin, Status, Workload, WorkloadId};

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let signalled = shutdown_signal()?;
    // Bound first: an address in use is found before anything is loaded.
    let listener = match config.api_listen() {
        Some(addr) => Some((
            addr,
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (api.listen)"))?,
        )),
        None => None,
    };
    std::fs::create_dir_all(&config.state_dir).with_context(|| {
        format!(
            "cannot create state directory {}",
            config.state_dir.display()
        )
    })?;
    let store = Arc::new(Store::open(&config.state_dir.join("workloads.redb"))?);
    forget_unconfigured(&store, &config);
    let outputs = Arc::new(Outputs::open(&config.output_dir())?);
    outputs.reconcile(&store)?;

    let limits = Limits {
        scan_timeout: config.scan.scan_timeout,
        max_memory: config.scan.max_memory,
    };
    let cache_dir = config.state_dir.join("compiled");
    // Made absolute once: the watch reports absolute paths, and a file
    // must have one name whether it was loaded at start or on a change.
    let plugin_dir = config.plugins.dir.as_ref().and_then(|dir| {
        let canonical = dir.canonicalize().ok().filter(|d| d.is_dir());
        if canonical.is_none() {
            tracing::warn!(
                dir = %dir.display(),
                "plugin directory missing (plugins.dir): only shipped plugins are loaded"
            );
        }
        canonical
    });
    let watched_dir = plugin_dir.clone();
    // Opened even with a bound of 0, which drops what was kept before.
    let plugin_cache =
        PluginCache::new(store.database(), config.cache.max_size).with_context(|| {
            format!(
                "cannot open the plugin cache in {}",
                config.state_dir.join("workloads.redb").display()
            )
        })?;
    let plugin_cache = (config.cache.max_size > 0).then(|| Arc::new(plugin_cache));
    let (runtime, plugins) = tokio::task::spawn_blocking(move || {
        let mut runtime = Runtime::new(limits, Some(&cache_dir))?;
        if let Some(cache) = plugin_cache {
            runtime = runtime.with_plugin_cache(cache);
        }
        let plugins = LivePlugins::load(&runtime, plugin_dir.as_deref())?;
        anyhow::Ok((Arc::new(runtime), Arc::new(plugins)))
    })
    .await??;

    let queue = Queue::new(queue::Config {
        base_backoff: config.scan.base_backoff,
        max_backoff: config.scan.max_backoff,
        max_attempts: config.scan.max_attempts,
    });
    let metrics = Arc::new(Metrics::default());

    // Subscribe before anything can change the store, then rebuild the
    // queue from what the store holds.
    let events = store.subscribe();
    rebuild(&store, &queue, &plugins.current());
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(dispatch(
        store.clone(),
        queue.clone(),
        outputs.clone(),
        events,
    ));

    let containerd = config
        .sources
        .containerd
        .as_ref()
        .map(|c| Client::new(&c.address, tokio::runtime::Handle::current()));
    let context = Arc::new(worker::Context {
        store: store.clone(),
        queue: queue.clone(),
        runtime: runtime.clone(),
        plugins: plugins.clone(),
        outputs,
        metrics: metrics.clone(),
        containerd: containerd.clone(),
    });
    let workers: Vec<_> = (0..config.scan.workers)
        .map(|_| tokio::spawn(worker::run(context.clone())))
        .collect();

    if config.plugins.watch
        && let Some(dir) = watched_dir
    {
        let (store, queue) = (store.clone(), queue.clone());
        let rescan = config.plugins.rescan_on_change;
        let on_change = move |_: &Registry, after: &Registry| {
            if rescan {
                rescan_changed(&store, &queue, after);
            }
        };
        tokio::spawn(plugins::watch(
            plugins.clone(),
            runtime,
            dir,
            on_change,
            stopped.clone(),
        ));
    }

    if config.sources.host.enabled {
        tokio::spawn(sources::host::run(
            store.clone(),
            queue.clone(),
            config.sources.host.clone(),
            stopped.clone(),
        ));
    }
    for layout in &config.sources.oci_layout {
        tokio::spawn(sources::oci_layout::run(
            store.clone(),
            layout.path.clone(),
            stopped.clone(),
        ));
    }

    if let (Some(client), Some(source)) = (containerd, &config.sources.containerd) {
        tokio::spawn(sources::containerd::run(
            store.clone(),
            client,
            source.namespaces.clone(),
            stopped.clone(),
        ));
    }

    if let Some((addr, listener)) = listener {
        let app = api::router(Arc::new(Api {
            store: store.clone(),
            queue: queue.clone(),
            plugins,
            metrics,
        }));
        tracing::info!(%addr, "API listening");
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!("the API stopped: {err}");
            }
        });
    }
    tracing::info!(
        workers = config.scan.workers,
        layouts = config.sources.oci_layout.len(),
        containerd = config.sources.containerd.is_some(),
        "scanhost running"
    );

    signalled.await;
    tracing::info!("shutting down");
    let _ = stop.send(true);
    queue.shutdown();
    let drain = futures_join(workers);
    if tokio::time::timeout(config.scan.shutdown_timeout, drain)
        .await
        .is_err()
    {
        // The interrupted scans are still marked Scanning in the store and
        // run again at the next start.
        tracing::warn!(
            timeout = %humantime::format_duration(config.scan.shutdown_timeout),
            "scans still running at the shutdown deadline are abandoned"
        );
    }
    Ok(())
}

/// Removes the references of sources no longer configured: a layout taken
/// out of the file, a containerd namespace (or containerd) no longer
/// followed, the host when its source is off. Their workloads go with
/// their last reference.
fn forget_unconfigured(store: &Store, config: &Config) {
    let layouts: Vec<&std::path::Path> = config
        .sources
        .oci_layout
        .iter()
        .map(|l| l.path.as_path())
        .collect();
    let namespaces: &[String] = match &config.sources.containerd {
        Some(containerd) => &containerd.namespaces,
        None => &[],
    };
    let stale = store.references_where(|origin| match origin {
        Origin::Host { .. } => !config.sources.host.enabled,
        Origin::OciLayout { path, .. } => !layouts.contains(&path.as_path()),
        Origin::Containerd { namespace, .. } => !namespaces.contains(namespace),
    });
    for (reference, _) in stale {
        tracing::info!(
            reference,
            "its source is no longer configured, reference removed"
        );
        sources::unset(store, &reference);
    }
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}

/// Waits for SIGINT or SIGTERM. Listening starts when this is called,
/// before anything is awaited: a signal that comes while the agent is
/// still starting stops it cleanly once it has started.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// Queues what the store says is unfinished.
fn rebuild(store: &Store, queue: &Queue<WorkloadId>, registry: &Registry) {
    let now = SystemTime::now();
    // The host source queues the host itself, at start and at its interval.
    for workload in store.list().into_iter().filter(|w| w.kind != Kind::Host) {
        let retry = retry_of(workload.kind);
        match &workload.status {
            Status::Pending | Status::Scanning { .. } => queue.add(workload.id.clone(), retry),
            Status::Failed {
                retryable: true,
                attempts,
                next_attempt: Some(at),
                ..
            } => {
                let delay = at.duration_since(now).unwrap_or_default();
                let due = tokio::time::Instant::now() + delay;
                queue.resume(workload.id.clone(), retry, *attempts, due);
            }
            Status::Failed { .. } => {}
            Status::Success { plugins, .. } => {
                if !same_plugins(&workload, plugins, registry) {
                    queue.add(workload.id.clone(), retry);
                }
            }
        }
    }
}

/// Queues every workload whose result did not come from exactly the
/// plugins that would scan it now: after a plugin changed, its workloads
/// are scanned again (the development loop: rebuild the plugin, see the
/// new document).
fn rescan_changed(store: &Store, queue: &Queue<WorkloadId>, registry: &Registry) {
    let mut queued = 0;
    for workload in store.list() {
        let current = match &workload.status {
            Status::Success { plugins, .. } => same_plugins(&workload, plugins, registry),
            Status::Pending | Status::Scanning { .. } => true,
            Status::Failed { .. } => false,
        };
        if !current {
            queue.add(workload.id.clone(), retry_of(workload.kind));
            queued += 1;
        }
    }
    tracing::info!(workloads = queued, "rescans queued after a plugin change");
}

/// Whether the plugins that produced a result are exactly the ones that
/// would scan the workload now (same names and component digests).
fn same_plugins(
    workload: &Workload,
    used: &[crate::workload::PluginVersion],
    registry: &Registry,
) -> bool {
    let kind = match workload.kind {
        Kind::Host => TargetKind::Host,
        Kind::ContainerImage => TargetKind::ContainerImage,
    };
    let now: BTreeSet<(String, String)> = registry
        .for_kind(kind)
        .iter()
        .map(|p| (p.name.clone(), p.digest.clone()))
        .collect();
    let then: BTreeSet<(String, String)> = used
        .iter()
        .map(|p| (p.name.clone(), p.digest.clone()))
        .collect();
    now == then
}

/// Turns store events into queue work: a new image is queued, a removed
/// workload leaves the queue and its document goes. (The host source
/// schedules the host.)
async fn dispatch(
    store: Arc<Store>,
    queue: Queue<WorkloadId>,
    outputs: Arc<Outputs>,
    mut events: broadcast::Receiver<Event>,
) {
    loop {
        match events.recv().await {
            Ok(Event::Set(id)) => {
                // A new image is Pending; a name added to or removed from
                // one asks for no scan.
                if let Some(workload) = store.get(&id)
                    && workload.kind != Kind::Host
                    && workload.status == Status::Pending
                {
                    queue.add_new(id, retry_of(workload.kind));
                }
            }
            Ok(Event::Unset(id)) => {
                queue.remove(&id);
                if let Err(err) = outputs.remove(&id) {
                    tracing::error!(workload = %id, "{err:#}");
                }
                tracing::info!(workload = %id, "workload removed");
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "store events missed, requeueing from the store");
                for workload in store.list() {
                    if workload.kind != Kind::Host && workload.status == Status::Pending {
                        queue.add(workload.id.clone(), retry_of(workload.kind));
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
