//! Workloads: the things scanhost keeps an SBOM for, and their status.
//!
//! A container image is identified by its image id (the digest of its
//! config), as container runtimes identify it, and carries every reference
//! it is known by, each with the place it can be read from. The host is
//! one workload. These types are stored, served by the API and exchanged
//! between the sources, the store and the scan workers.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// The id of the host workload.
pub const HOST_ID: &str = "host";

/// A workload's id: an image id (`sha256:...`) or [`HOST_ID`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkloadId(pub String);

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Host,
    ContainerImage,
}

/// Where a reference of a workload can be read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Origin {
    /// A root filesystem.
    Host { root: PathBuf },
    /// An image listed in an OCI layout's `index.json` with this digest.
    OciLayout { path: PathBuf, digest: String },
    /// An image of a containerd namespace whose target has this digest.
    Containerd { namespace: String, digest: String },
}

/// A plugin that produced a result, as recorded with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginVersion {
    pub name: String,
    pub version: String,
    /// `sha256:` digest of the component.
    pub digest: String,
}

/// Where a workload's SBOM stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Status {
    /// Known, not scanned yet.
    Pending,
    /// A scan is running.
    Scanning { started: SystemTime },
    /// The last scan succeeded; its document is in the store.
    Success {
        finished: SystemTime,
        duration: Duration,
        packages: usize,
        plugins: Vec<PluginVersion>,
        /// Plugins that failed for good while others succeeded.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failed_plugins: Vec<String>,
    },
    /// The last scan failed.
    Failed {
        reason: String,
        retryable: bool,
        /// Consecutive failed attempts.
        attempts: u32,
        /// When the next attempt is due; none when none is scheduled.
        next_attempt: Option<SystemTime>,
    },
}

impl Status {
    pub fn name(&self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Scanning { .. } => "scanning",
            Status::Success { .. } => "success",
            Status::Failed { .. } => "failed",
        }
    }
}

/// A workload and its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub id: WorkloadId,
    pub kind: Kind,
    /// Every name the workload is known by, with where to read it. Never
    /// empty: a workload whose last reference goes is removed.
    pub references: BTreeMap<String, Origin>,
    pub status: Status,
}
