//! The engine: owns every live session, writes inputs ahead to the store,
//! applies them, and decides when a span is exported: once it is complete,
//! its parent is known, and a grace period has passed for late sources
//! (Claude Code batches logs and spans every 5 s). Each span is exported once;
//! the ids of exported spans survive restarts and resumed sessions.

use super::finished::Finished;
use super::render::{self, RenderOptions, Tree};
use super::route;
use super::session::Session;
use super::sid::Sid;
use super::transcript;
use crate::config::MergeConfig;
use crate::export::queue::Encoded;
use crate::export::{ExportItem, FanOut};
use crate::model::span::{to_request, Attr, SpanRecord};
use crate::model::{Event, HookEventName, Payload, Signal};
use crate::receive::{Accepted, Activity};
use crate::store::{SessionMeta, Store};
use crate::telemetry::Stats;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Spans of one session ready to go out.
#[derive(Debug, Clone)]
pub struct Export {
    pub session: String,
    pub resource: BTreeMap<String, Attr>,
    pub spans: Vec<SpanRecord>,
    pub meta: SessionMeta,
}

struct Live {
    session: Session,
    last_event: u64,
    dirty: bool,
    exported: HashSet<[u8; 8]>,
    first_complete: HashMap<[u8; 8], u64>,
    idle_closed_at: Option<u64>,
    /// The store id of the first event applied to this session in memory:
    /// it is rebuilt from that event on. None when an event it was given is
    /// not in the store (no store, or a failed write): it then stays in
    /// memory.
    from_event: Option<i64>,
    /// Spans were exported that the store has not recorded yet.
    unrecorded: bool,
    /// When the SessionEnd of a session out of memory came: the spans it
    /// completed wait out their grace from then, not from the rebuild.
    ended_out_of_memory: Option<u64>,
}

/// What stays in memory of an open session evicted from it: enough to
/// rebuild it from the store's write-ahead events when its next event comes,
/// or to close it when it times out.
struct Evicted {
    last_event: u64,
    from_event: i64,
    /// When its SessionEnd came, stored but not applied: the session stays
    /// out of memory until its last spans are due. (When thousands of
    /// sessions end at once, rebuilding each at its SessionEnd held them
    /// all in memory through the grace period.)
    ended_at: Option<std::num::NonZeroU64>,
}

/// A session rebuilt from its stored events.
struct Rebuilt {
    session: Session,
    exported: HashSet<[u8; 8]>,
    /// The first event's store id; None when there was none.
    first: Option<i64>,
    /// The latest time an event was received.
    last_at: u64,
    events: usize,
}

/// How many events a rebuild applies between two drops of exported
/// content: a long session is rebuilt in about the memory it holds once
/// rebuilt, not in what all of its content weighed.
const RELEASE_EVERY: usize = 256;

impl Rebuilt {
    fn empty(sid: &str) -> Rebuilt {
        Rebuilt {
            session: Session::new(sid),
            exported: HashSet::new(),
            first: None,
            last_at: 0,
            events: 0,
        }
    }

    /// Applies the session's stored events from event id `from` on, one at
    /// a time, dropping the content of its exported calls as it goes.
    fn read(store: &Store, sid: &str, from: i64) -> Result<Rebuilt, crate::store::StoreError> {
        let mut r = Rebuilt {
            exported: store.exported(sid)?,
            ..Rebuilt::empty(sid)
        };
        store.each_session_event(sid, from, |id, event| {
            r.first.get_or_insert(id);
            route::apply(&mut r.session, event);
            r.last_at = r.last_at.max(event.received_at);
            r.events += 1;
            if r.events.is_multiple_of(RELEASE_EVERY) {
                r.session.release_exported(&r.exported);
            }
        })?;
        r.session.release_exported(&r.exported);
        Ok(r)
    }
}

/// A map's table keeps its largest size when entries leave it. The live
/// sessions' table takes 800 bytes a slot, and thousands of sessions pass
/// through memory at once during a burst (measured at 10 000 sessions: see
/// BENCHMARKS.md, round 10), so a table sized for them keeps megabytes once
/// they have left. Shrinks a map that is mostly empty to twice its length,
/// so that a map near the bound is not shrunk and grown again each time.
fn shrink_if_mostly_empty<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.capacity() > 4 * map.len() {
        map.shrink_to(2 * map.len());
    }
}

/// How long after its last event or export a burst is over, and what it
/// freed is handed back: the request buffers, batches and renders of other
/// threads too, which no session's leaving accounts for.
const QUIET_TRIM_AFTER: u64 = 2_000_000_000;

/// How often freed session memory is handed back to the system while
/// sessions keep leaving memory (measured: 1–7 ms for a 190 MiB heap).
const TRIM_EVERY: u64 = 5_000_000_000;

