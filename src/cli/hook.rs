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
//! Two binaries run this code: `ccotel hook`, and `ccotel-hook`, a small
//! binary of its own (`src/bin/ccotel-hook.rs`) that `ccotel install` prefers
//! when it sits next to `ccotel`. Most of an invocation's cost is starting
//! the process, and starting the 22 MB `ccotel` costs about 1 ms of CPU
//! before `main`; so this module, the spool and the HTTP client
//! ([`super::hook_http`]) use only `std` and rustls: no clap (the flags are
//! parsed by hand, [`parse_args`]), no logging, no async runtime.
//!
//! HTTP goes through that small client, with connect, write and read
//! timeouts derived from the time left. Those are socket timeouts, which the
//! kernel's timer wheel may fire up to about an eighth late (measured here: a
//! 972 ms `SO_RCVTIMEO` returned after 992 ms), and nothing bounds a stdin
//! that is never closed, a DNS lookup or a stalled filesystem. So the exact
//! bound comes from a watchdog thread (see [`watchdog`]): at the deadline it
//! spools the event if it is still in flight, then exits the process with
//! status 0.

use super::hook_http::{valid_header_value, Client};
use super::hook_spool::{DropReason, Spool};
use super::HookArgs;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant, SystemTime};

/// Largest reply body we read. The bridge answers `{}`; reading the reply at
/// all matters (a client that wrote without reading lost 24% of events), its
/// size does not.
pub(crate) const MAX_REPLY: u64 = 64 * 1024;

/// Where `ccotel serve` takes hook events unless told otherwise.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4318/v1/hooks";

/// The time budget unless told otherwise, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 300;

/// Each flag with the variable that stands in for it. Claude Code strips
/// `OTEL_*` variables from hook processes, hence `CCOTEL_*`. A test checks
/// this against the clap definition of [`HookArgs`], which `ccotel --help`
/// and the shell completions show.
pub const FLAGS: [(&str, &str); 5] = [
    ("--endpoint", "CCOTEL_HOOK_ENDPOINT"),
    ("--timeout-ms", "CCOTEL_HOOK_TIMEOUT_MS"),
    ("--spool-dir", "CCOTEL_SPOOL_DIR"),
    ("--token", "CCOTEL_TOKEN"),
    ("--ca-cert", "CCOTEL_CA_CERT"),
];

/// What a hook command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Forward the event on stdin.
    Run(HookArgs),
    /// `--help`/`-h`: print the usage.
    Help,
    /// `--version`/`-V`: print the version.
    Version,
}

/// Parses the hook's flags (after the program name, and after `hook` for
/// `ccotel hook`), taking a flag's variable from `env` when the flag is
/// absent. An empty variable counts as unset, so `CCOTEL_TOKEN=` in a
/// settings file means no token rather than an empty one.
///
/// Hand-written rather than clap: building clap's parser is a good part of
/// the start-up the hook cannot afford. The grammar is clap's for these
/// flags: `--flag value` or `--flag=value`, each at most once, no
/// positional arguments. An error is returned, never printed: the caller
/// exits 0 silently.
pub fn parse_args(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Invocation, String> {
    let mut values: [Option<OsString>; FLAGS.len()] = Default::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let text = arg.to_str().ok_or("a flag that is not UTF-8")?;
        match text {
            "-h" | "--help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            _ => {}
        }
        let (flag, inline) = match text.split_once('=') {
            Some((flag, value)) => (flag, Some(OsString::from(value))),
            None => (text, None),
        };
        let i = FLAGS
            .iter()
            .position(|(f, _)| *f == flag)
            .ok_or_else(|| format!("unexpected argument {text:?}"))?;
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| format!("{flag} needs a value"))?,
        };
        if values[i].replace(value).is_some() {
            return Err(format!("{flag} given twice"));
        }
    }
    for (value, (_, var)) in values.iter_mut().zip(FLAGS) {
        if value.is_none() {
            *value = env(var).filter(|v| !v.is_empty());
        }
    }
    let [endpoint, timeout_ms, spool_dir, token, ca_cert] = values;
    let text = |v: Option<OsString>, flag: &str| {
        v.map(|v| {
            v.into_string()
                .map_err(|_| format!("{flag}: the value is not UTF-8"))
        })
        .transpose()
    };
    let timeout_ms = match text(timeout_ms, "--timeout-ms")? {
        Some(t) => t
            .parse()
            .map_err(|_| format!("--timeout-ms {t:?}: not a number of milliseconds"))?,
        None => DEFAULT_TIMEOUT_MS,
    };
    Ok(Invocation::Run(HookArgs {
        endpoint: text(endpoint, "--endpoint")?.unwrap_or_else(|| DEFAULT_ENDPOINT.into()),
        timeout_ms,
        spool_dir: spool_dir.map(PathBuf::from),
        token: text(token, "--token")?,
        ca_cert: ca_cert.map(PathBuf::from),
    }))
}

