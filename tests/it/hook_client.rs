//! `ccotel hook` and `ccotel-hook` end to end: the real binaries against a
//! fake bridge on a real socket, each test with its own spool directory.
//! Every behaviour is checked for both entry points, and the two share a
//! spool: one spools, the other drains, in order.

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
    /// Which connection it came on, numbered in accept order.
    conn: usize,
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
            for (conn, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                match mode {
                    Mode::Hang => held.push(stream),
                    Mode::Status(status) => {
                        let rec = rec.clone();
                        thread::spawn(move || serve_conn(conn, stream, status, &rec));
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

fn serve_conn(conn: usize, stream: TcpStream, status: u16, rec: &Mutex<Vec<Received>>) {
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
        rec.lock().expect("lock").push(Received {
            conn,
            headers,
            body,
        });
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

/// The two ways to run the hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bin {
    /// `ccotel hook`
    Subcommand,
    /// `ccotel-hook`
    HookBinary,
}

const BINS: [Bin; 2] = [Bin::Subcommand, Bin::HookBinary];

impl Bin {
    /// The command, up to its flags, with no hook variable inherited from
    /// the developer's shell.
    fn command(self) -> Command {
        let mut c = match self {
            Bin::Subcommand => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_ccotel"));
                c.arg("hook");
                c
            }
            Bin::HookBinary => Command::new(env!("CARGO_BIN_EXE_ccotel-hook")),
        };
        for var in [
            "CCOTEL_HOOK_ENDPOINT",
            "CCOTEL_HOOK_TIMEOUT_MS",
            "CCOTEL_SPOOL_DIR",
            "CCOTEL_TOKEN",
        ] {
            c.env_remove(var);
        }
        c
    }

    fn user_agent(self) -> String {
        let name = match self {
            Bin::Subcommand => "ccotel",
            Bin::HookBinary => "ccotel-hook",
        };
        format!("{name}/{}", env!("CARGO_PKG_VERSION"))
    }
}

fn spawn_hook(bin: Bin, endpoint: &str, spool: &Path, timeout_ms: u64, stdin: &[u8]) -> Child {
    let mut child = bin
        .command()
        .args(["--endpoint", endpoint, "--timeout-ms"])
        .arg(timeout_ms.to_string())
        .arg("--spool-dir")
        .arg(spool)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the hook");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    child
}

/// Runs one invocation; checks it exits 0 silently and returns its duration.
fn hook(bin: Bin, endpoint: &str, spool: &Path, stdin: &str) -> Duration {
    let t = Instant::now();
    let out = spawn_hook(bin, endpoint, spool, TIMEOUT_MS, stdin.as_bytes())
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

fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

#[test]
fn bridge_up_delivers_exact_bytes_and_headers_silently() {
    for bin in BINS {
        eprintln!("--- {bin:?}");
        let bridge = FakeBridge::start(Mode::Status(200));
        let spool = tempfile::tempdir().expect("tempdir");
        // Odd spacing and unicode: the bytes must arrive unchanged.
        let body =
            "{ \"hook_event_name\":\"PostToolUse\", \"tool_input\": {\"cmd\":\"écho  ✓\"} }\n";
        let before = unix_nanos();
        hook(bin, &bridge.endpoint(), spool.path(), body);
        let after = unix_nanos();
        let got = bridge.received();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body, body.as_bytes());
        assert_eq!(got[0].header("content-type"), Some("application/json"));
        assert_eq!(got[0].header("x-ccotel-transport"), Some("command"));
        assert_eq!(got[0].header("authorization"), None);
        assert_eq!(got[0].header("user-agent"), Some(bin.user_agent().as_str()));
        // When Claude Code ran the hook, for events that arrive late.
        let at: u128 = got[0]
            .header("x-ccotel-hook-time")
            .and_then(|v| v.parse().ok())
            .expect("x-ccotel-hook-time in unix ns");
        assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
        assert!(spooled(spool.path()).is_empty());
        // The fast path does not even create the spool directory.
        let nested = spool.path().join("never-created");
        hook(bin, &bridge.endpoint(), &nested, &event(1));
        assert!(!nested.exists());
    }
}

#[test]
fn the_token_is_sent_from_the_flag_or_the_environment() {
    for bin in BINS {
        eprintln!("--- {bin:?}");
        let bridge = FakeBridge::start(Mode::Status(200));
        let spool = tempfile::tempdir().expect("tempdir");
        let run = |c: &mut Command| {
            let out = c
                .arg("--spool-dir")
                .arg(spool.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    child.stdin.take().expect("stdin").write_all(b"{}")?;
                    child.wait_with_output()
                })
                .expect("run the hook");
            assert_silent_success(&out);
        };
        run(bin
            .command()
            .env("CCOTEL_HOOK_ENDPOINT", bridge.endpoint())
            .env("CCOTEL_TOKEN", "from-env"));
        run(bin
            .command()
            .args(["--endpoint", &bridge.endpoint(), "--token", "from-flag"])
            .env("CCOTEL_TOKEN", "from-env"));
        // An empty variable is no token (and no error).
        run(bin
            .command()
            .args(["--endpoint", &bridge.endpoint()])
            .env("CCOTEL_TOKEN", ""));
        let auth: Vec<Option<String>> = bridge
            .received()
            .iter()
            .map(|r| r.header("authorization").map(str::to_string))
            .collect();
        assert_eq!(
            auth,
            vec![
                Some("Bearer from-env".into()),
                Some("Bearer from-flag".into()),
                None
            ]
        );
    }
}

#[test]
fn bridge_down_spools_within_bound() {
    for bin in BINS {
        eprintln!("--- {bin:?}");
        let endpoint = dead_endpoint();
        let spool = tempfile::tempdir().expect("tempdir");
        let elapsed = hook(bin, &endpoint, spool.path(), &event(1));
        assert_within_bound(elapsed);
        assert_eq!(spooled(spool.path()), vec![event(1)]);
    }
}

#[test]
fn hung_bridge_spools_within_bound() {
    for bin in BINS {
        eprintln!("--- {bin:?}");
        let bridge = FakeBridge::start(Mode::Hang);
        let spool = tempfile::tempdir().expect("tempdir");
        let elapsed = hook(bin, &bridge.endpoint(), spool.path(), &event(1));
        assert_within_bound(elapsed);
        assert_eq!(spooled(spool.path()), vec![event(1)]);
    }
}

#[test]
fn stdin_never_closed_still_exits_within_bound() {
    for bin in BINS {
        eprintln!("--- {bin:?}");
        let bridge = FakeBridge::start(Mode::Status(200));
        let spool = tempfile::tempdir().expect("tempdir");
        let t = Instant::now();
        let mut child = bin
            .command()
            .args(["--endpoint", &bridge.endpoint(), "--timeout-ms"])
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
}

#[test]
fn https_endpoints_speak_tls() {
    // A server that records the first bytes of each connection and closes
    // it: a TLS client opens with a handshake record (0x16, version 3.x).
    // Its certificate would be unknown anyway, so the event is spooled.
    for bin in BINS {
        eprintln!("--- {bin:?}");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let first = thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut head = [0u8; 3];
            s.read_exact(&mut head).map(|()| head).ok()
        });
        let spool = tempfile::tempdir().expect("tempdir");
        let elapsed = hook(
            bin,
            &format!("https://{addr}/v1/hooks"),
            spool.path(),
            &event(1),
        );
        assert_within_bound(elapsed);
        let head = first.join().expect("server thread");
        assert_eq!(head.map(|h| (h[0], h[1])), Some((0x16, 3)), "{head:?}");
        assert_eq!(spooled(spool.path()), vec![event(1)]);
    }
}

