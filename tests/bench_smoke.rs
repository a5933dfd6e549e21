//! Smoke test of the benchmarks: runs every `ccotel-bench` benchmark once at
//! tiny sizes, so they keep compiling and running. It checks that each one
//! completes and prints its table, never how fast anything was (no timed
//! assertions). Loopback only; rotel is not needed (its comparison is
//! skipped without `ROTEL_BIN`), and nothing is installed.

use std::path::PathBuf;
use std::process::Command;

fn bench(name: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let json: PathBuf = dir.path().join("results.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_ccotel-bench"))
        .arg(name)
        .args(args)
        .args(["--ccotel", env!("CARGO_BIN_EXE_ccotel")])
        .args(["--reps", "1", "--settle-ms", "100"])
        .arg("--workdir")
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .env_remove("ROTEL_BIN")
        .env_remove("CCOTEL_BIN")
        .output()
        .expect("ccotel-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ccotel-bench {name} failed ({}):\n{stdout}\n{stderr}",
        out.status
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
