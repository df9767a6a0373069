//! scanhost keeps a software bill of materials for every container image
//! on a machine and for the machine itself.
//!
//! The host owns what must be correct and fast; the scanners are
//! WebAssembly components behind the WIT contract in `wit/`, run in a
//! sandbox. In the daemon, data flows one way:
//!
//! ```text
//! sources -> store -> queue -> scan workers -> plugins -> store -> outputs
//! ```
//!
//! - [`sources`]: the host root, OCI layouts and containerd, kept in step
//!   with the store;
//! - [`store`]: workloads and their SBOM status, persisted ([`workload`]
//!   has the types);
//! - [`queue`]: the retrying, deduplicating scan queue;
//! - [`scan`]: one scan of one target by all the plugins for it, and the
//!   workers that run scans from the queue;
//! - [`plugins`]: the runtime that runs components and the loaded set;
//! - [`target`]: what can be scanned, and images identified;
//! - [`content`]: image blobs and verified layer streams;
//! - [`containerd`]: the client of containerd's gRPC API;
//! - [`sbom`]: documents made from a scan's outcome; [`outputs`] writes
//!   them to disk;
//! - [`api`] and [`metrics`]: what an operator sees;
//! - [`config`] and [`daemon`]: `scanhost run`.

pub mod api;
pub mod config;
pub mod containerd;
pub mod content;
pub mod daemon;
pub mod metrics;
pub mod outputs;
pub mod plugin_cache;
pub mod plugins;
pub mod queue;
pub mod sbom;
pub mod scan;
pub mod sources;
pub mod store;
pub mod target;
pub mod workload;
