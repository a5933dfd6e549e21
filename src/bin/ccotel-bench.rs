//! `ccotel-bench`: reproducible benchmarks of ccotel against its peers, on
//! loopback only, every run bounded in count and time.
//!
//! The measured server (`ccotel serve`, or `rotel-agent` for comparison) runs
//! as a separate process, pinned with `taskset -c <--server-cpu>`; this
//! process is the load generator and the OTLP sink (pin it to the other core
//! with `taskset -c 0 ccotel-bench ...`). Server CPU is read from
//! `/proc/<pid>/stat` (utime + stime), memory from `/proc/<pid>/status`.
//! Each benchmark repeats `--reps` times, interleaving peers in the same run,
//! and reports the median and the spread (min–max) over repetitions.
//!
//! See BENCHMARKS.md for the method, the commands and the results.

#[path = "ccotel-bench/ports.rs"]
mod ports;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use opentelemetry_proto::tonic::collector::{
    logs::v1::{logs_service_client::LogsServiceClient, ExportLogsServiceRequest},
    metrics::v1::ExportMetricsServiceRequest,
    trace::v1::{trace_service_client::TraceServiceClient, ExportTraceServiceRequest},
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use ports::free_port;
use prost::Message;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

#[derive(Parser)]
#[command(
    name = "ccotel-bench",
    about = "Benchmarks of ccotel (hooks, ingest, tail latency, memory, freshness) against its peers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
#[allow(clippy::enum_variant_names)]
enum Cmd {
    /// HTTP hook POST → 2xx latency, 1 and N concurrent senders.
    HookHttp(HookHttpArgs),
    /// `ccotel-hook` and `ccotel hook` end to end (spawn, stdin, exit),
    /// bridge up and down, next to /bin/true and a minimal compiled client.
    HookCmd(HookCmdArgs),
    /// CPU per record and records/s of OTLP logs and spans through the
    /// server, gRPC and HTTP protobuf, next to rotel.
    Ingest(IngestArgs),
    /// gRPC latency at a fixed request rate over concurrent streams.
    GrpcTail(GrpcTailArgs),
    /// Idle RSS of ccotel and rotel.
    Idle(IdleArgs),
    /// RSS and CPU per record with N concurrently active sessions (fixture
    /// mix), then after they end: the memory and growth table.
    Sessions(SessionsArgs),
    /// RSS and queue size while the exporter's backend accepts and never
    /// answers.
    Stalled(StalledArgs),
    /// Time from a turn's last event to its span at the exporter.
    Freshness(FreshnessArgs),
    /// CPU per tool call and hook latency in one session that already holds
    /// N tool calls: what a long session costs as it grows.
    LongSession(LongSessionArgs),
    /// In process: the time of one tick's render of a session that holds N
    /// exported tool calls and a turn of calls still pending, against a
    /// render of the whole tree.
    Render(RenderArgs),
    /// In process: a session that left memory when quiet, rebuilt from the
    /// store by its next event, as when a user comes back after a pause.
    Rebuild(RebuildArgs),
    /// A minimal compiled hook client (stdin → POST → wait for the reply):
    /// the floor `ccotel hook` is compared with.
    MiniHook {
        #[arg(long)]
        addr: SocketAddr,
    },
}

#[derive(Args, Clone)]
struct Common {
    /// The ccotel binary to measure [default: `ccotel` next to this binary].
    #[arg(long, env = "CCOTEL_BIN")]
    ccotel: Option<PathBuf>,
    /// Pin the measured server to this CPU (`taskset -c`); unpinned if unset.
    #[arg(long)]
    server_cpu: Option<usize>,
    /// Repetitions; the median and min–max over them are reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Append results as JSON lines to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Scratch directory (a fresh temporary one per server by default).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// The Claude Code fixtures.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/claude-code-2.1.328"))]
    fixtures: PathBuf,
    /// Keep the servers' logs and stores (printed at the end).
    #[arg(long)]
    keep: bool,
    /// How long to wait past the grace period for merged spans, and the
    /// window in which the server must stay idle to count as settled, ms.
    #[arg(long, default_value_t = 1500)]
    settle_ms: u64,
    /// Run every ccotel with `[redaction] secrets = false` (an ablation:
    /// what secret redaction costs).
    #[arg(long)]
    no_redaction: bool,
}

impl Common {
    /// Extra wait after the grace period.
    fn after_grace(&self) -> Duration {
        Duration::from_millis(self.settle_ms)
    }
    /// The idle window of [`Server::settle`].
    fn idle_window(&self) -> Duration {
        Duration::from_millis(self.settle_ms.clamp(50, 500))
    }
}

#[derive(Args, Clone)]
struct RotelArg {
    /// The rotel-agent binary; the comparison is skipped when unset or missing.
    #[arg(long, env = "ROTEL_BIN")]
    rotel: Option<PathBuf>,
}

#[derive(Args)]
struct HookHttpArgs {
    #[command(flatten)]
    common: Common,
    /// Requests per sender per repetition.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Sender counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,50")]
    concurrency: Vec<usize>,
    /// Pause between rounds (all senders send once per round), µs.
    #[arg(long, default_value_t = 1000)]
    gap_us: u64,
    /// Open a new connection per request (as a hook process does) instead
    /// of keeping one per sender.
    #[arg(long)]
    new_conn: bool,
}

#[derive(Args)]
struct HookCmdArgs {
    #[command(flatten)]
    common: Common,
    /// The hook binary to measure [default: `ccotel-hook` next to the ccotel
    /// binary].
    #[arg(long, env = "CCOTEL_HOOK_BIN")]
    ccotel_hook: Option<PathBuf>,
    /// Invocations of each variant per repetition.
    #[arg(long, default_value_t = 300)]
    runs: usize,
}

#[derive(Args)]
struct IngestArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    rotel: RotelArg,
    /// Transports: grpc, http.
    #[arg(long, value_delimiter = ',', default_value = "grpc,http")]
    transport: Vec<String>,
    /// Records per request.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    per_request: Vec<usize>,
    /// Records per run [default: 10k at 1 record/request, 30k up to 10,
    /// 60k above].
    #[arg(long)]
    records: Option<usize>,
    /// Requests in flight.
    #[arg(long, default_value_t = 4)]
    inflight: usize,
    /// Merge grace period given to ccotel (its default is 10s).
    #[arg(long, default_value = "10s")]
    grace: String,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Also run ccotel with `[redaction] secrets = false`, to show what
    /// secret redaction costs.
    #[arg(long)]
    ablation: bool,
}

#[derive(Args)]
struct GrpcTailArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    rotel: RotelArg,
    /// Total requests per second.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Concurrent streams (one gRPC connection each).
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// Seconds per repetition.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Log records per request.
    #[arg(long, default_value_t = 10)]
    per_request: usize,
}

#[derive(Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    rotel: RotelArg,
    /// Seconds to let the server settle before reading RSS.
    #[arg(long, default_value_t = 3)]
    settle_s: u64,
}

#[derive(Args)]
struct SessionsArgs {
    #[command(flatten)]
    common: Common,
    /// Session counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,1000,10000")]
    counts: Vec<usize>,
    /// Sessions replayed at once.
    #[arg(long, default_value_t = 32)]
    workers: usize,
    /// Merge grace period given to ccotel.
    #[arg(long, default_value = "10s")]
    grace: String,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout_s: u64,
    /// After the sessions ended, replay as many new sessions again (and end
    /// them) and read RSS once more: if it barely grows, the first wave's
    /// memory was freed and reused (kept by the allocator, not by ccotel).
    #[arg(long)]
    second_wave: bool,
    /// After each RSS reading, wait this many seconds with the server up,
    /// so that its heap can be inspected (gdb, pmap); its pid is printed.
    #[arg(long, default_value_t = 0)]
    hold_s: u64,
}

#[derive(Args)]
struct StalledArgs {
    #[command(flatten)]
    common: Common,
    /// Seconds of load against the stalled backend.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// The exporter's queue bound, MiB.
    #[arg(long, default_value_t = 16)]
    queue_mib: u64,
    /// Requests per second offered (fixture session mix).
    #[arg(long, default_value_t = 300)]
    rate: u64,
}

#[derive(Args)]
struct FreshnessArgs {
    #[command(flatten)]
    common: Common,
    /// Sessions (one turn each), started `--stagger-ms` apart.
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    #[arg(long, default_value_t = 1300)]
    stagger_ms: u64,
    /// Merge grace period given to ccotel (its default is 10s).
    #[arg(long, default_value = "10s")]
    grace: String,
}

/// A long session: its exported tool calls, in turns of `per_turn`.
#[derive(Args)]
struct SessionShape {
    /// Tool calls already in the session, exported.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
    calls: Vec<usize>,
    /// Tool calls per turn (each turn is a prompt, its calls and a Stop).
    #[arg(long, default_value_t = 25)]
    per_turn: usize,
}

#[derive(Args)]
struct LongSessionArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    shape: SessionShape,
    /// Measured tool calls (a PreToolUse and a PostToolUse each), one every
    /// `--pace-ms`, in a turn of their own.
    #[arg(long, default_value_t = 150)]
    measured: usize,
    #[arg(long, default_value_t = 20)]
    pace_ms: u64,
    /// Merge grace period given to ccotel (its default is 10s; shorter
    /// here so that the built session is exported sooner).
    #[arg(long, default_value = "1s")]
    grace: String,
    /// Seconds past the grace to wait after the measured calls before the
    /// settled RSS is read (the server hands freed memory back at most
    /// every 5 s).
    #[arg(long, default_value_t = 6)]
    settle_rss_s: u64,
    /// Quiet seconds before the measured turn, as a user reading the
    /// answer: past ccotel's `merge.evict_after` (10 s) the session leaves
    /// memory, and the measured turn's first event brings it back. 0 goes
    /// on at once.
    #[arg(long, default_value_t = 0)]
    pause_s: u64,
}

#[derive(Args)]
struct RenderArgs {
    /// (Only `--reps`, `--json` and `--fixtures` apply: nothing is started.)
    #[command(flatten)]
    common: Common,
    /// Exported tool calls in the session.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,5000,20000")]
    calls: Vec<usize>,
    /// Tool calls per turn; the last turn's are the ones still pending.
    #[arg(long, default_value_t = 25)]
    per_turn: usize,
    /// Renders timed per size (the median is reported).
    #[arg(long, default_value_t = 30)]
    iterations: usize,
}

#[derive(Args)]
struct RebuildArgs {
    /// (Only `--reps`, `--json`, `--fixtures` and `--workdir`, where the
    /// store goes, apply: nothing is started.)
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    shape: SessionShape,
    /// Rebuilds timed per size (the median is reported).
    #[arg(long, default_value_t = 5)]
    iterations: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Cmd::MiniHook { addr } = &cli.cmd {
        return mini_hook(*addr);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let _guard = rt.enter();
    match cli.cmd {
        Cmd::HookHttp(a) => hook_http(&rt, a),
        Cmd::HookCmd(a) => hook_cmd(&rt, a),
        Cmd::Ingest(a) => rt.block_on(ingest(a)),
        Cmd::GrpcTail(a) => rt.block_on(grpc_tail(a)),
        Cmd::Idle(a) => rt.block_on(idle(a)),
        Cmd::Sessions(a) => rt.block_on(sessions(a)),
        Cmd::Stalled(a) => rt.block_on(stalled(a)),
        Cmd::Freshness(a) => rt.block_on(freshness(a)),
        Cmd::LongSession(a) => rt.block_on(long_session(a)),
        Cmd::Render(a) => render_bench(a),
        Cmd::Rebuild(a) => rebuild_bench(a),
        Cmd::MiniHook { .. } => unreachable!(),
    }
}

// ---------------------------------------------------------------------------
// Statistics and reporting
// ---------------------------------------------------------------------------

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Median and spread of one figure over repetitions.
#[derive(Clone, Debug)]
struct Figure {
    values: Vec<f64>,
}

impl Figure {
    fn new() -> Figure {
        Figure { values: Vec::new() }
    }
    fn push(&mut self, v: f64) {
        self.values.push(v);
    }
    fn median(&self) -> f64 {
        let s = sorted(self.values.clone());
        if s.is_empty() {
            return f64::NAN;
        }
        let n = s.len();
        if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        }
    }
    fn min(&self) -> f64 {
        self.values.iter().cloned().fold(f64::INFINITY, f64::min)
    }
    fn max(&self) -> f64 {
        self.values
            .iter()
            .cloned()
            .fold(f64::NEG_INFINITY, f64::max)
    }
    fn show(&self, prec: usize) -> String {
        if self.values.is_empty() {
            return "n/a".into();
        }
        if self.values.len() == 1 {
            return format!("{:.*}", prec, self.values[0]);
        }
        format!(
            "{:.*} [{:.*}–{:.*}]",
            prec,
            self.median(),
            prec,
            self.min(),
            prec,
            self.max()
        )
    }
}

/// Named figures of one benchmark case, in insertion order.
#[derive(Default)]
struct Table {
    rows: Vec<(String, Vec<(String, Figure)>)>,
}

impl Table {
    fn fig(&mut self, row: &str, col: &str) -> &mut Figure {
        let r = match self.rows.iter().position(|(n, _)| n == row) {
            Some(i) => i,
            None => {
                self.rows.push((row.to_string(), Vec::new()));
                self.rows.len() - 1
            }
        };
        let cols = &mut self.rows[r].1;
        let c = match cols.iter().position(|(n, _)| n == col) {
            Some(i) => i,
            None => {
                cols.push((col.to_string(), Figure::new()));
                cols.len() - 1
            }
        };
        &mut cols[c].1
    }

