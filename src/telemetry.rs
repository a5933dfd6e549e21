//! ccotel's own counters and logging. Every drop is counted here so that an
//! operator can tell "nothing happened" from "everything was thrown away".

use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Sets up `tracing` output on stderr, filtered by `RUST_LOG` (default info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CCOTEL_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

macro_rules! counters {
    ($name:ident { $($field:ident),* $(,)? }) => {
        /// Monotonic counters, readable at `/healthz`.
        #[derive(Debug, Default)]
        pub struct $name { $(pub $field: AtomicU64,)* }

        impl $name {
            /// All counters by name.
            pub fn snapshot(&self) -> Map<String, Value> {
                let mut m = Map::new();
                $(m.insert(stringify!($field).to_string(), Value::from(self.$field.load(Ordering::Relaxed)));)*
                m
            }
        }
    };
}

counters!(Stats {
    hook_events,
    log_requests,
    log_records,
    metric_requests,
    metric_points,
    trace_requests,
    native_spans,
    rejected_records,
    bad_requests,
    unauthorized,
    refused_full,
    waited_full,
    merged_spans,
    store_errors,
    sessions_in_memory,
    sessions_evicted,
});

counters!(ExporterStats {
    enqueued,
    queued,
    queue_write_errors,
    dropped_queue_full,
    sent_requests,
    sent_items,
    failed_requests,
    dropped_items,
    retries,
    partial_rejected,
});

impl Stats {
    pub fn inc(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

impl ExporterStats {
    pub fn add(&self, c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// The counters of the whole process, with one entry per exporter.
#[derive(Debug, Default)]
pub struct Registry {
    pub stats: Arc<Stats>,
    exporters: Mutex<Vec<(String, Arc<ExporterStats>)>>,
}

impl Registry {
    pub fn exporter(&self, name: &str) -> Arc<ExporterStats> {
        let s = Arc::new(ExporterStats::default());
        if let Ok(mut list) = self.exporters.lock() {
            list.push((name.to_string(), s.clone()));
        }
        s
    }

    /// Names of the per-exporter counters.
    pub fn exporter_counter_names(&self) -> Vec<String> {
        ExporterStats::default()
            .snapshot()
            .keys()
            .cloned()
            .collect()
    }

    /// Each exporter's counters.
    pub fn exporter_snapshots(&self) -> Vec<(String, Map<String, Value>)> {
        self.exporters
            .lock()
            .map(|l| l.iter().map(|(n, s)| (n.clone(), s.snapshot())).collect())
            .unwrap_or_default()
    }

    /// Everything as one JSON object.
    pub fn snapshot(&self) -> Value {
        let mut exporters = Map::new();
        if let Ok(list) = self.exporters.lock() {
            for (name, s) in list.iter() {
                exporters.insert(name.clone(), Value::Object(s.snapshot()));
            }
        }
        let mut root = Map::new();
        root.insert("status".into(), Value::from("ok"));
        root.insert("receive".into(), Value::Object(self.stats.snapshot()));
        root.insert("exporters".into(), Value::Object(exporters));
        Value::Object(root)
    }
}

/// Counters that are levels, not totals.
const GAUGES: &[&str] = &["queued", "sessions_in_memory", "sessions_evicted"];

/// Whether the counter `name` is a level (a gauge) rather than a total.
pub fn is_gauge(name: &str) -> bool {
    GAUGES.contains(&name)
}

impl Registry {
    /// The counters in the Prometheus text format, for `GET /metrics`.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for (name, v) in self.stats.snapshot() {
            if is_gauge(&name) {
                let _ = writeln!(out, "# TYPE ccotel_{name} gauge");
                let _ = writeln!(out, "ccotel_{name} {v}");
            } else {
                let _ = writeln!(out, "# TYPE ccotel_{name}_total counter");
                let _ = writeln!(out, "ccotel_{name}_total {v}");
            }
        }
        let list: Vec<(String, Map<String, Value>)> = self
            .exporters
            .lock()
            .map(|l| l.iter().map(|(n, s)| (n.clone(), s.snapshot())).collect())
            .unwrap_or_default();
        if let Some((_, first)) = list.first() {
            for key in first.keys() {
                let gauge = is_gauge(key);
                let metric = if gauge {
                    format!("ccotel_exporter_{key}")
                } else {
                    format!("ccotel_exporter_{key}_total")
                };
                let kind = if gauge { "gauge" } else { "counter" };
                let _ = writeln!(out, "# TYPE {metric} {kind}");
                for (name, snap) in &list {
                    let label = name.replace('\\', "\\\\").replace('"', "\\\"");
                    let _ = writeln!(out, "{metric}{{exporter=\"{label}\"}} {}", snap[key]);
                }
            }
        }
        out
    }
}
