//! Soak: many concurrent simulated sessions against a `ccotel serve`
//! process, on loopback, with one exporter flapping between up and down and a
//! second one healthy. It checks that RSS stays flat and that every span is
//! accounted for: delivered plus counted drops equals produced.
//!
//! CI runs a short soak (`CCOTEL_SOAK_SECS`, default 40 s); `make soak` runs
//! the long one (5 minutes).

#[path = "../it/support/backend.rs"]
#[allow(dead_code)]
mod backend;

#[path = "../../src/bin/ccotel-bench/ports.rs"]
mod ports;

use backend::{Backend, Mode};
use ports::free_port;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn span_ids(b: &Backend) -> BTreeSet<Vec<u8>> {
    b.received()
        .traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.span_id.clone())
        .collect()
}

/// One simulated session: a few turns of tool calls, then the end. Returns
/// the spans it should produce (root, turns, tool calls).
async fn session(
    client: &reqwest::Client,
    url: &str,
    sid: &str,
    turns: usize,
    tools: usize,
) -> u64 {
    let post = |body: Value| {
        client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let mut sent_ok = true;
    for t in 0..turns {
        let prompt = format!("{sid}-p{t}");
        sent_ok &= post(json!({"session_id": sid, "hook_event_name": "UserPromptSubmit", "prompt_id": prompt, "prompt": "work on it", "cwd": "/soak"}))
            .await
            .is_ok_and(|r| r.status().is_success());
        for k in 0..tools {
            let id = format!("{prompt}-t{k}");
            for name in ["PreToolUse", "PostToolUse"] {
                sent_ok &= post(json!({"session_id": sid, "hook_event_name": name, "prompt_id": prompt, "tool_use_id": id, "tool_name": "Bash", "tool_input": {"command": "ls"}, "tool_response": {"stdout": "a b c"}}))
                    .await
                    .is_ok_and(|r| r.status().is_success());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sent_ok &= post(json!({"session_id": sid, "hook_event_name": "Stop", "prompt_id": prompt, "last_assistant_message": "done"}))
            .await
            .is_ok_and(|r| r.status().is_success());
    }
    sent_ok &= post(json!({"session_id": sid, "hook_event_name": "SessionEnd", "reason": "other"}))
        .await
        .is_ok_and(|r| r.status().is_success());
    assert!(sent_ok, "ccotel refused an event of {sid}");
    (1 + turns + turns * tools) as u64
}

/// The server under test, killed if the test fails before stopping it.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_a_flapping_exporter() {
    let secs: u64 = std::env::var("CCOTEL_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let healthy = Backend::http(Mode::Ok).await;
    let flappy = Backend::http(Mode::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let config = format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\ngrpc = \"127.0.0.1:{}\"\n\
         [store]\npath = \"{}\"\n\
         [merge]\ngrace_period = \"500ms\"\nread_transcripts = false\n\
         [[exporters]]\nname = \"healthy\"\ntype = \"otlp\"\nendpoint = \"{}\"\nsignals = [\"traces\"]\n\
         [[exporters]]\nname = \"flappy\"\ntype = \"otlp\"\nendpoint = \"{}\"\nsignals = [\"traces\"]\ntimeout = \"2s\"\n",
        free_port(),
        dir.path().join("store").display(),
        healthy.endpoint(),
        flappy.endpoint(),
    );
    let path = dir.path().join("ccotel.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let mut child = Serving(
        Command::new(env!("CARGO_BIN_EXE_ccotel"))
            .args(["serve", "--config"])
            .arg(&path)
            .env("CCOTEL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let base = format!("http://127.0.0.1:{http}");
    let client = reqwest::Client::new();
    let up = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(up.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The flapping exporter: up, 503, hanging, up, ... every 3 s.
    let stop = Arc::new(AtomicBool::new(false));
    let flapper = {
        let flappy = flappy.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let modes = [
                Mode::Ok,
                Mode::Status(503),
                Mode::Hang,
                Mode::Ok,
                Mode::Status(429),
            ];
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                flappy.set_mode(modes[i % modes.len()]);
                i += 1;
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            flappy.set_mode(Mode::Ok);
        })
    };

    // Load: 32 concurrent session loops until time is up.
    let produced = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut workers = Vec::new();
    for w in 0..32 {
        let client = client.clone();
        let url = format!("{base}/v1/hooks");
        let produced = produced.clone();
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while Instant::now() < deadline {
                let sid = format!("soak-{w}-{n}");
                produced.fetch_add(session(&client, &url, &sid, 2, 4).await, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    let mut rss = Vec::new();
    while Instant::now() < deadline {
        rss.push(rss_kib(pid));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for w in workers {
        w.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    flapper.await.unwrap();
    let produced = produced.load(Ordering::Relaxed);

    // Drain: everything reaches the healthy backend; the flapping one gets
    // the rest of what it was sent, or it is counted as dropped.
    let drained = Instant::now();
    let health = loop {
        let h: Value = client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let done =
            span_ids(&healthy).len() as u64 >= produced && h["exporters"]["flappy"]["queued"] == 0;
        if done || drained.elapsed() > Duration::from_secs(90) {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.0.wait().unwrap();
    assert!(status.success());

    let merged = health["receive"]["merged_spans"].as_u64().unwrap();
    assert_eq!(
        merged, produced,
        "every span of every session was merged: {health}"
    );
    assert_eq!(
        span_ids(&healthy).len() as u64,
        produced,
        "the healthy exporter got them all"
    );
    let flappy_got = span_ids(&flappy).len() as u64;
    let f = &health["exporters"]["flappy"];
    let dropped = f["dropped_items"].as_u64().unwrap() + f["dropped_queue_full"].as_u64().unwrap();
    assert!(
        flappy_got + dropped >= produced && flappy_got <= produced,
        "flappy: {flappy_got} delivered + {dropped} dropped vs {produced} produced: {health}"
    );

    // RSS flat: after warm-up, the last quarter is not above the second.
    let q = rss.len() / 4;
    assert!(q >= 2, "too short to judge RSS: {rss:?}");
    let mean = |s: &[u64]| s.iter().sum::<u64>() / s.len() as u64;
    let early = mean(&rss[q..2 * q]);
    let late = mean(&rss[rss.len() - q..]);
    println!(
        "soak: {secs}s, {produced} spans, RSS early {early} KiB, late {late} KiB, flappy got {flappy_got}, dropped {dropped}"
    );
    assert!(
        late <= early + early / 4 + 8 * 1024,
        "RSS grew from {early} KiB to {late} KiB: {rss:?}"
    );
}