/// All session state.
pub struct Engine {
    cfg: MergeConfig,
    sessions: HashMap<String, Live>,
    /// Open sessions with nothing left to export that went quiet: rebuilt
    /// from the store when they hear from Claude Code again.
    evicted: HashMap<Sid, Evicted>,
    finished: Finished,
    /// Sessions finished by the last tick, to mark closed once recorded.
    closing: Vec<String>,
    /// Sessions that left memory since free memory was last handed back to
    /// the system, and when that was (engine clock).
    released: usize,
    trimmed_at: u64,
    /// Whether events came or spans went out since the last trim, and when
    /// last (engine clock): what a burst freed, in any thread, goes back
    /// once it is over.
    busy_since_trim: bool,
    last_busy: u64,
    /// Calls whose content was dropped since then: a long session frees
    /// memory as its calls are exported, without ever leaving memory.
    released_calls: usize,
    store: Option<Store>,
    retention: Duration,
    redactor: Option<Arc<crate::redact::Redactor>>,
    stats: Option<Arc<Stats>>,
}

impl Engine {
    pub fn new(cfg: MergeConfig, store: Option<Store>) -> Engine {
        Engine {
            cfg,
            sessions: HashMap::new(),
            evicted: HashMap::new(),
            finished: Finished::default(),
            closing: Vec::new(),
            released: 0,
            trimmed_at: 0,
            busy_since_trim: false,
            last_busy: 0,
            released_calls: 0,
            store,
            retention: Duration::from_secs(30 * 24 * 3600),
            redactor: None,
            stats: None,
        }
    }

    /// Redacts secrets from inputs and merged spans before they are stored
    /// or exported.
    pub fn with_redactor(mut self, redactor: Arc<crate::redact::Redactor>) -> Engine {
        self.redactor = Some(redactor);
        self
    }

    /// Counts store failures where an operator sees them.
    pub fn with_stats(mut self, stats: Arc<Stats>) -> Engine {
        self.stats = Some(stats);
        self
    }

    fn store_failed(&self) {
        if let Some(s) = &self.stats {
            s.inc(&s.store_errors);
        }
    }

    /// Redacts one input in place (before it is stored or forwarded).
    pub fn redact(&self, event: &mut Event) -> u64 {
        self.redactor.as_ref().map_or(0, |r| r.event(event))
    }

    /// How long the store keeps sessions (zero keeps them forever).
    pub fn with_retention(mut self, retention: Duration) -> Engine {
        self.retention = retention;
        self
    }

