//! One task per exporter: take the oldest items from its disk queue, apply
//! the exporter's transform, join them into one request per signal, send, and
//! retry what the OTLP spec calls retryable. Items leave the queue only once
//! the backend took them (or refused them for good), so an outage or a crash
//! loses nothing. Each exporter has its own queue and task, so a slow or dead
//! backend delays no other.

use super::batch::{self, ExportItem};
use super::otlp::{OtlpClient, SendResult};
use super::queue::{DiskQueue, Encoded};
use super::retry::{self, Verdict};
use super::transform::Transform;
use crate::model::Signal;
use crate::telemetry::ExporterStats;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Most queued items joined into one send.
pub const MAX_BATCH_ITEMS: usize = 256;
/// Most bytes (before any compression) joined into one send.
pub const MAX_BATCH_BYTES: u64 = 4 * 1024 * 1024;

/// How hard to try before dropping a batch.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max_delay: Duration,
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(24 * 3600),
        }
    }
}

/// Set once at shutdown: workers send what they can until this instant and
/// leave the rest on disk for the next start.
pub type Deadline = Arc<OnceLock<Instant>>;

/// The queue shared by the fan-out (which pushes) and the worker (which sends).
pub struct Shared {
    pub queue: Mutex<DiskQueue>,
    pub notify: Notify,
    pub closing: AtomicBool,
}

impl Shared {
    pub fn queue(&self) -> std::sync::MutexGuard<'_, DiskQueue> {
        // A poisoned lock means a panic mid-call; the queue itself is on disk
        // and still consistent.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Worker {
    pub name: String,
    pub client: OtlpClient,
    pub shared: Arc<Shared>,
    pub transform: Transform,
    pub stats: Arc<ExporterStats>,
    pub retry: RetryPolicy,
    pub deadline: Deadline,
}

/// How a batch ended.
enum Outcome {
    Done,
    /// Shutting down with the batch unsent: it stays queued.
    Interrupted,
    /// Refused for its size; its items should go in smaller requests.
    TooLarge,
}

