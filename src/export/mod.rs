//! Delivery: the fan-out hands each item to every exporter that selects its
//! signal, through that exporter's own bounded queue.

pub mod batch;
pub mod otlp;
pub mod retry;
pub mod worker;

pub use batch::ExportItem;

use crate::config::{ExporterConfig, ExporterKind};
use crate::model::Signal;
use crate::telemetry::{ExporterStats, Registry};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use worker::{Deadline, RetryPolicy, Worker};

struct Route {
    name: String,
    signals: Vec<Signal>,
    tx: mpsc::Sender<ExportItem>,
    stats: Arc<ExporterStats>,
}

/// Hands items to exporters without waiting on any of them.
#[derive(Clone)]
pub struct FanOut {
    routes: Arc<Vec<Route>>,
}

/// The running exporter tasks, for shutdown.
pub struct Exporters {
    tasks: Vec<(String, JoinHandle<()>)>,
    deadline: Deadline,
}

impl FanOut {
    /// Starts one worker per configured exporter.
    pub fn start(
        configs: &[ExporterConfig],
        registry: &Registry,
    ) -> anyhow::Result<(FanOut, Exporters)> {
        Self::start_with(configs, registry, RetryPolicy::default())
    }

    /// As [`FanOut::start`], with an explicit retry policy.
    pub fn start_with(
        configs: &[ExporterConfig],
        registry: &Registry,
        retry: RetryPolicy,
    ) -> anyhow::Result<(FanOut, Exporters)> {
        let deadline: Deadline = Arc::default();
        let mut routes = Vec::new();
        let mut tasks = Vec::new();
        for config in configs {
            let stats = registry.exporter(&config.name);
            let (tx, rx) = mpsc::channel(config.queue_items);
            let client = match config.kind {
                ExporterKind::Otlp => otlp::OtlpClient::new(config)
                    .map_err(|e| anyhow::anyhow!("exporter {:?}: {e}", config.name))?,
            };
            let worker = Worker {
                name: config.name.clone(),
                client,
                rx,
                stats: stats.clone(),
                retry,
                deadline: deadline.clone(),
            };
            tasks.push((config.name.clone(), tokio::spawn(worker.run())));
            routes.push(Route {
                name: config.name.clone(),
                signals: config.signals.clone(),
                tx,
                stats,
            });
        }
        Ok((
            FanOut {
                routes: Arc::new(routes),
            },
            Exporters { tasks, deadline },
        ))
    }

    /// A fan-out with no exporters (the store is then the only destination).
    pub fn empty() -> FanOut {
        FanOut {
            routes: Arc::new(Vec::new()),
        }
    }

    /// Whether any exporter wants this signal; lets callers skip work.
    pub fn wants(&self, signal: Signal) -> bool {
        self.routes.iter().any(|r| r.signals.contains(&signal))
    }

    /// Queues `item` for every exporter that selects its signal. A full queue
    /// drops the item for that exporter only, and counts it.
    pub fn send(&self, item: ExportItem) {
        let signal = item.signal();
        for route in self.routes.iter().filter(|r| r.signals.contains(&signal)) {
            match route.tx.try_send(item.clone()) {
                Ok(()) => route.stats.add(&route.stats.enqueued, 1),
                Err(_) => {
                    route
                        .stats
                        .add(&route.stats.dropped_queue_full, item.records());
                    tracing::warn!(exporter = %route.name, signal = signal.as_str(), "exporter queue full; item dropped for this exporter");
                }
            }
        }
    }
}

impl Exporters {
    /// Lets every worker send what it holds, for at most `timeout` in all. The
    /// fan-out (every clone of it) must be dropped first so the queues close.
    pub async fn shutdown(self, timeout: Duration) {
        let _ = self.deadline.set(Instant::now() + timeout);
        let until = tokio::time::Instant::now() + timeout;
        for (name, mut task) in self.tasks {
            if tokio::time::timeout_at(until, &mut task).await.is_err() {
                tracing::warn!(exporter = %name, "exporter did not finish before the shutdown timeout");
                task.abort();
            }
        }
    }
}
