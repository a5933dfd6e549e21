//! One end-to-end run: the fake API, a fake OTLP backend, ccotel in-process,
//! the real Claude Code CLI; then what everyone saw.

use crate::backend::{Backend, Mode, Received};
use crate::check::{self, Expected};
use crate::claude::{self, Dirs, Hooks, Intervals, Otlp, Process};
use crate::fake_api::{FakeApi, Served};
use crate::scenario::{Input, Scenario};
use ccotel::config::Config;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// ccotel's wire protocol towards the fake backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

/// One cell of the matrix.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub scenario: fn(&Path) -> Scenario,
    pub hooks: Hooks,
    pub otlp: Otlp,
    pub intervals: Intervals,
    pub export: Export,
}

/// Everything a run produced.
pub struct Outcome {
    pub label: String,
    pub case: Case,
    pub scenario: Scenario,
    pub dirs: Dirs,
    pub processes: Vec<Process>,
    pub served: Vec<Served>,
    pub received: Received,
    pub elapsed: Duration,
    /// Removed on drop, after the checks read the transcripts.
    _scratch: Option<tempfile::TempDir>,
}

/// The merge grace period; short, so that tests see spans exported the
/// normal way (complete + grace) and not only by the shutdown flush, yet four
/// of Claude Code's fast export intervals (0.5 s), so that its native data
/// (attempts, query source) is merged before a span goes out, as the default
/// 10 s grace does for its default 5 s intervals.
const GRACE: &str = "2s";
/// Without hooks no `SessionEnd` closes the session: the idle timeout does.
const IDLE_WITHOUT_HOOKS: &str = "5s";
/// How long to wait, after Claude Code is done, for the trace to be complete
/// at the backend.
const SETTLE: Duration = Duration::from_secs(25);

/// Runs the case and checks everything; panics with every problem found.
pub async fn run_and_check(name: &str, case: Case) {
    let Some(bin) = claude::binary() else {
        return;
    };
    let outcome = run(name, case, &bin).await;
    check::all(&outcome);
}

async fn run(name: &str, case: Case, bin: &Path) -> Outcome {
    let started = Instant::now();
    let keep = std::env::var_os("CCOTEL_E2E_KEEP").is_some();
    let scratch = tempfile::Builder::new()
        .prefix(&format!("ccotel-e2e-{name}-"))
        .tempdir()
        .unwrap();
    let dirs = Dirs::create(scratch.path());
    dirs.make_repo();
    let scenario = (case.scenario)(&dirs.work);

    let api = FakeApi::start(scenario.script.clone()).await;
    let backend = match case.export {
        Export::Grpc => Backend::grpc().await,
        _ => Backend::http(Mode::Ok).await,
    };
    let protocol = match case.export {
        Export::Grpc => "grpc",
        Export::HttpProtobuf => "http/protobuf",
        Export::HttpJson => "http/json",
    };
    let idle = if case.hooks == Hooks::None {
        format!("idle_timeout = \"{IDLE_WITHOUT_HOOKS}\"")
    } else {
        String::new()
    };
    // Through the TOML, as a user writes it.
    let toml = format!(
        r#"
[merge]
grace_period = "{GRACE}"
{idle}

[[exporters]]
name = "backend"
type = "otlp"
endpoint = "{endpoint}"
protocol = "{protocol}"
signals = ["traces", "metrics", "logs"]
"#,
        endpoint = backend.endpoint()
    );
    let mut config = Config::parse(&toml, Path::new("e2e.toml")).expect("e2e config");
    config.store.path = dirs.store.clone();

    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (http_addr, grpc_addr) = (
        http.local_addr().unwrap().to_string(),
        grpc.local_addr().unwrap().to_string(),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let app = tokio::spawn(ccotel::app::run(config, http, grpc, async move {
        let _ = stopped.await;
    }));

    dirs.write_settings(&scenario, case.hooks, &http_addr);
    let env = claude::environment(
        &dirs,
        &api.base_url(),
        case.otlp,
        case.intervals,
        &http_addr,
        &grpc_addr,
    );
    let processes = claude::run_scenario(bin, &scenario, &dirs, &env, || async {
        // Let the first run's session close and its root go out, so the
        // resumed run has to continue an exported trace.
        settle(&backend, None).await;
    })
    .await;

    let served = api.log();
    if processes.iter().all(|p| p.exit_code == Some(0)) {
        let expected = Expected::from_served(&scenario, &served);
        settle(&backend, Some(&expected)).await;
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), app)
        .await
        .expect("ccotel did not stop within 30 s")
        .expect("ccotel panicked")
        .expect("ccotel returned an error");

    let label = format!(
        "{name} [scenario {}, {} input, hooks {:?}, OTLP {:?}, intervals {:?}, export {:?}]",
        scenario.name,
        match scenario.input {
            Input::Single => "single",
            Input::StreamJson => "stream-json",
            Input::Resume => "resume",
        },
        case.hooks,
        case.otlp,
        case.intervals,
        case.export
    );
    let scratch = if keep {
        eprintln!("{label}: scratch kept in {}", scratch.keep().display());
        None
    } else {
        Some(scratch)
    };
    Outcome {
        label,
        case,
        scenario,
        dirs,
        processes,
        served,
        received: backend.received(),
        elapsed: started.elapsed(),
        _scratch: scratch,
    }
}

/// Waits until the backend has the session root and, when given, every model
/// call, tool call and turn expected, or until [`SETTLE`] passes.
async fn settle(backend: &Backend, expected: Option<&Expected>) {
    let until = Instant::now() + SETTLE;
    loop {
        let spans = check::spans(&backend.received().traces);
        let root = spans.iter().any(|s| s.name == "claude_code.session");
        if root && expected.is_none_or(|e| e.satisfied_by(&spans)) {
            return;
        }
        if Instant::now() > until {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
