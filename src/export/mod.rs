//! Delivery: the fan-out hands each item to every exporter that selects its
//! signal, through that exporter's own durable queue on disk, and wakes its
//! worker. Pushing never waits on a backend, so receiving is never blocked.

pub mod batch;
pub mod otlp;
pub mod queue;
pub mod retry;
pub mod transform;
pub mod worker;

pub use batch::ExportItem;

use crate::config::ExporterConfig;
use crate::model::Signal;
use crate::telemetry::{ExporterStats, Registry};
use queue::{DiskQueue, Encoded};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use worker::{Deadline, RetryPolicy, Shared, Worker};

struct Route {
    name: String,
    signals: Vec<Signal>,
    shared: Arc<Shared>,
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
    shared: Vec<Arc<Shared>>,
    deadline: Deadline,
}

impl FanOut {
    /// Opens each exporter's queue under `queue_dir` and starts its worker.
    pub fn start(
        configs: &[ExporterConfig],
        registry: &Registry,
        queue_dir: &Path,
    ) -> anyhow::Result<(FanOut, Exporters)> {
        Self::start_with(configs, registry, queue_dir, RetryPolicy::default())
    }

    /// As [`FanOut::start`], with an explicit retry policy.
    pub fn start_with(
        configs: &[ExporterConfig],
        registry: &Registry,
        queue_dir: &Path,
        retry: RetryPolicy,
    ) -> anyhow::Result<(FanOut, Exporters)> {
        let deadline: Deadline = Arc::default();
        let mut routes = Vec::new();
        let mut tasks = Vec::new();
        let mut all_shared = Vec::new();
        for config in configs {
            let stats = registry.exporter(&config.name);
            let queue = DiskQueue::open(queue_dir, &config.name, config.queue_bytes)
                .map_err(|e| anyhow::anyhow!("exporter {:?}: {e}", config.name))?;
            if !queue.is_empty() {
                tracing::info!(exporter = %config.name, items = queue.len(), "resuming delivery of what an earlier run left queued");
            }
            stats.queued.store(queue.len(), Ordering::Relaxed);
            let shared = Arc::new(Shared {
                queue: Mutex::new(queue),
                notify: Notify::new(),
                closing: Default::default(),
            });
            let client = otlp::OtlpClient::new(config)
                .map_err(|e| anyhow::anyhow!("exporter {:?}: {e}", config.name))?;
            let worker = Worker {
                name: config.name.clone(),
                client,
                shared: shared.clone(),
                transform: transform::Transform::from_config(config),
                stats: stats.clone(),
                retry,
                deadline: deadline.clone(),
            };
            tasks.push((config.name.clone(), tokio::spawn(worker.run())));
            all_shared.push(shared.clone());
            routes.push(Route {
                name: config.name.clone(),
                signals: config.signals.clone(),
                shared,
                stats,
            });
        }
        Ok((
            FanOut {
                routes: Arc::new(routes),
            },
            Exporters {
                tasks,
                shared: all_shared,
                deadline,
            },
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

    /// Queues `item` on disk for every exporter that selects its signal.
    /// A full queue drops its oldest items; a failing disk drops this item
    /// for that exporter. Both are counted and logged.
    pub fn send(&self, item: ExportItem) {
        if self.wants(item.signal()) {
            self.push(&[Encoded::from_item(&item)]);
        }
    }

    /// Queues already-encoded items, each for every exporter that selects its
    /// signal, in one disk transaction per exporter. The bytes are shared by
    /// every queue, never copied or re-encoded.
    pub fn push(&self, items: &[Encoded]) {
        let mut mine: Vec<Encoded> = Vec::with_capacity(items.len());
        for route in self.routes.iter() {
            mine.clear();
            mine.extend(
                items
                    .iter()
                    .filter(|i| route.signals.contains(&i.signal))
                    .cloned(),
            );
            if mine.is_empty() {
                continue;
            }
            let pushed = route.shared.queue().push_all(&mine);
            match pushed {
                Ok(p) => {
                    route.stats.add(&route.stats.enqueued, mine.len() as u64);
                    if p.dropped_items > 0 {
                        route
                            .stats
                            .add(&route.stats.dropped_queue_full, p.dropped_records);
                        tracing::warn!(exporter = %route.name, items = p.dropped_items, records = p.dropped_records, "exporter queue full; oldest items dropped");
                    }
                }
                Err(err) => {
                    let records: u64 = mine.iter().map(|e| e.records).sum();
                    route.stats.add(&route.stats.queue_write_errors, 1);
                    route.stats.add(&route.stats.dropped_queue_full, records);
                    tracing::error!(exporter = %route.name, error = %err, items = mine.len(), "cannot queue for this exporter; items dropped");
                }
            }
            route
                .stats
                .queued
                .store(route.shared.queue().len(), Ordering::Relaxed);
            route.shared.notify.notify_one();
        }
    }
}

impl Exporters {
    /// Lets every worker send what it holds, for at most `timeout` in all;
    /// what is left stays on disk for the next start.
    pub async fn shutdown(self, timeout: Duration) {
        let _ = self.deadline.set(Instant::now() + timeout);
        for s in &self.shared {
            s.closing.store(true, Ordering::Release);
            s.notify.notify_one();
        }
        let until = tokio::time::Instant::now() + timeout;
        for (name, mut task) in self.tasks {
            if tokio::time::timeout_at(until, &mut task).await.is_err() {
                tracing::warn!(exporter = %name, "exporter did not finish before the shutdown timeout; its queue is kept for the next start");
                task.abort();
            }
        }
    }
}