/// The usage `--help` prints for `program` (`ccotel hook` or `ccotel-hook`).
pub fn usage(program: &str) -> String {
    format!(
        "Forward one Claude Code hook event (JSON on stdin) to a running `ccotel serve`.
Meant to be called by Claude Code as a command hook: prints nothing and always
exits 0 within the timeout; undeliverable events are spooled and sent first by
the next invocation that reaches the server.

Usage: {program} [OPTIONS]

Options:
      --endpoint <URL>    Where `ccotel serve` takes hook events
                          [env: CCOTEL_HOOK_ENDPOINT] [default: {DEFAULT_ENDPOINT}]
      --timeout-ms <MS>   Total time budget for this invocation; the command exits
                          0 by then whatever happens
                          [env: CCOTEL_HOOK_TIMEOUT_MS] [default: {DEFAULT_TIMEOUT_MS}]
      --spool-dir <DIR>   Where undeliverable events wait
                          [env: CCOTEL_SPOOL_DIR] [default: <data dir>/ccotel/spool]
      --token <TOKEN>     The token ccotel was given (server.token), sent as a
                          bearer token [env: CCOTEL_TOKEN]
      --ca-cert <FILE>    PEM certificates to trust for an https:// endpoint,
                          besides the public roots (a gateway with a private CA)
                          [env: CCOTEL_CA_CERT]
  -h, --help              Print help
  -V, --version           Print version
"
    )
}

