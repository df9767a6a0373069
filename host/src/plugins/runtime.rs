//! The sandbox that runs scanner components.
//!
//! One wasmtime engine serves every plugin. A component is compiled once
//! (or read from the compilation cache), checked against the contract,
//! linked and pre-instantiated; each call then gets a fresh store with a
//! deadline and a memory cap, and the store is dropped when the call
//! returns. A trap, a deadline or a memory cap hit fails that call and
//! nothing else: the engine and every other plugin go on.
//!
//! Deadlines use epoch interruption: a background thread advances the
//! engine's epoch every `TICK`, and a store is given the number of ticks
//! its call may last.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, Store, Trap};

use super::bindings::{self, Description, Report, ScannerPre, TargetKind};
use super::cache::{CompileCache, Compiled};
use super::contract::{self, ContractError};
use super::state::ScanState;
use crate::plugin_cache::PluginCache;
use crate::target::Target;

/// How often the engine's epoch advances: the resolution of deadlines.
const TICK: Duration = Duration::from_millis(10);

/// How long `describe` may take when a plugin is loaded.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits applied to every scan.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time one scan may take.
    pub scan_timeout: Duration,
    /// Bytes of linear memory one plugin instance may use.
    pub max_memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            scan_timeout: Duration::from_secs(600),
            max_memory: 512 << 20,
        }
    }
}

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Embedded in the scanhost binary, by crate name.
    Shipped(&'static str),
    /// A file in the plugin directory.
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Shipped(name) => write!(f, "shipped plugin {name}"),
            Origin::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A loaded, validated plugin, ready to scan.
pub struct Plugin {
    pub name: String,
    pub version: String,
    pub kinds: Vec<TargetKind>,
    /// `sha256:` digest of the component's bytes.
    pub digest: String,
    /// The contract version the component was built for.
    pub contract: semver::Version,
    pub origin: Origin,
    pre: ScannerPre<ScanState>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("digest", &self.digest)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub fn scans(&self, kind: TargetKind) -> bool {
        self.kinds.contains(&kind)
    }
}

/// Why a component could not be loaded. Every message names the component.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{origin}: cannot read: {reason}")]
    Read { origin: Origin, reason: String },
    #[error("{origin}: not a WebAssembly component: {reason}")]
    NotComponent { origin: Origin, reason: String },
    #[error("{origin}: {source}")]
    Contract {
        origin: Origin,
        #[source]
        source: ContractError,
    },
    #[error("{origin}: cannot link: {reason}")]
    Link { origin: Origin, reason: String },
    #[error("{origin}: describe() failed: {reason}")]
    Describe { origin: Origin, reason: String },
}

/// Why a scan failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {plugin} {version}: {reason}")]
pub struct ScanFailure {
    pub plugin: String,
    pub version: String,
    pub kind: FailureKind,
    pub reason: String,
}

impl ScanFailure {
    /// Whether a later attempt can succeed.
    pub fn retryable(&self) -> bool {
        matches!(self.kind, FailureKind::Retryable | FailureKind::Timeout)
    }
}

/// What ended a failed scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The plugin reported a retryable failure.
    Retryable,
    /// The plugin reported a fatal failure.
    Fatal,
    /// The scan ran past its deadline; retryable.
    Timeout,
    /// The plugin asked for more memory than its cap; fatal.
    MemoryCap,
    /// The plugin trapped (a panic, an invalid access); fatal.
    Trap,
    /// The host could not set the scan up (e.g. open the root); fatal.
    Setup,
}

/// The engine, the linker and the compilation cache.
pub struct Runtime {
    engine: Engine,
    linker: Linker<ScanState>,
    cache: Option<CompileCache>,
    limits: Limits,
    /// What plugins keep across scans; none keeps nothing.
    plugin_cache: Option<Arc<PluginCache>>,
}

impl Runtime {
    /// A runtime that keeps compiled code in `cache_dir`, when given.
    pub fn new(limits: Limits, cache_dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        bindings::Scanner::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |state| state,
        )?;

        let cache = match cache_dir {
            Some(dir) => match CompileCache::open(dir) {
                Ok(cache) => Some(cache),
                Err(err) => {
                    tracing::warn!(
                        dir = %dir.display(),
                        "compilation cache disabled, cannot create it: {err}"
                    );
                    None
                }
            },
            None => None,
        };

