//! Scanner plugins: the sandboxed runtime and the set of loaded plugins.
//!
//! - `runtime`: the wasmtime engine, loading and validating components,
//!   running one scan under a deadline and a memory cap;
//! - `registry`: which plugins are loaded (the shipped ones, replaced or
//!   joined by those of the plugin directory);
//! - `reload`: the plugins a running agent serves, swapped as the plugin
//!   directory changes;
//! - `bindings`, `state`, `log_stream`: the host's half of the WIT
//!   contract and the per-scan sandbox state;
//! - `cache`: compiled components kept on disk across starts;
//! - `contract`: which contract versions this host runs.

mod bindings;
mod cache;
mod contract;
mod log_stream;
mod registry;
mod reload;
mod runtime;
mod state;

pub use bindings::{CONTRACT_VERSION, OsInfo, Package, Report, TargetKind};
pub use cache::Compiled;
pub use contract::ContractError;
pub use registry::{Registry, RegistryError, load_file};
pub use reload::{LivePlugins, Refusal, changed, watch};
pub use runtime::{FailureKind, Limits, LoadError, Origin, Plugin, Runtime, ScanFailure};
