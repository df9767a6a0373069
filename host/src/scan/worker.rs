//! The daemon's scan workers: take a workload from the queue, scan it with
//! every plugin of its kind, record the result, tell the queue.
//!
//! The store is written before the output file, and both only when the
//! queue says the result still counts: a workload removed while it was
//! scanned leaves nothing behind.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::containerd::{self, Client};
use crate::content::containerd::ContainerdContent;
use crate::content::{ContentError, Digest, OciLayout};
use crate::metrics::{Metrics, Outcome as Counted};
use crate::outputs::Outputs;
use crate::plugins::{LivePlugins, Runtime};
use crate::queue::{Attempt, Decision, Queue};
use crate::sbom::{Subject, cyclonedx};
use crate::scan::scan;
use crate::store::Store;
use crate::target::{ImageTarget, Target, host_platform};
use crate::workload::{Kind, Origin, PluginVersion, Status, Workload, WorkloadId};

/// What every worker shares.
pub struct Context {
    pub store: Arc<Store>,
    pub queue: Queue<WorkloadId>,
    pub runtime: Arc<Runtime>,
    pub plugins: Arc<LivePlugins>,
    pub outputs: Arc<Outputs>,
    pub metrics: Arc<Metrics>,
    /// The containerd images are read through, when one is configured.
    pub containerd: Option<Client>,
}

/// Runs until the queue shuts down.
pub async fn run(context: Arc<Context>) {
    while let Some(id) = context.queue.next().await {
        let context = context.clone();
        let handle = tokio::task::spawn_blocking(move || scan_one(&context, &id));
        if let Err(err) = handle.await {
            tracing::error!("a scan worker panicked: {err}");
        }
    }
}

/// The result of one attempt, before the queue has its say.
struct Attempted {
    attempt: Attempt,
    /// On success: the document and its status.
    success: Option<(Vec<u8>, Status)>,
    reason: String,
    packages: usize,
}

fn scan_one(context: &Context, id: &WorkloadId) {
    let Some(workload) = context.store.get(id) else {
        // Removed between the queue and here: nothing to record.
        context.queue.done(id, Attempt::Success);
        return;
    };
    let previous_failures = match &workload.status {
        Status::Failed { attempts, .. } => *attempts,
        _ => 0,
    };
    record(
        context,
        id,
        Status::Scanning {
            started: SystemTime::now(),
        },
    );

    let started = Instant::now();
    let result = attempt(context, &workload);
    let elapsed = started.elapsed();
    let outcome = match result.attempt {
        Attempt::Success => Counted::Success,
        Attempt::Retryable => Counted::Retryable,
        Attempt::Fatal => Counted::Fatal,
    };
    context
        .metrics
        .scan_finished(workload.kind, outcome, elapsed.as_secs_f64());

    // The name to show beside the id in the log.
    let reference = workload
        .references
        .keys()
        .next()
        .cloned()
        .unwrap_or_default();
    let decision = context.queue.done(id, result.attempt);
    let attempts = previous_failures + 1;
    let failed = |retryable, next: Option<Duration>, attempts| Status::Failed {
        reason: result.reason.clone(),
        retryable,
        attempts,
        next_attempt: next.map(|delay| SystemTime::now() + delay),
    };
    match (decision, result.success) {
        (Decision::Discarded, _) => {
            tracing::debug!(workload = %id, "result discarded: the workload was removed");
        }
        (_, Some((document, status))) => match context.store.finish(id, status, &document) {
            Ok(true) => {
                if let Err(err) = context.outputs.write(id, &document) {
                    tracing::error!(workload = %id, "{err:#}");
                }
                tracing::info!(
                    workload = %id,
                    reference,
                    duration = ?elapsed,
                    packages = result.packages,
                    "scan finished"
                );
            }
            Ok(false) => {}
            Err(err) => tracing::error!(workload = %id, "cannot store the result: {err}"),
        },
        (Decision::RetryScheduled { attempt, delay, .. }, None) => {
            context.metrics.retry_scheduled(workload.kind);
            tracing::info!(
                workload = %id,
                reference,
                attempt,
                delay = %humantime::format_duration(delay),
                reason = result.reason,
                "scan failed, retry scheduled"
            );
            record(context, id, failed(true, Some(delay), attempt));
        }
        (Decision::GaveUp { attempts }, None) => {
            tracing::warn!(
                workload = %id,
                reference,
                attempts,
                reason = result.reason,
                "scan failed, no more attempts"
            );
            record(context, id, failed(true, None, attempts));
        }
        (_, None) => {
            let retryable = matches!(result.attempt, Attempt::Retryable);
            tracing::warn!(
                workload = %id,
                reference,
                retryable,
                reason = result.reason,
                "scan failed"
            );
            record(context, id, failed(retryable, None, attempts));
        }
    }
}