    /// Rebuilds the sessions that were open when ccotel last stopped, one at
    /// a time, each holding only what its spans still to come need.
    pub fn restore(&mut self) -> usize {
        let sids = match self.store.as_ref().map(Store::open_sessions) {
            Some(Ok(sids)) => sids,
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot read open sessions from the store; starting empty");
                return 0;
            }
            None => return 0,
        };
        let mut n = 0;
        for sid in &sids {
            let Some(store) = self.store.as_ref() else {
                break;
            };
            let rebuilt = match Rebuilt::read(store, sid, 0) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, session = %sid, "cannot read a session from the store; it starts empty");
                    self.store_failed();
                    continue;
                }
            };
            let Some(first) = rebuilt.first else {
                continue;
            };
            n += rebuilt.events;
            let last_event = rebuilt.last_at;
            self.insert_rebuilt(sid, rebuilt, last_event, first);
        }
        if n > 0 {
            tracing::info!(
                events = n,
                sessions = self.sessions.len(),
                "rebuilt sessions in progress from the store"
            );
        }
        n
    }

    /// Writes events ahead to the store, then applies them.
    pub fn ingest(&mut self, events: &[Event]) {
        if let Some(latest) = events.iter().map(|e| e.received_at).max() {
            self.busy_since_trim = true;
            self.last_busy = self.last_busy.max(latest);
        }
        let routed: Vec<(&Event, Vec<String>)> = events
            .iter()
            .map(|e| (e, route::sessions_of(e).into_iter().collect()))
            .collect();
        // A SessionEnd for sessions out of memory is stored and held: they
        // are rebuilt when their last spans are due (see `tick`).
        let held: Vec<bool> = routed
            .iter()
            .map(|(e, sids)| self.can_hold(e, sids))
            .collect();
        // An evicted session is rebuilt from the events stored so far, before
        // these are added to them.
        if !self.evicted.is_empty() {
            for ((_, sids), held) in routed.iter().zip(&held) {
                for sid in sids.iter().filter(|_| !held) {
                    self.revive(sid);
                }
            }
        }
        let mut ids = Vec::new();
        if let Some(store) = self.store.as_mut() {
            match store.append(&routed) {
                Ok(stored) => ids = stored,
                Err(e) => {
                    tracing::error!(error = %e, "write-ahead to the store failed; merging continues in memory");
                    if let Some(s) = &self.stats {
                        s.inc(&s.store_errors);
                    }
                }
            }
        }
        for (i, event) in events.iter().enumerate() {
            let stored = ids.get(i).copied().flatten();
            if !(held[i] && stored.is_some() && self.hold_end(event, &routed[i].1)) {
                self.apply(event, stored);
            }
        }
    }

    /// Whether `event` is a SessionEnd whose sessions are all out of memory.
    fn can_hold(&self, event: &Event, sids: &[String]) -> bool {
        matches!(&event.payload, Payload::Hook(h) if h.name == HookEventName::SessionEnd)
            && event.received_at > 0
            && self.all_evicted(sids)
    }

    fn all_evicted(&self, sids: &[String]) -> bool {
        !sids.is_empty() && sids.iter().all(|s| self.evicted.contains_key(s.as_str()))
    }

    /// Holds a stored SessionEnd for its sessions if they are all still out
    /// of memory (an earlier event of the same batch may have brought one
    /// back); false when it must be applied.
    fn hold_end(&mut self, event: &Event, sids: &[String]) -> bool {
        let Some(at) = std::num::NonZeroU64::new(event.received_at) else {
            return false;
        };
        if !self.all_evicted(sids) {
            return false;
        }
        for sid in sids {
            if let Some(stub) = self.evicted.get_mut(sid.as_str()) {
                stub.last_event = stub.last_event.max(event.received_at);
                stub.ended_at = Some(stub.ended_at.map_or(at, |t| t.min(at)));
            }
        }
        true
    }

    /// Applies one event, stored under `stored` (when it was).
    fn apply(&mut self, event: &Event, stored: Option<i64>) {
        route::parts(event, |sid, part| {
            self.revive(sid);
            let live = self.live(sid, stored);
            route::apply_part(&mut live.session, part, event.received_at);
            live.last_event = live.last_event.max(event.received_at);
            live.dirty = true;
            live.idle_closed_at = None;
            if stored.is_none() {
                live.from_event = None;
            }
        });
    }

    fn live(&mut self, sid: &str, stored: Option<i64>) -> &mut Live {
        if !self.sessions.contains_key(sid) {
            let exported = match self.finished.take(sid) {
                Some(ids) => ids,
                None => self
                    .store
                    .as_ref()
                    .and_then(|s| s.exported(sid).ok())
                    .unwrap_or_default(),
            };
            self.sessions.insert(
                sid.to_string(),
                Live {
                    session: Session::new(sid),
                    last_event: 0,
                    dirty: true,
                    exported,
                    first_complete: HashMap::new(),
                    idle_closed_at: None,
                    from_event: stored,
                    unrecorded: false,
                    ended_out_of_memory: None,
                },
            );
        }
        // Inserted just above when missing.
        self.sessions.get_mut(sid).expect("session present")
    }

    /// Whether a session can leave memory: it has nothing left to export
    /// (every complete span is out and recorded in the store), it is still
    /// open (a closed one finishes by itself), it can be rebuilt from the
    /// store, and it has been quiet for `evict_after`.
    fn evictable(&self, live: &Live, now: u64) -> bool {
        let after = self.cfg.evict_after.as_nanos() as u64;
        after > 0
            && self.store.is_some()
            && live.from_event.is_some()
            && !live.dirty
            && !live.unrecorded
            && live.first_complete.is_empty()
            && live.idle_closed_at.is_none()
            && live.session.facts.end_at.is_none()
            && now.saturating_sub(live.last_event) >= after
    }

    /// Drops a session from memory, keeping what rebuilds it.
    fn evict(&mut self, sid: &str) {
        let Some(live) = self.sessions.remove(sid) else {
            return;
        };
        let Some(from_event) = live.from_event else {
            self.sessions.insert(sid.to_string(), live);
            return;
        };
        self.evicted.insert(
            Sid::new(sid),
            Evicted {
                last_event: live.last_event,
                from_event,
                ended_at: None,
            },
        );
    }

    /// Rebuilds an evicted session from its stored events (it behaves as if
    /// it had stayed in memory: same facts, same exported spans).
    fn revive(&mut self, sid: &str) {
        let Some(stub) = self.evicted.remove(sid) else {
            return;
        };
        let Some(store) = self.store.as_ref() else {
            return;
        };
        let rebuilt = match Rebuilt::read(store, sid, stub.from_event) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, session = %sid, "cannot rebuild a session from the store; it continues from its new events");
                self.store_failed();
                Rebuilt::empty(sid)
            }
        };
        self.insert_rebuilt(sid, rebuilt, stub.last_event, stub.from_event);
        if let (Some(at), Some(live)) = (stub.ended_at, self.sessions.get_mut(sid)) {
            live.ended_out_of_memory = Some(at.get());
        }
    }

    /// Puts a rebuilt session back in memory, as it was when it left: a
    /// session rebuilt from no event is not rebuildable again.
    fn insert_rebuilt(&mut self, sid: &str, rebuilt: Rebuilt, last_event: u64, from_event: i64) {
        self.sessions.insert(
            sid.to_string(),
            Live {
                session: rebuilt.session,
                last_event,
                dirty: true,
                exported: rebuilt.exported,
                first_complete: HashMap::new(),
                idle_closed_at: None,
                from_event: rebuilt.first.map(|_| from_event),
                unrecorded: false,
                ended_out_of_memory: None,
            },
        );
    }

    /// Sessions in memory and evicted ones, for inspection.
    pub fn counts(&self) -> (usize, usize) {
        (self.sessions.len(), self.evicted.len())
    }

    /// The live session, for inspection.
    pub fn session(&self, sid: &str) -> Option<&Session> {
        self.sessions.get(sid).map(|l| &l.session)
    }

    /// Ids of the live sessions.
    pub fn session_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self.sessions.keys().cloned().collect();
        v.sort();
        v
    }

    /// The current tree of a live session.
    pub fn render(&self, sid: &str) -> Option<Tree> {
        let live = self.sessions.get(sid)?;
        Some(render::render(&live.session, &self.options(live)))
    }

    fn options(&self, live: &Live) -> RenderOptions {
        RenderOptions {
            idle_closed_at: live.idle_closed_at,
            max_content: self.cfg.max_content_bytes,
        }
    }

    fn map_path(&self, path: &str) -> String {
        for (from, to) in &self.cfg.transcript_path_map {
            if let Some(rest) = path.strip_prefix(from.as_str()) {
                return format!("{}{}", to.display(), rest);
            }
        }
        path.to_string()
    }

    /// Advances time to `now` (unix ns on ccotel's clock): reads new
    /// transcript lines, closes idle sessions, and returns the spans that are
    /// due. With `flush`, every complete span is due at once (shutdown).
    pub fn tick(&mut self, now: u64, flush: bool) -> Vec<Export> {
        let grace = self.cfg.grace_period.as_nanos() as u64;
        let idle = self.cfg.idle_timeout.as_nanos() as u64;
        // Evicted sessions that timed out, or whose SessionEnd has waited out
        // the grace (or is held at shutdown), come back to be closed: each is
        // rebuilt in its turn below and leaves memory at once when it closes,
        // so that thousands ending together are not all in memory at once.
        let mut ids: Vec<String> = self.sessions.keys().cloned().collect();
        ids.extend(
            self.evicted
                .iter()
                .filter(|(_, e)| {
                    now.saturating_sub(e.last_event) >= idle
                        || e.ended_at
                            .is_some_and(|at| flush || now.saturating_sub(at.get()) >= grace)
                })
                .map(|(sid, _)| sid.as_str().to_string()),
        );
        let mut out = Vec::new();
        let mut done = Vec::new();
        let mut quiet = Vec::new();
        let mut released_calls = 0;
        for sid in ids {
            self.revive(&sid);
            // (A revived session is back in memory unless it had no store to
            // be rebuilt from.)
            let Some(live) = self.sessions.get(&sid) else {
                continue;
            };
            let paths: Vec<String> = if !live.dirty || !self.cfg.read_transcripts {
                Vec::new()
            } else {
                let f = &live.session.facts;
                f.transcript_path
                    .iter()
                    .chain(
                        live.session
                            .agents
                            .values()
                            .filter_map(|a| a.transcript_path.as_ref()),
                    )
                    .map(|p| self.map_path(p))
                    .collect()
            };
            let opts_max = self.cfg.max_content_bytes;
            let Some(live) = self.sessions.get_mut(&sid) else {
                continue;
            };
            for p in paths {
                transcript::read_new(&mut live.session, &p);
            }
            if live.session.facts.end_at.is_none()
                && live.idle_closed_at.is_none()
                && now.saturating_sub(live.last_event) >= idle
            {
                live.idle_closed_at = Some(now);
                live.dirty = true;
            }
            // Unchanged since the last render, the tree is the same: only a
            // span's grace running out makes a difference.
            let next_due = live
                .first_complete
                .values()
                .min()
                .map(|since| since.saturating_add(grace));
            if !live.dirty && !flush && next_due.is_none_or(|due| now < due) {
                if self.evictable(&self.sessions[&sid], now) {
                    quiet.push(sid);
                }
                continue;
            }
            let changed = live.dirty;
            live.dirty = false;
            let tree = render::render_pending(
                &live.session,
                &RenderOptions {
                    idle_closed_at: live.idle_closed_at,
                    max_content: opts_max,
                },
                &live.exported,
            );
            let closed = live.session.facts.end_at.is_some() || live.idle_closed_at.is_some();
            let mut due = Vec::new();
            let mut all_done = true;
            // Only spans of this tree that are still complete keep waiting
            // out their grace. A span can leave the tree before it is due
            // (a later event gives the same call another identity); kept,
            // its entry would make the session render on every tick and
            // never leave memory.
            let waited = std::mem::take(&mut live.first_complete);
            let complete_since = live.ended_out_of_memory.take().unwrap_or(now);
            for r in tree.spans {
                if live.exported.contains(&r.span.span_id) {
                    continue;
                }
                if !(r.complete && r.ready) {
                    all_done = false;
                    continue;
                }
                let since = waited
                    .get(&r.span.span_id)
                    .copied()
                    .unwrap_or(complete_since);
                if !(flush || now.saturating_sub(since) >= grace) {
                    live.first_complete.insert(r.span.span_id, since);
                    all_done = false;
                } else {
                    live.exported.insert(r.span.span_id);
                    let mut span = r.span;
                    if let Some(redactor) = &self.redactor {
                        redactor.span(&mut span);
                    }
                    due.push(span);
                }
            }
            if changed || !due.is_empty() {
                released_calls += live.session.release_exported(&live.exported);
            }
            if !due.is_empty() {
                live.unrecorded = true;
                let f = &live.session.facts;
                out.push(Export {
                    session: sid.clone(),
                    resource: tree.resource,
                    spans: due,
                    meta: SessionMeta {
                        cwd: f.cwd.clone(),
                        git_branch: f.git_branch.clone(),
                        models: f.models.iter().cloned().collect(),
                        version: f.version.clone(),
                    }
                    .redact(self.redactor.as_deref()),
                });
            }
            if closed && all_done {
                if let Some(live) = self.sessions.remove(&sid) {
                    self.finished.insert(&sid, live.exported);
                }
                done.push(sid);
            } else if !flush && self.evictable(&self.sessions[&sid], now) {
                quiet.push(sid);
            }
        }
        for sid in &quiet {
            self.evict(sid);
        }
        // Hand freed memory back once sessions stop leaving (one trim per
        // burst), or every TRIM_EVERY while they keep leaving; and every
        // TRIM_EVERY while calls are released in sessions that stay.
        let leaving = done.len() + quiet.len();
        self.released += leaving;
        self.released_calls += released_calls;
        let waited = now.saturating_sub(self.trimmed_at) >= TRIM_EVERY;
        let quiet_after_burst =
            self.busy_since_trim && now.saturating_sub(self.last_busy) >= QUIET_TRIM_AFTER;
        if (self.released > 0 && (leaving == 0 || waited))
            || (self.released_calls > 0 && waited)
            || quiet_after_burst
        {
            shrink_if_mostly_empty(&mut self.sessions);
            shrink_if_mostly_empty(&mut self.evicted);
            crate::heap::trim();
            self.released = 0;
            self.released_calls = 0;
            self.trimmed_at = now;
            self.busy_since_trim = false;
            if let Some(stats) = &self.stats {
                stats.inc(&stats.heap_trims);
            }
        }
        if !out.is_empty() {
            self.busy_since_trim = true;
            self.last_busy = self.last_busy.max(now);
        }
        self.closing.extend(done);
        if let Some(stats) = &self.stats {
            stats.set(&stats.sessions_in_memory, self.sessions.len() as u64);
            stats.set(&stats.sessions_evicted, self.evicted.len() as u64);
        }
        out
    }

    /// Deletes stored sessions older than the retention period.
    pub fn prune(&mut self, now: u64) {
        let keep = self.retention.as_nanos() as u64;
        if keep == 0 {
            return;
        }
        if let Some(store) = self.store.as_mut() {
            match store.prune(now.saturating_sub(keep)) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    sessions = n,
                    "removed sessions older than the retention period"
                ),
                Err(e) => tracing::error!(error = %e, "cannot apply the retention period"),
            }
        }
    }

    /// Records in the store that `exports` were handed to the exporters (call
    /// it after queueing them, so a crash in between re-sends rather than
    /// loses), and marks finished sessions closed.
    pub fn record(&mut self, exports: &[Export]) {
        let closing = std::mem::take(&mut self.closing);
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let mut failures = 0;
        for e in exports {
            match store
                .save_spans(&e.session, &e.spans)
                .and_then(|_| store.save_meta(&e.session, &e.meta))
            {
                Ok(()) => {
                    if let Some(live) = self.sessions.get_mut(&e.session) {
                        live.unrecorded = false;
                    }
                }
                Err(err) => {
                    failures += 1;
                    tracing::error!(error = %err, session = %e.session, "cannot record exported spans");
                    // The store no longer knows everything it exported:
                    // keep the session in memory.
                    if let Some(live) = self.sessions.get_mut(&e.session) {
                        live.from_event = None;
                    }
                }
            }
        }
        for sid in &closing {
            if let Err(err) = store.close_session(sid) {
                failures += 1;
                tracing::error!(error = %err, session = %sid, "cannot mark the session closed");
            }
        }
        for _ in 0..failures {
            self.store_failed();
        }
    }
}