#[test]
fn spool_is_sent_first_in_order_exactly_once_by_either_binary() {
    for (spooler, drainer) in [
        (Bin::Subcommand, Bin::HookBinary),
        (Bin::HookBinary, Bin::Subcommand),
    ] {
        eprintln!("--- spooled by {spooler:?}, drained by {drainer:?}");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let endpoint = format!("http://{addr}/v1/hooks");
        let spool = tempfile::tempdir().expect("tempdir");
        for n in 1..=3 {
            hook(spooler, &endpoint, spool.path(), &event(n));
        }
        assert_eq!(spooled(spool.path()), vec![event(1), event(2), event(3)]);

        // The bridge comes back on the same address.
        let bridge = FakeBridge::serve(TcpListener::bind(addr).expect("rebind"), Mode::Status(200));
        hook(drainer, &endpoint, spool.path(), &event(4));
        assert_eq!(
            bridge.bodies(),
            vec![event(1), event(2), event(3), event(4)]
        );
        assert!(spooled(spool.path()).is_empty());
        // A spooled event keeps the time it was run at, not the time it was
        // sent, and the drain used one connection (keep-alive).
        let times: Vec<u128> = bridge
            .received()
            .iter()
            .filter_map(|r| r.header("x-ccotel-hook-time")?.parse().ok())
            .collect();
        assert_eq!(times.len(), 4);
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
        let conns: Vec<usize> = bridge.received().iter().map(|r| r.conn).collect();
        assert_eq!(conns, vec![0; 4]);

        hook(spooler, &endpoint, spool.path(), &event(5));
        assert_eq!(
            bridge.bodies(),
            vec![event(1), event(2), event(3), event(4), event(5)]
        );
        assert!(spooled(spool.path()).is_empty());
    }
}