impl Worker {
    /// Runs until shutdown, when the queue is empty or the deadline passed.
    pub async fn run(self) {
        // Exporters without a transform that speak OTLP/HTTP protobuf send
        // the queued bytes as they are: no decoding, no re-encoding.
        let as_is = self.transform.is_identity() && self.client.sends_protobuf_bytes();
        loop {
            let peeked = self
                .with_queue(|q| q.peek(MAX_BATCH_ITEMS, MAX_BATCH_BYTES))
                .await;
            let rows = match peeked {
                Some(Ok(rows)) => rows,
                Some(Err(e)) => {
                    tracing::error!(exporter = %self.name, error = %e, "cannot read the exporter queue");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                None => return,
            };
            if rows.is_empty() {
                if self.shared.closing.load(Ordering::Acquire) {
                    return;
                }
                let _ =
                    tokio::time::timeout(Duration::from_millis(500), self.shared.notify.notified())
                        .await;
                continue;
            }
            if self.past_deadline() {
                return;
            }
            let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
            let items: Vec<Encoded> = rows.into_iter().map(|(_, e)| e).collect();
            if let Outcome::Interrupted = self.deliver_items(&items, as_is).await {
                return;
            }
            let acked = self.with_queue(move |q| (q.ack(&ids), q.len())).await;
            let Some((acked, len)) = acked else { return };
            if let Err(e) = acked {
                tracing::error!(exporter = %self.name, error = %e, "cannot remove sent items from the queue; they may be sent again");
            }
            self.stats.queued.store(len, Ordering::Relaxed);
        }
    }

    /// Runs a queue operation off the async workers: SQLite commits (and
    /// the occasional fsync) must not hold up receiving. `None` when the
    /// runtime is shutting down.
    async fn with_queue<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DiskQueue) -> T + Send + 'static,
    ) -> Option<T> {
        let shared = self.shared.clone();
        match tokio::task::spawn_blocking(move || f(&mut shared.queue())).await {
            Ok(v) => Some(v),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => None,
        }
    }

    fn past_deadline(&self) -> bool {
        self.deadline.get().is_some_and(|d| Instant::now() >= *d)
    }

    /// Delivers queued items: one request per signal, or smaller ones when
    /// the backend refuses the size (halving until it takes them).
    async fn deliver_items(&self, items: &[Encoded], as_is: bool) -> Outcome {
        let mut groups: Vec<(Signal, Vec<Encoded>)> = Vec::new();
        for item in items {
            let key = match item.signal {
                Signal::NativeTraces => Signal::Traces,
                s => s,
            };
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, g)) => g.push(item.clone()),
                None => groups.push((key, vec![item.clone()])),
            }
        }
        for (_, group) in groups {
            let mut work: Vec<&[Encoded]> = vec![&group];
            while let Some(part) = work.pop() {
                let batches = if as_is {
                    batch::concat(part)
                } else {
                    let items: Vec<ExportItem> = part
                        .iter()
                        .filter_map(Encoded::to_item)
                        .map(|i| self.transform.apply(i))
                        .collect();
                    batch::join(&items)
                };
                for (batch, records) in batches {
                    match self.deliver(batch, records, part.len() > 1).await {
                        Outcome::Done => {}
                        Outcome::Interrupted => return Outcome::Interrupted,
                        Outcome::TooLarge => {
                            let (first, second) = part.split_at(part.len() / 2);
                            work.push(second);
                            work.push(first);
                        }
                    }
                }
            }
        }
        Outcome::Done
    }

    async fn deliver(&self, batch: batch::Batch, records: u64, splittable: bool) -> Outcome {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            match self.client.send(&batch).await {
                SendResult::Ok { rejected, message } => {
                    self.stats.add(&self.stats.sent_requests, 1);
                    self.stats.add(&self.stats.sent_items, records);
                    if rejected > 0 {
                        self.stats
                            .add(&self.stats.partial_rejected, rejected as u64);
                        tracing::warn!(exporter = %self.name, rejected, %message, "backend accepted the batch only in part");
                    }
                    return Outcome::Done;
                }
                SendResult::Err {
                    verdict: Verdict::TooLarge,
                    message,
                } if splittable => {
                    tracing::info!(exporter = %self.name, records, %message, "backend refused the request's size; sending it in smaller parts");
                    return Outcome::TooLarge;
                }
                SendResult::Err {
                    verdict: Verdict::Final | Verdict::TooLarge,
                    message,
                } => {
                    self.drop_batch(records, &message, "backend refused the batch; not retrying");
                    return Outcome::Done;
                }
                SendResult::Err {
                    verdict: Verdict::Retry(after),
                    message,
                } => {
                    let delay = after.unwrap_or_else(|| {
                        retry::backoff(attempt, self.retry.initial, self.retry.max_delay)
                    });
                    attempt += 1;
                    if started.elapsed() + delay > self.retry.max_elapsed {
                        self.drop_batch(records, &message, "giving up after retrying for too long");
                        return Outcome::Done;
                    }
                    if let Some(d) = self.deadline.get() {
                        if Instant::now() + delay > *d {
                            tracing::info!(exporter = %self.name, records, "backend unavailable at shutdown; the batch stays queued for the next start");
                            return Outcome::Interrupted;
                        }
                    }
                    self.stats.add(&self.stats.retries, 1);
                    tracing::debug!(exporter = %self.name, %message, ?delay, "retrying");
                    if attempt == 1 || attempt.is_multiple_of(10) {
                        tracing::warn!(exporter = %self.name, %message, ?delay, attempt, "export failed; retrying");
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn drop_batch(&self, records: u64, message: &str, why: &str) {
        self.stats.add(&self.stats.failed_requests, 1);
        self.stats.add(&self.stats.dropped_items, records);
        tracing::warn!(exporter = %self.name, records, error = %message, "{why}; batch dropped");
    }
}
