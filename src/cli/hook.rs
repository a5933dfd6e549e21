//! `ccotel hook`: the command-hook client.
//!
//! Claude Code runs this on every tool call, pipes the hook JSON to stdin and
//! waits for it to exit, so it must be fast (the target is ~1.5 ms end to
//! end, close to spawning `/bin/true`), silent (anything on stdout/stderr can
//! be shown to the user or the model) and bounded (it always exits 0 within
//! `--timeout-ms`, whatever the bridge does). Hence: no async runtime, no
//! logging set-up, no parsing of the event, one blocking HTTP/1.1 request.
//!
//! Events that cannot be delivered go to the spool ([`super::hook_spool`]);
//! the next invocation that reaches the bridge sends the spool first, in
//! order, then its own event.
//!
//! HTTP goes through `ureq`, with connect, write and read timeouts derived
//! from the time left. Those are socket timeouts, which the kernel's timer
//! wheel may fire up to about an eighth late (measured here: a 972 ms
//! `SO_RCVTIMEO` returned after 992 ms), and nothing bounds a stdin that is
//! never closed or a stalled filesystem. So the exact bound comes from a
//! watchdog thread (see [`watchdog`]): at the deadline it spools the event if
//! it is still in flight, then exits the process with status 0. A
//! hand-written HTTP/1.1 client would need the same watchdog, so it would
//! buy nothing over `ureq`.

use super::hook_spool::{DropReason, Spool};
use super::HookArgs;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant, SystemTime};

/// Largest reply body we read. The bridge answers `{}`; reading the reply at
/// all matters (a client that wrote without reading lost 24% of events), its
/// size does not.
const MAX_REPLY: u64 = 64 * 1024;

/// When Claude Code ran the hook (unix ns): a spooled event reaches the
/// bridge later, and its timing must not shift with the delay.
pub const HOOK_TIME_HEADER: &str = "x-ccotel-hook-time";

fn unix_nanos(t: SystemTime) -> Option<u128> {
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos())
}

/// The invocation time a spool file is named after.
fn started_of(path: &std::path::Path) -> Option<u128> {
    path.file_name()?.to_str()?.get(..20)?.parse().ok()
}

/// Forwards one hook event from stdin to the bridge, after any spooled ones.
/// Never fails, prints nothing, and returns (or exits 0) within
/// `--timeout-ms`.
pub fn run(args: &HookArgs) {
    // The default hook would print panics to stderr, which Claude Code shows.
    std::panic::set_hook(Box::new(|_| {}));
    let started = Instant::now();
    let budget = Duration::from_millis(args.timeout_ms);
    let hard_deadline = started + budget;
    // Network attempts end early enough to leave time to spool the event.
    let deadline = hard_deadline
        .checked_sub(reserve(budget))
        .unwrap_or(started);
    let shared = Arc::new(Shared {
        spool: Spool::new(spool_dir(args)),
        started: SystemTime::now(),
        state: Mutex::new(State::default()),
    });
    {
        let shared = shared.clone();
        // If the thread cannot be spawned we run unguarded: the socket
        // timeouts still bound each network phase, just less tightly.
        let _ = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || watchdog(&shared, deadline, hard_deadline));
    }

    // Once main is done (even by a panic, caught in `main`), the watchdog
    // must not exit the process: main does.
    let _finish = Finish(&shared);
    let event: Arc<[u8]> = read_stdin().into();
    forward(
        &shared,
        &event,
        &Bridge::new(&args.endpoint, args.token.as_deref()),
        deadline,
    );
}

/// Marks main as finished when dropped.
struct Finish<'a>(&'a Shared);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.lock().finished = true;
    }
}

/// State shared with the watchdog.
struct Shared {
    spool: Spool,
    /// When the invocation started: spooled events are named after it.
    started: SystemTime,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Our event while it is on the wire and neither delivered, rejected
    /// nor spooled: whoever takes it out (main when the POST returns, or the
    /// watchdog at the deadline) decides its fate, so it is spooled at most
    /// once.
    in_flight: Option<Arc<[u8]>>,
    /// Main has settled everything and is about to exit by itself.
    finished: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the state is two
        // plain fields and still meaningful.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn forward(shared: &Shared, event: &Arc<[u8]>, bridge: &Bridge<'_>, deadline: Instant) {
    let spool = &shared.spool;
    if spool.has_events() {
        // Older events wait: ours must not overtake them. Queue it behind
        // them and drain, if no other process is already draining.
        if !event.is_empty() && spool.push(shared.started, event).is_err() {
            // Could not spool; sending out of order beats losing the event.
            let _ = bridge.post(event, unix_nanos(shared.started), deadline);
        }
        drain(spool, bridge, deadline);
    } else if !event.is_empty() {
        // Fast path. No lock needed: a drainer deletes a file only after the
        // bridge took it, so an empty spool means no older event is pending.
        shared.lock().in_flight = Some(event.clone());
        let delivery = bridge.post(event, unix_nanos(shared.started), deadline);
        let mut state = shared.lock();
        if state.in_flight.take().is_some() && delivery == Delivery::Retry {
            // Spool while holding the lock, so the watchdog cannot exit the
            // process halfway. A full spool counts the drop itself; an I/O
            // error has nowhere to be reported, since printing is not allowed.
            let _ = spool.push(shared.started, event);
        }
    }
}

