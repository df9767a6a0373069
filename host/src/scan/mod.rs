//! Scanning: one scan of one target by every plugin for its kind, and the
//! daemon's workers that run scans from the queue (`worker`).
//!
//! Each plugin runs in its own instance; their reports are merged into one
//! inventory: the union of the packages, deduplicated by purl (the first
//! plugin, by name, wins), and the operating system from the first plugin
//! that reports one.

pub mod worker;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::plugins::{OsInfo, Package, Plugin, Registry, Runtime, ScanFailure};
use crate::target::Target;

/// What one scan of a target produced.
#[derive(Debug)]
pub struct Outcome {
    pub os: Option<OsInfo>,
    pub packages: Vec<Package>,
    /// The plugins that reported, in the order their reports were merged.
    pub plugins: Vec<Arc<Plugin>>,
    /// The plugins that failed.
    pub failures: Vec<ScanFailure>,
    pub duration: Duration,
}

impl Outcome {
    /// Whether a later attempt could succeed: some failure is retryable.
    pub fn retryable(&self) -> bool {
        self.failures.iter().any(ScanFailure::retryable)
    }
}

/// Why nothing could scan a target.
#[derive(Debug, thiserror::Error)]
#[error("no loaded plugin scans {} targets", kind_name(*kind))]
pub struct NoPlugin {
    pub kind: crate::plugins::TargetKind,
}

fn kind_name(kind: crate::plugins::TargetKind) -> &'static str {
    match kind {
        crate::plugins::TargetKind::Host => "host",
        crate::plugins::TargetKind::ContainerImage => "container-image",
    }
}

/// Scans `target` with every plugin of its kind, one after the other.
pub fn scan(runtime: &Runtime, registry: &Registry, target: &Target) -> Result<Outcome, NoPlugin> {
    let plugins = registry.for_kind(target.kind());
    if plugins.is_empty() {
        return Err(NoPlugin {
            kind: target.kind(),
        });
    }

    let started = Instant::now();
    let mut outcome = Outcome {
        os: None,
        packages: Vec::new(),
        plugins: Vec::new(),
        failures: Vec::new(),
        duration: Duration::ZERO,
    };
    let mut seen = HashSet::new();
    for plugin in plugins {
        match runtime.scan(&plugin, target) {
            Ok(report) => {
                if outcome.os.is_none() {
                    outcome.os = report.os;
                }
                for package in report.packages {
                    if seen.insert(package.purl.clone()) {
                        outcome.packages.push(package);
                    }
                }
                outcome.plugins.push(plugin);
            }
            Err(failure) => {
                // The caller decides how loud this is: a failure that will
                // be retried is not a warning.
                tracing::debug!(
                    plugin = failure.plugin,
                    retryable = failure.retryable(),
                    "plugin failed: {}",
                    failure.reason
                );
                outcome.failures.push(failure);
            }
        }
    }
    outcome.duration = started.elapsed();
    Ok(outcome)
}