#[test]
fn retryable_status_is_spooled_rejection_is_not() {
    for bin in BINS {
        eprintln!("--- {bin:?}");
        let unavailable = FakeBridge::start(Mode::Status(503));
        let spool = tempfile::tempdir().expect("tempdir");
        hook(bin, &unavailable.endpoint(), spool.path(), &event(1));
        assert_eq!(unavailable.bodies(), vec![event(1)]);
        assert_eq!(spooled(spool.path()), vec![event(1)]);

        let busy = FakeBridge::start(Mode::Status(429));
        let spool = tempfile::tempdir().expect("tempdir");
        hook(bin, &busy.endpoint(), spool.path(), &event(1));
        assert_eq!(spooled(spool.path()), vec![event(1)]);

        let rejecting = FakeBridge::start(Mode::Status(400));
        let spool = tempfile::tempdir().expect("tempdir");
        hook(bin, &rejecting.endpoint(), spool.path(), &event(2));
        assert_eq!(rejecting.bodies(), vec![event(2)]);
        assert!(spooled(spool.path()).is_empty());
    }
}

#[test]
fn rejected_spooled_event_does_not_block_the_queue() {
    for bin in BINS {
        eprintln!("--- {bin:?}");
        let endpoint = dead_endpoint();
        let spool = tempfile::tempdir().expect("tempdir");
        hook(bin, &endpoint, spool.path(), &event(1));
        let rejecting = FakeBridge::start(Mode::Status(400));
        hook(bin, &rejecting.endpoint(), spool.path(), &event(2));
        assert_eq!(rejecting.bodies(), vec![event(1), event(2)]);
        assert!(spooled(spool.path()).is_empty());
        let dropped = std::fs::read_to_string(spool.path().join("dropped")).expect("dropped");
        assert_eq!(dropped.lines().count(), 2);
    }
}

