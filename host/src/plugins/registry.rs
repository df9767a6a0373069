//! The set of loaded plugins.
//!
//! The plugins shipped in the binary are loaded first; each `*.wasm` file
//! of the plugin directory is then loaded, and replaces the shipped plugin
//! of the same name. A file that cannot be loaded is refused with an error
//! that names it, and the others load as usual. Files are read whole into
//! memory, never mapped, so a plugin being rebuilt cannot change under the
//! compiler.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bindings::TargetKind;
use super::runtime::{LoadError, Origin, Plugin, Runtime};

/// The components embedded at build time, as (crate name, bytes).
const SHIPPED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/shipped_plugins.rs"));

/// Why the plugin directory could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read plugin directory {}: {source}", path.display())]
pub struct RegistryError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Loaded plugins, at most one per name.
#[derive(Default)]
pub struct Registry {
    /// Sorted by name; names are unique.
    plugins: Vec<Arc<Plugin>>,
}

impl Registry {
    /// Loads the shipped plugins and those in `dir`. Returns the registry
    /// and the files that were refused.
    pub fn load(
        runtime: &Runtime,
        dir: Option<&Path>,
    ) -> Result<(Self, Vec<LoadError>), RegistryError> {
        let (shipped, mut refused) = load_shipped(runtime);
        let mut registry = Self::default();
        for plugin in shipped {
            registry.insert(plugin);
        }
        if let Some(dir) = dir {
            for path in wasm_files(dir)? {
                match load_file(runtime, &path) {
                    Ok(plugin) => registry.insert(plugin),
                    Err(err) => refused.push(err),
                }
            }
        }
        for err in &refused {
            tracing::error!("plugin refused: {err}");
        }
        Ok((registry, refused))
    }

    /// A registry of `plugins`, a later one replacing an earlier one of the
    /// same name.
    pub fn of(plugins: impl IntoIterator<Item = Arc<Plugin>>) -> Self {
        let mut registry = Self::default();
        for plugin in plugins {
            registry.insert(plugin);
        }
        registry
    }

    /// Adds `plugin`, replacing a loaded plugin of the same name.
    pub fn insert(&mut self, plugin: impl Into<Arc<Plugin>>) {
        let plugin = plugin.into();
        match self
            .plugins
            .binary_search_by(|p| p.name.as_str().cmp(&plugin.name))
        {
            Ok(i) => {
                tracing::info!(
                    plugin = plugin.name,
                    replaced = %self.plugins[i].origin,
                    by = %plugin.origin,
                    "plugin replaced"
                );
                self.plugins[i] = plugin;
            }
            Err(i) => self.plugins.insert(i, plugin),
        }
    }

    pub fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// The plugins that scan targets of `kind`, by name.
    pub fn for_kind(&self, kind: TargetKind) -> Vec<Arc<Plugin>> {
        self.plugins
            .iter()
            .filter(|p| p.scans(kind))
            .cloned()
            .collect()
    }
}

/// Loads the plugins embedded in the binary.
pub fn load_shipped(runtime: &Runtime) -> (Vec<Arc<Plugin>>, Vec<LoadError>) {
    let mut plugins = Vec::new();
    let mut refused = Vec::new();
    for (name, bytes) in SHIPPED {
        match runtime.load(Origin::Shipped(name), bytes) {
            Ok(plugin) => plugins.push(Arc::new(plugin)),
            Err(err) => refused.push(err),
        }
    }
    (plugins, refused)
}

/// Reads the whole file at `path` into memory and loads it.
pub fn load_file(runtime: &Runtime, path: &Path) -> Result<Plugin, LoadError> {
    let origin = Origin::File(path.to_path_buf());
    let bytes = std::fs::read(path).map_err(|err| LoadError::Read {
        origin: origin.clone(),
        reason: err.to_string(),
    })?;
    runtime.load(origin, &bytes)
}

/// The `*.wasm` files directly in `dir`, sorted by name.
pub fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, RegistryError> {
    let error = |source| RegistryError {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(error)? {
        let path = entry.map_err(error)?.path();
        if is_wasm(&path) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Whether `path` names a plugin file.
pub fn is_wasm(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "wasm")
}