    fn get(&self, row: &str, col: &str) -> Option<&Figure> {
        self.rows
            .iter()
            .find(|(n, _)| n == row)?
            .1
            .iter()
            .find(|(n, _)| n == col)
            .map(|(_, f)| f)
    }

    /// Prints a markdown table: one line per row, `cols` as columns.
    fn print(&self, title: &str, cols: &[(&str, usize)]) {
        println!("\n### {title}\n");
        let mut head = String::from("| case |");
        let mut rule = String::from("|---|");
        for (c, _) in cols {
            head.push_str(&format!(" {c} |"));
            rule.push_str("---|");
        }
        println!("{head}\n{rule}");
        for (row, figs) in &self.rows {
            let mut line = format!("| {row} |");
            for (c, prec) in cols {
                let cell = figs
                    .iter()
                    .find(|(n, _)| n == c)
                    .map(|(_, f)| f.show(*prec))
                    .unwrap_or_else(|| "".into());
                line.push_str(&format!(" {cell} |"));
            }
            println!("{line}");
        }
        println!(
            "\n_Machine CPU pressure at the end (PSI, /proc/pressure/cpu): `{}`_",
            cpu_pressure()
        );
    }

    fn write_json(&self, bench: &str, path: Option<&Path>) -> Result<()> {
        let Some(path) = path else { return Ok(()) };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let when = httpdate::fmt_http_date(std::time::SystemTime::now());
        for (row, figs) in &self.rows {
            for (col, fig) in figs {
                writeln!(
                    f,
                    "{}",
                    json!({"bench": bench, "case": row, "metric": col, "values": fig.values,
                           "median": fig.median(), "min": fig.min(), "max": fig.max(), "date": when})
                )?;
            }
        }
        Ok(())
    }
}

fn note(msg: impl AsRef<str>) {
    eprintln!("[ccotel-bench] {}", msg.as_ref());
}

// ---------------------------------------------------------------------------
// Processes: the measured server
// ---------------------------------------------------------------------------

fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of a process, seconds (all its threads, living and dead).
fn cpu_secs(pid: u32) -> f64 {
    let (user, sys) = cpu_split(pid);
    user + sys
}

/// (utime, stime) of a process, seconds: how much of its CPU went to the
/// kernel (socket and file I/O, fsync, thread wake-ups) rather than its own
/// code.
fn cpu_split(pid: u32) -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (f64::NAN, f64::NAN);
    };
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').map(|i| i + 2).unwrap_or(0)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    let stime: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
    (utime / clk_tck(), stime / clk_tck())
}

/// Time the process's threads spent runnable but waiting for a CPU, ns
/// (`/proc/<pid>/task/*/schedstat`, living threads): on a shared machine,
/// latency that is not the server's own doing.
fn runq_wait_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// The machine's CPU pressure (PSI "some" line), to tell how busy the shared
/// machine was.
fn cpu_pressure() -> String {
    std::fs::read_to_string("/proc/pressure/cpu")
        .ok()
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "n/a".into())
}

/// (VmRSS, VmHWM) in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// How many times a server is started on fresh ports when another process
/// took one of them between the pick and the bind.
const START_ATTEMPTS: usize = 3;

/// Whether a server failed to start only because a port it was given was taken.
fn port_taken(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("Address already in use")
}

fn ccotel_bin(common: &Common) -> Result<PathBuf> {
    if let Some(p) = &common.ccotel {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    let p = exe.with_file_name("ccotel");
    if p.exists() {
        Ok(p)
    } else {
        bail!("no ccotel binary next to {}; pass --ccotel", exe.display())
    }
}

fn scratch(common: &Common, tag: &str) -> Result<PathBuf> {
    let base = common.workdir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base)?;
    let dir = base.join(format!(
        "ccotel-bench-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Ccotel,
    /// ccotel with `[redaction] secrets = false` (an ablation).
    CcotelNoRedaction,
    /// ccotel with the built-in patterns rewritten to ASCII word boundaries.
    CcotelAsciiRedaction,
    Rotel,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ccotel => "ccotel",
            Kind::CcotelNoRedaction => "ccotel, redaction off",
            Kind::CcotelAsciiRedaction => "ccotel, ASCII \\b redaction",
            Kind::Rotel => "rotel",
        }
    }
}

/// What a ccotel under test is configured with.
#[derive(Clone)]
struct CcotelOpts {
    sink: Option<SocketAddr>,
    signals: &'static str,
    grace: String,
    queue_bytes: Option<u64>,
    /// `[redaction] secrets = false` (an ablation: what redaction costs).
    no_redaction: bool,
    /// The built-in redaction patterns given as `[redaction] patterns` with
    /// ASCII word boundaries (`(?-u:\b)`) instead of Unicode ones (an
    /// ablation: what a cheaper regex would cost).
    ascii_redaction: bool,
}

impl Default for CcotelOpts {
    fn default() -> Self {
        CcotelOpts {
            sink: None,
            signals: r#"["traces", "metrics", "logs"]"#,
            grace: "10s".into(),
            queue_bytes: None,
            no_redaction: false,
            ascii_redaction: false,
        }
    }
}

impl CcotelOpts {
    /// Merged traces only, to a sink, with this grace.
    fn traces_to(sink: SocketAddr, grace: &str) -> CcotelOpts {
        CcotelOpts {
            sink: Some(sink),
            signals: r#"["traces"]"#,
            grace: grace.to_string(),
            ..Default::default()
        }
    }
}

struct Server {
    kind: Kind,
    child: Child,
    pid: u32,
    http: SocketAddr,
    grpc: SocketAddr,
    dir: PathBuf,
    keep: bool,
}

fn spawn_pinned(cpu: Option<usize>, program: &Path, args: &[String]) -> Command {
    let mut cmd = match cpu {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c.to_string()).arg(program);
            cmd
        }
        None => Command::new(program),
    };
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("CCOTEL_") || k.starts_with("ROTEL_") || k.starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

impl Server {
    fn start_ccotel(common: &Common, opts: &CcotelOpts) -> Result<Server> {
        Self::start_retrying(|| Self::try_start_ccotel(common, opts))
    }

