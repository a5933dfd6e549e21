//! The local questions people ask of their Claude Code use, answered in SQL
//! over the stored spans: recent sessions, one session's spans, totals by
//! day, model, project or tool.

use super::{Store, StoreError};
use crate::model::span::SpanRecord;
use crate::query::pb::{Filter, SessionSummary, StatsRow};
use rusqlite::params;

/// How stats are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    Model,
    Project,
    Tool,
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<GroupBy> {
        Some(match s {
            "day" | "" => GroupBy::Day,
            "model" => GroupBy::Model,
            "project" => GroupBy::Project,
            "tool" => GroupBy::Tool,
            _ => return None,
        })
    }
}

/// A session id prefix that matched several sessions.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("no session matches {0:?}")]
    NotFound(String),
    #[error("{prefix:?} matches {} sessions ({}); give more of the id", .matches.len(), .matches.join(", "))]
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A LIKE pattern matching text that contains `s`; empty (no filter) for an
/// empty `s`.
fn like(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    format!(
        "%{}%",
        s.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

const SUMMARY_SQL: &str = "
SELECT s.session_id,
       min(sp.start_ns), max(sp.end_ns),
       m.cwd, m.models, m.git_branch,
       sum(sp.kind = 'turn'), sum(sp.kind = 'llm'),
       sum(sp.kind = 'tool' AND sp.name = 'claude_code.tool'),
       sum(sp.input_tokens), sum(sp.output_tokens),
       sum(sp.cache_read_tokens), sum(sp.cache_creation_tokens),
       sum(sp.cost_usd), sum(sp.is_error),
       sum(sp.kind = 'session') = 0
FROM sessions s
JOIN spans sp ON sp.session_id = s.session_id
LEFT JOIN session_meta m ON m.session_id = s.session_id
WHERE (?1 = '' OR m.cwd LIKE ?1 ESCAPE '\\')
  AND (?2 = '' OR EXISTS (SELECT 1 FROM spans x WHERE x.session_id = s.session_id
                          AND x.model LIKE ?2 ESCAPE '\\'))
  AND (?5 = '' OR s.session_id = ?5)
GROUP BY s.session_id
HAVING max(sp.end_ns) >= ?3
ORDER BY max(sp.end_ns) DESC
LIMIT ?4";

fn summary_row(r: &rusqlite::Row) -> rusqlite::Result<SessionSummary> {
    let models: Option<String> = r.get(4)?;
    Ok(SessionSummary {
        session_id: r.get(0)?,
        start_unix_nano: r.get(1)?,
        end_unix_nano: r.get(2)?,
        project_dir: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
        models: models
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_default(),
        git_branch: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
        turns: r.get::<_, i64>(6)? as u32,
        llm_calls: r.get::<_, i64>(7)? as u32,
        tool_calls: r.get::<_, i64>(8)? as u32,
        input_tokens: r.get::<_, i64>(9)? as u64,
        output_tokens: r.get::<_, i64>(10)? as u64,
        cache_read_tokens: r.get::<_, i64>(11)? as u64,
        cache_creation_tokens: r.get::<_, i64>(12)? as u64,
        cost_usd: r.get(13)?,
        errors: r.get::<_, i64>(14)? as u32,
        open: r.get(15)?,
    })
}

impl Store {
    /// Recent sessions, newest first.
    pub fn list_sessions(
        &self,
        filter: &Filter,
        limit: u32,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        self.summaries(filter, limit, "")
    }

    fn summaries(
        &self,
        filter: &Filter,
        limit: u32,
        only: &str,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let (project, model) = (like(&filter.project), like(&filter.model));
        let limit = if limit == 0 { 50 } else { limit };
        let mut stmt = self
            .conn
            .prepare_cached(SUMMARY_SQL)
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![project, model, filter.since_unix_nano, limit as i64, only],
                summary_row,
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The one session whose id starts with `prefix`.
    pub fn resolve_session(&self, prefix: &str) -> Result<String, LookupError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT session_id FROM spans WHERE session_id >= ?1 AND session_id < ?2
                 ORDER BY session_id LIMIT 6",
            )
            .map_err(|e| self.err(e))?;
        let upper = format!("{prefix}\u{10ffff}");
        let matches: Vec<String> = stmt
            .query_map(params![prefix, upper], |r| r.get(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        if let Some(exact) = matches.iter().find(|m| *m == prefix) {
            return Ok(exact.clone());
        }
        match matches.len() {
            0 => Err(LookupError::NotFound(prefix.to_string())),
            1 => Ok(matches[0].clone()),
            _ => Err(LookupError::Ambiguous {
                prefix: prefix.to_string(),
                matches,
            }),
        }
    }

    /// A session's summary and spans, by id or unique prefix.
    pub fn get_session(
        &self,
        prefix: &str,
    ) -> Result<(SessionSummary, Vec<SpanRecord>), LookupError> {
        let id = self.resolve_session(prefix)?;
        let summary = self
            .summaries(&Filter::default(), 1, &id)?
            .into_iter()
            .next()
            .ok_or_else(|| LookupError::NotFound(prefix.to_string()))?;
        Ok((summary, self.spans(&id)?))
    }

    /// Totals over model and tool calls, grouped.
    pub fn stats(&self, filter: &Filter, group: GroupBy) -> Result<Vec<StatsRow>, StoreError> {
        let key = match group {
            GroupBy::Day => "date(sp.start_ns / 1000000000, 'unixepoch')",
            GroupBy::Model => "coalesce(sp.model, '')",
            GroupBy::Project => "coalesce(m.cwd, '')",
            GroupBy::Tool => "coalesce(sp.tool_name, '')",
        };
        let kinds = match group {
            GroupBy::Model => "sp.kind = 'llm'",
            GroupBy::Tool => "sp.kind = 'tool' AND sp.name = 'claude_code.tool'",
            _ => "(sp.kind = 'llm' OR (sp.kind = 'tool' AND sp.name = 'claude_code.tool'))",
        };
        let sql = format!(
            "SELECT {key} AS k, count(DISTINCT sp.session_id),
                    sum(sp.kind = 'llm'), sum(sp.kind = 'llm' AND sp.is_error),
                    sum(sp.kind = 'tool'), sum(sp.kind = 'tool' AND sp.is_error),
                    sum(sp.input_tokens), sum(sp.output_tokens),
                    sum(sp.cache_read_tokens), sum(sp.cache_creation_tokens), sum(sp.cost_usd)
             FROM spans sp LEFT JOIN session_meta m ON m.session_id = sp.session_id
             WHERE {kinds} AND sp.end_ns >= ?1
               AND (?2 = '' OR m.cwd LIKE ?2 ESCAPE '\\')
               AND (?3 = '' OR EXISTS (SELECT 1 FROM spans x WHERE x.session_id = sp.session_id
                                       AND x.model LIKE ?3 ESCAPE '\\'))
             GROUP BY k ORDER BY k"
        );
        let (project, model) = (like(&filter.project), like(&filter.model));
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![filter.since_unix_nano, project, model], |r| {
                Ok(StatsRow {
                    key: r.get(0)?,
                    sessions: r.get::<_, i64>(1)? as u64,
                    llm_calls: r.get::<_, i64>(2)? as u64,
                    llm_errors: r.get::<_, i64>(3)? as u64,
                    tool_calls: r.get::<_, i64>(4)? as u64,
                    tool_errors: r.get::<_, i64>(5)? as u64,
                    input_tokens: r.get::<_, i64>(6)? as u64,
                    output_tokens: r.get::<_, i64>(7)? as u64,
                    cache_read_tokens: r.get::<_, i64>(8)? as u64,
                    cache_creation_tokens: r.get::<_, i64>(9)? as u64,
                    cost_usd: r.get(10)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// Deletes what is older than `before` (unix ns): spans, sessions whose
    /// last activity is older, and their raw events. Returns sessions removed.
    pub fn prune(&mut self, before: u64) -> Result<usize, StoreError> {
        let before = before as i64;
        let path = self.path.clone();
        let e = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(e)?;
        let old: Vec<String> = {
            let mut stmt = tx
                .prepare(
                    "SELECT s.session_id FROM sessions s
                     WHERE coalesce((SELECT max(end_ns) FROM spans WHERE session_id = s.session_id), 0)
                           < ?1 AND s.last_seen < ?1",
                )
                .map_err(e)?;
            let rows = stmt.query_map([before], |r| r.get(0)).map_err(e)?;
            rows.collect::<Result<_, _>>().map_err(e)?
        };
        for sid in &old {
            tx.execute("DELETE FROM spans WHERE session_id = ?1", [sid])
                .map_err(e)?;
            tx.execute("DELETE FROM session_meta WHERE session_id = ?1", [sid])
                .map_err(e)?;
            tx.execute("DELETE FROM event_sessions WHERE session_id = ?1", [sid])
                .map_err(e)?;
            tx.execute("DELETE FROM sessions WHERE session_id = ?1", [sid])
                .map_err(e)?;
        }
        tx.execute(
            "DELETE FROM events WHERE id NOT IN (SELECT event_id FROM event_sessions)",
            [],
        )
        .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(old.len())
    }
}