/// The whole hook command, for both binaries: parses `args` (the flags),
/// then forwards the event. Never fails and prints nothing but the output of
/// `--help` and `--version`; the process should exit 0 after it, as it
/// does when the watchdog ends it.
pub fn main(program: &str, args: impl IntoIterator<Item = OsString>) {
    let text = match parse_args(args, |var| std::env::var_os(var)) {
        Ok(Invocation::Run(args)) => return run_silently(&args, program),
        // A hook must never fail Claude Code or print: bad flags or values
        // exit 0 silently.
        Err(_) => return,
        Ok(Invocation::Help) => usage(program),
        Ok(Invocation::Version) => format!("{program} {}\n", env!("CARGO_PKG_VERSION")),
    };
    // A closed stdout is not worth a panic message.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// [`run`], with panics caught and never printed: the default panic hook
/// would write to stderr, which Claude Code shows.
pub fn run_silently(args: &HookArgs, program: &str) {
    std::panic::set_hook(Box::new(|_| {}));
    let _ = std::panic::catch_unwind(|| run(args, program));
}

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
/// `--timeout-ms`. Panics are the caller's to catch ([`main`] does).
/// `program` (`ccotel hook` or `ccotel-hook`) names the client in its
/// `user-agent`, so a bridge's logs tell the two apart.
pub fn run(args: &HookArgs, program: &str) {
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
        &mut Bridge::new(
            &args.endpoint,
            args.token.as_deref(),
            args.ca_cert.as_deref(),
            program,
        ),
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

fn forward(shared: &Shared, event: &Arc<[u8]>, bridge: &mut Bridge, deadline: Instant) {
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
struct Bridge {
    client: Client,
    /// `Bearer <token>` when ccotel requires a token; `Err` for a token that
    /// cannot go in a header, which fails every request like a wrong token
    /// would.
    authorization: Result<Option<String>, ()>,
}

impl Bridge {
    fn new(endpoint: &str, token: Option<&str>, ca_cert: Option<&Path>, program: &str) -> Self {
        let authorization = match token.map(|t| format!("Bearer {t}")) {
            Some(a) if !valid_header_value(&a) => Err(()),
            a => Ok(a),
        };
        Bridge {
            // The bridge is local: no proxy (an HTTP(S)_PROXY meant for the
            // model API must not capture hook traffic), and no redirects (one
            // means a misconfigured endpoint: spool, don't follow).
            client: Client::new(endpoint, user_agent(program)).trusting(ca_cert),
            authorization,
        }
    }

    /// POSTs `event` unchanged and reads the reply.
    ///
    /// Every phase (connect, send, wait for the reply, read it) may take the
    /// time left until `deadline`; the total bound is the watchdog's job.
    /// The phase timeouts just keep a dead bridge from holding main until
    /// the watchdog fires, in the common cases (nothing listening, no
    /// reply).
    ///
    /// The connection is kept alive between calls, so draining a spool
    /// costs one connect.
    fn post(&mut self, event: &[u8], started: Option<u128>, deadline: Instant) -> Delivery {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Delivery::Retry;
        }
        let Ok(authorization) = &self.authorization else {
            return Delivery::Retry;
        };
        let started = started.map(|n| n.to_string());
        let mut headers = vec![
            ("content-type", "application/json"),
            ("x-ccotel-transport", "command"),
        ];
        if let Some(started) = &started {
            headers.push((HOOK_TIME_HEADER, started));
        }
        if let Some(a) = authorization {
            headers.push(("authorization", a));
        }
        match self.client.post(&headers, event, deadline) {
            // A 2xx status line already means the bridge accepted the event,
            // so the client's reading of the body does not change the
            // outcome.
            Ok(status) => classify(status),
            Err(_) => Delivery::Retry,
        }
    }
}

/// `ccotel-hook/0.1.0` for the hook binary, `ccotel/0.1.0` for `ccotel
/// hook`.
fn user_agent(program: &str) -> String {
    let name = program.split(' ').next().unwrap_or(program);
    format!("{name}/{}", env!("CARGO_PKG_VERSION"))
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
fn drain(spool: &Spool, bridge: &mut Bridge, deadline: Instant) {
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
fn drain_locked(spool: &Spool, bridge: &mut Bridge, deadline: Instant) -> bool {
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

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Invocation, String> {
        let env: Vec<(String, OsString)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        parse_args(args.iter().map(OsString::from), |var| {
            env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
        })
    }

    fn run_args(args: &[&str], env: &[(&str, &str)]) -> HookArgs {
        match parse(args, env) {
            Ok(Invocation::Run(a)) => a,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn flags_env_and_defaults() {
        assert_eq!(
            run_args(&[], &[]),
            HookArgs {
                endpoint: DEFAULT_ENDPOINT.into(),
                timeout_ms: DEFAULT_TIMEOUT_MS,
                spool_dir: None,
                token: None,
                ca_cert: None,
            }
        );
        let env = [
            ("CCOTEL_HOOK_ENDPOINT", "http://env/v1/hooks"),
            ("CCOTEL_HOOK_TIMEOUT_MS", "50"),
            ("CCOTEL_SPOOL_DIR", "/env/spool"),
            ("CCOTEL_TOKEN", "env-token"),
            ("CCOTEL_CA_CERT", "/env/ca.pem"),
        ];
        assert_eq!(
            run_args(&[], &env),
            HookArgs {
                endpoint: "http://env/v1/hooks".into(),
                timeout_ms: 50,
                spool_dir: Some("/env/spool".into()),
                token: Some("env-token".into()),
                ca_cert: Some("/env/ca.pem".into()),
            }
        );
        // Flags win over the environment, in both spellings.
        assert_eq!(
            run_args(
                &[
                    "--endpoint",
                    "http://flag/v1/hooks",
                    "--timeout-ms=7",
                    "--spool-dir=/flag/spool",
                    "--token",
                    "-starts-with-a-dash",
                    "--ca-cert=/flag/ca.pem",
                ],
                &env
            ),
            HookArgs {
                endpoint: "http://flag/v1/hooks".into(),
                timeout_ms: 7,
                spool_dir: Some("/flag/spool".into()),
                token: Some("-starts-with-a-dash".into()),
                ca_cert: Some("/flag/ca.pem".into()),
            }
        );
        // An empty variable is no variable.
        let empty = run_args(&[], &[("CCOTEL_TOKEN", ""), ("CCOTEL_HOOK_TIMEOUT_MS", "")]);
        assert_eq!((empty.token, empty.timeout_ms), (None, DEFAULT_TIMEOUT_MS));
    }

    #[test]
    fn help_version_and_errors() {
        assert!(matches!(parse(&["--help"], &[]), Ok(Invocation::Help)));
        assert!(matches!(
            parse(&["--token", "t", "-h"], &[]),
            Ok(Invocation::Help)
        ));
        assert!(matches!(parse(&["-V"], &[]), Ok(Invocation::Version)));
        for bad in [
            &["--no-such-flag"][..],
            &["--endpoint"],
            &["positional"],
            &["--timeout-ms", "soon"],
            &["--timeout-ms", "-1"],
            &["--token", "a", "--token", "b"],
            &["--endpoint-x=y"],
        ] {
            assert!(parse(bad, &[]).is_err(), "{bad:?}");
        }
        assert!(parse(&[], &[("CCOTEL_HOOK_TIMEOUT_MS", "x")]).is_err());
        assert!(usage("ccotel-hook").contains("Usage: ccotel-hook [OPTIONS]"));
        for (flag, var) in FLAGS {
            assert!(usage("x").contains(flag) && usage("x").contains(var));
        }
    }

    #[test]
    fn user_agents() {
        assert_eq!(
            user_agent("ccotel-hook"),
            concat!("ccotel-hook/", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(
            user_agent("ccotel hook"),
            concat!("ccotel/", env!("CARGO_PKG_VERSION"))
        );
    }

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