/// Runs [`run`] on a thread of its own, so that the engine's SQLite writes
/// (and their occasional fsync) and its rendering never hold up the
/// receivers: Claude Code waits on a hook's reply, not on the merge. The
/// returned receiver resolves when the engine has flushed and stopped.
pub fn spawn(
    rx: mpsc::Receiver<Accepted>,
    receivers: Activity,
    fanout: FanOut,
    stop: watch::Receiver<bool>,
    engine: Engine,
    stats: Arc<Stats>,
    feed: crate::query::server::Feed,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("ccotel-merge".into())
        .spawn(move || {
            crate::sched::background();
            runtime.block_on(run(rx, receivers, fanout, stop, engine, stats, feed));
            let _ = done.send(());
        })?;
    Ok(finished)
}

/// The event of an accepted input, parsing a hook's body now. A body the
/// receiver checked always parses, so a failure is counted and logged, never
/// silent.
fn take(accepted: Accepted, stats: &Stats) -> Option<Event> {
    match accepted.into_event() {
        Ok(e) => Some(e),
        Err(e) => {
            stats.inc(&stats.bad_requests);
            tracing::error!(error = %e, "a hook body that passed the receiver's check did not parse; dropped");
            None
        }
    }
}

/// How often the engine advances time: spans whose grace ran out go out,
/// idle sessions close, quiet ones leave memory.
const TICK: Duration = Duration::from_millis(500);

