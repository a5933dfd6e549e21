//! Smoke test of the benchmarks: runs every `ccotel-bench` benchmark once at
//! tiny sizes, so they keep compiling and running. It checks that each one
//! completes and prints its table, never how fast anything was (no timed
//! assertions). Loopback only; rotel is not needed (its comparison is
//! skipped without `ROTEL_BIN`), and nothing is installed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs one benchmark against `ccotel` (a path to the server binary);
/// returns its exit status, stdout and stderr.
fn run_bench(
    name: &str,
    args: &[&str],
    ccotel: &Path,
    json: &Path,
) -> (std::process::ExitStatus, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ccotel-bench"))
        .arg(name)
        .args(args)
        .arg("--ccotel")
        .arg(ccotel)
        .args(["--reps", "1", "--settle-ms", "100"])
        .arg("--workdir")
        .arg(dir.path())
        .arg("--json")
        .arg(json)
        .env_remove("ROTEL_BIN")
        .env_remove("CCOTEL_BIN")
        .output()
        .expect("ccotel-bench runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn bench(name: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let json: PathBuf = dir.path().join("results.jsonl");
    let ccotel = Path::new(env!("CARGO_BIN_EXE_ccotel"));
    let (status, stdout, stderr) = run_bench(name, args, ccotel, &json);
    assert!(
        status.success(),
        "ccotel-bench {name} failed ({status}):\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("### "), "no table from {name}:\n{stdout}");
    let lines = std::fs::read_to_string(&json).unwrap_or_default();
    assert!(
        lines.lines().count() > 0,
        "no JSON results from {name}:\n{stdout}\n{stderr}"
    );
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        assert!(v["metric"].is_string() && v["values"].is_array(), "{line}");
    }
    stdout
}

#[test]
fn hook_http() {
    let out = bench(
        "hook-http",
        &["--requests", "10", "--concurrency", "1,3", "--gap-us", "0"],
    );
    assert!(out.contains("3 sender(s)"), "{out}");
    bench(
        "hook-http",
        &["--requests", "5", "--concurrency", "2", "--new-conn"],
    );
}

#[test]
fn hook_cmd() {
    let out = bench("hook-cmd", &["--runs", "2"]);
    assert!(out.contains("ccotel hook, bridge down"), "{out}");
    assert!(out.contains("ccotel-hook, bridge up"), "{out}");
}

#[test]
fn ingest() {
    let out = bench(
        "ingest",
        &[
            "--transport",
            "grpc,http",
            "--per-request",
            "1,10",
            "--records",
            "40",
            "--inflight",
            "2",
            "--grace",
            "100ms",
        ],
    );
    assert!(out.contains("grpc 1/req ccotel"), "{out}");
    assert!(out.contains("http 10/req ccotel"), "{out}");
}

#[test]
fn ingest_ablation() {
    let out = bench(
        "ingest",
        &[
            "--transport",
            "http",
            "--per-request",
            "5",
            "--records",
            "20",
            "--grace",
            "100ms",
            "--ablation",
        ],
    );
    assert!(out.contains("redaction off"), "{out}");
}

#[test]
fn grpc_tail() {
    bench(
        "grpc-tail",
        &["--seconds", "1", "--rate", "20", "--streams", "2"],
    );
}

#[test]
fn idle_rss() {
    bench("idle", &["--settle-s", "0"]);
}

/// A stand-in for `ccotel` that fails at start the way a taken port makes
/// ccotel fail, `failures` times, and then runs the real one.
fn flaky_ccotel(dir: &Path, failures: usize, message: &str) -> PathBuf {
    let script = dir.join("ccotel");
    let count = dir.join("starts");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho x >> '{count}'\nif [ \"$(wc -l < '{count}')\" -le {failures} ]; then\n  printf 'Error: {message}\\n' >&2\n  exit 1\nfi\nexec '{real}' \"$@\"\n",
            count = count.display(),
            real = env!("CARGO_BIN_EXE_ccotel"),
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Another process can take a port between the benchmark's pick and the
/// server's bind; the benchmark then starts the server again on other ports
/// instead of failing the whole run.
#[test]
fn a_port_taken_at_start_is_retried_on_other_ports() {
    let dir = tempfile::tempdir().unwrap();
    let taken =
        "cannot listen on 127.0.0.1:20000 (server.http): Address already in use (os error 98)";
    let ccotel = flaky_ccotel(dir.path(), 1, taken);
    let json = dir.path().join("results.jsonl");
    let (status, stdout, stderr) = run_bench("idle", &["--settle-s", "0"], &ccotel, &json);
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("starting again on other ports"), "{stderr}");
}

/// Any other failure at start ends the run, and the error carries what the
/// server printed: its scratch directory may be gone when anyone looks.
#[test]
fn a_server_that_fails_at_start_shows_why() {
    let dir = tempfile::tempdir().unwrap();
    let ccotel = flaky_ccotel(dir.path(), 9, "config: unknown key server.htp");
    let json = dir.path().join("results.jsonl");
    let (status, stdout, stderr) = run_bench("idle", &["--settle-s", "0"], &ccotel, &json);
    assert!(!status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("exited at start"), "{stderr}");
    assert!(stderr.contains("unknown key server.htp"), "{stderr}");
    assert!(!stderr.contains("starting again"), "{stderr}");
}

#[test]
fn sessions() {
    let out = bench(
        "sessions",
        &["--counts", "2", "--workers", "2", "--grace", "100ms"],
    );
    assert!(out.contains("2 sessions"), "{out}");
}

#[test]
fn stalled_exporter() {
    bench(
        "stalled",
        &["--seconds", "2", "--queue-mib", "1", "--rate", "50"],
    );
}

#[test]
fn freshness() {
    let out = bench(
        "freshness",
        &["--sessions", "2", "--stagger-ms", "50", "--grace", "200ms"],
    );
    assert!(out.contains("turn span"), "{out}");
}

#[test]
fn long_session() {
    let out = bench(
        "long-session",
        &[
            "--calls",
            "3,30",
            "--per-turn",
            "4",
            "--measured",
            "5",
            "--pace-ms",
            "5",
            "--grace",
            "100ms",
            "--settle-rss-s",
            "0",
            "--pause-s",
            "1",
        ],
    );
    assert!(out.contains("30 calls in the session"), "{out}");
    assert!(out.contains("evicted before the turn"), "{out}");
}

#[test]
fn rebuild() {
    let out = bench(
        "rebuild",
        &["--calls", "10,40", "--per-turn", "4", "--iterations", "2"],
    );
    assert!(out.contains("40 exported calls"), "{out}");
}

#[test]
fn render() {
    let out = bench(
        "render",
        &["--calls", "10,40", "--per-turn", "4", "--iterations", "2"],
    );
    assert!(out.contains("40 exported calls"), "{out}");
}