/// Outcome of one POST, which decides what happens to the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// 2xx: the bridge has it.
    Delivered,
    /// 4xx other than 408/429: the bridge will never take it; drop it.
    Rejected,
    /// Connection error, timeout, 408, 429, 5xx, or anything unexpected:
    /// the event is fine but the bridge is not; spool it.
    Retry,
}

/// A blocking HTTP client bound to the bridge's hook endpoint.
struct Bridge<'a> {
    agent: ureq::Agent,
    endpoint: &'a str,
    /// `Bearer <token>` when ccotel requires a token.
    authorization: Option<String>,
}

impl<'a> Bridge<'a> {
    fn new(endpoint: &'a str, token: Option<&str>) -> Self {
        let agent = ureq::Agent::config_builder()
            // Status codes are data here, not errors.
            .http_status_as_error(false)
            // The bridge is local; an HTTP(S)_PROXY meant for the model API
            // must not capture hook traffic.
            .proxy(None)
            // A redirect means a misconfigured endpoint: spool, don't follow.
            .max_redirects(0)
            .user_agent(concat!("ccotel-hook/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Bridge {
            agent,
            endpoint,
            authorization: token.map(|t| format!("Bearer {t}")),
        }
    }

    /// POSTs `event` unchanged and reads the reply.
    ///
    /// Every phase (connect, send, wait for the reply, read it) may take the
    /// time left until `deadline`. That is not a total bound, on purpose: a
    /// `timeout_global` or `timeout_per_call` makes ureq resolve the host on
    /// a thread of its own, which costs about a tenth of a millisecond per
    /// request, and the total bound is the watchdog's job anyway. The phase
    /// timeouts just keep a dead bridge from holding main until the
    /// watchdog fires, in the common cases (nothing listening, no reply).
    ///
    /// The agent keeps the connection alive between calls, so draining a
    /// spool costs one connect.
    fn post(&self, event: &[u8], started: Option<u128>, deadline: Instant) -> Delivery {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Delivery::Retry;
        }
        let sent = self
            .agent
            .post(self.endpoint)
            .config()
            .timeout_connect(Some(left))
            .timeout_send_request(Some(left))
            .timeout_send_body(Some(left))
            .timeout_recv_response(Some(left))
            .timeout_recv_body(Some(left))
            .build()
            .header("content-type", "application/json")
            .header("x-ccotel-transport", "command")
            .header(
                HOOK_TIME_HEADER,
                started.map(|n| n.to_string()).unwrap_or_default(),
            );
        let sent = match &self.authorization {
            Some(a) => sent.header("authorization", a.as_str()),
            None => sent,
        }
        .send(event);
        match sent {
            Ok(mut reply) => {
                let status = reply.status().as_u16();
                // Read the reply to complete the exchange. A 2xx status line
                // already means the bridge accepted the event, so a failure
                // reading the body does not change the outcome.
                let _ = reply
                    .body_mut()
                    .with_config()
                    .limit(MAX_REPLY)
                    .read_to_vec();
                classify(status)
            }
            Err(_) => Delivery::Retry,
        }
    }
}

fn classify(status: u16) -> Delivery {
    match status {
        200..=299 => Delivery::Delivered,
        // A missing or wrong token is a set-up mistake that gets fixed: keep
        // the events until it is.
        401 | 403 | 408 | 429 => Delivery::Retry,
        400..=499 => Delivery::Rejected,
        _ => Delivery::Retry,
    }
}

/// Sends the spool, oldest first, while the bridge takes events and time is
/// left.
///
/// Only the holder of the drain lock sends, so each event goes out once and
/// in order. An invocation that spools its event and fails to take the lock
/// just exits, trusting the holder; to keep that trust, the holder checks the
/// spool again *after* releasing the lock and resumes if anything is left.
/// An event renamed into the spool before a failed `try_lock` is therefore
/// always seen by a later check, and nothing is stranded while the bridge is
/// up and the budget lasts.
fn drain(spool: &Spool, bridge: &Bridge<'_>, deadline: Instant) {
    loop {
        let Some(lock) = spool.try_lock() else {
            return;
        };
        let emptied = drain_locked(spool, bridge, deadline);
        drop(lock);
        if !emptied || Instant::now() >= deadline || !spool.has_events() {
            return;
        }
    }
}