/// Drains the ingest channel until it is closed (or `stop` fires, after which
/// what is already queued is still processed), merging as it goes, then
/// flushes every complete span and returns.
pub async fn run(
    mut rx: mpsc::Receiver<Accepted>,
    receivers: Activity,
    fanout: FanOut,
    mut stop: watch::Receiver<bool>,
    mut engine: Engine,
    stats: Arc<Stats>,
    feed: crate::query::server::Feed,
) {
    let mut last_prune: Option<std::time::Instant> = None;
    let mut next_tick = tokio::time::Instant::now() + TICK;
    let mut batch: Vec<Event> = Vec::new();
    let mut forwarded: Vec<Encoded> = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(next_tick) => {}
            next = rx.recv() => match next {
                Some(first) => {
                    stay_out_of_burst(&receivers);
                    batch.extend(take(first, &stats).map(|e| forward(&fanout, &engine, e, &mut forwarded)));
                    while batch.len() < 512 {
                        match rx.try_recv() {
                            Ok(a) => batch.extend(take(a, &stats).map(|e| forward(&fanout, &engine, e, &mut forwarded))),
                            Err(_) => break,
                        }
                    }
                    fanout.push(&forwarded);
                    forwarded.clear();
                    ingest_around_bursts(&mut engine, &batch, &receivers);
                    batch.clear();
                }
                None => break,
            },
        }
        // The clock is read here, not left to the timer: while the channel
        // is never empty this task does not yield for long, the runtime does
        // not turn its timers, and a timer-driven tick was held back for
        // seconds, with every session and its spans piling up meanwhile.
        if tokio::time::Instant::now() >= next_tick {
            stay_out_of_burst(&receivers);
            let exports = engine.tick(now(), false);
            stay_out_of_burst(&receivers);
            send(&fanout, &stats, &exports);
            stay_out_of_burst(&receivers);
            engine.record(&exports);
            publish(&feed, &exports);
            if last_prune.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
                last_prune = Some(std::time::Instant::now());
                engine.prune(now());
            }
            next_tick = tokio::time::Instant::now() + TICK;
        }
    }
    rx.close();
    while let Some(a) = rx.recv().await {
        batch.extend(take(a, &stats).map(|e| forward(&fanout, &engine, e, &mut forwarded)));
    }
    fanout.push(&forwarded);
    engine.ingest(&batch);
    let exports = engine.tick(now(), true);
    send(&fanout, &stats, &exports);
    engine.record(&exports);
    publish(&feed, &exports);
}

