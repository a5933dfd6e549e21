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
    heap_trims,
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
    /// Sets a level (one of the gauges).
    pub fn set(&self, c: &AtomicU64, n: u64) {
        c.store(n, Ordering::Relaxed);
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

/// The Prometheus name and type of the counter `key` under `prefix`: a
/// total gets the `_total` suffix, a level does not.
fn prometheus_metric(prefix: &str, key: &str) -> (String, &'static str) {
    if is_gauge(key) {
        (format!("{prefix}{key}"), "gauge")
    } else {
        (format!("{prefix}{key}_total"), "counter")
    }
}

impl Registry {
    /// The counters in the Prometheus text format, for `GET /metrics`.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for (name, v) in self.stats.snapshot() {
            let (metric, kind) = prometheus_metric("ccotel_", &name);
            let _ = writeln!(out, "# TYPE {metric} {kind}");
            let _ = writeln!(out, "{metric} {v}");
        }
        let list: Vec<(String, Map<String, Value>)> = self
            .exporters
            .lock()
            .map(|l| l.iter().map(|(n, s)| (n.clone(), s.snapshot())).collect())
            .unwrap_or_default();
        if let Some((_, first)) = list.first() {
            for key in first.keys() {
                let (metric, kind) = prometheus_metric("ccotel_exporter_", key);
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
