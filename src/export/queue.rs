//! One durable queue per exporter, on disk (a small SQLite file under
//! `[store].path/queues/`). What a backend has not acknowledged survives an
//! outage and a restart or crash of ccotel. The queue is bounded by bytes;
//! when full, the oldest items are dropped first, counted and logged.

use super::batch::ExportItem;
use crate::model::Signal;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use prost::Message;
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An item as stored: its signal, record count and protobuf body. The body
/// is shared, not copied, between every exporter's queue.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub signal: Signal,
    pub records: u64,
    pub body: Bytes,
}

impl Encoded {
    /// Encodes once; the same bytes go to every exporter's queue.
    pub fn from_item(item: &ExportItem) -> Encoded {
        let body = match item {
            ExportItem::Traces(r) | ExportItem::NativeTraces(r) => r.encode_to_vec(),
            ExportItem::Metrics(r) => r.encode_to_vec(),
            ExportItem::Logs(r) => r.encode_to_vec(),
        };
        Encoded {
            signal: item.signal(),
            records: item.records(),
            body: Bytes::from(body),
        }
    }

    /// Back to an item; `None` if the bytes no longer decode.
    pub fn to_item(&self) -> Option<ExportItem> {
        let b = &self.body[..];
        Some(match self.signal {
            Signal::Traces => {
                ExportItem::Traces(Arc::new(ExportTraceServiceRequest::decode(b).ok()?))
            }
            Signal::NativeTraces => {
                ExportItem::NativeTraces(Arc::new(ExportTraceServiceRequest::decode(b).ok()?))
            }
            Signal::Metrics => {
                ExportItem::Metrics(Arc::new(ExportMetricsServiceRequest::decode(b).ok()?))
            }
            Signal::Logs => ExportItem::Logs(Arc::new(ExportLogsServiceRequest::decode(b).ok()?)),
        })
    }
}

/// What a push did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Pushed {
    /// Items dropped (oldest first) to make room.
    pub dropped_items: u64,
    pub dropped_records: u64,
}

/// A queue problem.
#[derive(Debug, thiserror::Error)]
#[error("exporter queue {path}: {source}")]
pub struct QueueError {
    path: PathBuf,
    source: rusqlite::Error,
}

/// The on-disk queue of one exporter.
pub struct DiskQueue {
    conn: Connection,
    path: PathBuf,
    max_bytes: u64,
    bytes: u64,
    len: u64,
}

fn signal_name(s: Signal) -> &'static str {
    s.as_str()
}

fn signal_of(s: &str) -> Option<Signal> {
    Some(match s {
        "traces" => Signal::Traces,
        "native_traces" => Signal::NativeTraces,
        "metrics" => Signal::Metrics,
        "logs" => Signal::Logs,
        _ => return None,
    })
}

impl DiskQueue {
    /// Opens `<dir>/<name>.db`, keeping what an earlier run left unsent. A
    /// damaged file is moved aside (and logged) and a new queue started.
    pub fn open(dir: &Path, name: &str, max_bytes: u64) -> Result<DiskQueue, QueueError> {
        match DiskQueue::open_inner(dir, name, max_bytes) {
            Err(e) if crate::store::is_corruption(&e.source) => {
                match crate::store::quarantine(&e.path) {
                    Ok(moved) => tracing::error!(
                        exporter = name,
                        moved_to = %moved.display(),
                        "the exporter queue file was damaged: moved aside, starting an empty queue"
                    ),
                    Err(q) => {
                        tracing::error!(exporter = name, error = %q, "cannot move the damaged queue file aside")
                    }
                }
                DiskQueue::open_inner(dir, name, max_bytes)
            }
            other => other,
        }
    }