/// How long the receivers must have queued nothing before the merge takes
/// the CPU from them: a receiver under a burst of hooks queues one every
/// 10–20 µs.
const QUIET: Duration = Duration::from_micros(200);

/// The longest the merge waits for a burst to end, each time it wakes.
const MOST_DEFERRED: Duration = Duration::from_millis(2);

/// Sleeps while the receivers are in the middle of a burst and the ingest
/// buffer has room, at most [`MOST_DEFERRED`]. Merging a moment later
/// costs nothing (spans wait out a 10 s grace), while a merge that takes
/// the CPU mid-burst keeps every reply still to be written waiting for
/// the kernel's next tick. A buffer past half full ends the wait, so the
/// merge never falls further behind than the buffer allows.
fn stay_out_of_burst(receivers: &Activity) {
    wait_out_burst(receivers, QUIET, MOST_DEFERRED);
}

/// [`stay_out_of_burst`] with its times given; returns how long it slept.
pub fn wait_out_burst(receivers: &Activity, quiet: Duration, most: Duration) -> Duration {
    let started = std::time::Instant::now();
    while receivers.in_burst(quiet) && started.elapsed() < most {
        std::thread::sleep(quiet);
    }
    started.elapsed()
}

/// Events merged between two looks at the receivers while they are busy:
/// some 20 µs of merge work each.
const CHUNK_IN_BURST: usize = 16;