#[test]
fn concurrent_invocations_of_both_binaries_deliver_everything_once() {
    const SPOOLED: usize = 5;
    const PARALLEL: usize = 8;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let endpoint = format!("http://{addr}/v1/hooks");
    let spool = tempfile::tempdir().expect("tempdir");
    for n in 0..SPOOLED {
        hook(BINS[n % 2], &endpoint, spool.path(), &event(n));
    }
    assert_eq!(spooled(spool.path()).len(), SPOOLED);

    let bridge = FakeBridge::serve(TcpListener::bind(addr).expect("rebind"), Mode::Status(200));
    // A generous budget: this test is about exactly-once and order, and a
    // loaded CI machine must not turn it into a timing test.
    let children: Vec<Child> = (SPOOLED..SPOOLED + PARALLEL)
        .map(|n| {
            spawn_hook(
                BINS[n % 2],
                &endpoint,
                spool.path(),
                3_000,
                event(n).as_bytes(),
            )
        })
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

/// Flags and variables a hook must reject.
type BadInvocation = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

#[test]
fn bad_flags_exit_zero_silently_and_send_nothing() {
    let bridge = FakeBridge::start(Mode::Status(200));
    for bin in BINS {
        eprintln!("--- {bin:?}");
        let bad: [BadInvocation; 4] = [
            (&["--no-such-flag"], &[]),
            (&[], &[("CCOTEL_HOOK_TIMEOUT_MS", "not-a-number")]),
            (&["--timeout-ms"], &[]),
            (&["stray"], &[]),
        ];
        for (args, env) in bad {
            let mut c = bin.command();
            c.args(args)
                .env("CCOTEL_HOOK_ENDPOINT", bridge.endpoint())
                .envs(env.iter().copied())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let out = c
                .spawn()
                .and_then(|mut child| {
                    // The hook may exit before reading: a broken pipe is fine.
                    let _ = child.stdin.take().expect("stdin").write_all(b"{}");
                    child.wait_with_output()
                })
                .expect("run the hook");
            assert_eq!(out.status.code(), Some(0), "{args:?} {env:?}");
            assert!(
                out.stdout.is_empty() && out.stderr.is_empty(),
                "{args:?} {env:?}: {out:?}"
            );
        }
    }
    assert!(bridge.received().is_empty());
}

#[test]
fn help_and_version_are_printed() {
    for bin in BINS {
        eprintln!("--- {bin:?}");
        let out = bin
            .command()
            .arg("--help")
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        let usage = match bin {
            Bin::Subcommand => "Usage: ccotel hook [OPTIONS]",
            Bin::HookBinary => "Usage: ccotel-hook [OPTIONS]",
        };
        assert!(help.contains(usage), "{help}");
        for (flag, var) in ccotel::cli::hook::FLAGS {
            assert!(help.contains(flag) && help.contains(var), "{help}");
        }
        let out = bin
            .command()
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert!(out.status.success(), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")),
            "{out:?}"
        );
    }
}

/// The plugin's command (deploy/claude-plugin) runs `ccotel-hook` when it is
/// on `PATH` and falls back to `ccotel hook`, through the shell Claude Code
/// runs hook commands with.
#[test]
fn the_plugin_command_prefers_the_hook_binary() {
    let hooks: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/claude-plugin/ccotel/hooks/hooks.json"
        ))
        .expect("hooks.json"),
    )
    .expect("hooks.json is JSON");
    let command = hooks["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
        .as_str()
        .expect("a command")
        .to_string();
    for (with_hook_binary, expected) in [(true, Bin::HookBinary), (false, Bin::Subcommand)] {
        let bin_dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ccotel"), bin_dir.path().join("ccotel"))
            .expect("symlink");
        if with_hook_binary {
            std::os::unix::fs::symlink(
                env!("CARGO_BIN_EXE_ccotel-hook"),
                bin_dir.path().join("ccotel-hook"),
            )
            .expect("symlink");
        }
        let bridge = FakeBridge::start(Mode::Status(200));
        let spool = tempfile::tempdir().expect("tempdir");
        let out = Command::new("/bin/sh")
            .args(["-c", &command])
            .env("PATH", bin_dir.path())
            .env("CCOTEL_HOOK_ENDPOINT", bridge.endpoint())
            .env("CCOTEL_SPOOL_DIR", spool.path())
            .env_remove("CCOTEL_HOOK_TIMEOUT_MS")
            .env_remove("CCOTEL_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(event(1).as_bytes())?;
                child.wait_with_output()
            })
            .expect("run the plugin's command");
        assert_silent_success(&out);
        let got = bridge.received();
        assert_eq!(got.len(), 1, "{command}");
        assert_eq!(got[0].body, event(1).as_bytes());
        assert_eq!(
            got[0].header("user-agent"),
            Some(expected.user_agent().as_str()),
            "{command}, hook binary on PATH: {with_hook_binary}"
        );
    }
}
