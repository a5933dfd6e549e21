//! `ccotel hook` end to end: the real binary against a fake bridge on a real
//! socket, each test with its own spool directory.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const TIMEOUT_MS: u64 = 300;
/// Slack over the budget for process spawn and a noisy machine.
const SLACK: Duration = Duration::from_millis(250);

/// One request as the fake bridge saw it.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the fake bridge behaves.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Answer every request with this status and `{}`.
    Status(u16),
    /// Accept connections and never answer (nor read).
    Hang,
}

/// A minimal HTTP/1.1 server with keep-alive, recording request bodies.
struct FakeBridge {
    addr: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeBridge {
    fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        Self::serve(listener, mode)
    }

    fn serve(listener: TcpListener, mode: Mode) -> Self {
        let addr = listener.local_addr().expect("addr").to_string();
        let received = Arc::new(Mutex::new(Vec::new()));
        let rec = received.clone();
        thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                match mode {
                    Mode::Hang => held.push(stream),
                    Mode::Status(status) => {
                        let rec = rec.clone();
                        thread::spawn(move || serve_conn(stream, status, &rec));
                    }
                }
            }
        });
        FakeBridge { addr, received }
    }

    fn endpoint(&self) -> String {
        format!("http://{}/v1/hooks", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    fn bodies(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .map(|r| String::from_utf8(r.body).expect("utf8 body"))
            .collect()
    }
}

fn serve_conn(stream: TcpStream, status: u16, rec: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        rec.lock().expect("lock").push(Received { headers, body });
        let reply = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}"
        );
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A local address where nothing listens: bind, note the port, close.
fn dead_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/v1/hooks")
}

fn spawn_hook(endpoint: &str, spool: &Path, timeout_ms: u64, stdin: &[u8]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ccotel"))
        .args(["hook", "--endpoint", endpoint, "--timeout-ms"])
        .arg(timeout_ms.to_string())
        .arg("--spool-dir")
        .arg(spool)
        .env_remove("CCOTEL_HOOK_ENDPOINT")
        .env_remove("CCOTEL_HOOK_TIMEOUT_MS")
        .env_remove("CCOTEL_SPOOL_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ccotel hook");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    child
}

/// Runs one invocation; checks it exits 0 silently and returns its duration.
fn hook(endpoint: &str, spool: &Path, stdin: &str) -> Duration {
    let t = Instant::now();
    let out = spawn_hook(endpoint, spool, TIMEOUT_MS, stdin.as_bytes())
        .wait_with_output()
        .expect("wait");
    let elapsed = t.elapsed();
    assert_silent_success(&out);
    elapsed
}

fn assert_silent_success(out: &Output) {
    assert!(out.status.success(), "exit status {:?}", out.status);
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
    assert!(out.stderr.is_empty(), "stderr: {:?}", out.stderr);
}

fn assert_within_bound(elapsed: Duration) {
    let bound = Duration::from_millis(TIMEOUT_MS) + SLACK;
    assert!(elapsed < bound, "took {elapsed:?}, bound {bound:?}");
}

/// Spooled event bodies, oldest first.
fn spooled(spool: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(spool) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            ccotel::cli::hook_spool::is_event_name(name)
        })
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read spooled"))
        .collect()
}

fn event(n: usize) -> String {
    format!(r#"{{"hook_event_name":"PreToolUse","session_id":"s","tool_name":"Bash","n":{n}}}"#)
}

#[test]
fn bridge_up_delivers_exact_bytes_silently() {
    let bridge = FakeBridge::start(Mode::Status(200));
    let spool = tempfile::tempdir().expect("tempdir");
    // Odd spacing and unicode: the bytes must arrive unchanged.
    let body = "{ \"hook_event_name\":\"PostToolUse\", \"tool_input\": {\"cmd\":\"écho  ✓\"} }\n";
    hook(&bridge.endpoint(), spool.path(), body);
    let got = bridge.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, body.as_bytes());
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    assert_eq!(got[0].header("x-ccotel-transport"), Some("command"));
    assert!(spooled(spool.path()).is_empty());
    // The fast path does not even create the spool directory.
    let nested = spool.path().join("never-created");
    hook(&bridge.endpoint(), &nested, &event(1));
    assert!(!nested.exists());
}

#[test]
fn bridge_down_spools_within_bound() {
    let endpoint = dead_endpoint();
    let spool = tempfile::tempdir().expect("tempdir");
    let elapsed = hook(&endpoint, spool.path(), &event(1));
    assert_within_bound(elapsed);
    assert_eq!(spooled(spool.path()), vec![event(1)]);
}

#[test]
fn hung_bridge_spools_within_bound() {
    let bridge = FakeBridge::start(Mode::Hang);
    let spool = tempfile::tempdir().expect("tempdir");
    let elapsed = hook(&bridge.endpoint(), spool.path(), &event(1));
    assert_within_bound(elapsed);
    assert_eq!(spooled(spool.path()), vec![event(1)]);
}