    fn open_inner(dir: &Path, name: &str, max_bytes: u64) -> Result<DiskQueue, QueueError> {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{safe}.db"));
        let err = |source| QueueError {
            path: path.clone(),
            source,
        };
        if let Err(e) = std::fs::create_dir_all(dir) {
            return Err(err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))));
        }
        let conn = Connection::open(&path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS items (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 signal TEXT NOT NULL,
                 records INTEGER NOT NULL,
                 body BLOB NOT NULL
             );",
        )
        .map_err(err)?;
        let (len, bytes): (i64, i64) = conn
            .query_row(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM items",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(err)?;
        Ok(DiskQueue {
            conn,
            path,
            max_bytes: max_bytes.max(1),
            bytes: bytes as u64,
            len: len as u64,
        })
    }

    fn err(&self, source: rusqlite::Error) -> QueueError {
        QueueError {
            path: self.path.clone(),
            source,
        }
    }

    /// Items waiting.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends an item, dropping the oldest ones when over the byte budget.
    pub fn push(&mut self, item: &Encoded) -> Result<Pushed, QueueError> {
        self.push_all(std::slice::from_ref(item))
    }

    /// Appends items in one transaction (one commit for a whole batch of
    /// input), dropping the oldest ones when over the byte budget. On error
    /// nothing of this call is kept.
    pub fn push_all(&mut self, items: &[Encoded]) -> Result<Pushed, QueueError> {
        let path = self.path.clone();
        let err = |source| QueueError {
            path: path.clone(),
            source,
        };
        let (mut len, mut bytes) = (self.len, self.bytes);
        let mut pushed = Pushed::default();
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut oldest = tx
                .prepare_cached("SELECT id, records, length(body) FROM items ORDER BY id LIMIT 1")
                .map_err(err)?;
            let mut delete = tx
                .prepare_cached("DELETE FROM items WHERE id = ?1")
                .map_err(err)?;
            let mut insert = tx
                .prepare_cached("INSERT INTO items (signal, records, body) VALUES (?1, ?2, ?3)")
                .map_err(err)?;
            for item in items {
                let size = item.body.len() as u64;
                while len > 0 && bytes + size > self.max_bytes {
                    let Ok((id, records, old)) = oldest.query_row([], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    }) else {
                        break;
                    };
                    delete.execute([id]).map_err(err)?;
                    len -= 1;
                    bytes = bytes.saturating_sub(old as u64);
                    pushed.dropped_items += 1;
                    pushed.dropped_records += records as u64;
                }
                insert
                    .execute(params![
                        signal_name(item.signal),
                        item.records as i64,
                        &item.body[..]
                    ])
                    .map_err(err)?;
                len += 1;
                bytes += size;
            }
        }
        tx.commit().map_err(err)?;
        self.len = len;
        self.bytes = bytes;
        Ok(pushed)
    }

    /// The oldest items, up to `limit` items or `max_bytes` bytes (at least one).
    pub fn peek(&self, limit: usize, max_bytes: u64) -> Result<Vec<(i64, Encoded)>, QueueError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, signal, records, body FROM items ORDER BY id LIMIT ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let mut total = 0u64;
        for row in rows {
            let (id, signal, records, body) = row.map_err(|e| self.err(e))?;
            total += body.len() as u64;
            if !out.is_empty() && total > max_bytes {
                break;
            }
            let Some(signal) = signal_of(&signal) else {
                continue;
            };
            out.push((
                id,
                Encoded {
                    signal,
                    records: records as u64,
                    body: Bytes::from(body),
                },
            ));
        }
        Ok(out)
    }

    /// Removes delivered (or finally refused) items.
    pub fn ack(&mut self, ids: &[i64]) -> Result<(), QueueError> {
        let tx = self.conn.transaction().map_err(|e| QueueError {
            path: self.path.clone(),
            source: e,
        })?;
        let mut freed = 0u64;
        let mut n = 0u64;
        {
            let mut sel = tx
                .prepare_cached("SELECT length(body) FROM items WHERE id = ?1")
                .map_err(|e| QueueError {
                    path: self.path.clone(),
                    source: e,
                })?;
            let mut del = tx
                .prepare_cached("DELETE FROM items WHERE id = ?1")
                .map_err(|e| QueueError {
                    path: self.path.clone(),
                    source: e,
                })?;
            for id in ids {
                if let Ok(len) = sel.query_row([id], |r| r.get::<_, i64>(0)) {
                    freed += len as u64;
                    n += 1;
                }
                del.execute([id]).map_err(|e| QueueError {
                    path: self.path.clone(),
                    source: e,
                })?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        self.len = self.len.saturating_sub(n);
        self.bytes = self.bytes.saturating_sub(freed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    fn item(n: usize) -> ExportItem {
        ExportItem::Logs(Arc::new(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default(); n],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }))
    }

    #[test]
    fn survives_reopen_and_drops_oldest_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let budget: u64 = (1..=3)
            .map(|n| Encoded::from_item(&item(n)).body.len() as u64)
            .sum();
        {
            let mut q = DiskQueue::open(dir.path(), "sink", budget).unwrap();
            for n in 1..=3 {
                assert_eq!(
                    q.push(&Encoded::from_item(&item(n))).unwrap(),
                    Pushed::default()
                );
            }
        }
        let mut q = DiskQueue::open(dir.path(), "sink", budget).unwrap();
        assert_eq!(q.len(), 3);
        // A bigger item pushes out the oldest.
        let pushed = q.push(&Encoded::from_item(&item(4))).unwrap();
        assert!(pushed.dropped_items >= 1);
        assert!(pushed.dropped_records >= 1);
        let rows = q.peek(10, u64::MAX).unwrap();
        let records: Vec<u64> = rows.iter().map(|(_, e)| e.records).collect();
        assert_eq!(records.last(), Some(&4));
        assert!(!records.contains(&1));
        q.ack(&rows.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .unwrap();
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
        assert!(rows[0].1.to_item().is_some());
    }
}
