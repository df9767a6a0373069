//! The HTTP API: workloads and their documents, the queue, the plugins,
//! health and Prometheus metrics. Read-only.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /v1/workloads` | every workload with its status |
//! | `GET /v1/workloads/{id}/sbom` | the workload's CycloneDX document |
//! | `GET /v1/queue` | queued, running and pending items |
//! | `GET /v1/plugins` | the plugins serving, and the files refused |
//! | `GET /healthz` | `ok` |
//! | `GET /metrics` | Prometheus text format |

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::metrics::Metrics;
use crate::plugins::{LivePlugins, Refusal, TargetKind};
use crate::queue::Queue;
use crate::store::Store;
use crate::workload::{Kind, Status, Workload, WorkloadId};

/// What the handlers read.
pub struct Api {
    pub store: Arc<Store>,
    pub queue: Queue<WorkloadId>,
    pub plugins: Arc<LivePlugins>,
    pub metrics: Arc<Metrics>,
}

pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/v1/workloads", get(workloads))
        .route("/v1/workloads/{id}/sbom", get(sbom))
        .route("/v1/queue", get(queue))
        .route("/v1/plugins", get(plugins))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(api)
}

/// One row of `GET /v1/workloads`.
#[derive(Serialize, serde::Deserialize, Debug, Clone)]
pub struct WorkloadView {
    pub id: String,
    pub kind: Kind,
    pub references: Vec<String>,
    pub status: String,
    pub attempts: u32,
    /// RFC 3339, when a retry is scheduled.
    pub next_attempt: Option<String>,
    pub last_error: Option<String>,
    pub retryable: Option<bool>,
    /// Seconds the last successful scan took.
    pub duration: Option<f64>,
    pub packages: Option<usize>,
    /// RFC 3339, when the last successful scan finished.
    pub scanned_at: Option<String>,
    /// Plugins that failed for good in the last successful scan, whose
    /// packages the document lacks.
    #[serde(default)]
    pub failed_plugins: Vec<String>,
}

fn rfc3339(time: SystemTime) -> String {
    // humantime writes years up to 9999 only, and panics beyond.
    const YEAR_10000: std::time::Duration = std::time::Duration::from_secs(253_402_300_800);
    let time = time.min(SystemTime::UNIX_EPOCH + YEAR_10000 - std::time::Duration::from_secs(1));
    humantime::format_rfc3339_seconds(time).to_string()
}

impl From<Workload> for WorkloadView {
    fn from(w: Workload) -> Self {
        let mut view = WorkloadView {
            id: w.id.0,
            kind: w.kind,
            references: w.references.into_keys().collect(),
            status: w.status.name().to_string(),
            attempts: 0,
            next_attempt: None,
            last_error: None,
            retryable: None,
            duration: None,
            packages: None,
            scanned_at: None,
            failed_plugins: Vec::new(),
        };
        match w.status {
            Status::Pending | Status::Scanning { .. } => {}
            Status::Success {
                finished,
                duration,
                packages,
                failed_plugins,
                ..
            } => {
                view.failed_plugins = failed_plugins;
                view.duration = Some(duration.as_secs_f64());
                view.packages = Some(packages);
                view.scanned_at = Some(rfc3339(finished));
            }
            Status::Failed {
                reason,
                retryable,
                attempts,
                next_attempt,
            } => {
                view.attempts = attempts;
                view.next_attempt = next_attempt.map(rfc3339);
                view.last_error = Some(reason);
                view.retryable = Some(retryable);
            }
        }
        view
    }
}

async fn workloads(State(api): State<Arc<Api>>) -> Json<Vec<WorkloadView>> {
    Json(
        api.store
            .list()
            .into_iter()
            .map(WorkloadView::from)
            .collect(),
    )
}

async fn sbom(State(api): State<Arc<Api>>, Path(id): Path<String>) -> Response {
    let id = WorkloadId(id);
    let store = api.store.clone();
    let lookup = tokio::task::spawn_blocking(move || store.document(&id)).await;
    match lookup {
        Ok(Ok(Some(document))) => (
            [(header::CONTENT_TYPE, "application/vnd.cyclonedx+json")],
            document,
        )
            .into_response(),
        Ok(Ok(None)) => (StatusCode::NOT_FOUND, "no document for this workload\n").into_response(),
        Ok(Err(err)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")).into_response(),
    }
}

#[derive(Serialize)]
struct QueueView {
    queued: Vec<String>,
    processing: Vec<String>,
    pending: Vec<PendingView>,
}

#[derive(Serialize)]
struct PendingView {
    id: String,
    failures: u32,
    /// Seconds until the retry is due.
    due_in: f64,
}

async fn queue(State(api): State<Arc<Api>>) -> Json<QueueView> {
    let snapshot = api.queue.snapshot();
    let now = tokio::time::Instant::now();
    Json(QueueView {
        queued: snapshot.queued.into_iter().map(|id| id.0).collect(),
        processing: snapshot.processing.into_iter().map(|id| id.0).collect(),
        pending: snapshot
            .pending
            .into_iter()
            .map(|(id, due, failures)| PendingView {
                id: id.0,
                failures,
                due_in: due.saturating_duration_since(now).as_secs_f64(),
            })
            .collect(),
    })
}

#[derive(Serialize)]
struct PluginView {
    name: String,
    version: String,
    digest: String,
    origin: String,
    contract: String,
    kinds: Vec<&'static str>,
}

#[derive(Serialize)]
struct PluginsView {
    plugins: Vec<PluginView>,
    /// Files of the plugin directory whose last version was refused.
    refused: Vec<Refusal>,
}

async fn plugins(State(api): State<Arc<Api>>) -> Json<PluginsView> {
    let registry = api.plugins.current();
    let plugins = registry
        .plugins()
        .iter()
        .map(|p| PluginView {
            name: p.name.clone(),
            version: p.version.clone(),
            digest: p.digest.clone(),
            origin: p.origin.to_string(),
            contract: p.contract.to_string(),
            kinds: p
                .kinds
                .iter()
                .map(|k| match k {
                    TargetKind::Host => "host",
                    TargetKind::ContainerImage => "container-image",
                })
                .collect(),
        })
        .collect();
    Json(PluginsView {
        plugins,
        refused: api.plugins.refusals(),
    })
}

async fn metrics(State(api): State<Arc<Api>>) -> Response {
    let workloads = api.store.list();
    let mut by_status: Vec<(&str, usize)> = Vec::new();
    for w in &workloads {
        let name = w.status.name();
        match by_status.iter_mut().find(|(s, _)| *s == name) {
            Some((_, n)) => *n += 1,
            None => by_status.push((name, 1)),
        }
    }
    let text = api
        .metrics
        .encode(api.queue.len(), api.queue.in_flight(), &by_status);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
