//! One task per exporter: take what is queued, join it into one request per
//! signal, send, and retry what the OTLP spec calls retryable. Each exporter
//! has its own queue and task, so a slow or dead backend delays no other.

use super::batch::{self, ExportItem};
use super::otlp::{OtlpClient, SendResult};
use super::retry::{self, Verdict};
use crate::telemetry::ExporterStats;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Most items joined into one send.
pub const MAX_BATCH_ITEMS: usize = 256;

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
            max_elapsed: Duration::from_secs(300),
        }
    }
}

/// Set once at shutdown: retries stop and the queue is sent once more until
/// this instant.
pub type Deadline = Arc<OnceLock<Instant>>;

pub struct Worker {
    pub name: String,
    pub client: OtlpClient,
    pub rx: mpsc::Receiver<ExportItem>,
    pub stats: Arc<ExporterStats>,
    pub retry: RetryPolicy,
    pub deadline: Deadline,
}

impl Worker {
    /// Runs until the queue is closed and empty.
    pub async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let mut items = vec![first];
            while items.len() < MAX_BATCH_ITEMS {
                match self.rx.try_recv() {
                    Ok(item) => items.push(item),
                    Err(_) => break,
                }
            }
            for (batch, records) in batch::join(&items) {
                self.deliver(batch, records).await;
            }
        }
    }

    async fn deliver(&self, batch: batch::Batch, records: u64) {
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
                    return;
                }
                SendResult::Err {
                    verdict: Verdict::Final,
                    message,
                } => {
                    self.drop_batch(records, &message, "backend refused the batch");
                    return;
                }
                SendResult::Err {
                    verdict: Verdict::Retry(after),
                    message,
                } => {
                    self.stats.add(&self.stats.retries, 1);
                    let delay = after.unwrap_or_else(|| {
                        retry::backoff(attempt, self.retry.initial, self.retry.max_delay)
                    });
                    attempt += 1;
                    let wake = Instant::now() + delay;
                    let out_of_time = started.elapsed() + delay > self.retry.max_elapsed
                        || self.deadline.get().is_some_and(|d| wake > *d);
                    if out_of_time {
                        self.drop_batch(records, &message, "giving up after retries");
                        return;
                    }
                    tracing::debug!(exporter = %self.name, %message, ?delay, "retrying");
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
