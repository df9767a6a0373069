//! Prometheus metrics of the daemon.
//!
//! Counters and the duration histogram are updated as scans finish; the
//! gauges (queue depth, scans in flight, workloads by status) are read from
//! the queue and the store when the metrics are scraped, so they cannot
//! drift from what the API shows.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::workload::Kind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScanLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

/// How a scan ended, as counted.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Success,
    Retryable,
    Fatal,
}

pub struct Metrics {
    registry: Registry,
    scans: Family<ScanLabels, Counter>,
    retries: Family<KindLabel, Counter>,
    durations: Family<KindLabel, Histogram>,
    queue_depth: Gauge,
    in_flight: Gauge,
    workloads: Family<StatusLabel, Gauge>,
}

fn kind_name(kind: Kind) -> String {
    match kind {
        Kind::Host => "host",
        Kind::ContainerImage => "container-image",
    }
    .to_string()
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("scanhost");
        let scans = Family::<ScanLabels, Counter>::default();
        registry.register(
            "scans",
            "Scans finished, by kind and outcome",
            scans.clone(),
        );
        let retries = Family::<KindLabel, Counter>::default();
        registry.register("retries", "Retries scheduled", retries.clone());
        let durations = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 16))
        });
        registry.register(
            "scan_duration_seconds",
            "Duration of scans",
            durations.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Items queued or waiting for a retry",
            queue_depth.clone(),
        );
        let in_flight = Gauge::default();
        registry.register("scans_in_flight", "Scans running", in_flight.clone());
        let workloads = Family::<StatusLabel, Gauge>::default();
        registry.register("workloads", "Workloads by status", workloads.clone());
        Self {
            registry,
            scans,
            retries,
            durations,
            queue_depth,
            in_flight,
            workloads,
        }
    }
}

impl Metrics {
    pub fn scan_finished(&self, kind: Kind, outcome: Outcome, seconds: f64) {
        let outcome = match outcome {
            Outcome::Success => "success",
            Outcome::Retryable => "retryable",
            Outcome::Fatal => "fatal",
        };
        self.scans
            .get_or_create(&ScanLabels {
                kind: kind_name(kind),
                outcome: outcome.to_string(),
            })
            .inc();
        self.durations
            .get_or_create(&KindLabel {
                kind: kind_name(kind),
            })
            .observe(seconds);
    }

    pub fn retry_scheduled(&self, kind: Kind) {
        self.retries
            .get_or_create(&KindLabel {
                kind: kind_name(kind),
            })
            .inc();
    }

    /// The text exposition, with the gauges set to the values given.
    pub fn encode(
        &self,
        queue_depth: usize,
        in_flight: usize,
        by_status: &[(&str, usize)],
    ) -> String {
        self.queue_depth.set(queue_depth as i64);
        self.in_flight.set(in_flight as i64);
        for status in ["pending", "scanning", "success", "failed"] {
            let count = by_status
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            self.workloads
                .get_or_create(&StatusLabel {
                    status: status.to_string(),
                })
                .set(count as i64);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