        start_ticker(&engine);
        Ok(Self {
            engine,
            linker,
            cache,
            limits,
            plugin_cache: None,
        })
    }

    /// The runtime, with the plugins' `cache` import served by `cache`.
    pub fn with_plugin_cache(mut self, cache: Arc<PluginCache>) -> Self {
        self.plugin_cache = Some(cache);
        self
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Compiles, checks and pre-instantiates a component, then asks it to
    /// describe itself.
    pub fn load(&self, origin: Origin, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let started = Instant::now();
        check_header(bytes).map_err(|reason| LoadError::NotComponent {
            origin: origin.clone(),
            reason,
        })?;

        let compiled = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, bytes),
            None => wasmtime::component::Component::new(&self.engine, bytes)
                .map(|c| (c, Compiled::Fresh)),
        };
        let (component, how) = compiled.map_err(|err| LoadError::NotComponent {
            origin: origin.clone(),
            reason: format!("{err:#}"),
        })?;

        let contract =
            contract::check(&self.engine, &component).map_err(|source| LoadError::Contract {
                origin: origin.clone(),
                source,
            })?;

        let link_error = |err: wasmtime::Error| LoadError::Link {
            origin: origin.clone(),
            reason: format!("{err:#}"),
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(link_error)?;
        let pre = ScannerPre::new(pre).map_err(link_error)?;

        let description = self
            .describe(&pre, &origin)
            .map_err(|reason| LoadError::Describe {
                origin: origin.clone(),
                reason,
            })?;

        let plugin = Plugin {
            name: description.name,
            version: description.version,
            kinds: description.kinds,
            digest: format!("sha256:{:x}", Sha256::digest(bytes)),
            contract,
            origin,
            pre,
        };
        tracing::info!(
            plugin = plugin.name,
            version = plugin.version,
            origin = %plugin.origin,
            compiled = matches!(how, Compiled::Fresh),
            elapsed = ?started.elapsed(),
            "plugin loaded"
        );
        Ok(plugin)
    }

    fn describe(
        &self,
        pre: &ScannerPre<ScanState>,
        origin: &Origin,
    ) -> Result<Description, String> {
        let state = ScanState::bare(origin.to_string().into(), self.limits.max_memory);
        let mut store = self.store(state, DESCRIBE_TIMEOUT);
        let description = pre
            .instantiate(&mut store)
            .and_then(|scanner| scanner.scanhost_plugin_plugin().call_describe(&mut store))
            .map_err(|err| classify(&err, &store, DESCRIBE_TIMEOUT).1)?;
        if description.name.trim().is_empty() {
            return Err("it names no plugin".to_string());
        }
        if description.kinds.is_empty() {
            return Err(format!("plugin {} names no target kind", description.name));
        }
        Ok(description)
    }

    /// Runs one scan of `target` by `plugin` in a fresh instance.
    pub fn scan(&self, plugin: &Plugin, target: &Target) -> Result<Report, ScanFailure> {
        let failure = |kind, reason| ScanFailure {
            plugin: plugin.name.clone(),
            version: plugin.version.clone(),
            kind,
            reason,
        };

        let name: Arc<str> = plugin.name.as_str().into();
        let (mut state, wit_target) = match target {
            Target::Host { root } => {
                let state = ScanState::with_root(name, self.limits.max_memory, root)
                    .map_err(|err| failure(FailureKind::Setup, err.to_string()))?;
                let wit = bindings::Target::Host(bindings::HostTarget {
                    root: "/".to_string(),
                });
                (state, wit)
            }
            Target::Image(image) => {
                let state =
                    ScanState::with_content(name, self.limits.max_memory, image.store.clone());
                let platform = &image.platform;
                let wit = bindings::Target::ContainerImage(bindings::ImageTarget {
                    reference: image.name(),
                    digest: image.digest.to_string(),
                    platform: bindings::Platform {
                        os: platform.os.clone(),
                        architecture: platform.architecture.clone(),
                        variant: platform.variant.clone(),
                    },
                });
                (state, wit)
            }
        };

        state.cache = self
            .plugin_cache
            .as_ref()
            .map(|cache| cache.scope(&plugin.name, &plugin.digest));
        let timeout = self.limits.scan_timeout;
        let mut store = self.store(state, timeout);
        let outcome = plugin.pre.instantiate(&mut store).and_then(|scanner| {
            scanner
                .scanhost_plugin_plugin()
                .call_scan(&mut store, &wit_target)
        });
        match outcome {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(bindings::ScanError::Retryable(reason))) => {
                Err(failure(FailureKind::Retryable, reason))
            }
            Ok(Err(bindings::ScanError::Fatal(reason))) => Err(failure(FailureKind::Fatal, reason)),
            Err(err) => {
                let (kind, reason) = classify(&err, &store, timeout);
                Err(failure(kind, reason))
            }
        }
    }

    fn store(&self, state: ScanState, timeout: Duration) -> Store<ScanState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state.limiter());
        let ticks = timeout.as_millis().div_ceil(TICK.as_millis()).max(1);
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();
        store
    }
}

/// Names the cause of an error that ended a call into a plugin.
fn classify(
    err: &wasmtime::Error,
    store: &Store<ScanState>,
    timeout: Duration,
) -> (FailureKind, String) {
    if store.data().memory_cap_hit() {
        return (
            FailureKind::MemoryCap,
            format!("memory cap of {} bytes reached", store.data().max_memory()),
        );
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => (
            FailureKind::Timeout,
            format!(
                "deadline of {} reached",
                humantime::format_duration(timeout)
            ),
        ),
        Some(_) => (FailureKind::Trap, format!("trapped: {err:?}")),
        None => (FailureKind::Trap, format!("failed: {err:#}")),
    }
}

/// Tells a component from a core module or from something else.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_MODULE: [u8; 4] = [1, 0, 0, 0];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err("the file does not start with the WebAssembly magic bytes".to_string());
    }
    if bytes[4..8] == CORE_MODULE {
        return Err(
            "it is a core WebAssembly module; plugins must be components \
             (build for wasm32-wasip2)"
                .to_string(),
        );
    }
    Ok(())
}

/// Advances the engine's epoch every `TICK` for as long as it exists.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    thread::Builder::new()
        .name("scanhost-epoch".to_string())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(TICK);
            }
        })
        .expect("cannot start the epoch thread");
}