    fn start_retrying(start: impl Fn() -> Result<Server>) -> Result<Server> {
        let mut attempt = 1;
        loop {
            match start() {
                Err(e) if attempt < START_ATTEMPTS && port_taken(&e) => {
                    note(format!("{e:#}; starting again on other ports"));
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    fn try_start_ccotel(common: &Common, opts: &CcotelOpts) -> Result<Server> {
        let dir = scratch(common, "ccotel")?;
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        let grpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        let mut cfg = format!(
            "[server]\ngrpc = \"{grpc}\"\nhttp = \"{http}\"\n\n[store]\npath = \"{}\"\n\n[merge]\ngrace_period = \"{}\"\n",
            dir.join("store").display(),
            opts.grace
        );
        if opts.ascii_redaction {
            cfg.push_str(&ascii_redaction_config());
        } else if opts.no_redaction || common.no_redaction {
            cfg.push_str("\n[redaction]\nsecrets = false\n");
        }
        if let Some(sink) = opts.sink {
            cfg.push_str(&format!(
                "\n[[exporters]]\nname = \"sink\"\ntype = \"otlp\"\nendpoint = \"http://{sink}\"\nprotocol = \"http/protobuf\"\nsignals = {}\n",
                opts.signals
            ));
            if let Some(q) = opts.queue_bytes {
                cfg.push_str(&format!("queue_bytes = {q}\n"));
            }
        }
        let cfg_path = dir.join("ccotel.toml");
        std::fs::write(&cfg_path, cfg)?;
        let log = std::fs::File::create(dir.join("ccotel.log"))?;
        let child = spawn_pinned(
            common.server_cpu,
            &ccotel_bin(common)?,
            &[
                "serve".into(),
                "--config".into(),
                cfg_path.display().to_string(),
            ],
        )
        .env("CCOTEL_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("cannot start ccotel serve")?;
        let mut s = Server {
            kind: Kind::Ccotel,
            pid: child.id(),
            child,
            http,
            grpc,
            dir,
            keep: common.keep,
        };
        s.wait_ready(|s| {
            http_request(s.http, "GET", "/healthz", "", b"", &[])
                .map(|(st, _)| st == 200)
                .unwrap_or(false)
        })?;
        Ok(s)
    }

    fn start_rotel(common: &Common, rotel: &Path, sink: SocketAddr) -> Result<Server> {
        Self::start_retrying(|| Self::try_start_rotel(common, rotel, sink))
    }

    fn try_start_rotel(common: &Common, rotel: &Path, sink: SocketAddr) -> Result<Server> {
        let dir = scratch(common, "rotel")?;
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        let grpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        let log = std::fs::File::create(dir.join("rotel.out"))?;
        let args: Vec<String> = [
            "start",
            "--otlp-grpc-endpoint",
            &grpc.to_string(),
            "--otlp-http-endpoint",
            &http.to_string(),
            "--exporter",
            "otlp",
            "--otlp-exporter-endpoint",
            &format!("http://{sink}"),
            "--otlp-exporter-protocol",
            "http",
            "--otlp-exporter-compression",
            "none",
            "--log-level",
            "warn",
            "--pid-file",
            &dir.join("rotel.pid").display().to_string(),
            "--log-file",
            &dir.join("rotel.log").display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let child = spawn_pinned(common.server_cpu, rotel, &args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start rotel-agent")?;
        let mut s = Server {
            kind: Kind::Rotel,
            pid: child.id(),
            child,
            http,
            grpc,
            dir,
            keep: common.keep,
        };
        s.wait_ready(|s| TcpStream::connect(s.http).is_ok() && TcpStream::connect(s.grpc).is_ok())?;
        Ok(s)
    }

    fn wait_ready(&mut self, ready: impl Fn(&Server) -> bool) -> Result<()> {
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Some(st) = self.child.try_wait()? {
                bail!(
                    "{} exited at start ({st}); its output, kept in {}:\n{}",
                    self.kind.name(),
                    self.dir.display(),
                    self.output_tail()
                );
            }
            if ready(self) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("{} did not become ready in 20 s", self.kind.name())
    }

    /// The last lines the server wrote, for an error that must stand alone:
    /// a test's scratch directory is gone by the time anyone reads it.
    fn output_tail(&self) -> String {
        let files: &[&str] = match self.kind {
            Kind::Rotel => &["rotel.out", "rotel.log"],
            _ => &["ccotel.log"],
        };
        let mut text = String::new();
        for f in files {
            let body = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
            let lines: Vec<&str> = body.lines().collect();
            for l in &lines[lines.len().saturating_sub(20)..] {
                text.push_str("  ");
                text.push_str(l);
                text.push('\n');
            }
        }
        text
    }

    /// Keeps the server up `secs` seconds for an operator to inspect.
    async fn hold(&self, what: &str, secs: u64) {
        if secs > 0 {
            note(format!(
                "{what}: holding pid {} for {secs} s (RSS {} KiB)",
                self.pid,
                self.rss().0
            ));
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
    }

    fn cpu(&self) -> f64 {
        cpu_secs(self.pid)
    }

    fn kernel_cpu(&self) -> f64 {
        cpu_split(self.pid).1
    }

    fn rss(&self) -> (u64, u64) {
        rss_kib(self.pid)
    }

    fn runq_wait_s(&self) -> f64 {
        runq_wait_ns(self.pid) as f64 / 1e9
    }

    /// Waits until the process used less than 20 ms of CPU over `window`,
    /// at most `max`.
    async fn settle(&self, window: Duration, max: Duration) {
        let until = Instant::now() + max;
        loop {
            let a = self.cpu();
            tokio::time::sleep(window).await;
            let b = self.cpu();
            if b - a < 0.02 || Instant::now() > until {
                return;
            }
        }
    }

    /// Waits, at most `max`, until ccotel has no session left in memory
    /// (its `/healthz` gauges), and none evicted either unless `evicted`
    /// is allowed: open quiet sessions leave memory after `evict_after`,
    /// ended ones after their grace, and the merge may still be behind the
    /// receivers when they answer. A server without the gauges counts as
    /// drained.
    async fn drained(&self, evicted: bool, max: Duration) {
        let until = Instant::now() + max;
        while Instant::now() < until {
            let h = self.health().unwrap_or_default();
            let level = |k: &str| h["receive"][k].as_u64().unwrap_or(0);
            if level("sessions_in_memory") == 0 && (evicted || level("sessions_evicted") == 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        note(format!(
            "{} still held sessions after {max:?}",
            self.kind.name()
        ));
    }

    fn health(&self) -> Option<Value> {
        let (st, body) = http_request(self.http, "GET", "/healthz", "", b"", &[]).ok()?;
        (st == 200).then(|| serde_json::from_slice(&body).ok())?
    }

    /// SIGKILL at once (when what it would flush at shutdown does not matter).
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// SIGTERM, then SIGKILL after 20 s.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        if self.keep {
            note(format!("kept {}", self.dir.display()));
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `[redaction]` with the built-in patterns (and the URL-password one) as
/// extra patterns whose word boundaries are ASCII-only: the same secrets are
/// found in ASCII text, and the regex engine's lazy DFA no longer has to give
/// way to the much slower PikeVM on non-ASCII input.
fn ascii_redaction_config() -> String {
    const URL_PASSWORD: &str = r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]+:)[^@\s/]+@";
    let patterns: Vec<String> = ccotel::redact::BUILTIN
        .iter()
        .map(|(_, re)| *re)
        .chain([URL_PASSWORD])
        .map(|re| {
            let unicode = re.replace(r"(?-u:\b)", r"\b");
            toml::Value::String(unicode.replace(r"\b", r"(?-u:\b)")).to_string()
        })
        .collect();
    format!(
        "\n[redaction]\nsecrets = false\npatterns = [{}]\n",
        patterns.join(", ")
    )
}

/// A server left behind by an error is killed, never orphaned.
impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn rotel_bin(arg: &RotelArg) -> Option<PathBuf> {
    match &arg.rotel {
        Some(p) if p.exists() => Some(p.clone()),
        Some(p) => {
            note(format!(
                "rotel not found at {}; comparison skipped",
                p.display()
            ));
            None
        }
        None => {
            note("no --rotel / ROTEL_BIN; rotel comparison skipped (bench/setup-rotel.sh installs it)");
            None
        }
    }
}

// ---------------------------------------------------------------------------
// A tiny blocking HTTP/1.1 client (for exact hook latencies and readiness)
// ---------------------------------------------------------------------------

struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends one request and reads the whole reply; returns the status.
    fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        close: bool,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            self.stream = Some(s);
        }
        let r = self.exchange(method, path, content_type, body, headers, close);
        if r.is_err() || close {
            self.stream = None;
        }
        r
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        close: bool,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let stream = self.stream.as_mut().expect("connected");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        if !content_type.is_empty() {
            req.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if close {
            req.push_str("Connection: close\r\n");
        }
        req.push_str("\r\n");
        let mut out = req.into_bytes();
        out.extend_from_slice(body);
        stream.write_all(&out)?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while self.buf.len() < head_end + len {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        Ok((status, self.buf[head_end..head_end + len].to_vec()))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, Vec<u8>)> {
    Conn::new(addr).request(method, path, content_type, body, headers, true)
}

/// The minimal hook client: read stdin, POST it, wait for the reply, exit 0.
fn mini_hook(addr: SocketAddr) -> Result<()> {
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body)?;
    let _ = http_request(addr, "POST", "/v1/hooks", "application/json", &body, &[]);
    Ok(())
}

// ---------------------------------------------------------------------------
// The OTLP sink: counts what exporters deliver, or accepts and never answers
// ---------------------------------------------------------------------------

#[derive(Default)]
struct SinkState {
    requests: AtomicU64,
    logs: AtomicU64,
    spans: AtomicU64,
    points: AtomicU64,
    bytes: AtomicU64,
    /// (arrival, trace id, span name) of every span, when recording.
    record: AtomicBool,
    spans_seen: Mutex<Vec<(Instant, Vec<u8>, String)>>,
}

struct Sink {
    addr: SocketAddr,
    state: Arc<SinkState>,
}

impl Sink {
    async fn start() -> Result<Sink> {
        use axum::routing::post;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SinkState::default());
        let app = axum::Router::new()
            .route("/v1/logs", post(sink_logs))
            .route("/v1/traces", post(sink_traces))
            .route("/v1/metrics", post(sink_metrics))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Sink { addr, state })
    }

    /// A backend that accepts connections and never reads nor answers.
    async fn start_stalled() -> Result<(SocketAddr, Arc<AtomicU64>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let conns = Arc::new(AtomicU64::new(0));
        let c = conns.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::Relaxed);
                held.push(s);
            }
        });
        Ok((addr, conns))
    }

    fn logs(&self) -> u64 {
        self.state.logs.load(Ordering::Relaxed)
    }
    fn spans(&self) -> u64 {
        self.state.spans.load(Ordering::Relaxed)
    }
}

type SinkReply = (
    axum::http::StatusCode,
    [(axum::http::HeaderName, &'static str); 1],
    Vec<u8>,
);

fn sink_ok() -> SinkReply {
    (
        axum::http::StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
        Vec::new(),
    )
}

fn inflate(headers: &axum::http::HeaderMap, body: Bytes) -> Bytes {
    if headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip")
    {
        let mut out = Vec::new();
        let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out);
        Bytes::from(out)
    } else {
        body
    }
}

async fn sink_logs(
    axum::extract::State(s): axum::extract::State<Arc<SinkState>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> SinkReply {
    s.requests.fetch_add(1, Ordering::Relaxed);
    s.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    if let Ok(r) = ExportLogsServiceRequest::decode(inflate(&headers, body)) {
        let n: usize = r
            .resource_logs
            .iter()
            .flat_map(|rl| &rl.scope_logs)
            .map(|sl| sl.log_records.len())
            .sum();
        s.logs.fetch_add(n as u64, Ordering::Relaxed);
    }
    sink_ok()
}

async fn sink_traces(
    axum::extract::State(s): axum::extract::State<Arc<SinkState>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> SinkReply {
    let at = Instant::now();
    s.requests.fetch_add(1, Ordering::Relaxed);
    s.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    if let Ok(r) = ExportTraceServiceRequest::decode(inflate(&headers, body)) {
        let record = s.record.load(Ordering::Relaxed);
        let mut n = 0;
        let mut seen = Vec::new();
        for span in r
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
        {
            n += 1;
            if record {
                seen.push((at, span.trace_id.clone(), span.name.clone()));
            }
        }
        s.spans.fetch_add(n, Ordering::Relaxed);
        if record {
            s.spans_seen.lock().unwrap().extend(seen);
        }
    }
    sink_ok()
}

async fn sink_metrics(
    axum::extract::State(s): axum::extract::State<Arc<SinkState>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> SinkReply {
    s.requests.fetch_add(1, Ordering::Relaxed);
    s.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    if let Ok(r) = ExportMetricsServiceRequest::decode(inflate(&headers, body)) {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        let mut n = 0u64;
        for m in r
            .resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
        {
            n += match &m.data {
                Some(Data::Sum(s)) => s.data_points.len() as u64,
                Some(Data::Gauge(g)) => g.data_points.len() as u64,
                Some(Data::Histogram(h)) => h.data_points.len() as u64,
                _ => 0,
            };
        }
        s.points.fetch_add(n, Ordering::Relaxed);
    }
    sink_ok()
}

// ---------------------------------------------------------------------------
// Fixtures: real Claude Code sessions, re-keyed per synthetic session
// ---------------------------------------------------------------------------

const SCENARIOS: &[&str] = &[
    "tools-basic",
    "tool-failure",
    "subagent",
    "multi-turn",
    "http-hooks",
    "protobuf",
    "denied",
];

/// Single-turn scenarios (for freshness).
const ONE_TURN: &[&str] = &["tools-basic", "tool-failure", "subagent", "denied"];

#[derive(Clone)]
enum Item {
    Hook(Value),
    Logs(ExportLogsServiceRequest),
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

/// One captured session: everything Claude Code sent, in arrival order.
#[derive(Clone)]
struct Template {
    items: Vec<Item>,
}

fn read_lines(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(Into::into))
        .collect()
}

fn load_template(fixtures: &Path, name: &str) -> Result<Template> {
    use base64::Engine as _;
    let dir = fixtures.join(name);
    let mut items: Vec<(f64, Item)> = Vec::new();
    for line in read_lines(&dir.join("hooks.jsonl"))? {
        let ts = line["shell_ts"]
            .as_f64()
            .or_else(|| line["ts"].as_f64())
            .unwrap_or_default();
        items.push((ts, Item::Hook(line["input"].clone())));
    }
    for file in ["otlp-metrics.jsonl", "otlp-logs.jsonl", "otlp-traces.jsonl"] {
        for line in read_lines(&dir.join(file))? {
            let ts = line["ts"].as_f64().unwrap_or_default();
            let body: Vec<u8> = match line["body_b64"].as_str() {
                Some(b) => base64::engine::general_purpose::STANDARD.decode(b)?,
                None => serde_json::to_vec(&line["body"])?,
            };
            let json = line["body_b64"].is_null();
            macro_rules! dec {
                ($ty:ty) => {
                    if json {
                        serde_json::from_slice::<$ty>(&body)?
                    } else {
                        <$ty>::decode(&body[..])?
                    }
                };
            }
            let item = match line["path"].as_str() {
                Some("/v1/logs") => Item::Logs(dec!(ExportLogsServiceRequest)),
                Some("/v1/metrics") => Item::Metrics(dec!(ExportMetricsServiceRequest)),
                _ => Item::Traces(dec!(ExportTraceServiceRequest)),
            };
            items.push((ts, item));
        }
    }
    items.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(Template {
        items: items.into_iter().map(|(_, i)| i).collect(),
    })
}

fn load_templates(fixtures: &Path, names: &[&str]) -> Result<Vec<Template>> {
    names.iter().map(|n| load_template(fixtures, n)).collect()
}

/// A synthetic session id, shaped like Claude Code's (a UUID).
fn session_id(run: u64, i: u64) -> String {
    format!("b0000000-{:04x}-4000-8000-{:012x}", run & 0xffff, i)
}

fn set_sid(attrs: &mut [KeyValue], sid: &str) {
    for kv in attrs.iter_mut().filter(|kv| kv.key == "session.id") {
        kv.value = Some(AnyValue {
            value: Some(any_value::Value::StringValue(sid.to_string())),
        });
    }
}

/// One request as sent on the wire (HTTP path, content type, body).
#[derive(Clone)]
struct Wire {
    path: &'static str,
    content_type: &'static str,
    body: Bytes,
    /// Records it carries (log records, spans, metric points; 1 for a hook).
    records: u64,
    session_end: bool,
}

/// The items of `t` for session `sid`, as HTTP requests (hooks as JSON,
/// OTLP as protobuf, as Claude Code sends them with http/protobuf).
fn session_wire(t: &Template, sid: &str) -> Vec<Wire> {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let mut out = Vec::with_capacity(t.items.len());
    for item in &t.items {
        match item.clone() {
            Item::Hook(mut v) => {
                v["session_id"] = Value::from(sid);
                let end = v["hook_event_name"] == "SessionEnd";
                out.push(Wire {
                    path: "/v1/hooks",
                    content_type: "application/json",
                    body: Bytes::from(serde_json::to_vec(&v).unwrap_or_default()),
                    records: 1,
                    session_end: end,
                });
            }
            Item::Logs(mut r) => {
                let mut n = 0;
                for rec in r
                    .resource_logs
                    .iter_mut()
                    .flat_map(|rl| rl.scope_logs.iter_mut())
                    .flat_map(|sl| sl.log_records.iter_mut())
                {
                    set_sid(&mut rec.attributes, sid);
                    n += 1;
                }
                out.push(Wire {
                    path: "/v1/logs",
                    content_type: "application/x-protobuf",
                    body: Bytes::from(r.encode_to_vec()),
                    records: n,
                    session_end: false,
                });
            }
            Item::Traces(mut r) => {
                let mut n = 0;
                for s in r
                    .resource_spans
                    .iter_mut()
                    .flat_map(|rs| rs.scope_spans.iter_mut())
                    .flat_map(|ss| ss.spans.iter_mut())
                {
                    set_sid(&mut s.attributes, sid);
                    n += 1;
                }
                out.push(Wire {
                    path: "/v1/traces",
                    content_type: "application/x-protobuf",
                    body: Bytes::from(r.encode_to_vec()),
                    records: n,
                    session_end: false,
                });
            }
            Item::Metrics(mut r) => {
                let mut n = 0;
                for m in r
                    .resource_metrics
                    .iter_mut()
                    .flat_map(|rm| rm.scope_metrics.iter_mut())
                    .flat_map(|sm| sm.metrics.iter_mut())
                {
                    if let Some(Data::Sum(s)) = &mut m.data {
                        for p in &mut s.data_points {
                            set_sid(&mut p.attributes, sid);
                            n += 1;
                        }
                    }
                }
                out.push(Wire {
                    path: "/v1/metrics",
                    content_type: "application/x-protobuf",
                    body: Bytes::from(r.encode_to_vec()),
                    records: n,
                    session_end: false,
                });
            }
        }
    }
    out
}

/// Log records and spans of the fixtures, re-keyed into synthetic sessions
/// and packed `k` to a request (each request keeps its records' resource and
/// scope). Returns log requests and span requests, each at most `k` records,
/// for about `total` records in all.
fn ingest_requests(
    templates: &[Template],
    k: usize,
    total: usize,
    run: u64,
) -> (
    Vec<ExportLogsServiceRequest>,
    Vec<ExportTraceServiceRequest>,
    u64,
) {
    let mut logs: Vec<ExportLogsServiceRequest> = Vec::new();
    let mut spans: Vec<ExportTraceServiceRequest> = Vec::new();
    let mut log_cur = ExportLogsServiceRequest::default();
    let mut span_cur = ExportTraceServiceRequest::default();
    let (mut nl, mut ns) = (0usize, 0usize);
    let mut made = 0usize;
    let mut session = 0u64;
    while made < total {
        let t = &templates[session as usize % templates.len()];
        let sid = session_id(run, session);
        session += 1;
        for item in &t.items {
            match item {
                Item::Logs(r) => {
                    for rl in &r.resource_logs {
                        for sl in &rl.scope_logs {
                            for rec in &sl.log_records {
                                if made >= total {
                                    break;
                                }
                                let mut rec = rec.clone();
                                set_sid(&mut rec.attributes, &sid);
                                push_log(&mut log_cur, rl, sl, rec);
                                nl += 1;
                                made += 1;
                                if nl == k {
                                    logs.push(std::mem::take(&mut log_cur));
                                    nl = 0;
                                }
                            }
                        }
                    }
                }
                Item::Traces(r) => {
                    for rs in &r.resource_spans {
                        for ss in &rs.scope_spans {
                            for span in &ss.spans {
                                if made >= total {
                                    break;
                                }
                                let mut span = span.clone();
                                set_sid(&mut span.attributes, &sid);
                                push_span(&mut span_cur, rs, ss, span);
                                ns += 1;
                                made += 1;
                                if ns == k {
                                    spans.push(std::mem::take(&mut span_cur));
                                    ns = 0;
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    if nl > 0 {
        logs.push(log_cur);
    }
    if ns > 0 {
        spans.push(span_cur);
    }
    (logs, spans, session)
}

/// Appends a record under its own resource and scope (joining the last
/// resource/scope when they are the same).
fn push_log(
    req: &mut ExportLogsServiceRequest,
    rl: &ResourceLogs,
    sl: &ScopeLogs,
    rec: opentelemetry_proto::tonic::logs::v1::LogRecord,
) {
    let same = req.resource_logs.last().is_some_and(|l| {
        l.resource == rl.resource && l.scope_logs.last().is_some_and(|s| s.scope == sl.scope)
    });
    if !same {
        req.resource_logs.push(ResourceLogs {
            resource: rl.resource.clone(),
            scope_logs: vec![ScopeLogs {
                scope: sl.scope.clone(),
                log_records: Vec::new(),
                schema_url: sl.schema_url.clone(),
            }],
            schema_url: rl.schema_url.clone(),
        });
    }
    let l = req.resource_logs.last_mut().expect("pushed");
    l.scope_logs
        .last_mut()
        .expect("pushed")
        .log_records
        .push(rec);
}

fn push_span(
    req: &mut ExportTraceServiceRequest,
    rs: &ResourceSpans,
    ss: &ScopeSpans,
    span: opentelemetry_proto::tonic::trace::v1::Span,
) {
    let same = req.resource_spans.last().is_some_and(|l| {
        l.resource == rs.resource && l.scope_spans.last().is_some_and(|s| s.scope == ss.scope)
    });
    if !same {
        req.resource_spans.push(ResourceSpans {
            resource: rs.resource.clone(),
            scope_spans: vec![ScopeSpans {
                scope: ss.scope.clone(),
                spans: Vec::new(),
                schema_url: ss.schema_url.clone(),
            }],
            schema_url: rs.schema_url.clone(),
        });
    }
    let l = req.resource_spans.last_mut().expect("pushed");
    l.scope_spans.last_mut().expect("pushed").spans.push(span);
}

fn log_count(r: &ExportLogsServiceRequest) -> u64 {
    r.resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len() as u64)
        .sum()
}

fn span_count(r: &ExportTraceServiceRequest) -> u64 {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len() as u64)
        .sum()
}

// ---------------------------------------------------------------------------
// 1a. HTTP hook latency
// ---------------------------------------------------------------------------

fn hook_bodies(fixtures: &Path, sessions: u64, run: u64) -> Result<Vec<Vec<u8>>> {
    let templates = load_templates(fixtures, SCENARIOS)?;
    let mut out = Vec::new();
    for s in 0..sessions {
        let t = &templates[s as usize % templates.len()];
        let sid = session_id(run, s);
        for item in &t.items {
            if let Item::Hook(v) = item {
                let mut v = v.clone();
                if v["hook_event_name"] == "SessionEnd" {
                    continue;
                }
                v["session_id"] = Value::from(sid.as_str());
                out.push(serde_json::to_vec(&v)?);
            }
        }
    }
    Ok(out)
}

fn hook_http(rt: &tokio::runtime::Runtime, a: HookHttpArgs) -> Result<()> {
    let c = &a.common;
    let mut table = Table::default();
    let bodies = Arc::new(hook_bodies(&c.fixtures, 200, 1)?);
    for rep in 0..c.reps {
        let sink = rt.block_on(Sink::start())?;
        let server = Server::start_ccotel(
            c,
            &CcotelOpts {
                sink: Some(sink.addr),
                ..Default::default()
            },
        )?;
        for &n in &a.concurrency {
            let cpu0 = server.cpu();
            let wait0 = server.runq_wait_s();
            let got = hook_rounds(
                server.http,
                n,
                a.requests.max(1),
                Duration::from_micros(a.gap_us),
                &bodies,
                rep,
                a.new_conn,
            )?;
            // Let the merge engine finish what the hooks started.
            rt.block_on(server.settle(c.idle_window(), Duration::from_secs(10)));
            let cpu = server.cpu() - cpu0;
            let wait = server.runq_wait_s() - wait0;
            let s = sorted(got.read);
            let arrived = sorted(got.arrived);
            let hooks = s.len().max(1) as f64;
            let row = format!("{n} sender(s)");
            table
                .fig(&row, "server run-queue wait µs/hook")
                .push(wait * 1e6 / hooks);
            table
                .fig(&row, "server CPU µs/hook")
                .push(cpu * 1e6 / hooks);
            table
                .fig(&row, "client CPU µs/hook")
                .push(got.client_cpu.as_secs_f64() * 1e6 / hooks);
            table.fig(&row, "p50 µs").push(pct(&arrived, 0.50));
            table.fig(&row, "p90 µs").push(pct(&arrived, 0.90));
            table.fig(&row, "p99 µs").push(pct(&arrived, 0.99));
            table.fig(&row, "max µs").push(pct(&arrived, 1.0));
            table.fig(&row, "read p50 µs").push(pct(&s, 0.50));
            table.fig(&row, "read p99 µs").push(pct(&s, 0.99));
            table.fig(&row, "requests").push(s.len() as f64);
            table.fig(&row, "errors").push(got.errors as f64);
        }
        server.stop();
    }
    let mode = if a.new_conn {
        "new connection per request"
    } else {
        "keep-alive connection per sender"
    };
    table.print(
        &format!(
            "HTTP hook POST → 2xx ({mode}; {} rounds per sender per rep, {} µs between rounds; \
             p50–max: write → reply at the sender's socket; read: → reply read by the one client thread)",
            a.requests, a.gap_us
        ),
        &[
            ("p50 µs", 0),
            ("p90 µs", 0),
            ("p99 µs", 0),
            ("max µs", 0),
            ("read p50 µs", 0),
            ("read p99 µs", 0),
            ("requests", 0),
            ("errors", 0),
            ("server CPU µs/hook", 0),
            ("client CPU µs/hook", 0),
            ("server run-queue wait µs/hook", 0),
        ],
    );
    table.write_json(
        if a.new_conn {
            "hook-http-newconn"
        } else {
            "hook-http"
        },
        c.json.as_deref(),
    )
}

/// What one sender measured of its hook POSTs.
#[derive(Default)]
struct HookLatencies {
    /// From the request's write to the client having read the whole reply.
    read: Vec<f64>,
    /// From the request's write to the reply's arrival at the client's
    /// socket (the kernel's receive stamp). A single client thread that
    /// writes fifty requests and then reads fifty replies reads the last
    /// one late by its own work on the others; a sender of its own (each
    /// Claude Code hook is one) would have read it at arrival.
    arrived: Vec<f64>,
    errors: u64,
    /// The client thread's own CPU, so a saturated client shows.
    client_cpu: Duration,
}

/// `rounds` rounds of `n` concurrent hook POSTs from one client thread (a
/// single-threaded event loop, so client-side thread scheduling does not
/// pollute the figures); each latency runs from the request's own write to
/// the end of its reply, and to the reply's arrival.
fn hook_rounds(
    addr: SocketAddr,
    n: usize,
    rounds: usize,
    gap: Duration,
    bodies: &[Vec<u8>],
    rep: usize,
    new_conn: bool,
) -> Result<HookLatencies> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cpu0 = thread_cpu();
    let mut out = rt.block_on(async {
        let mut conns: Vec<Option<tokio::net::TcpStream>> = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(if new_conn {
                None
            } else {
                Some(connect_stamped(addr).await?)
            });
        }
        let mut out = HookLatencies {
            read: Vec::with_capacity(rounds * n),
            arrived: Vec::with_capacity(rounds * n),
            ..Default::default()
        };
        for r in 0..rounds {
            let futs = conns.iter_mut().enumerate().map(|(w, slot)| {
                let body = &bodies[(r * n + w + rep * 7919) % bodies.len()];
                async move {
                    let t = Instant::now();
                    let sent = std::time::SystemTime::now();
                    let reply = async_post(addr, slot, "/v1/hooks", body, new_conn).await;
                    (t.elapsed(), sent, reply)
                }
            });
            for (d, sent, reply) in futures::future::join_all(futs).await {
                match reply {
                    Ok((200..=299, arrival)) => {
                        out.read.push(d.as_secs_f64() * 1e6);
                        // Without a stamp (another OS), the read time stands.
                        let arrived = arrival
                            .and_then(|a| a.duration_since(sent).ok())
                            .map_or(d, |a| a.min(d));
                        out.arrived.push(arrived.as_secs_f64() * 1e6);
                    }
                    _ => out.errors += 1,
                }
            }
            if !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
        }
        anyhow::Ok(out)
    })?;
    out.client_cpu = thread_cpu().saturating_sub(cpu0);
    Ok(out)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Connects with Nagle off and, on Linux, the kernel stamping each
/// received segment's arrival (`SO_TIMESTAMPNS`).
async fn connect_stamped(addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads one c_int from a live stack variable on
        // a socket this function owns.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(s)
}

/// Reads what has arrived, with the kernel's stamp of its arrival when
/// the socket was set up by [`connect_stamped`].
async fn read_stamped(
    stream: &tokio::net::TcpStream,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<std::time::SystemTime>)> {
    loop {
        stream.readable().await?;
        match stream.try_io(tokio::io::Interest::READABLE, || recv_stamped(stream, buf)) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

#[cfg(target_os = "linux")]
fn recv_stamped(
    stream: &tokio::net::TcpStream,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<std::time::SystemTime>)> {
    use std::os::fd::AsRawFd;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one timespec control message, aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data, valid when zeroed.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: the iovec and control buffer outlive the call, and their
    // lengths are the ones given.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: walks the control messages the kernel wrote into `control`,
    // within the length it reported; the timespec is read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                stamp = Some(
                    std::time::UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
                );
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp))
}

#[cfg(not(target_os = "linux"))]
fn recv_stamped(
    stream: &tokio::net::TcpStream,
    buf: &mut [u8],
) -> std::io::Result<(usize, Option<std::time::SystemTime>)> {
    stream.try_read(buf).map(|n| (n, None))
}

/// One HTTP/1.1 JSON POST on `slot` (connecting when empty); returns the
/// status once the whole reply is read, and when its last part arrived.
async fn async_post(
    addr: SocketAddr,
    slot: &mut Option<tokio::net::TcpStream>,
    path: &str,
    body: &[u8],
    close: bool,
) -> std::io::Result<(u16, Option<std::time::SystemTime>)> {
    use tokio::io::AsyncWriteExt;
    if slot.is_none() {
        *slot = Some(connect_stamped(addr).await?);
    }
    let stream = slot.as_mut().expect("connected");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    req.extend_from_slice(body);
    let result = async {
        stream.write_all(&req).await?;
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 2048];
        let mut arrival = None;
        let head_end = loop {
            let (k, at) = read_stamped(stream, &mut chunk).await?;
            arrival = at.or(arrival);
            if k == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..k]);
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let (k, at) = read_stamped(stream, &mut chunk).await?;
            arrival = at.or(arrival);
            if k == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..k]);
        }
        Ok((status, arrival))
    }
    .await;
    if result.is_err() || close {
        *slot = None;
    }
    result
}

// ---------------------------------------------------------------------------
// 1b. `ccotel hook` end to end
// ---------------------------------------------------------------------------

/// CPU time (user + system, ms) and minor page faults of every child reaped
/// so far.
fn children_usage() -> (f64, u64) {
    // SAFETY: `rusage` is plain data, valid when zeroed, and getrusage
    // writes a whole one into the pointer it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the pointer is to a live local.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return (0.0, 0);
    }
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    (ms(ru.ru_utime) + ms(ru.ru_stime), ru.ru_minflt as u64)
}

/// One process run: wall time (ms), CPU time (ms) and minor page faults.
struct ProcessRun {
    wall_ms: f64,
    cpu_ms: f64,
    faults: u64,
}

fn run_process(program: &Path, args: &[String], stdin: &[u8]) -> Result<ProcessRun> {
    let (cpu0, faults0) = children_usage();
    let t = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin);
    }
    child.wait()?;
    let wall_ms = t.elapsed().as_secs_f64() * 1e3;
    let (cpu1, faults1) = children_usage();
    Ok(ProcessRun {
        wall_ms,
        cpu_ms: cpu1 - cpu0,
        faults: faults1.saturating_sub(faults0),
    })
}

fn hook_cmd(rt: &tokio::runtime::Runtime, a: HookCmdArgs) -> Result<()> {
    let c = &a.common;
    let ccotel = ccotel_bin(c)?;
    let hook_bin = match &a.ccotel_hook {
        Some(p) => p.clone(),
        None => ccotel.with_file_name("ccotel-hook"),
    };
    if !hook_bin.exists() {
        bail!("no {}; pass --ccotel-hook", hook_bin.display());
    }
    let me = std::env::current_exe()?;
    let bodies = hook_bodies(&c.fixtures, 50, 2)?;
    let mut table = Table::default();
    for rep in 0..c.reps {
        let sink = rt.block_on(Sink::start())?;
        let server = Server::start_ccotel(
            c,
            &CcotelOpts {
                sink: Some(sink.addr),
                ..Default::default()
            },
        )?;
        let dir = scratch(c, "hookcmd")?;
        let dead = free_port();
        let up_url = format!("http://{}/v1/hooks", server.http);
        let down_url = format!("http://127.0.0.1:{dead}/v1/hooks");
        let spool_up = dir.join("spool-up").display().to_string();
        let spool_down = dir.join("spool-down").display().to_string();
        let hook_spool_up = dir.join("hook-spool-up").display().to_string();
        let hook_spool_down = dir.join("hook-spool-down").display().to_string();
        let hook_flags = |url: &str, spool: &str| {
            vec![
                "--endpoint".to_string(),
                url.to_string(),
                "--spool-dir".into(),
                spool.to_string(),
            ]
        };
        let variants: Vec<(&str, PathBuf, Vec<String>)> = vec![
            (
                "/bin/true (spawn + stdin)",
                PathBuf::from("/bin/true"),
                vec![],
            ),
            (
                "minimal compiled client, bridge up",
                me.clone(),
                vec!["mini-hook".into(), "--addr".into(), server.http.to_string()],
            ),
            (
                "ccotel-hook, bridge up",
                hook_bin.clone(),
                hook_flags(&up_url, &hook_spool_up),
            ),
            (
                "ccotel hook, bridge up",
                ccotel.clone(),
                [vec!["hook".into()], hook_flags(&up_url, &spool_up)].concat(),
            ),
            (
                "ccotel-hook, bridge down",
                hook_bin.clone(),
                hook_flags(&down_url, &hook_spool_down),
            ),
            (
                "ccotel hook, bridge down",
                ccotel.clone(),
                [vec!["hook".into()], hook_flags(&down_url, &spool_down)].concat(),
            ),
        ];
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        let mut cpu = vec![0.0f64; variants.len()];
        let mut faults = vec![0u64; variants.len()];
        // Warm the page cache and the bridge.
        for (_, p, args) in &variants {
            let _ = run_process(p, args, &bodies[0]);
        }
        for i in 0..a.runs {
            // Rotate the order so no variant always follows another.
            for j in 0..variants.len() {
                let v = (i + j) % variants.len();
                let (_, p, args) = &variants[v];
                let run = run_process(p, args, &bodies[(i + rep * 31) % bodies.len()])?;
                samples[v].push(run.wall_ms);
                cpu[v] += run.cpu_ms;
                faults[v] += run.faults;
            }
        }
        let spooled = |dir: &str| {
            std::fs::read_dir(dir)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                        .count()
                })
                .unwrap_or(0)
        };
        let delivered = server
            .health()
            .and_then(|h| h["receive"]["hook_events"].as_u64())
            .unwrap_or(0);
        let base = pct(&sorted(samples[0].clone()), 0.5);
        for (v, (name, _, _)) in variants.iter().enumerate() {
            let s = sorted(samples[v].clone());
            table.fig(name, "p50 ms").push(pct(&s, 0.5));
            table.fig(name, "p90 ms").push(pct(&s, 0.9));
            table.fig(name, "p99 ms").push(pct(&s, 0.99));
            table.fig(name, "max ms").push(pct(&s, 1.0));
            table.fig(name, "p50 / true").push(pct(&s, 0.5) / base);
            let n = samples[v].len().max(1) as f64;
            table.fig(name, "CPU ms").push(cpu[v] / n);
            table.fig(name, "page faults").push(faults[v] as f64 / n);
        }
        for (name, dir) in [
            ("ccotel-hook, bridge down", &hook_spool_down),
            ("ccotel hook, bridge down", &spool_down),
        ] {
            table.fig(name, "spooled").push(spooled(dir) as f64);
        }
        table
            .fig("ccotel hook, bridge up", "events at bridge (all clients)")
            .push(delivered as f64);
        server.stop();
        if !c.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    table.print(
        &format!(
            "Hook process end to end: spawn, write stdin, exit ({} runs each per rep, interleaved)",
            a.runs
        ),
        &[
            ("p50 ms", 2),
            ("p90 ms", 2),
            ("p99 ms", 2),
            ("max ms", 2),
            ("p50 / true", 2),
            ("CPU ms", 2),
            ("page faults", 0),
            ("spooled", 0),
            ("events at bridge (all clients)", 0),
        ],
    );
    table.write_json("hook-cmd", c.json.as_deref())
}

// ---------------------------------------------------------------------------
// 2. Ingest cost
// ---------------------------------------------------------------------------

#[derive(Clone)]
enum Prepared {
    Grpc {
        logs: Arc<Vec<ExportLogsServiceRequest>>,
        spans: Arc<Vec<ExportTraceServiceRequest>>,
    },
    Http {
        logs: Arc<Vec<Bytes>>,
        spans: Arc<Vec<Bytes>>,
    },
}

struct LoadResult {
    requests: u64,
    retries: u64,
    elapsed: Duration,
}

/// Sends every request (logs and spans interleaved in proportion), with
/// `inflight` requests outstanding; a 503 / UNAVAILABLE is retried after 2 ms.
async fn send_all(
    server: &Server,
    prepared: &Prepared,
    inflight: usize,
    deadline: Instant,
) -> Result<LoadResult> {
    let (nl, ns) = match prepared {
        Prepared::Grpc { logs, spans } => (logs.len(), spans.len()),
        Prepared::Http { logs, spans } => (logs.len(), spans.len()),
    };
    // Order: a deterministic proportional interleave of logs and spans.
    let mut order: Vec<(bool, usize)> = Vec::with_capacity(nl + ns);
    let (mut i, mut j) = (0, 0);
    while i < nl || j < ns {
        if j >= ns || (i < nl && (i as f64 / nl as f64) <= (j as f64 / ns.max(1) as f64)) {
            order.push((true, i));
            i += 1;
        } else {
            order.push((false, j));
            j += 1;
        }
    }
    let order = Arc::new(order);
    let next = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    let http = reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(inflight)
        .build()?;
    for _ in 0..inflight {
        let (order, next, retries, failures) = (
            order.clone(),
            next.clone(),
            retries.clone(),
            failures.clone(),
        );
        let prepared = prepared.clone();
        let http = http.clone();
        let (hadr, gadr) = (server.http, server.grpc);
        tasks.push(tokio::spawn(async move {
            let mut grpc = None;
            if let Prepared::Grpc { .. } = &prepared {
                let ch = tonic::transport::Endpoint::from_shared(format!("http://{gadr}"))?
                    .tcp_nodelay(true)
                    .connect()
                    .await?;
                grpc = Some((
                    LogsServiceClient::new(ch.clone()),
                    TraceServiceClient::new(ch),
                ));
            }
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&(is_log, idx)) = order.get(n) else {
                    break;
                };
                loop {
                    if Instant::now() > deadline {
                        bail!("load did not finish in time");
                    }
                    let ok = match (&prepared, &mut grpc) {
                        (Prepared::Grpc { logs, spans }, Some((lc, tc))) => {
                            let r = if is_log {
                                lc.export(logs[idx].clone()).await.map(|_| ())
                            } else {
                                tc.export(spans[idx].clone()).await.map(|_| ())
                            };
                            match r {
                                Ok(()) => Some(true),
                                Err(s) if s.code() == tonic::Code::Unavailable => Some(false),
                                Err(_) => None,
                            }
                        }
                        (Prepared::Http { logs, spans }, _) => {
                            let (path, body) = if is_log {
                                ("/v1/logs", logs[idx].clone())
                            } else {
                                ("/v1/traces", spans[idx].clone())
                            };
                            match http
                                .post(format!("http://{hadr}{path}"))
                                .header("content-type", "application/x-protobuf")
                                .body(body)
                                .send()
                                .await
                            {
                                Ok(r) if r.status().is_success() => {
                                    let _ = r.bytes().await;
                                    Some(true)
                                }
                                Ok(r)
                                    if r.status().as_u16() == 503 || r.status().as_u16() == 429 =>
                                {
                                    let _ = r.bytes().await;
                                    Some(false)
                                }
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    match ok {
                        Some(true) => break,
                        Some(false) => {
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        None => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            if failures.load(Ordering::Relaxed) > 100 {
                                bail!("too many failed requests");
                            }
                        }
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(LoadResult {
        requests: order.len() as u64,
        retries: retries.load(Ordering::Relaxed),
        elapsed: t0.elapsed(),
    })
}

struct IngestRun {
    cpu_s: f64,
    kernel_s: f64,
    cpu_intake_s: f64,
    records: u64,
    requests: u64,
    retries: u64,
    drain_s: f64,
    rss_kib: u64,
}

#[allow(clippy::too_many_arguments)]
async fn ingest_once(
    c: &Common,
    kind: Kind,
    rotel: Option<&Path>,
    prepared: &Prepared,
    expect_logs: u64,
    expect_spans: u64,
    inflight: usize,
    grace: &str,
    timeout: Duration,
) -> Result<IngestRun> {
    let sink = Sink::start().await?;
    let server = match kind {
        Kind::Ccotel | Kind::CcotelNoRedaction | Kind::CcotelAsciiRedaction => {
            Server::start_ccotel(
                c,
                &CcotelOpts {
                    sink: Some(sink.addr),
                    signals: r#"["traces", "logs"]"#,
                    grace: grace.to_string(),
                    queue_bytes: None,
                    no_redaction: kind == Kind::CcotelNoRedaction,
                    ascii_redaction: kind == Kind::CcotelAsciiRedaction,
                },
            )?
        }
        Kind::Rotel => Server::start_rotel(c, rotel.expect("rotel path"), sink.addr)?,
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deadline = Instant::now() + timeout;
    let cpu0 = server.cpu();
    let kernel0 = server.kernel_cpu();
    let t0 = Instant::now();
    let load = send_all(&server, prepared, inflight, deadline).await;
    let load = match load {
        Ok(l) => l,
        Err(e) => {
            server.stop();
            return Err(e);
        }
    };
    let sent_at = Instant::now();
    // Drained: every forwarded record reached the sink.
    let want_spans = if kind == Kind::Rotel { expect_spans } else { 0 };
    while (sink.logs() < expect_logs || sink.spans() < want_spans) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drained = t0.elapsed();
    let cpu_intake = server.cpu() - cpu0;
    if sink.logs() < expect_logs {
        server.stop();
        bail!(
            "{}: only {} of {} log records reached the sink",
            kind.name(),
            sink.logs(),
            expect_logs
        );
    }
    if kind != Kind::Rotel {
        // Merged spans leave after the grace period: wait for it, then for
        // the server to go idle, so their cost is counted.
        let grace_d = humantime::parse_duration(grace).unwrap_or(Duration::from_secs(10));
        tokio::time::sleep_until((sent_at + grace_d + c.after_grace()).into()).await;
    }
    server
        .settle(c.idle_window(), Duration::from_secs(30))
        .await;
    let cpu = server.cpu() - cpu0;
    let kernel = server.kernel_cpu() - kernel0;
    let rss = server.rss().0;
    let _ = load.elapsed;
    server.stop();
    Ok(IngestRun {
        cpu_s: cpu,
        kernel_s: kernel,
        cpu_intake_s: cpu_intake,
        records: expect_logs + expect_spans,
        requests: load.requests,
        retries: load.retries,
        drain_s: drained.as_secs_f64(),
        rss_kib: rss,
    })
}

async fn ingest(a: IngestArgs) -> Result<()> {
    let c = &a.common;
    let rotel = rotel_bin(&a.rotel);
    let templates = load_templates(&c.fixtures, SCENARIOS)?;
    let mut table = Table::default();
    let mut kinds = vec![Kind::Ccotel];
    if rotel.is_some() {
        kinds.push(Kind::Rotel);
    }
    if a.ablation {
        kinds.push(Kind::CcotelNoRedaction);
        kinds.push(Kind::CcotelAsciiRedaction);
    }
    let timeout = Duration::from_secs(a.timeout_s);
    for transport in &a.transport {
        for &k in &a.per_request {
            let total = a.records.unwrap_or(match k {
                1 => 10_000,
                2..=10 => 30_000,
                _ => 60_000,
            });
            let (logs, spans, sessions) = ingest_requests(&templates, k, total, 3);
            let expect_logs: u64 = logs.iter().map(log_count).sum();
            let expect_spans: u64 = spans.iter().map(span_count).sum();
            let prepared = match transport.as_str() {
                "grpc" => Prepared::Grpc {
                    logs: Arc::new(logs),
                    spans: Arc::new(spans),
                },
                "http" => Prepared::Http {
                    logs: Arc::new(
                        logs.iter()
                            .map(|r| Bytes::from(r.encode_to_vec()))
                            .collect(),
                    ),
                    spans: Arc::new(
                        spans
                            .iter()
                            .map(|r| Bytes::from(r.encode_to_vec()))
                            .collect(),
                    ),
                },
                other => bail!("unknown transport {other:?} (grpc, http)"),
            };
            note(format!(
                "ingest {transport} {k}/request: {expect_logs} log records + {expect_spans} spans in {sessions} sessions"
            ));
            for rep in 0..c.reps {
                // Alternate which peer goes first.
                let mut order = kinds.clone();
                if rep % 2 == 1 {
                    order.reverse();
                }
                for kind in order {
                    let r = ingest_once(
                        c,
                        kind,
                        rotel.as_deref(),
                        &prepared,
                        expect_logs,
                        expect_spans,
                        a.inflight,
                        &a.grace,
                        timeout,
                    )
                    .await?;
                    let row = format!("{transport} {k}/req {}", kind.name());
                    table
                        .fig(&row, "CPU µs/record")
                        .push(r.cpu_s * 1e6 / r.records as f64);
                    table
                        .fig(&row, "CPU µs/request")
                        .push(r.cpu_s * 1e6 / r.requests as f64);
                    table
                        .fig(&row, "of it kernel µs/record")
                        .push(r.kernel_s * 1e6 / r.records as f64);
                    table
                        .fig(&row, "intake CPU µs/record")
                        .push(r.cpu_intake_s * 1e6 / r.records as f64);
                    table
                        .fig(&row, "records/s")
                        .push(r.records as f64 / r.drain_s);
                    table.fig(&row, "refused (retried)").push(r.retries as f64);
                    table
                        .fig(&row, "RSS MiB after")
                        .push(r.rss_kib as f64 / 1024.0);
                    note(format!(
                        "  {row}: {:.1} µs/record, {:.0} records/s, {} retried",
                        r.cpu_s * 1e6 / r.records as f64,
                        r.records as f64 / r.drain_s,
                        r.retries
                    ));
                }
            }
            if rotel.is_some() {
                let cc = format!("{transport} {k}/req ccotel");
                let ro = format!("{transport} {k}/req rotel");
                // Ratio per repetition (same run), then median over them.
                let pairs: Vec<f64> = {
                    let a = table
                        .get(&cc, "CPU µs/record")
                        .map(|f| f.values.clone())
                        .unwrap_or_default();
                    let b = table
                        .get(&ro, "CPU µs/record")
                        .map(|f| f.values.clone())
                        .unwrap_or_default();
                    a.iter().zip(&b).map(|(x, y)| x / y).collect()
                };
                for p in pairs {
                    table.fig(&cc, "ccotel/rotel CPU").push(p);
                }
            }
        }
    }
    table.print(
        &format!(
            "Ingest: fixture log records and spans through the server to a local OTLP/HTTP sink ({} in flight; ccotel merging, grace {})",
            a.inflight, a.grace
        ),
        &[
            ("CPU µs/record", 1),
            ("CPU µs/request", 1),
            ("of it kernel µs/record", 1),
            ("intake CPU µs/record", 1),
            ("ccotel/rotel CPU", 2),
            ("records/s", 0),
            ("refused (retried)", 0),
            ("RSS MiB after", 1),
        ],
    );
    table.write_json("ingest", c.json.as_deref())
}

// ---------------------------------------------------------------------------
// 3. gRPC tail latency at a fixed rate
// ---------------------------------------------------------------------------

async fn grpc_tail(a: GrpcTailArgs) -> Result<()> {
    let c = &a.common;
    let rotel = rotel_bin(&a.rotel);
    let templates = load_templates(&c.fixtures, SCENARIOS)?;
    let total = (a.rate * a.seconds) as usize;
    let (logs, _, _) = ingest_requests(&templates, a.per_request, total * a.per_request, 4);
    let logs = Arc::new(logs);
    let mut table = Table::default();
    let mut kinds = vec![Kind::Ccotel];
    if rotel.is_some() {
        kinds.push(Kind::Rotel);
    }
    for rep in 0..c.reps {
        for &kind in &kinds {
            let sink = Sink::start().await?;
            let server = match kind {
                Kind::Rotel => Server::start_rotel(c, rotel.as_deref().expect("rotel"), sink.addr)?,
                _ => Server::start_ccotel(
                    c,
                    &CcotelOpts {
                        sink: Some(sink.addr),
                        ..Default::default()
                    },
                )?,
            };
            let interval = Duration::from_secs_f64(a.streams as f64 / a.rate as f64);
            let per_stream = total / a.streams;
            let t0 = tokio::time::Instant::now() + Duration::from_millis(200);
            let (cpu0, wait0, wall0) = (server.cpu(), server.runq_wait_s(), Instant::now());
            let mut tasks = Vec::new();
            for st in 0..a.streams {
                let ch =
                    tonic::transport::Endpoint::from_shared(format!("http://{}", server.grpc))?
                        .tcp_nodelay(true)
                        .connect()
                        .await?;
                let mut client = LogsServiceClient::new(ch);
                let logs = logs.clone();
                let offset = interval.mul_f64(st as f64 / a.streams as f64);
                tasks.push(tokio::spawn(async move {
                    // Warm-up request, not measured.
                    let _ = client.export(logs[st].clone()).await;
                    let mut lat = Vec::with_capacity(per_stream);
                    let mut errors = 0u64;
                    let mut prev_done = tokio::time::Instant::now();
                    for i in 0..per_stream {
                        let at = t0 + offset + interval.mul_f64(i as f64);
                        tokio::time::sleep_until(at).await;
                        // A start delayed by the previous (slow) answer
                        // counts from the scheduled time, so stalls are not
                        // hidden (coordinated omission); a start delayed
                        // only by this client's timer (up to ~1 ms late)
                        // counts from the actual send.
                        let start = if prev_done > at {
                            at
                        } else {
                            tokio::time::Instant::now()
                        };
                        let req = logs[(st + i * 4 + rep) % logs.len()].clone();
                        let r = client.export(req).await;
                        prev_done = tokio::time::Instant::now();
                        let l = (prev_done - start).as_secs_f64() * 1e3;
                        match r {
                            Ok(_) => lat.push(l),
                            Err(_) => errors += 1,
                        }
                    }
                    (lat, errors)
                }));
            }
            let mut lat = Vec::new();
            let mut errors = 0;
            for t in tasks {
                let (l, e) = t.await?;
                lat.extend(l);
                errors += e;
            }
            let wall = wall0.elapsed().as_secs_f64();
            let (cpu, wait) = (server.cpu() - cpu0, server.runq_wait_s() - wait0);
            server.stop();
            let s = sorted(lat);
            let row = kind.name();
            table.fig(row, "server CPU %").push(cpu * 100.0 / wall);
            table
                .fig(row, "server run-queue wait ms/s")
                .push(wait * 1e3 / wall);
            table.fig(row, "p50 ms").push(pct(&s, 0.5));
            table.fig(row, "p90 ms").push(pct(&s, 0.9));
            table.fig(row, "p99 ms").push(pct(&s, 0.99));
            table.fig(row, "p99.9 ms").push(pct(&s, 0.999));
            table.fig(row, "max ms").push(pct(&s, 1.0));
            table.fig(row, "requests").push(s.len() as f64);
            table.fig(row, "errors").push(errors as f64);
        }
    }
    table.print(
        &format!(
            "gRPC logs export latency, open loop at {} req/s over {} streams, {} records/request, {} s per rep",
            a.rate, a.streams, a.per_request, a.seconds
        ),
        &[
            ("p50 ms", 2),
            ("p90 ms", 2),
            ("p99 ms", 2),
            ("p99.9 ms", 2),
            ("max ms", 2),
            ("requests", 0),
            ("errors", 0),
            ("server CPU %", 1),
            ("server run-queue wait ms/s", 1),
        ],
    );
    table.write_json("grpc-tail", c.json.as_deref())
}

// ---------------------------------------------------------------------------
// 4a. Idle RSS
// ---------------------------------------------------------------------------

async fn idle(a: IdleArgs) -> Result<()> {
    let c = &a.common;
    let rotel = rotel_bin(&a.rotel);
    let mut table = Table::default();
    for _ in 0..c.reps {
        let sink = Sink::start().await?;
        for with_exporter in [false, true] {
            let server = Server::start_ccotel(
                c,
                &CcotelOpts {
                    sink: with_exporter.then_some(sink.addr),
                    ..Default::default()
                },
            )?;
            tokio::time::sleep(Duration::from_secs(a.settle_s)).await;
            let (rss, _) = server.rss();
            let row = if with_exporter {
                "ccotel serve, one OTLP exporter"
            } else {
                "ccotel serve, no exporter"
            };
            table.fig(row, "RSS MiB").push(rss as f64 / 1024.0);
            server.stop();
        }
        if let Some(r) = &rotel {
            let server = Server::start_rotel(c, r, sink.addr)?;
            tokio::time::sleep(Duration::from_secs(a.settle_s)).await;
            table
                .fig("rotel-agent, OTLP exporter", "RSS MiB")
                .push(server.rss().0 as f64 / 1024.0);
            server.stop();
        }
    }
    table.print(
        &format!("Idle RSS ({} s after start)", a.settle_s),
        &[("RSS MiB", 1)],
    );
    table.write_json("idle", c.json.as_deref())
}

// ---------------------------------------------------------------------------
// 4b/6. Sessions: memory and growth
// ---------------------------------------------------------------------------

struct Replay {
    requests: u64,
    records: u64,
    retries: u64,
    elapsed: Duration,
}

/// Replays whole sessions (fixture streams, re-keyed) over HTTP, `workers`
/// sessions at a time, each session's requests in order. SessionEnd hooks
/// are held back and returned.
async fn replay_sessions(
    addr: SocketAddr,
    templates: Arc<Vec<Template>>,
    ids: std::ops::Range<u64>,
    run: u64,
    workers: usize,
    rate: Option<u64>,
    deadline: Instant,
) -> Result<(Replay, Vec<Wire>)> {
    let http = reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(workers)
        .build()?;
    let next = Arc::new(AtomicU64::new(ids.start));
    let end = ids.end;
    let counters = Arc::new((AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)));
    let held = Arc::new(Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let pace = rate.map(|r| Duration::from_secs_f64(workers as f64 / r as f64));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (http, next, counters, held, templates) = (
            http.clone(),
            next.clone(),
            counters.clone(),
            held.clone(),
            templates.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut tick = pace.map(|p| {
                let mut i = tokio::time::interval(p);
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                i
            });
            loop {
                let s = next.fetch_add(1, Ordering::Relaxed);
                if s >= end {
                    break;
                }
                let t = &templates[s as usize % templates.len()];
                let sid = session_id(run, s);
                for w in session_wire(t, &sid) {
                    if w.session_end {
                        held.lock().unwrap().push(w);
                        continue;
                    }
                    if let Some(i) = &mut tick {
                        i.tick().await;
                    }
                    post_wire(&http, addr, &w, &counters.2, deadline).await?;
                    counters.0.fetch_add(1, Ordering::Relaxed);
                    counters.1.fetch_add(w.records, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let held = std::mem::take(&mut *held.lock().unwrap());
    Ok((
        Replay {
            requests: counters.0.load(Ordering::Relaxed),
            records: counters.1.load(Ordering::Relaxed),
            retries: counters.2.load(Ordering::Relaxed),
            elapsed: t0.elapsed(),
        },
        held,
    ))
}

async fn post_wire(
    http: &reqwest::Client,
    addr: SocketAddr,
    w: &Wire,
    retries: &AtomicU64,
    deadline: Instant,
) -> Result<()> {
    let mut failures = 0;
    loop {
        if Instant::now() > deadline {
            bail!("replay did not finish in time");
        }
        let r = http
            .post(format!("http://{addr}{}", w.path))
            .header("content-type", w.content_type)
            .body(w.body.clone())
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
                return Ok(());
            }
            Ok(r) if matches!(r.status().as_u16(), 503 | 429) => {
                let _ = r.bytes().await;
                retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(r) => bail!("{} answered {}", w.path, r.status()),
            Err(e) => {
                failures += 1;
                if failures > 20 {
                    bail!("{}: {e}", w.path);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn send_held(
    addr: SocketAddr,
    held: Vec<Wire>,
    workers: usize,
    deadline: Instant,
) -> Result<()> {
    let http = reqwest::Client::builder().http1_only().build()?;
    let held = Arc::new(held);
    let next = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (http, held, next, retries) =
            (http.clone(), held.clone(), next.clone(), retries.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(w) = held.get(i) else { break };
                post_wire(&http, addr, w, &retries, deadline).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// How long the sessions benchmark lets the server idle before it reads
/// the RSS of quiet sessions.
const IDLE_READ: Duration = Duration::from_secs(3);

async fn sessions(a: SessionsArgs) -> Result<()> {
    let c = &a.common;
    let templates = Arc::new(load_templates(&c.fixtures, SCENARIOS)?);
    let grace = humantime::parse_duration(&a.grace)?;
    let mut table = Table::default();
    for &n in &a.counts {
        for rep in 0..c.reps {
            let sink = Sink::start().await?;
            let server = Server::start_ccotel(
                c,
                &CcotelOpts {
                    sink: Some(sink.addr),
                    grace: a.grace.clone(),
                    ..Default::default()
                },
            )?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let idle_rss = server.rss().0;
            let deadline = Instant::now() + Duration::from_secs(a.timeout_s);
            let cpu0 = server.cpu();
            let run = 100 + rep as u64;
            let replay = replay_sessions(
                server.http,
                templates.clone(),
                0..n as u64,
                run,
                a.workers.min(n),
                None,
                deadline,
            )
            .await;
            let (replay, held) = match replay {
                Ok(r) => r,
                Err(e) => {
                    server.stop();
                    return Err(e);
                }
            };
            let sent_at = Instant::now();
            tokio::time::sleep_until((sent_at + grace + c.after_grace()).into()).await;
            server.drained(true, Duration::from_secs(120)).await;
            server
                .settle(c.idle_window(), Duration::from_secs(120))
                .await;
            // Idle means idle for a while: ccotel hands back what a burst
            // freed once it has been quiet for 2 s.
            tokio::time::sleep(IDLE_READ).await;
            let cpu = server.cpu() - cpu0;
            let (active_rss, active_hwm) = server.rss();
            server.hold("sessions open and quiet", a.hold_s).await;
            // End every session, let the spans go out, then measure again.
            let ends = held.len() as u64;
            send_held(server.http, held, 8, deadline).await?;
            let ended_at = Instant::now();
            tokio::time::sleep_until((ended_at + grace + c.after_grace()).into()).await;
            server.drained(false, Duration::from_secs(300)).await;
            server
                .settle(c.idle_window(), Duration::from_secs(120))
                .await;
            tokio::time::sleep(IDLE_READ).await;
            let cpu_all = server.cpu() - cpu0;
            let (ended_rss, hwm) = server.rss();
            server.hold("sessions ended", a.hold_s).await;
            if a.second_wave {
                let (_, held) = replay_sessions(
                    server.http,
                    templates.clone(),
                    n as u64..2 * n as u64,
                    run,
                    a.workers.min(n),
                    None,
                    deadline,
                )
                .await?;
                send_held(server.http, held, 8, deadline).await?;
                let at = Instant::now();
                tokio::time::sleep_until((at + grace + c.after_grace()).into()).await;
                server.drained(false, Duration::from_secs(300)).await;
                server
                    .settle(c.idle_window(), Duration::from_secs(120))
                    .await;
                table
                    .fig(&format!("{n} sessions"), "RSS after a 2nd wave MiB")
                    .push(server.rss().0 as f64 / 1024.0);
            }
            let store = dir_size(&server.dir.join("store"));
            let spans = sink.spans();
            server.stop();
            let row = format!("{n} sessions");
            let mib = |k: u64| k as f64 / 1024.0;
            table.fig(&row, "idle RSS MiB").push(mib(idle_rss));
            table.fig(&row, "active RSS MiB").push(mib(active_rss));
            table
                .fig(&row, "KiB/active session")
                .push((active_rss as f64 - idle_rss as f64) / n as f64);
            table.fig(&row, "ended RSS MiB").push(mib(ended_rss));
            table
                .fig(&row, "KiB/ended session")
                .push((ended_rss as f64 - idle_rss as f64) / n as f64);
            table.fig(&row, "peak while open MiB").push(mib(active_hwm));
            table
                .fig(&row, "peak RSS MiB")
                .push(mib(hwm.max(active_hwm)));
            table
                .fig(&row, "CPU µs/record")
                .push(cpu * 1e6 / replay.records as f64);
            table
                .fig(&row, "CPU µs/request")
                .push(cpu * 1e6 / replay.requests as f64);
            table
                .fig(&row, "records/s offered")
                .push(replay.records as f64 / replay.elapsed.as_secs_f64());
            table
                .fig(&row, "replay s")
                .push(replay.elapsed.as_secs_f64());
            table
                .fig(&row, "refused (retried)")
                .push(replay.retries as f64);
            table.fig(&row, "store MiB").push(store as f64 / 1048576.0);
            table.fig(&row, "merged spans out").push(spans as f64);
            note(format!(
                "{row}: {} requests, {} records, {ends} SessionEnd; {:.1} µs CPU/record (all: {:.1}); RSS idle {:.1} active {:.1} ended {:.1} MiB",
                replay.requests,
                replay.records,
                cpu * 1e6 / replay.records as f64,
                cpu_all * 1e6 / replay.records as f64,
                mib(idle_rss),
                mib(active_rss),
                mib(ended_rss)
            ));
        }
    }
    table.print(
        &format!(
            "Sessions: fixture session mix replayed over HTTP ({} at a time), all kept open, then ended (grace {})",
            a.workers, a.grace
        ),
        &[
            ("idle RSS MiB", 1),
            ("active RSS MiB", 1),
            ("KiB/active session", 1),
            ("ended RSS MiB", 1),
            ("KiB/ended session", 2),
            ("RSS after a 2nd wave MiB", 1),
            ("peak while open MiB", 1),
            ("peak RSS MiB", 1),
            ("CPU µs/record", 1),
            ("CPU µs/request", 1),
            ("records/s offered", 0),
            ("replay s", 1),
            ("refused (retried)", 0),
            ("store MiB", 1),
            ("merged spans out", 0),
        ],
    );
    table.write_json("sessions", c.json.as_deref())
}

// ---------------------------------------------------------------------------
// 4c. Stalled exporter
// ---------------------------------------------------------------------------

async fn stalled(a: StalledArgs) -> Result<()> {
    let c = &a.common;
    let templates = Arc::new(load_templates(&c.fixtures, SCENARIOS)?);
    let mut table = Table::default();
    let bound = a.queue_mib * 1024 * 1024;
    for rep in 0..c.reps {
        let (sink, conns) = Sink::start_stalled().await?;
        let server = Server::start_ccotel(
            c,
            &CcotelOpts {
                sink: Some(sink),
                queue_bytes: Some(bound),
                ..Default::default()
            },
        )?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start_rss = server.rss().0;
        let deadline = Instant::now() + Duration::from_secs(a.seconds + 60);
        let stop = Arc::new(AtomicBool::new(false));
        // Sessions, paced, until the time is up.
        let load = {
            let templates = templates.clone();
            let addr = server.http;
            let rate = a.rate;
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut s = 0u64;
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (r, held) = replay_sessions(
                        addr,
                        templates.clone(),
                        s..s + 8,
                        200 + rep as u64,
                        4,
                        Some(rate),
                        deadline,
                    )
                    .await?;
                    send_held(addr, held, 2, deadline).await?;
                    sent += r.requests;
                    s += 8;
                }
                anyhow::Ok(sent)
            })
        };
        let mut samples: Vec<(f64, u64, u64, u64, u64)> = Vec::new();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(a.seconds) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let rss = server.rss().0;
            let queue_disk = dir_size(&server.dir.join("store").join("queues"));
            let h = server.health().unwrap_or_default();
            let ex = &h["exporters"]["sink"];
            samples.push((
                t0.elapsed().as_secs_f64(),
                rss,
                queue_disk,
                ex["queued"].as_u64().unwrap_or(0),
                ex["dropped_queue_full"].as_u64().unwrap_or(0),
            ));
        }
        stop.store(true, Ordering::Relaxed);
        let sent = load.await??;
        let h = server.health().unwrap_or_default();
        // Its exporter would wait out the shutdown flush on the dead backend.
        server.kill();
        let half = samples.len() / 2;
        let rss_second_half: Vec<f64> = samples[half..]
            .iter()
            .map(|s| s.1 as f64 / 1024.0)
            .collect();
        let r = sorted(rss_second_half.clone());
        let row = format!("stalled backend, queue bound {} MiB", a.queue_mib);
        table
            .fig(&row, "RSS start MiB")
            .push(start_rss as f64 / 1024.0);
        table.fig(&row, "RSS 2nd half min MiB").push(r[0]);
        table
            .fig(&row, "RSS 2nd half max MiB")
            .push(*r.last().unwrap_or(&0.0));
        table
            .fig(&row, "RSS end MiB")
            .push(samples.last().map(|s| s.1 as f64 / 1024.0).unwrap_or(0.0));
        table
            .fig(&row, "queue on disk max MiB")
            .push(samples.iter().map(|s| s.2).max().unwrap_or(0) as f64 / 1048576.0);
        table
            .fig(&row, "dropped records")
            .push(samples.last().map(|s| s.4).unwrap_or(0) as f64);
        table.fig(&row, "requests sent").push(sent as f64);
        table
            .fig(&row, "backend connections")
            .push(conns.load(Ordering::Relaxed) as f64);
        note(format!(
            "rep {rep}: t s, RSS KiB, queue disk bytes, queued items, dropped records"
        ));
        for s in samples.iter().step_by(5.max(samples.len() / 12)) {
            note(format!("  {:.0} {} {} {} {}", s.0, s.1, s.2, s.3, s.4));
        }
        note(format!("  final counters: {}", h["exporters"]["sink"]));
    }
    table.print(
        &format!(
            "Stalled exporter: the backend accepts and never answers; {} s of load at {} req/s",
            a.seconds, a.rate
        ),
        &[
            ("RSS start MiB", 1),
            ("RSS 2nd half min MiB", 1),
            ("RSS 2nd half max MiB", 1),
            ("RSS end MiB", 1),
            ("queue on disk max MiB", 1),
            ("dropped records", 0),
            ("requests sent", 0),
            ("backend connections", 0),
        ],
    );
    table.write_json("stalled", c.json.as_deref())
}

// ---------------------------------------------------------------------------
// 5. Freshness
// ---------------------------------------------------------------------------

async fn freshness(a: FreshnessArgs) -> Result<()> {
    let c = &a.common;
    let templates = Arc::new(load_templates(&c.fixtures, ONE_TURN)?);
    let grace = humantime::parse_duration(&a.grace)?;
    let mut table = Table::default();
    for rep in 0..c.reps {
        let sink = Sink::start().await?;
        sink.state.record.store(true, Ordering::Relaxed);
        let server = Server::start_ccotel(c, &CcotelOpts::traces_to(sink.addr, &a.grace))?;
        let http = reqwest::Client::builder().http1_only().build()?;
        let deadline = Instant::now() + Duration::from_secs(120) + grace * 3;
        let retries = AtomicU64::new(0);
        // (trace id, last event acknowledged, SessionEnd acknowledged)
        let mut sent: Vec<(Vec<u8>, Instant, Instant)> = Vec::new();
        let t0 = Instant::now();
        for s in 0..a.sessions {
            tokio::time::sleep_until((t0 + Duration::from_millis(a.stagger_ms * s as u64)).into())
                .await;
            let t = &templates[s % templates.len()];
            let sid = session_id(300 + rep as u64, s as u64);
            let wires = session_wire(t, &sid);
            let mut last = Instant::now();
            let mut end = None;
            for w in wires.iter().filter(|w| !w.session_end) {
                post_wire(&http, server.http, w, &retries, deadline).await?;
                last = Instant::now();
            }
            for w in wires.iter().filter(|w| w.session_end) {
                post_wire(&http, server.http, w, &retries, deadline).await?;
                end = Some(Instant::now());
            }
            sent.push((
                ccotel::merge::ids::trace_id(&sid).to_vec(),
                last,
                end.unwrap_or(last),
            ));
        }
        // Wait for every turn and root span, bounded.
        let wait_until = Instant::now() + grace + Duration::from_secs(10);
        loop {
            let seen = sink.state.spans_seen.lock().unwrap().clone();
            let done = sent.iter().all(|(tid, _, _)| {
                seen.iter()
                    .any(|(_, t, n)| t == tid && n == "claude_code.session")
            });
            if done || Instant::now() > wait_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.stop();
        let seen = sink.state.spans_seen.lock().unwrap().clone();
        let mut turn = Vec::new();
        let mut root = Vec::new();
        let mut missing = 0;
        for (tid, last, end) in &sent {
            let first = |name: &str| {
                seen.iter()
                    .filter(|(_, t, n)| t == tid && n == name)
                    .map(|(at, _, _)| *at)
                    .min()
            };
            match first("claude_code.interaction") {
                Some(at) => turn.push(at.saturating_duration_since(*last).as_secs_f64()),
                None => missing += 1,
            }
            if let Some(at) = first("claude_code.session") {
                root.push(at.saturating_duration_since(*end).as_secs_f64());
            }
        }
        let turn = sorted(turn);
        let root = sorted(root);
        let g = grace.as_secs_f64();
        table.fig("turn span", "p50 s").push(pct(&turn, 0.5));
        table.fig("turn span", "max s").push(pct(&turn, 1.0));
        table
            .fig("turn span", "p50 − grace s")
            .push(pct(&turn, 0.5) - g);
        table.fig("turn span", "missing").push(missing as f64);
        table
            .fig("session span (from SessionEnd)", "p50 s")
            .push(pct(&root, 0.5));
        table
            .fig("session span (from SessionEnd)", "max s")
            .push(pct(&root, 1.0));
        table
            .fig("session span (from SessionEnd)", "p50 − grace s")
            .push(pct(&root, 0.5) - g);
        table
            .fig("session span (from SessionEnd)", "missing")
            .push((sent.len() - root.len()) as f64);
    }
    table.print(
        &format!(
            "Freshness: last event of a turn (all sources) → its span at the exporter, grace {}, {} sessions per rep",
            a.grace, a.sessions
        ),
        &[("p50 s", 2), ("max s", 2), ("p50 − grace s", 2), ("missing", 0)],
    );
    table.write_json("freshness", c.json.as_deref())
}

// ---------------------------------------------------------------------------
// One long session
// ---------------------------------------------------------------------------

/// The hook bodies of a session built from the fixture's first turn: its
/// prompt, tool calls (cycled) and Stop, given fresh prompt and tool ids.
struct LongSessionHooks {
    start: Value,
    prompt: Value,
    calls: Vec<(Value, Value)>,
    stop: Value,
}

impl LongSessionHooks {
    fn load(fixtures: &Path, sid: &str) -> Result<LongSessionHooks> {
        let mut by_name: Vec<Value> = Vec::new();
        for line in read_lines(&fixtures.join("tools-basic").join("hooks.jsonl"))? {
            let mut v = line["input"].clone();
            v["session_id"] = Value::from(sid);
            by_name.push(v);
        }
        let first = |name: &str| {
            by_name
                .iter()
                .find(|v| v["hook_event_name"] == name)
                .cloned()
                .with_context(|| format!("no {name} hook in the tools-basic fixture"))
        };
        let mut calls = Vec::new();
        for pre in by_name
            .iter()
            .filter(|v| v["hook_event_name"] == "PreToolUse")
        {
            let post = by_name.iter().find(|v| {
                v["hook_event_name"] == "PostToolUse" && v["tool_use_id"] == pre["tool_use_id"]
            });
            if let Some(post) = post {
                calls.push((pre.clone(), post.clone()));
            }
        }
        if calls.is_empty() {
            bail!("no tool call in the tools-basic fixture");
        }
        Ok(LongSessionHooks {
            start: first("SessionStart")?,
            prompt: first("UserPromptSubmit")?,
            calls,
            stop: first("Stop")?,
        })
    }

    fn in_turn(v: &Value, turn: usize) -> Vec<u8> {
        let mut v = v.clone();
        v["prompt_id"] = Value::from(format!("prompt-{turn:06}"));
        serde_json::to_vec(&v).unwrap_or_default()
    }

    /// The PreToolUse and PostToolUse of call `i` of turn `turn`.
    fn call(&self, turn: usize, i: usize) -> (Vec<u8>, Vec<u8>) {
        let (pre, post) = &self.calls[i % self.calls.len()];
        let id = Value::from(format!("toolu_long_{turn:06}_{i:05}"));
        let (mut pre, mut post) = (pre.clone(), post.clone());
        pre["tool_use_id"] = id.clone();
        post["tool_use_id"] = id;
        (Self::in_turn(&pre, turn), Self::in_turn(&post, turn))
    }

    /// The hooks of a session of `calls` tool calls in complete turns of
    /// `per_turn` (a prompt, its calls, a Stop), from its SessionStart on;
    /// and how many turns that is.
    fn built(&self, calls: usize, per_turn: usize) -> Result<(Vec<Vec<u8>>, usize)> {
        let turns = calls.div_ceil(per_turn);
        let mut out = vec![serde_json::to_vec(&self.start)?];
        for turn in 0..turns {
            out.push(Self::in_turn(&self.prompt, turn));
            for i in 0..per_turn.min(calls - turn * per_turn) {
                let (pre, post) = self.call(turn, i);
                out.extend([pre, post]);
            }
            out.push(Self::in_turn(&self.stop, turn));
        }
        Ok((out, turns))
    }
}

fn post_hook(conn: &mut Conn, body: &[u8]) -> Result<Duration> {
    let t = Instant::now();
    let (status, reply) =
        conn.request("POST", "/v1/hooks", "application/json", body, &[], false)?;
    if !(200..300).contains(&status) {
        bail!(
            "hook answered {status}: {}",
            String::from_utf8_lossy(&reply)
        );
    }
    Ok(t.elapsed())
}

async fn long_session(a: LongSessionArgs) -> Result<()> {
    let c = &a.common;
    let grace = humantime::parse_duration(&a.grace)?;
    let per_turn = a.shape.per_turn.max(1);
    let mut table = Table::default();
    for rep in 0..c.reps {
        for &calls in &a.shape.calls {
            let sid = session_id(400 + rep as u64, calls as u64);
            let hooks = LongSessionHooks::load(&c.fixtures, &sid)?;
            let sink = Sink::start().await?;
            let server = Server::start_ccotel(c, &CcotelOpts::traces_to(sink.addr, &a.grace))?;
            let addr = server.http;
            let (built, turns) = hooks.built(calls, per_turn)?;
            let hooks = Arc::new(hooks);
            // Build the session: every turn complete, so that once the
            // grace is over all of it is exported and only its facts stay.
            tokio::task::spawn_blocking(move || -> Result<()> {
                let mut conn = Conn::new(addr);
                for body in &built {
                    post_hook(&mut conn, body)?;
                }
                Ok(())
            })
            .await??;
            // Every built call and turn exported (bounded wait).
            let want = (calls + turns) as u64;
            let until = Instant::now() + grace + Duration::from_secs(60);
            while sink.spans() < want && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if sink.spans() < want {
                note(format!(
                    "{calls} calls: only {} of {want} built spans exported before measuring",
                    sink.spans()
                ));
            }
            let built = sink.spans() as f64 / want.max(1) as f64;
            server
                .settle(c.idle_window(), Duration::from_secs(30))
                .await;
            if a.pause_s > 0 {
                tokio::time::sleep(Duration::from_secs(a.pause_s)).await;
            }
            let evicted = server
                .health()
                .and_then(|h| h["receive"]["sessions_evicted"].as_u64())
                .unwrap_or(0);
            // The measured turn: one call every pace, as a live session sends.
            let cpu0 = server.cpu();
            let (measured, pace) = (a.measured, Duration::from_millis(a.pace_ms));
            let h = hooks.clone();
            let lat = tokio::task::spawn_blocking(move || -> Result<Vec<f64>> {
                let mut conn = Conn::new(addr);
                let mut lat = Vec::with_capacity(measured * 2 + 1);
                lat.push(post_hook(
                    &mut conn,
                    &LongSessionHooks::in_turn(&h.prompt, turns),
                )?);
                let t0 = Instant::now();
                for i in 0..measured {
                    let (pre, post) = h.call(turns, i);
                    lat.push(post_hook(&mut conn, &pre)?);
                    lat.push(post_hook(&mut conn, &post)?);
                    let next = t0 + pace * (i as u32 + 1);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                Ok(lat.iter().map(|d| d.as_secs_f64() * 1e6).collect())
            })
            .await??;
            let cpu = server.cpu() - cpu0;
            let (rss, _) = server.rss();
            // Once the measured calls are exported too and the server had
            // time to hand freed memory back: what a long session holds.
            tokio::time::sleep(grace + Duration::from_secs(a.settle_rss_s)).await;
            let (settled, _) = server.rss();
            server.stop();
            let lat = sorted(lat);
            let row = format!("{calls} calls in the session");
            table
                .fig(&row, "server CPU µs/call")
                .push(cpu * 1e6 / measured.max(1) as f64);
            table.fig(&row, "hook p50 µs").push(pct(&lat, 0.50));
            table.fig(&row, "hook p99 µs").push(pct(&lat, 0.99));
            table.fig(&row, "hook max µs").push(pct(&lat, 1.0));
            table.fig(&row, "RSS MiB").push(rss as f64 / 1024.0);
            table
                .fig(&row, "RSS settled MiB")
                .push(settled as f64 / 1024.0);
            table
                .fig(&row, "built calls exported %")
                .push(built * 100.0);
            table
                .fig(&row, "evicted before the turn")
                .push(evicted as f64);
        }
    }
    table.print(
        &format!(
            "One long session: {} measured tool calls (PreToolUse + PostToolUse), one every {} ms, \
             after the session's earlier calls ({} per turn) were exported and {} s of quiet; grace {}",
            a.measured, a.pace_ms, per_turn, a.pause_s, a.grace
        ),
        &[
            ("server CPU µs/call", 0),
            ("hook p50 µs", 0),
            ("hook p99 µs", 0),
            ("hook max µs", 0),
            ("RSS MiB", 1),
            ("RSS settled MiB", 1),
            ("built calls exported %", 0),
            ("evicted before the turn", 0),
        ],
    );
    table.write_json("long-session", c.json.as_deref())
}

/// Applies one hook body to a session, as the merge does.
fn apply_hook(session: &mut ccotel::merge::session::Session, body: &[u8], at: u64) -> Result<()> {
    ccotel::merge::route::apply(session, &hook_event(body, at)?);
    Ok(())
}

/// One hook body as the merge receives it.
fn hook_event(body: &[u8], at: u64) -> Result<ccotel::model::Event> {
    Ok(ccotel::model::Event {
        received_at: at,
        transport: ccotel::model::Transport::HookHttp,
        payload: ccotel::model::Payload::Hook(ccotel::model::HookEvent::parse(body)?),
        wire: None,
    })
}

fn rebuild_bench(a: RebuildArgs) -> Result<()> {
    use ccotel::merge::Engine;
    const MS: u64 = 1_000_000;
    let per_turn = a.shape.per_turn.max(1);
    let cfg = ccotel::config::MergeConfig {
        grace_period: Duration::from_secs(1),
        evict_after: Duration::from_secs(1),
        read_transcripts: false,
        ..Default::default()
    };
    let mut table = Table::default();
    for rep in 0..a.common.reps {
        for &calls in &a.shape.calls {
            let sid = session_id(600 + rep as u64, calls as u64);
            let hooks = LongSessionHooks::load(&a.common.fixtures, &sid)?;
            let base = a.common.workdir.clone().unwrap_or_else(std::env::temp_dir);
            let dir = base.join(format!(
                "ccotel-bench-rebuild-{}-{rep}-{calls}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir)?;
            let mut engine = Engine::new(cfg.clone(), Some(ccotel::store::Store::open(&dir)?));
            let mut at = 1_700_000_000_000_000_000u64;
            let (built, _) = hooks.built(calls, per_turn)?;
            let events = built
                .iter()
                .map(|b| {
                    at += MS;
                    hook_event(b, at)
                })
                .collect::<Result<Vec<_>>>()?;
            for chunk in events.chunks(256) {
                engine.ingest(chunk);
            }
            // Exported and recorded, then quiet: the session leaves memory;
            // a late copy of an exported call's result brings it back, and
            // leaves nothing new to export, so it leaves again.
            let (_, late) = hooks.call(0, 0);
            let mut times = Vec::with_capacity(a.iterations);
            for i in 0..=a.iterations {
                for _ in 0..4 {
                    at += 2_000 * MS;
                    let due = engine.tick(at, false);
                    engine.record(&due);
                    if engine.counts() == (0, 1) {
                        break;
                    }
                }
                if engine.counts() != (0, 1) {
                    bail!("the session did not leave memory: {:?}", engine.counts());
                }
                at += MS;
                let event = hook_event(&late, at)?;
                let start = Instant::now();
                engine.ingest(std::slice::from_ref(&event));
                let took = start.elapsed().as_secs_f64() * 1e3;
                // The first rebuild reads a cold store.
                if i > 0 {
                    times.push(took);
                }
            }
            drop(engine);
            let _ = std::fs::remove_dir_all(&dir);
            let ms = pct(&sorted(times), 0.5);
            let row = format!("{calls} exported calls");
            table.fig(&row, "rebuild ms").push(ms);
            table
                .fig(&row, "µs per stored event")
                .push(ms * 1e3 / events.len().max(1) as f64);
            table.fig(&row, "stored events").push(events.len() as f64);
        }
    }
    table.print(
        &format!(
            "Rebuild of one session in process: its stored events read back and applied when it \
             comes back after leaving memory; turns of {per_turn} calls; median of {} rebuilds",
            a.iterations
        ),
        &[
            ("rebuild ms", 1),
            ("µs per stored event", 2),
            ("stored events", 0),
        ],
    );
    table.write_json("rebuild", a.common.json.as_deref())
}

fn render_bench(a: RenderArgs) -> Result<()> {
    use ccotel::merge::render::{render, render_pending, RenderOptions};
    use ccotel::model::span::SpanKind;
    let per_turn = a.per_turn.max(1);
    let opts = RenderOptions {
        idle_closed_at: None,
        max_content: 64 * 1024,
    };
    let mut table = Table::default();
    for rep in 0..a.common.reps {
        for &calls in &a.calls {
            let sid = session_id(500 + rep as u64, calls as u64);
            let hooks = LongSessionHooks::load(&a.common.fixtures, &sid)?;
            let mut session = ccotel::merge::session::Session::new(&sid);
            let mut at = 1_700_000_000_000_000_000u64;
            let mut next = || {
                at += 1_000_000;
                at
            };
            // The built turns, then a last turn whose calls are pending.
            let (built, turns) = hooks.built(calls, per_turn)?;
            for body in &built {
                apply_hook(&mut session, body, next())?;
            }
            apply_hook(
                &mut session,
                &LongSessionHooks::in_turn(&hooks.prompt, turns),
                next(),
            )?;
            for i in 0..per_turn {
                let (pre, post) = hooks.call(turns, i);
                apply_hook(&mut session, &pre, next())?;
                apply_hook(&mut session, &post, next())?;
            }
            // Exported: every span but the root, the last turn and its calls.
            let last = format!("prompt-{turns:06}");
            let full = render(&session, &opts);
            let exported: std::collections::HashSet<[u8; 8]> = full
                .spans
                .iter()
                .filter(|r| r.span.kind != SpanKind::Session)
                .filter(|r| {
                    !matches!(r.span.attributes.get("prompt.id"),
                        Some(ccotel::model::span::Attr::Str(p)) if *p == last)
                })
                .map(|r| r.span.span_id)
                .collect();
            session.release_exported(&exported);
            let time = |f: &dyn Fn() -> usize| -> (f64, usize) {
                let mut t = Vec::with_capacity(a.iterations);
                let mut n = 0;
                for _ in 0..a.iterations.max(1) {
                    let start = Instant::now();
                    n = std::hint::black_box(f());
                    t.push(start.elapsed().as_secs_f64() * 1e6);
                }
                (pct(&sorted(t), 0.5), n)
            };
            let (pending_us, pending_spans) =
                time(&|| render_pending(&session, &opts, &exported).spans.len());
            let (full_us, _) = time(&|| render(&session, &opts).spans.len());
            let row = format!("{calls} exported calls");
            table.fig(&row, "tick render µs").push(pending_us);
            table
                .fig(&row, "µs per exported call")
                .push(pending_us / calls.max(1) as f64);
            table.fig(&row, "spans rendered").push(pending_spans as f64);
            table.fig(&row, "whole tree µs").push(full_us);
        }
    }
    table.print(
        &format!(
            "Render of one session in process: a tick's render (exported calls left out) \
             and the whole tree; turns of {per_turn} calls, the last turn's {per_turn} calls pending; \
             median of {} renders",
            a.iterations
        ),
        &[
            ("tick render µs", 0),
            ("µs per exported call", 2),
            ("spans rendered", 0),
            ("whole tree µs", 0),
        ],
    );
    table.write_json("render", a.common.json.as_deref())
}
