//! The host source: one workload for the machine's root filesystem.
//!
//! The host is scanned at start and then every `interval`; a failed host
//! scan waits for the next interval (the queue never retries it).

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::HostSource;
use crate::queue::{Queue, Retry};
use crate::store::Store;
use crate::workload::{HOST_ID, Kind, Origin, WorkloadId};

/// The reference the host workload is known by.
pub const HOST_REFERENCE: &str = "host";

/// Registers the host and queues a scan of it at start and every interval,
/// until `shutdown` turns true.
pub async fn run(
    store: Arc<Store>,
    queue: Queue<WorkloadId>,
    config: HostSource,
    mut shutdown: watch::Receiver<bool>,
) {
    let id = WorkloadId(HOST_ID.to_string());
    let origin = Origin::Host {
        root: config.root.clone(),
    };
    if let Err(err) = store.set_reference(&id, Kind::Host, HOST_REFERENCE, origin) {
        tracing::error!("cannot register the host workload: {err}");
        return;
    }

    let mut ticks = tokio::time::interval(config.interval);
    loop {
        tokio::select! {
            _ = ticks.tick() => queue.add(id.clone(), Retry::Never),
            _ = shutdown.changed() => return,
        }
    }
}