/// Merges `batch` in one store transaction when the receivers are quiet,
/// and in short chunks with [`stay_out_of_burst`] between them when a
/// burst starts meanwhile.
fn ingest_around_bursts(engine: &mut Engine, batch: &[Event], receivers: &Activity) {
    let mut rest = batch;
    while !rest.is_empty() {
        let n = if receivers.in_burst(QUIET) {
            CHUNK_IN_BURST.min(rest.len())
        } else {
            rest.len()
        };
        engine.ingest(&rest[..n]);
        rest = &rest[n..];
        if !rest.is_empty() {
            stay_out_of_burst(receivers);
        }
    }
}

/// Tells `Tail` subscribers about exported spans.
fn publish(feed: &crate::query::server::Feed, exports: &[Export]) {
    if feed.receiver_count() == 0 {
        return;
    }
    for e in exports {
        for s in &e.spans {
            let _ = feed.send(crate::query::span_to_pb(&e.session, s));
        }
    }
}

fn now() -> u64 {
    crate::model::event::unix_nanos(std::time::SystemTime::now())
}

/// Forwards native metrics and logs unchanged (and native spans to exporters
/// that asked for them), and hands the event on to the merge. The OTLP
/// request is encoded at most once (not at all when it arrived as protobuf):
/// the secret scan, the exporter queues and the write-ahead store share those
/// bytes.
fn forward(fanout: &FanOut, engine: &Engine, mut event: Event, out: &mut Vec<Encoded>) -> Event {
    use crate::receive::signal::OtlpRequest;
    let (signal, records) = match &event.payload {
        Payload::Logs(r) => (Signal::Logs, r.records()),
        Payload::Metrics(r) => (Signal::Metrics, r.records()),
        Payload::Traces(r) => (Signal::NativeTraces, r.records()),
        Payload::Hook(_) => {
            engine.redact(&mut event);
            return event;
        }
    };
    event.encoded();
    engine.redact(&mut event);
    if fanout.wants(signal) {
        if let Some(body) = event.encoded() {
            out.push(Encoded {
                signal,
                records,
                body,
            });
        }
    }
    event
}

