//! scanhost keeps a software bill of materials for every container image
//! on a machine and for the machine itself.
//!
//! The host owns what must be correct and fast; the scanners are
//! WebAssembly components behind the WIT contract in `wit/`, run in a
//! sandbox. Data flows one way:
//!
//! ```text
//! target -> scan (every plugin of its kind, in the plugin runtime)
//!        -> merged outcome -> sbom document
//! ```
//!
//! - [`plugins`]: the runtime that runs components and the loaded set;
//! - [`target`]: what can be scanned;
//! - [`scan`]: one scan of one target by all the plugins for it;
//! - [`sbom`]: documents made from a scan's outcome.

pub mod plugins;
pub mod sbom;
pub mod scan;
pub mod target;
