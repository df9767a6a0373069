//! The OCI layout source: the images listed in a layout's `index.json`.
//!
//! The layout directory is watched (with its blobs) and read again every
//! `RESYNC` in any case; every change, after a short debounce, resyncs:
//! each image listed under a new name or digest is identified (its config
//! digest is its workload id) and its reference set in the store; every
//! reference this layout held that is no longer listed is unset, which
//! removes an image once its last reference is gone. An image whose
//! manifest or config cannot be read yet is skipped with a warning and
//! picked up by a later resync.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::content::oci_layout::ref_name;
use crate::content::{Digest, OciLayout};
use crate::sources::{self, Seen};
use crate::store::Store;
use crate::target::{ImageTarget, host_platform};
use crate::workload::{Origin, WorkloadId};

/// Quiet time after a change before resyncing: a tool writes a layout in
/// many steps.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// How often the layout is read even without a change seen, which also
/// catches what a watch misses (a layout deleted and made again).
const RESYNC: Duration = Duration::from_secs(10);

/// Keeps the store in step with the layout at `path` until `shutdown`.
pub async fn run(store: Arc<Store>, path: PathBuf, mut shutdown: watch::Receiver<bool>) {
    let (tx, mut changes) = mpsc::unbounded_channel();
    let mut watched = Watched::new(&path, tx.clone());
    let mut rescan = tokio::time::interval(RESYNC);

    resync_blocking(&store, &path).await;
    loop {
        tokio::select! {
            Some(()) = changes.recv() => {
                tokio::time::sleep(DEBOUNCE).await;
                while changes.try_recv().is_ok() {}
            }
            _ = rescan.tick() => {
                // A layout removed and made again, or missing at start, is
                // watched anew once it is there.
                if watched.is_stale(&path) {
                    watched = Watched::new(&path, tx.clone());
                }
            }
            _ = shutdown.changed() => return,
        }
        resync_blocking(&store, &path).await;
    }
}

/// The watch on a layout directory, and which directory it is on.
struct Watched {
    _watcher: Option<notify::RecommendedWatcher>,
    /// (device, inode) of the directory watched; none when none is.
    identity: Option<(u64, u64)>,
}

impl Watched {
    fn new(path: &Path, tx: mpsc::UnboundedSender<()>) -> Self {
        let identity = identity(path);
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = tx.send(());
            }
        })
        .and_then(|mut w| {
            w.watch(path, RecursiveMode::Recursive)?;
            Ok(w)
        });
        match watcher {
            Ok(watcher) => Self {
                _watcher: Some(watcher),
                identity,
            },
            Err(err) => {
                tracing::warn!(
                    layout = %path.display(),
                    "cannot watch the layout, it is read every {}s: {err}",
                    RESYNC.as_secs()
                );
                Self {
                    _watcher: None,
                    identity: None,
                }
            }
        }
    }

    fn is_stale(&self, path: &Path) -> bool {
        self.identity.is_none() || self.identity != identity(path)
    }
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

async fn resync_blocking(store: &Arc<Store>, path: &Path) {
    let (store, path) = (store.clone(), path.to_path_buf());
    let _ = tokio::task::spawn_blocking(move || resync(&store, &path)).await;
}

/// Makes the store's references from this layout match its `index.json`.
pub fn resync(store: &Store, path: &Path) {
    let layout = match OciLayout::open(path) {
        Ok(layout) => Arc::new(layout),
        Err(err) => {
            tracing::warn!(layout = %path.display(), "cannot read the layout: {err}");
            return;
        }
    };
    let seen = layout
        .images()
        .iter()
        .map(|image| Seen {
            reference: match ref_name(image) {
                Some(name) => name.to_string(),
                None => format!("{}@{}", path.display(), image.digest),
            },
            origin: Origin::OciLayout {
                path: path.to_path_buf(),
                digest: image.digest.clone(),
            },
        })
        .collect();
    let ours = |origin: &Origin| matches!(origin, Origin::OciLayout { path: p, .. } if p == path);
    let identify = |origin: &Origin| {
        let Origin::OciLayout { digest, .. } = origin else {
            return Err(format!("{}: not an image of this layout", path.display()));
        };
        let digest = Digest::parse(digest).map_err(|err| err.to_string())?;
        ImageTarget::identify(layout.clone(), digest, vec![], host_platform())
            .map(|image| WorkloadId(image.id.to_string()))
            .map_err(|err| format!("{}: {err}", path.display()))
    };
    sources::sync(store, ours, seen, identify);
}