fn send(fanout: &FanOut, stats: &Stats, exports: &[Export]) {
    if exports.is_empty() {
        return;
    }
    let mut items = Vec::with_capacity(exports.len());
    for e in exports {
        stats.add(&stats.merged_spans, e.spans.len() as u64);
        items.push(Encoded::from_item(&ExportItem::Traces(Arc::new(
            to_request(&e.resource, &e.spans),
        ))));
    }
    fanout.push(&items);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HookEvent, Transport};

    fn hook(sid: &str, name: &str, at: u64) -> Event {
        let body = format!(r#"{{"session_id":"{sid}","hook_event_name":"{name}"}}"#);
        Event {
            received_at: at,
            transport: Transport::HookHttp,
            payload: Payload::Hook(HookEvent::parse(body.as_bytes()).expect("a hook")),
            wire: None,
        }
    }

    /// An engine with a store in `dir` whose quiet sessions leave memory
    /// after 1 ms.
    fn evicting(dir: &tempfile::TempDir, grace: Duration) -> Engine {
        let store = Store::open(dir.path()).expect("store");
        let cfg = MergeConfig {
            grace_period: grace,
            evict_after: Duration::from_millis(1),
            read_transcripts: false,
            ..Default::default()
        };
        Engine::new(cfg, Some(store))
    }

    /// A tick at `now` whose exports are recorded, as `serve` does.
    fn step(engine: &mut Engine, now: u64) -> Vec<Export> {
        let due = engine.tick(now, false);
        engine.record(&due);
        due
    }

    /// Thousands of sessions in memory at once, then gone quiet and out of
    /// memory: the table that held them does not keep its size (800 bytes
    /// a slot) for the rest of the process's life.
    #[test]
    fn the_live_sessions_table_shrinks_once_they_leave_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut engine = evicting(&dir, Duration::from_millis(1));
        const S: u64 = 1_000_000_000;
        let events: Vec<Event> = (0..3000)
            .map(|i| hook(&format!("session-{i}"), "SessionStart", S))
            .collect();
        engine.ingest(&events);
        assert_eq!(engine.counts(), (3000, 0));
        let grown = engine.sessions.capacity();
        assert!(grown >= 3000);
        for now in [2 * S, 3 * S, 4 * S] {
            step(&mut engine, now);
        }
        assert_eq!(engine.counts(), (0, 3000), "every session left memory");
        assert!(
            engine.sessions.capacity() <= 64,
            "the table kept {} slots",
            engine.sessions.capacity()
        );
        // Back in memory, then out again: the table follows.
        let events: Vec<Event> = (0..100)
            .map(|i| hook(&format!("session-{i}"), "UserPromptSubmit", 5 * S))
            .collect();
        engine.ingest(&events);
        assert_eq!(engine.counts(), (100, 2900));
        for now in [6 * S, 7 * S, 8 * S] {
            step(&mut engine, now);
        }
        assert_eq!(engine.counts(), (0, 3000));
        assert!(engine.sessions.capacity() <= 64);
        assert!(engine.sessions.capacity() < grown);
    }

    /// Thousands of quiet sessions out of memory end at once: none comes
    /// back into memory to wait out its grace; each is rebuilt once its
    /// root span is due, closes in that same tick, and leaves memory before
    /// the next is rebuilt.
    #[test]
    fn sessions_out_of_memory_that_end_stay_out_until_their_root_is_due() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut engine = evicting(&dir, Duration::from_secs(2));
        const S: u64 = 1_000_000_000;
        let n = 500;
        let sid = |i: usize| format!("session-{i}");
        let starts: Vec<Event> = (0..n).map(|i| hook(&sid(i), "SessionStart", S)).collect();
        engine.ingest(&starts);
        for now in [2 * S, 4 * S] {
            step(&mut engine, now);
        }
        assert_eq!(engine.counts(), (0, n), "every session left memory");
        let ends: Vec<Event> = (0..n).map(|i| hook(&sid(i), "SessionEnd", 5 * S)).collect();
        engine.ingest(&ends);
        assert_eq!(engine.counts(), (0, n), "a SessionEnd is held, not applied");
        let due = engine.tick(6 * S, false);
        assert!(due.is_empty());
        assert_eq!(engine.counts(), (0, n), "still out during the grace");
        // (Within TRIM_EVERY of the last trim, so the table is not shrunk
        // in this tick: its size tells how many were in memory at once.)
        let due = engine.tick(8 * S, false);
        engine.record(&due);
        assert_eq!(engine.counts(), (0, 0), "all closed once due");
        assert!(
            engine.sessions.capacity() < 16,
            "one rebuilt at a time: the table grew to {}",
            engine.sessions.capacity()
        );
        let roots: Vec<&SpanRecord> = due
            .iter()
            .flat_map(|x| &x.spans)
            .filter(|s| s.parent_span_id.is_none())
            .collect();
        assert_eq!(roots.len(), n, "each session's root, once");
        assert!(
            roots.iter().all(|r| r.end_ns == 5 * S),
            "the root ends at the SessionEnd"
        );
    }

    /// A burst of events that leaves every session in memory (nothing is
    /// evicted or exported) still ends with one trim once it is over.
    #[test]
    fn a_burst_is_followed_by_one_trim_once_quiet() {
        use std::sync::atomic::Ordering;
        let stats = Arc::new(Stats::default());
        let cfg = MergeConfig {
            read_transcripts: false,
            ..Default::default()
        };
        let mut engine = Engine::new(cfg, None).with_stats(stats.clone());
        let trims = || stats.heap_trims.load(Ordering::Relaxed);
        const S: u64 = 1_000_000_000;
        let events: Vec<Event> = (0..50)
            .map(|i| hook(&format!("s-{i}"), "SessionStart", S + i))
            .collect();
        engine.ingest(&events);
        engine.tick(2 * S, false);
        assert_eq!(trims(), 0, "not yet quiet");
        engine.tick(3 * S + 100, false);
        assert_eq!(trims(), 1, "quiet for 2 s");
        engine.tick(10 * S, false);
        assert_eq!(trims(), 1, "nothing since");
        engine.ingest(&[hook("s-0", "UserPromptSubmit", 11 * S)]);
        engine.tick(14 * S, false);
        assert_eq!(trims(), 2, "after the next burst");
    }

    /// Shut down while a SessionEnd is held: the session closes in the
    /// final flush, as it would have in memory.
    #[test]
    fn a_held_session_end_closes_at_shutdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut engine = evicting(&dir, Duration::from_secs(2));
        const S: u64 = 1_000_000_000;
        engine.ingest(&[hook("s-flush", "SessionStart", S)]);
        for now in [2 * S, 4 * S] {
            step(&mut engine, now);
        }
        engine.ingest(&[hook("s-flush", "SessionEnd", 5 * S)]);
        assert_eq!(engine.counts(), (0, 1));
        let due = engine.tick(5 * S + 1, true);
        let roots = due
            .iter()
            .flat_map(|x| &x.spans)
            .filter(|s| s.parent_span_id.is_none())
            .count();
        assert_eq!(roots, 1);
        assert_eq!(engine.counts(), (0, 0));
    }
}
