//! Where workloads come from. Each source keeps the store in step with
//! what it sees; it never talks to the queue: the store's events do.
//!
//! - `host`: the machine's root filesystem, scanned at start and then at
//!   an interval;
//! - `oci_layout`: OCI image layout directories, watched for images added
//!   to or removed from their `index.json`.

pub mod host;
pub mod oci_layout;
