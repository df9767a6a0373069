//! The plugins a running agent serves, and their reload from the plugin
//! directory.
//!
//! [`LivePlugins`] holds the current [`Registry`] behind an `Arc` that is
//! swapped whole: a scan takes the registry once when it starts, so it
//! finishes on the versions it started with while a reload installs new
//! ones. [`watch`] follows the plugin directory: after a burst of writes
//! has been quiet for `DEBOUNCE` (a build writes a file in steps), each
//! changed `*.wasm` file is read into memory (never mapped while it can
//! still change), compiled off the async runtime, validated and swapped
//! in. A file that fails keeps the previous version of its plugin serving,
//! and the error is kept for the API. A removed file unloads its plugin,
//! and a shipped plugin it had replaced serves again.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch as signal};

use super::registry::{self, Registry, RegistryError};
use super::runtime::{Plugin, Runtime};

/// Quiet time after the last change before a file is reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// A file of the plugin directory, as last seen.
struct FileState {
    /// The version this file serves: the last that loaded.
    plugin: Option<Arc<Plugin>>,
    /// `sha256:` digest of the bytes last tried, loaded or not.
    tried: String,
    /// Why the bytes last tried were refused; none when they serve.
    error: Option<String>,
}

/// A file of the plugin directory whose last version was refused.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Refusal {
    pub file: PathBuf,
    pub error: String,
    /// The version of the plugin still serving from this file, if any.
    pub serving: Option<String>,
}

/// The plugins being served.
pub struct LivePlugins {
    /// Swapped whole on every change; scans keep the one they started with.
    current: RwLock<Arc<Registry>>,
    /// The plugins embedded in the binary.
    shipped: Vec<Arc<Plugin>>,
    /// Every `*.wasm` file of the directory that exists, by path. The
    /// registry is always `shipped` then these plugins, in path order.
    files: Mutex<BTreeMap<PathBuf, FileState>>,
}

impl LivePlugins {
    /// Loads the shipped plugins and those in `dir`.
    pub fn load(runtime: &Runtime, dir: Option<&Path>) -> Result<Self, RegistryError> {
        let (shipped, refused) = registry::load_shipped(runtime);
        for err in &refused {
            tracing::error!("plugin refused: {err}");
        }
        let live = Self {
            current: RwLock::new(Arc::new(Registry::default())),
            shipped,
            files: Mutex::new(BTreeMap::new()),
        };
        if let Some(dir) = dir {
            for path in registry::wasm_files(dir)? {
                live.refresh(runtime, &path);
            }
        }
        live.publish();
        Ok(live)
    }

    /// The registry scans use now.
    pub fn current(&self) -> Arc<Registry> {
        self.current.read().expect("registry lock").clone()
    }

    /// The files whose last version was refused.
    pub fn refusals(&self) -> Vec<Refusal> {
        let files = self.files.lock().expect("plugin files lock");
        files
            .iter()
            .filter_map(|(path, state)| {
                state.error.as_ref().map(|error| Refusal {
                    file: path.clone(),
                    error: error.clone(),
                    serving: state.plugin.as_ref().map(|p| p.version.clone()),
                })
            })
            .collect()
    }