#[test]
fn stdin_never_closed_still_exits_within_bound() {
    let bridge = FakeBridge::start(Mode::Status(200));
    let spool = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ccotel"))
        .args(["hook", "--endpoint", &bridge.endpoint(), "--timeout-ms"])
        .arg(TIMEOUT_MS.to_string())
        .arg("--spool-dir")
        .arg(spool.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Keep stdin open (held by `child`) while waiting for the exit.
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "hook never exited");
        thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success());
    assert_within_bound(t.elapsed());
    let out = child.wait_with_output().expect("output");
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn spool_is_sent_first_in_order_exactly_once() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let endpoint = format!("http://{addr}/v1/hooks");
    let spool = tempfile::tempdir().expect("tempdir");
    for n in 1..=3 {
        hook(&endpoint, spool.path(), &event(n));
    }
    assert_eq!(spooled(spool.path()), vec![event(1), event(2), event(3)]);

    // The bridge comes back on the same address.
    let bridge = FakeBridge::serve(TcpListener::bind(addr).expect("rebind"), Mode::Status(200));
    hook(&endpoint, spool.path(), &event(4));
    assert_eq!(
        bridge.bodies(),
        vec![event(1), event(2), event(3), event(4)]
    );
    assert!(spooled(spool.path()).is_empty());

    hook(&endpoint, spool.path(), &event(5));
    assert_eq!(
        bridge.bodies(),
        vec![event(1), event(2), event(3), event(4), event(5)]
    );
    assert!(spooled(spool.path()).is_empty());
}

#[test]
fn retryable_status_is_spooled_rejection_is_not() {
    let unavailable = FakeBridge::start(Mode::Status(503));
    let spool = tempfile::tempdir().expect("tempdir");
    hook(&unavailable.endpoint(), spool.path(), &event(1));
    assert_eq!(unavailable.bodies(), vec![event(1)]);
    assert_eq!(spooled(spool.path()), vec![event(1)]);

    let busy = FakeBridge::start(Mode::Status(429));
    let spool = tempfile::tempdir().expect("tempdir");
    hook(&busy.endpoint(), spool.path(), &event(1));
    assert_eq!(spooled(spool.path()), vec![event(1)]);

    let rejecting = FakeBridge::start(Mode::Status(400));
    let spool = tempfile::tempdir().expect("tempdir");
    hook(&rejecting.endpoint(), spool.path(), &event(2));
    assert_eq!(rejecting.bodies(), vec![event(2)]);
    assert!(spooled(spool.path()).is_empty());
}

#[test]
fn rejected_spooled_event_does_not_block_the_queue() {
    let endpoint = dead_endpoint();
    let spool = tempfile::tempdir().expect("tempdir");
    hook(&endpoint, spool.path(), &event(1));
    let rejecting = FakeBridge::start(Mode::Status(400));
    hook(&rejecting.endpoint(), spool.path(), &event(2));
    assert_eq!(rejecting.bodies(), vec![event(1), event(2)]);
    assert!(spooled(spool.path()).is_empty());
    let dropped = std::fs::read_to_string(spool.path().join("dropped")).expect("dropped");
    assert_eq!(dropped.lines().count(), 2);
}

#[test]
fn concurrent_invocations_deliver_everything_once() {
    const SPOOLED: usize = 5;
    const PARALLEL: usize = 8;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let endpoint = format!("http://{addr}/v1/hooks");
    let spool = tempfile::tempdir().expect("tempdir");
    for n in 0..SPOOLED {
        hook(&endpoint, spool.path(), &event(n));
    }
    assert_eq!(spooled(spool.path()).len(), SPOOLED);

    let bridge = FakeBridge::serve(TcpListener::bind(addr).expect("rebind"), Mode::Status(200));
    // A generous budget: this test is about exactly-once and order, and a
    // loaded CI machine must not turn it into a timing test.
    let children: Vec<Child> = (SPOOLED..SPOOLED + PARALLEL)
        .map(|n| spawn_hook(&endpoint, spool.path(), 3_000, event(n).as_bytes()))
        .collect();
    for child in children {
        assert_silent_success(&child.wait_with_output().expect("wait"));
    }

    let bodies = bridge.bodies();
    assert_eq!(bodies.len(), SPOOLED + PARALLEL, "received {bodies:#?}");
    let unique: HashSet<&String> = bodies.iter().collect();
    assert_eq!(unique.len(), bodies.len(), "duplicates in {bodies:#?}");
    let expected: HashSet<String> = (0..SPOOLED + PARALLEL).map(event).collect();
    assert_eq!(unique, expected.iter().collect());
    let old: Vec<&String> = bodies
        .iter()
        .filter(|b| (0..SPOOLED).any(|n| **b == event(n)))
        .collect();
    let in_order: Vec<String> = (0..SPOOLED).map(event).collect();
    assert_eq!(old, in_order.iter().collect::<Vec<_>>());
    assert!(spooled(spool.path()).is_empty());
}

#[test]
fn bad_flags_on_the_hook_path_exit_zero_silently() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ccotel"))
        .args(["hook", "--no-such-flag"])
        .env("CCOTEL_HOOK_TIMEOUT_MS", "not-a-number")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}
