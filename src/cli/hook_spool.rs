//! The on-disk spool of `ccotel hook`.
//!
//! Hook events that could not be delivered (bridge down, hung, overloaded)
//! wait here until an invocation that reaches the bridge sends them, oldest
//! first. The spool is a plain directory so that many short-lived processes,
//! some running concurrently, can share it without a daemon:
//!
//! - `<unix nanos, 20 digits>-<pid, 10 digits>-<seq, 4 digits>.json`: one
//!   event, the exact bytes read from stdin. The name starts with the wall
//!   clock time at which the invocation started, zero padded, so sorting the
//!   names sorts the events by time and gives the delivery order; pid and a
//!   per-process sequence number keep names unique.
//! - `.tmp-<name>`: an event being written. It is renamed to `<name>` once
//!   complete, and rename is atomic, so a drainer never reads half an event.
//!   Leftovers of killed processes are removed by the next drainer once they
//!   are older than [`STALE_TMP`].
//! - `.lock`: `flock`ed by the single process allowed to drain (see
//!   [`Spool::try_lock`]); the kernel releases it when that process exits,
//!   however it exits, so a crash can never wedge the spool.
//! - `dropped`: one line per event the spool discarded, naming the reason
//!   (`full`, `rejected`, `unreadable`), so `wc -l dropped` is the count. An
//!   event the bridge rejects on the fast path is not counted here: the
//!   bridge saw it and logs it, and the fast path never touches the disk.
//!   Lines are appended with `O_APPEND`, which concurrent invocations cannot
//!   interleave, so no count is ever lost to a race.
//!
//! Files are not `fsync`ed: an fsync can take tens of milliseconds, which
//! the per-invocation budget cannot afford, and the spool only needs to
//! survive the bridge being down, not the machine losing power.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most events the spool holds. At about 1 KiB to a few KiB per event this
/// is hours of heavy tool use, long enough to notice the bridge is down,
/// small enough that a listing stays a few milliseconds.
pub const MAX_FILES: usize = 10_000;

/// Most bytes the spool holds, so a dead bridge cannot fill the disk with
/// large `PostToolUse` payloads.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Age after which a `.tmp-` file is certainly abandoned: every invocation
/// ends within its budget (a few hundred milliseconds), so a minute is ample.
pub const STALE_TMP: Duration = Duration::from_secs(60);

const LOCK_FILE: &str = ".lock";
const DROPPED_FILE: &str = "dropped";
const TMP_PREFIX: &str = ".tmp-";
const EVENT_SUFFIX: &str = ".json";

/// Why an event was discarded; written to the `dropped` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The spool was at its bound. The *newest* event is the one dropped:
    /// the oldest ones carry the start of sessions (`SessionStart`, the
    /// first prompts) that the bridge needs to anchor each trace, while a
    /// gap late in a session only loses a few tool calls. Dropping the
    /// incoming event also never races with a drainer sending the oldest.
    Full,
    /// The bridge answered 4xx (other than 408/429): it will never accept
    /// this event, so keeping it would only block the ones behind it.
    Rejected,
    /// The spooled file could not be read; it would block the queue forever.
    Unreadable,
}

impl DropReason {
    fn as_str(self) -> &'static str {
        match self {
            DropReason::Full => "full",
            DropReason::Rejected => "rejected",
            DropReason::Unreadable => "unreadable",
        }
    }
}

/// What [`Spool::push`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The event is in the spool.
    Stored,
    /// The spool was full; the event was dropped and counted.
    Dropped,
}

/// A spool directory; see the module documentation for its layout.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

/// Proof that this process is the one draining the spool. Dropping it
/// closes the lock file, which releases the `flock`.
#[derive(Debug)]
pub struct DrainLock {
    _file: File,
}