    /// Brings `path` up to date: loads it again when its bytes changed,
    /// drops it when it is gone. Returns whether the served plugins
    /// changed; the caller publishes.
    fn refresh(&self, runtime: &Runtime, path: &Path) -> bool {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let removed = self.files.lock().expect("plugin files lock").remove(path);
                if let Some(plugin) = removed.and_then(|state| state.plugin) {
                    tracing::info!(
                        plugin = plugin.name,
                        file = %path.display(),
                        "plugin unloaded: its file was removed"
                    );
                    return true;
                }
                return false;
            }
            Err(err) => {
                self.refuse(path, "", &format!("{}: cannot read: {err}", path.display()));
                return false;
            }
        };

        let digest = format!("sha256:{:x}", Sha256::digest(&bytes));
        let unchanged = self
            .files
            .lock()
            .expect("plugin files lock")
            .get(path)
            .is_some_and(|state| state.tried == digest);
        if unchanged {
            return false;
        }

        let origin = super::Origin::File(path.to_path_buf());
        match runtime.load(origin, &bytes) {
            Ok(plugin) => {
                let previous = self.files.lock().expect("plugin files lock").insert(
                    path.to_path_buf(),
                    FileState {
                        plugin: Some(Arc::new(plugin)),
                        tried: digest.clone(),
                        error: None,
                    },
                );
                // The bytes that served before a refused version came back:
                // the refusal is cleared, the plugins are the same.
                let serving = previous.and_then(|state| state.plugin);
                serving.is_none_or(|p| p.digest != digest)
            }
            Err(err) => {
                self.refuse(path, &digest, &err.to_string());
                false
            }
        }
    }

    fn refuse(&self, path: &Path, digest: &str, error: &str) {
        let mut files = self.files.lock().expect("plugin files lock");
        let state = files.entry(path.to_path_buf()).or_insert(FileState {
            plugin: None,
            tried: String::new(),
            error: None,
        });
        state.tried = digest.to_string();
        state.error = Some(error.to_string());
        match &state.plugin {
            Some(serving) => tracing::error!(
                serving = serving.version,
                "plugin refused, the previous version keeps serving: {error}"
            ),
            None => tracing::error!("plugin refused: {error}"),
        }
    }

    /// Installs the registry made of the shipped plugins and the files'.
    fn publish(&self) -> Arc<Registry> {
        let files = self.files.lock().expect("plugin files lock");
        let plugins = self
            .shipped
            .iter()
            .cloned()
            .chain(files.values().filter_map(|state| state.plugin.clone()));
        let registry = Arc::new(Registry::of(plugins));
        *self.current.write().expect("registry lock") = registry.clone();
        registry
    }
}

/// Names of the plugins that differ between two registries: added,
/// removed, or another component.
pub fn changed(before: &Registry, after: &Registry) -> BTreeSet<String> {
    let set = |r: &Registry| -> BTreeSet<(String, String)> {
        r.plugins()
            .iter()
            .map(|p| (p.name.clone(), p.digest.clone()))
            .collect()
    };
    let (before, after) = (set(before), set(after));
    before
        .symmetric_difference(&after)
        .map(|(name, _)| name.clone())
        .collect()
}

/// Follows `dir` until `stop` turns true. After each change that altered
/// the served plugins, `on_change` gets the registries before and after.
pub async fn watch(
    live: Arc<LivePlugins>,
    runtime: Arc<Runtime>,
    dir: PathBuf,
    on_change: impl Fn(&Registry, &Registry) + Send + 'static,
    mut stop: signal::Receiver<bool>,
) {
    let (tx, mut events) = mpsc::unbounded_channel::<PathBuf>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    });
    let _watcher = match watcher.and_then(|mut w| {
        w.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(w)
    }) {
        Ok(watcher) => watcher,
        Err(err) => {
            tracing::error!(dir = %dir.display(), "cannot watch the plugin directory: {err}");
            return;
        }
    };
    tracing::info!(dir = %dir.display(), "watching the plugin directory");

    loop {
        let mut pending = HashSet::new();
        tokio::select! {
            Some(path) = events.recv() => { pending.insert(path); }
            _ = stop.changed() => return,
        }
        // Wait for the burst to end: a build writes its output in steps.
        while let Ok(Some(path)) = tokio::time::timeout(DEBOUNCE, events.recv()).await {
            pending.insert(path);
        }
        let paths: Vec<PathBuf> = pending
            .into_iter()
            .filter(|p| registry::is_wasm(p))
            .collect();
        if paths.is_empty() {
            continue;
        }

        let (live, runtime) = (live.clone(), runtime.clone());
        let swapped = tokio::task::spawn_blocking(move || {
            let before = live.current();
            let mut changed = false;
            for path in &paths {
                changed |= live.refresh(&runtime, path);
            }
            changed.then(|| (before, live.publish()))
        })
        .await;
        if let Ok(Some((before, after))) = swapped {
            let names = changed(&before, &after);
            tracing::info!(plugins = ?names, "plugins reloaded");
            on_change(&before, &after);
        }
    }
}