/// Drains with the lock held. Returns true once the spool is empty, false if
/// the bridge failed, time ran out, or no progress could be made.
fn drain_locked(spool: &Spool, bridge: &Bridge<'_>, deadline: Instant) -> bool {
    loop {
        let events = spool.events();
        if events.is_empty() {
            return true;
        }
        let mut progressed = false;
        for path in events {
            let body = match std::fs::read(&path) {
                Ok(body) => body,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(_) => {
                    if spool.remove(&path) {
                        spool.note_dropped(DropReason::Unreadable);
                        progressed = true;
                    }
                    continue;
                }
            };
            match bridge.post(&body, started_of(&path), deadline) {
                Delivery::Delivered => progressed |= spool.remove(&path),
                Delivery::Rejected => {
                    if spool.remove(&path) {
                        spool.note_dropped(DropReason::Rejected);
                        progressed = true;
                    }
                }
                Delivery::Retry => return false,
            }
        }
        if !progressed {
            // Files we can neither send nor delete: stop rather than spin.
            return false;
        }
    }
}

/// Time kept back at the end of the budget for spooling the event and
/// exiting: a tenth of the budget, between 1 and 25 ms (a spool write takes
/// well under a millisecond on a healthy disk; the rest absorbs scheduling
/// delays on a busy machine).
fn reserve(budget: Duration) -> Duration {
    (budget / 10).clamp(Duration::from_millis(1), Duration::from_millis(25))
}

/// Guarantees the time bound. Sleeps until `deadline`; then, unless main has
/// finished, spools our event if it is still in flight and exits the process
/// with status 0. Main can be stuck past the deadline on a socket timeout
/// firing late (see the module documentation), on a stdin that is never
/// closed, or on a stalled filesystem.
///
/// Every decision is made under the state lock, which main also takes to
/// settle its event and to declare itself finished; so the event is spooled
/// exactly once, and the watchdog never calls `exit` while main is exiting
/// (concurrent `exit` calls are not safe in every libc). If main holds the
/// lock (it is spooling), the watchdog waits for it until `hard_deadline`.
fn watchdog(shared: &Shared, deadline: Instant, hard_deadline: Instant) {
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
    loop {
        match shared.state.try_lock() {
            Ok(mut state) => {
                if state.finished {
                    return;
                }
                if let Some(event) = state.in_flight.take() {
                    let _ = shared.spool.push(shared.started, &event);
                }
                // Exit with the lock held, so main cannot start exiting too.
                std::process::exit(0);
            }
            Err(TryLockError::WouldBlock) if Instant::now() < hard_deadline => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(_) => std::process::exit(0),
        }
    }
}

/// The event, as raw bytes. A read error leaves a possibly truncated event,
/// which is dropped rather than sent as garbage.
fn read_stdin() -> Vec<u8> {
    let mut event = Vec::with_capacity(8 * 1024);
    match std::io::stdin().lock().read_to_end(&mut event) {
        Ok(_) => event,
        Err(_) => Vec::new(),
    }
}

/// `--spool-dir`, else `<data dir>/ccotel/spool`, else a per-user directory
/// under the temp dir (a shared name there could belong to another user).
fn spool_dir(args: &HookArgs) -> PathBuf {
    if let Some(dir) = &args.spool_dir {
        return dir.clone();
    }
    match dirs::data_dir() {
        Some(data) => data.join("ccotel").join("spool"),
        None => {
            let user = std::env::var("USER").unwrap_or_default();
            std::env::temp_dir()
                .join(format!("ccotel-{user}"))
                .join("spool")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(classify(200), Delivery::Delivered);
        assert_eq!(classify(204), Delivery::Delivered);
        assert_eq!(classify(400), Delivery::Rejected);
        assert_eq!(classify(413), Delivery::Rejected);
        assert_eq!(classify(408), Delivery::Retry);
        assert_eq!(classify(429), Delivery::Retry);
        assert_eq!(classify(503), Delivery::Retry);
        assert_eq!(classify(301), Delivery::Retry);
    }

    #[test]
    fn reserve_is_bounded() {
        assert_eq!(
            reserve(Duration::from_millis(300)),
            Duration::from_millis(25)
        );
        assert_eq!(
            reserve(Duration::from_millis(100)),
            Duration::from_millis(10)
        );
        assert_eq!(reserve(Duration::ZERO), Duration::from_millis(1));
    }
}
