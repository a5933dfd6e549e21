//! The embedded store (SQLite): raw events written ahead of merging, so a
//! session in progress is rebuilt after a restart; the ids of exported spans,
//! so nothing is exported twice; and the merged spans themselves, for local
//! queries.

pub mod query;

use crate::model::span::{SpanKind, SpanRecord, SpanStatus};
use crate::model::{Event, HookEvent, Payload, Transport};
use opentelemetry_proto::tonic::collector::{
    logs::v1::ExportLogsServiceRequest, metrics::v1::ExportMetricsServiceRequest,
    trace::v1::ExportTraceServiceRequest,
};
use prost::Message;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A store problem; callers log it and keep serving.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The SQLite database under `[store].path`.
pub struct Store {
    pub(crate) conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = r#"
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    transport TEXT NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS event_sessions (
    session_id TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    PRIMARY KEY (session_id, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    closed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS spans (
    session_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    is_error INTEGER NOT NULL,
    model TEXT,
    tool_name TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    cache_creation_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    record TEXT NOT NULL,
    PRIMARY KEY (session_id, span_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns);
CREATE TABLE IF NOT EXISTS session_meta (
    session_id TEXT PRIMARY KEY,
    cwd TEXT,
    git_branch TEXT,
    models TEXT,
    version TEXT
);
"#;

/// What the store keeps about a session besides its spans.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionMeta {
    pub cwd: Option<String>,
    pub git_branch: Option<String>,
    pub models: Vec<String>,
    pub version: Option<String>,
}

impl SessionMeta {
    /// Redacts secrets: the metadata is stored like spans.
    pub fn redact(mut self, redactor: Option<&crate::redact::Redactor>) -> SessionMeta {
        if let Some(r) = redactor {
            for s in self
                .cwd
                .iter_mut()
                .chain(self.git_branch.iter_mut())
                .chain(self.version.iter_mut())
                .chain(self.models.iter_mut())
            {
                if let Some(clean) = r.redact(s) {
                    *s = clean;
                }
            }
        }
        self
    }
}

impl Store {
    /// Opens (or creates) `<dir>/ccotel.db`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join("ccotel.db");
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(err)?;
        // The CLI and a running serve share the file.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Store { conn, path })
    }

    /// Opens the store for `serve`: a file that is not a readable database
    /// is moved aside (its path is returned) and a fresh store started, so a
    /// corrupted file never keeps ccotel down.
    pub fn open_or_recover(dir: &Path) -> Result<(Store, Option<PathBuf>), StoreError> {
        match Store::open(dir).and_then(|s| s.check().map(|_| s)) {
            Ok(s) => Ok((s, None)),
            Err(StoreError::Sqlite { source, .. }) if is_corruption(&source) => {
                let moved = quarantine(&dir.join("ccotel.db"))?;
                Ok((Store::open(dir)?, Some(moved)))
            }
            Err(e) => Err(e),
        }
    }

    /// Reads the schema and a page of each table: enough to notice a file
    /// that is not (or no longer) a database.
    fn check(&self) -> Result<(), StoreError> {
        for table in ["events", "sessions", "spans", "session_meta"] {
            self.conn
                .query_row(
                    &format!("SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1)"),
                    [],
                    |_| Ok(()),
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes events ahead of merging, each linked to the sessions it touches,
    /// in one transaction. Returns the id each event was stored under (none
    /// for an event that touches no session).
    pub fn append(
        &mut self,
        events: &[(&Event, Vec<String>)],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let path = self.path.clone();
        let e = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        let mut ids = Vec::with_capacity(events.len());
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO events (received_at, transport, kind, body) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(e)?;
            let mut link = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO event_sessions (session_id, event_id) VALUES (?1, ?2)",
                )
                .map_err(e)?;
            let mut sess = tx
                .prepare_cached(
                    "INSERT INTO sessions (session_id, first_seen, last_seen) VALUES (?1, ?2, ?2)
                     ON CONFLICT(session_id) DO UPDATE SET last_seen = max(last_seen, ?2), closed = 0",
                )
                .map_err(e)?;
            for (event, sessions) in events {
                if sessions.is_empty() {
                    ids.push(None);
                    continue;
                }
                let (kind, body) = encode(event);
                ins.execute(params![
                    event.received_at as i64,
                    transport_name(event.transport),
                    kind,
                    &body[..]
                ])
                .map_err(e)?;
                let id = tx.last_insert_rowid();
                for s in sessions {
                    link.execute(params![s, id]).map_err(e)?;
                    sess.execute(params![s, event.received_at as i64])
                        .map_err(e)?;
                }
                ids.push(Some(id));
            }
        }
        tx.commit().map_err(e)?;
        Ok(ids)
    }

    /// The sessions not marked closed, to rebuild after a restart.
    pub fn open_sessions(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT session_id FROM sessions WHERE closed = 0 ORDER BY session_id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Calls `f` with each stored event of one session from event id `from`
    /// on, in arrival order: what a session evicted from memory, or open at a
    /// restart, is rebuilt from. Events are decoded one at a time, so a long
    /// session is never all in memory as events.
    pub fn each_session_event(
        &self,
        session: &str,
        from: i64,
        mut f: impl FnMut(i64, &Event),
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT e.id, e.received_at, e.transport, e.kind, e.body
                 FROM event_sessions es JOIN events e ON e.id = es.event_id
                 WHERE es.session_id = ?1 AND es.event_id >= ?2 ORDER BY es.event_id",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query(params![session, from])
            .map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let (id, at, transport, kind, body) = stored_columns(row).map_err(|e| self.err(e))?;
            match decode(at as u64, transport, kind, body) {
                Some(ev) => f(id, &ev),
                None => tracing::warn!(kind, "skipping a stored event that no longer decodes"),
            }
        }
        Ok(())
    }

    /// Span ids already exported for a session.
    pub fn exported(&self, session: &str) -> Result<HashSet<[u8; 8]>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT span_id FROM spans WHERE session_id = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([session], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let mut out = HashSet::new();
        for row in rows {
            let hex_id = row.map_err(|e| self.err(e))?;
            let mut id = [0u8; 8];
            if hex::decode_to_slice(&hex_id, &mut id).is_ok() {
                out.insert(id);
            }
        }
        Ok(out)
    }

    /// Records exported spans (replacing earlier versions of the same ids).
    pub fn save_spans(&mut self, session: &str, spans: &[SpanRecord]) -> Result<(), StoreError> {
        self.write_spans(session, spans, true).map(|_| ())
    }

    /// Records spans not stored yet and returns those it added; spans already
    /// there (built live, or imported before) are left alone.
    pub fn add_new_spans(
        &mut self,
        session: &str,
        spans: &[SpanRecord],
    ) -> Result<Vec<SpanRecord>, StoreError> {
        self.write_spans(session, spans, false)
    }

    fn write_spans(
        &mut self,
        session: &str,
        spans: &[SpanRecord],
        replace: bool,
    ) -> Result<Vec<SpanRecord>, StoreError> {
        let path = self.path.clone();
        let e = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        let mut added = Vec::new();
        {
            let sql = format!(
                "INSERT OR {} INTO spans (session_id, span_id, kind, name, start_ns, end_ns, is_error,
                    model, tool_name, input_tokens, output_tokens, cache_read_tokens,
                    cache_creation_tokens, cost_usd, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                if replace { "REPLACE" } else { "IGNORE" }
            );
            let mut ins = tx.prepare_cached(&sql).map_err(e)?;
            for s in spans {
                let record = serde_json::to_string(s).unwrap_or_default();
                let int = |k: &str| s.attr(k).and_then(|a| a.as_i64()).unwrap_or(0);
                let text = |k: &str| s.attr(k).and_then(|a| a.as_str()).map(str::to_string);
                let (model, tool) = match s.kind {
                    SpanKind::Llm => (text("model"), None),
                    SpanKind::Tool => (None, text("tool_name")),
                    _ => (None, None),
                };
                let counted = s.kind == SpanKind::Llm;
                let n = ins
                    .execute(params![
                        session,
                        hex::encode(s.span_id),
                        kind_name(s.kind),
                        s.name,
                        s.start_ns as i64,
                        s.end_ns as i64,
                        matches!(s.status, SpanStatus::Error(_)) as i64,
                        model,
                        tool,
                        if counted { int("input_tokens") } else { 0 },
                        if counted { int("output_tokens") } else { 0 },
                        if counted { int("cache_read_tokens") } else { 0 },
                        if counted {
                            int("cache_creation_tokens")
                        } else {
                            0
                        },
                        if counted {
                            s.attr("cost_usd").and_then(|a| a.as_f64()).unwrap_or(0.0)
                        } else {
                            0.0
                        },
                        record
                    ])
                    .map_err(e)?;
                if n > 0 {
                    added.push(s.clone());
                }
            }
        }
        tx.commit().map_err(e)?;
        Ok(added)
    }

    /// Records what is known about a session besides its spans.
    pub fn save_meta(&mut self, session: &str, meta: &SessionMeta) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO sessions (session_id, first_seen, last_seen) VALUES (?1, 0, 0)
                 ON CONFLICT(session_id) DO NOTHING",
                [session],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute(
                "INSERT INTO session_meta (session_id, cwd, git_branch, models, version)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(session_id) DO UPDATE SET
                   cwd = coalesce(excluded.cwd, cwd),
                   git_branch = coalesce(excluded.git_branch, git_branch),
                   models = coalesce(excluded.models, models),
                   version = coalesce(excluded.version, version)",
                params![
                    session,
                    meta.cwd,
                    meta.git_branch,
                    (!meta.models.is_empty())
                        .then(|| serde_json::to_string(&meta.models).unwrap_or_default()),
                    meta.version
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Marks a session closed: its raw events are no longer replayed.
    pub fn close_session(&mut self, session: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE sessions SET closed = 1 WHERE session_id = ?1",
                [session],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// All stored spans of a session.
    pub fn spans(&self, session: &str) -> Result<Vec<SpanRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record FROM spans WHERE session_id = ?1 ORDER BY start_ns")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([session], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(s) = serde_json::from_str(&row.map_err(|e| self.err(e))?) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Whether a session is known and closed.
    pub fn is_closed(&self, session: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT closed FROM sessions WHERE session_id = ?1",
                [session],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v == Some(1))
            .map_err(|e| self.err(e))
    }
}

/// Whether an error means the file is damaged rather than busy or full.
pub fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Moves a damaged database (and its WAL and shared-memory files) aside.
pub fn quarantine(db: &Path) -> Result<PathBuf, StoreError> {
    let stamp = crate::model::event::unix_nanos(std::time::SystemTime::now()) / 1_000_000_000;
    let target = db.with_extension(format!("db.corrupt-{stamp}"));
    std::fs::rename(db, &target).map_err(|source| StoreError::Io {
        path: db.to_path_buf(),
        source,
    })?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", db.display()));
        let _ = std::fs::rename(&side, format!("{}{suffix}", target.display()));
    }
    Ok(target)
}

/// The store's name for a span kind.
pub fn kind_name(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Session => "session",
        SpanKind::Turn => "turn",
        SpanKind::Llm => "llm",
        SpanKind::Tool => "tool",
    }
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Grpc => "grpc",
        Transport::HttpProtobuf => "http_protobuf",
        Transport::HttpJson => "http_json",
        Transport::HookHttp => "hook_http",
        Transport::HookCommand => "hook_command",
        Transport::Import => "import",
    }
}

/// The event's kind and body as stored: hook JSON, or the OTLP request's
/// protobuf encoding (the bytes it arrived in when those are known).
fn encode(event: &Event) -> (&'static str, std::borrow::Cow<'_, [u8]>) {
    use std::borrow::Cow;
    let kind = match &event.payload {
        Payload::Hook(h) => {
            let body = match &event.wire {
                Some(w) => Cow::Borrowed(&w[..]),
                None => Cow::Owned(serde_json::to_vec(&h.fields).unwrap_or_default()),
            };
            return ("hook", body);
        }
        Payload::Logs(_) => "logs",
        Payload::Metrics(_) => "metrics",
        Payload::Traces(_) => "traces",
    };
    if let Some(w) = &event.wire {
        return (kind, Cow::Borrowed(&w[..]));
    }
    let body = match &event.payload {
        Payload::Logs(r) => r.encode_to_vec(),
        Payload::Metrics(r) => r.encode_to_vec(),
        Payload::Traces(r) => r.encode_to_vec(),
        Payload::Hook(_) => Vec::new(),
    };
    (kind, Cow::Owned(body))
}

/// An `events` row's columns (id, received_at, transport, kind, body),
/// borrowed from the row.
fn stored_columns<'r>(
    row: &'r rusqlite::Row<'_>,
) -> rusqlite::Result<(i64, i64, &'r str, &'r str, &'r [u8])> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get_ref(2)?.as_str()?,
        row.get_ref(3)?.as_str()?,
        row.get_ref(4)?.as_blob()?,
    ))
}

fn decode(received_at: u64, transport: &str, kind: &str, body: &[u8]) -> Option<Event> {
    let transport = match transport {
        "grpc" => Transport::Grpc,
        "http_protobuf" => Transport::HttpProtobuf,
        "http_json" => Transport::HttpJson,
        "hook_http" => Transport::HookHttp,
        "hook_command" => Transport::HookCommand,
        _ => Transport::Import,
    };
    let payload = match kind {
        "hook" => Payload::Hook(HookEvent::parse(body).ok()?),
        "logs" => Payload::Logs(ExportLogsServiceRequest::decode(body).ok()?),
        "metrics" => Payload::Metrics(ExportMetricsServiceRequest::decode(body).ok()?),
        "traces" => Payload::Traces(ExportTraceServiceRequest::decode(body).ok()?),
        _ => return None,
    };
    Some(Event {
        received_at,
        transport,
        payload,
        wire: None,
    })
}