impl Spool {
    /// A spool in `dir`. Touches nothing on disk: the fast path must not pay
    /// for creating a directory it will not use.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Spool { dir: dir.into() }
    }

    /// Where the spool lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether any event waits. This runs on every invocation, so it is a
    /// single `read_dir` that stops at the first event; a missing or
    /// unreadable directory counts as empty.
    pub fn has_events(&self) -> bool {
        match fs::read_dir(&self.dir) {
            Ok(entries) => entries
                .flatten()
                .any(|e| is_event_name(&e.file_name().to_string_lossy())),
            Err(_) => false,
        }
    }

    /// The waiting events, oldest first. Also removes stale `.tmp-` files,
    /// since the drainer is the one process that walks the whole directory.
    pub fn events(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_event_name(&name) {
                names.push(name);
            } else if name.starts_with(TMP_PREFIX) && is_stale(&entry) {
                let _ = fs::remove_file(entry.path());
            }
        }
        names.sort_unstable();
        names.into_iter().map(|n| self.dir.join(n)).collect()
    }

    /// Stores one event, named after `started` (the time the invocation
    /// started, so the spool orders events by when they happened rather
    /// than by when they failed). Creates the directory if needed.
    ///
    /// The bound is checked before writing; concurrent pushers can overshoot
    /// it by a few events, which is fine for a bound meant to protect the
    /// disk.
    pub fn push(&self, started: SystemTime, event: &[u8]) -> io::Result<Pushed> {
        fs::create_dir_all(&self.dir)?;
        if self.would_overflow(event.len() as u64) {
            self.note_dropped(DropReason::Full);
            return Ok(Pushed::Dropped);
        }
        let name = event_name(started);
        let tmp = self.dir.join(format!("{TMP_PREFIX}{name}"));
        let result = write_new(&tmp, event).and_then(|()| fs::rename(&tmp, self.dir.join(&name)));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| Pushed::Stored)
    }

    /// Takes the drain lock if no other process holds it. Never blocks: an
    /// invocation that cannot drain leaves its event in the spool, and the
    /// holder picks it up (see `drain` in `hook.rs` for the hand-over rule).
    pub fn try_lock(&self) -> Option<DrainLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK_FILE))
            .ok()?;
        // `File::try_lock` is std's portable `flock(LOCK_EX | LOCK_NB)`;
        // it needs Rust 1.89, newer than the crate's declared rust-version.
        let locked = file.try_lock();
        match locked {
            Ok(()) => Some(DrainLock { _file: file }),
            Err(_) => None,
        }
    }

    /// Removes a spooled event once the bridge has taken it (or rejected it
    /// for good). Returns whether the file is gone.
    pub fn remove(&self, event: &Path) -> bool {
        match fs::remove_file(event) {
            Ok(()) => true,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }

    /// Counts one discarded event in the `dropped` file. Best effort: the
    /// count is a diagnostic, and nothing may be printed on this path.
    pub fn note_dropped(&self, reason: DropReason) {
        let line = format!("{}\n", reason.as_str());
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(DROPPED_FILE))
        {
            let _ = f.write_all(line.as_bytes());
        }
    }

    /// How many events were discarded so far (lines of the `dropped` file).
    pub fn dropped(&self) -> usize {
        fs::read(self.dir.join(DROPPED_FILE))
            .map(|b| b.iter().filter(|&&c| c == b'\n').count())
            .unwrap_or(0)
    }

    fn would_overflow(&self, incoming: u64) -> bool {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return false;
        };
        let mut files = 0usize;
        let mut bytes = incoming;
        for entry in entries.flatten() {
            if !is_event_name(&entry.file_name().to_string_lossy()) {
                continue;
            }
            files += 1;
            bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
            if files >= MAX_FILES || bytes > MAX_BYTES {
                return true;
            }
        }
        bytes > MAX_BYTES
    }
}

/// Whether `name` is a complete spooled event (not the lock, the counter or
/// a file still being written).
pub fn is_event_name(name: &str) -> bool {
    name.ends_with(EVENT_SUFFIX) && !name.starts_with('.')
}

/// The file name for an event of an invocation started at `started`.
fn event_name(started: SystemTime) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = started
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed) % 10_000;
    format!(
        "{nanos:020}-{pid:010}-{seq:04}{EVENT_SUFFIX}",
        pid = std::process::id()
    )
}

fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(bytes)
}

fn is_stale(entry: &fs::DirEntry) -> bool {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_TMP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_start_time() {
        let early = UNIX_EPOCH + Duration::from_secs(9);
        let late = UNIX_EPOCH + Duration::from_secs(10);
        assert!(event_name(early) < event_name(late));
        assert!(is_event_name(&event_name(late)));
        assert!(!is_event_name(".tmp-x.json"));
        assert!(!is_event_name(".lock"));
        assert!(!is_event_name("dropped"));
    }

    #[test]
    fn push_list_remove_and_count_drops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::new(dir.path().join("spool"));
        assert!(!spool.has_events());
        assert!(spool.events().is_empty());
        let t0 = UNIX_EPOCH + Duration::from_secs(1);
        let t1 = UNIX_EPOCH + Duration::from_secs(2);
        assert_eq!(spool.push(t1, b"second").ok(), Some(Pushed::Stored));
        assert_eq!(spool.push(t0, b"first").ok(), Some(Pushed::Stored));
        assert!(spool.has_events());
        let events = spool.events();
        let bodies: Vec<Vec<u8>> = events.iter().filter_map(|p| fs::read(p).ok()).collect();
        assert_eq!(bodies, vec![b"first".to_vec(), b"second".to_vec()]);
        let lock = spool.try_lock();
        assert!(lock.is_some());
        assert!(events.iter().all(|p| spool.remove(p)));
        drop(lock);
        assert!(!spool.has_events());
        spool.note_dropped(DropReason::Full);
        spool.note_dropped(DropReason::Rejected);
        assert_eq!(spool.dropped(), 2);
        // The lock and counter files are not events.
        assert!(!spool.has_events());
    }

    #[test]
    fn oversized_event_is_dropped_not_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::new(dir.path());
        let huge = vec![b' '; (MAX_BYTES + 1) as usize];
        assert_eq!(
            spool.push(SystemTime::now(), &huge).ok(),
            Some(Pushed::Dropped)
        );
        assert!(!spool.has_events());
        assert_eq!(spool.dropped(), 1);
    }
}