fn record(context: &Context, id: &WorkloadId, status: Status) {
    if let Err(err) = context.store.set_status(id, status) {
        tracing::error!(workload = %id, "cannot store the status: {err}");
    }
}

fn attempt(context: &Context, workload: &Workload) -> Attempted {
    let failure = |attempt, reason: String| Attempted {
        attempt,
        success: None,
        reason,
        packages: 0,
    };
    let target = match target_of(workload, context.containerd.as_ref()) {
        Ok(target) => target,
        Err(err) => {
            let attempt = match err {
                ContentError::Invalid { .. } => Attempt::Fatal,
                ContentError::NotFound { .. } | ContentError::Io { .. } => Attempt::Retryable,
            };
            return failure(attempt, err.to_string());
        }
    };
    // The registry of this moment: a reload during the scan does not
    // change the versions it runs.
    let registry = context.plugins.current();
    let outcome = match scan(&context.runtime, &registry, &target) {
        Ok(outcome) => outcome,
        Err(err) => return failure(Attempt::Fatal, err.to_string()),
    };

    let reason = outcome
        .failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if outcome.retryable() {
        return failure(Attempt::Retryable, reason);
    }
    if outcome.plugins.is_empty() {
        return failure(Attempt::Fatal, reason);
    }

    // Some plugins may have failed for good while others reported: their
    // packages are kept and the failures recorded with them.
    let document = cyclonedx::document(&Subject::of(&target), &outcome);
    let document = match serde_json::to_vec_pretty(&document) {
        Ok(bytes) => bytes,
        Err(err) => return failure(Attempt::Fatal, format!("cannot encode the document: {err}")),
    };
    let status = Status::Success {
        finished: SystemTime::now(),
        duration: outcome.duration,
        packages: outcome.packages.len(),
        plugins: outcome
            .plugins
            .iter()
            .map(|p| PluginVersion {
                name: p.name.clone(),
                version: p.version.clone(),
                digest: p.digest.clone(),
            })
            .collect(),
        failed_plugins: outcome.failures.iter().map(|f| f.plugin.clone()).collect(),
    };
    Attempted {
        attempt: Attempt::Success,
        packages: outcome.packages.len(),
        success: Some((document, status)),
        reason,
    }
}

/// How to read `workload`: from the origin of its first reference.
fn target_of(workload: &Workload, containerd: Option<&Client>) -> Result<Target, ContentError> {
    // The names the document gives the image: a containerd image is named
    // as containerd names it, without the namespace.
    let mut references: Vec<String> = workload
        .references
        .keys()
        .map(|r| match containerd::parse_reference(r) {
            Some((_, name)) => name.to_owned(),
            None => r.clone(),
        })
        .collect();
    references.sort();
    references.dedup();
    let origin = workload
        .references
        .values()
        .next()
        .ok_or_else(|| ContentError::invalid(&workload.id, "the workload has no reference"))?;
    match origin {
        Origin::Host { root } => Ok(Target::Host { root: root.clone() }),
        Origin::OciLayout { path, digest } => {
            let layout = OciLayout::open(path).map_err(|err| ContentError::Io {
                digest: digest.clone(),
                source: std::io::Error::other(err.to_string()),
            })?;
            let digest = Digest::parse(digest)
                .map_err(|err| ContentError::invalid(digest, err.to_string()))?;
            let image =
                ImageTarget::identify(Arc::new(layout), digest, references, host_platform())?;
            Ok(Target::Image(image))
        }
        Origin::Containerd { namespace, digest } => {
            let Some(client) = containerd else {
                return Err(ContentError::invalid(
                    digest,
                    "no containerd source is configured to read this image",
                ));
            };
            let content = ContainerdContent::new(client.clone(), namespace);
            let digest = Digest::parse(digest)
                .map_err(|err| ContentError::invalid(digest, err.to_string()))?;
            let image =
                ImageTarget::identify(Arc::new(content), digest, references, host_platform())?;
            Ok(Target::Image(image))
        }
    }
}

/// The retry policy of a kind: images are retried, the host is not.
pub fn retry_of(kind: Kind) -> crate::queue::Retry {
    match kind {
        Kind::ContainerImage => crate::queue::Retry::Backoff,
        Kind::Host => crate::queue::Retry::Never,
    }
}
