//! The receiving side over real sockets: every capture of the real Claude Code
//! CLI replayed over gRPC, OTLP/HTTP protobuf, JSON and gzip, and hooks over
//! HTTP; bad input refused with the documented status; fan-out that a hung
//! backend cannot stall; shutdown that flushes.

use crate::support::backend::{Backend, Mode};
use crate::support::fixtures::{self, OtlpCapture};
use crate::support::{eventually, exporter, spawn_app, App};
use ccotel::config::{Config, Protocol};
use opentelemetry_proto::tonic::collector::{
    logs::v1::{logs_service_client::LogsServiceClient, ExportLogsServiceRequest},
    metrics::v1::{metrics_service_client::MetricsServiceClient, ExportMetricsServiceRequest},
    trace::v1::{trace_service_client::TraceServiceClient, ExportTraceServiceRequest},
};
use prost::Message;
use std::io::Write;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
enum Wire {
    Grpc,
    HttpProtobuf,
    HttpJson,
    HttpJsonGzip,
}

/// What a capture decodes to.
#[derive(Default)]
struct Sent {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    logs: Vec<ExportLogsServiceRequest>,
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(c: &OtlpCapture) -> T {
    if c.content_type.contains("json") {
        serde_json::from_slice(&c.body).unwrap()
    } else {
        T::decode(&c.body[..]).unwrap()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

async fn post(
    app: &App,
    path: &str,
    content_type: &str,
    gz: bool,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(path))
        .header("content-type", content_type);
    let body = if gz {
        req = req.header("content-encoding", "gzip");
        gzip(&body)
    } else {
        body
    };
    req.body(body).send().await.unwrap()
}

/// Sends one capture over `wire`, as Claude Code would have with that protocol.
async fn send(app: &App, c: &OtlpCapture, wire: Wire, sent: &mut Sent) {
    macro_rules! one {
        ($ty:ty, $client:ident, $field:ident) => {{
            let req: $ty = decode(c);
            sent.$field.push(req.clone());
            match wire {
                Wire::Grpc => {
                    let mut client = $client::connect(format!("http://{}", app.grpc))
                        .await
                        .unwrap();
                    client.export(req).await.expect("gRPC export refused");
                }
                Wire::HttpProtobuf => {
                    let r = post(
                        app,
                        &c.path,
                        "application/x-protobuf",
                        false,
                        req.encode_to_vec(),
                    )
                    .await;
                    assert_eq!(r.status(), 200);
                    let answer = r.bytes().await.unwrap();
                    assert!(answer.is_empty() || !answer.is_empty());
                }
                Wire::HttpJson | Wire::HttpJsonGzip => {
                    // Claude Code's own JSON bytes when we have them.
                    let body = if c.content_type.contains("json") {
                        c.body.clone()
                    } else {
                        serde_json::to_vec(&req).unwrap()
                    };
                    let r = post(
                        app,
                        &c.path,
                        "application/json",
                        matches!(wire, Wire::HttpJsonGzip),
                        body,
                    )
                    .await;
                    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                }
            }
        }};
    }
    match c.path.as_str() {
        "/v1/traces" => one!(ExportTraceServiceRequest, TraceServiceClient, traces),
        "/v1/metrics" => one!(ExportMetricsServiceRequest, MetricsServiceClient, metrics),
        _ => one!(ExportLogsServiceRequest, LogsServiceClient, logs),
    }
}

/// Resource-level blocks, encoded and sorted: batching may join requests, but
/// each resource block with its scopes and records must arrive intact.
fn blocks<T: Message + serde::Serialize>(items: impl IntoIterator<Item = T>) -> Vec<String> {
    let mut v: Vec<String> = items
        .into_iter()
        .map(|m| serde_json::to_string_pretty(&m).unwrap())
        .collect();
    v.sort();
    v
}

/// Asserts equality, printing only the first differing line on failure.
fn same(a: Vec<String>, b: Vec<String>, what: &str) {
    if a == b {
        return;
    }
    assert_eq!(a.len(), b.len(), "{what}: block count differs");
    for (x, y) in a.iter().zip(&b) {
        for (i, (lx, ly)) in x.lines().zip(y.lines()).enumerate() {
            assert_eq!(lx, ly, "{what}: first difference at line {i}");
        }
    }
    panic!("{what}: blocks differ in length");
}

async fn replay_scenario(scenario: &str, wire: Wire, backend_protocol: Protocol) {
    let backend = match backend_protocol {
        Protocol::Grpc => Backend::grpc().await,
        _ => Backend::http(Mode::Ok).await,
    };
    let mut config = Config::default();
    config.exporters.push(exporter(
        "sink",
        backend.endpoint(),
        backend_protocol,
        "metrics,logs,native_traces",
    ));
    let app = spawn_app(config).await;
    let mut sent = Sent::default();
    let captures = fixtures::otlp(scenario);
    assert!(!captures.is_empty());
    for c in &captures {
        send(&app, c, wire, &mut sent).await;
    }
    app.shutdown().await;

    let got = backend.received();
    let what = format!("{scenario} over {wire:?} to {backend_protocol:?}");
    same(
        blocks(sent.logs.iter().flat_map(|r| r.resource_logs.clone())),
        blocks(got.logs.iter().flat_map(|r| r.resource_logs.clone())),
        &format!("logs: {what}"),
    );
    same(
        blocks(sent.metrics.iter().flat_map(|r| r.resource_metrics.clone())),
        blocks(got.metrics.iter().flat_map(|r| r.resource_metrics.clone())),
        &format!("metrics: {what}"),
    );
    same(
        blocks(sent.traces.iter().flat_map(|r| r.resource_spans.clone())),
        blocks(got.traces.iter().flat_map(|r| r.resource_spans.clone())),
        &format!("native spans: {what}"),
    );
    let records: usize = got
        .logs
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    assert!(records > 0, "{what}: no log records forwarded");
}

#[tokio::test]
async fn every_capture_arrives_intact_over_every_wire() {
    let wires = [
        Wire::HttpJson,
        Wire::HttpProtobuf,
        Wire::Grpc,
        Wire::HttpJsonGzip,
    ];
    let protocols = [Protocol::HttpProtobuf, Protocol::HttpJson, Protocol::Grpc];
    for (i, scenario) in fixtures::SCENARIOS.iter().enumerate() {
        for (j, wire) in wires.iter().enumerate() {
            replay_scenario(scenario, *wire, protocols[(i + j) % protocols.len()]).await;
        }
    }
}

#[tokio::test]
async fn every_hook_of_every_scenario_is_accepted_with_an_empty_object() {
    let app = spawn_app(Config::default()).await;
    let mut total = 0;
    for scenario in fixtures::SCENARIOS {
        let mut bodies: Vec<Vec<u8>> = fixtures::hooks(scenario)
            .into_iter()
            .map(|h| h.body)
            .collect();
        bodies.extend(fixtures::http_hook_bodies(scenario));
        for body in bodies {
            let r = post(&app, "/v1/hooks", "application/json", false, body).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.text().await.unwrap(), "{}");
            total += 1;
        }
    }
    assert!(total > 100);
    assert_eq!(app.health().await["receive"]["hook_events"], total);
    app.shutdown().await;
}

/// (what, path, content type, gzip, body, expected status, words in the message)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    Vec<u8>,
    u16,
    &'static str,
);

fn bad_cases() -> Vec<Case> {
    let good = fixtures::otlp("protobuf")
        .into_iter()
        .find(|c| c.path == "/v1/logs")
        .unwrap()
        .body;
    let truncated = good[..good.len() / 2].to_vec();
    // Sent with gzip: 64 MiB of spaces that compress to about 64 KiB.
    let bomb = vec![b' '; 64 * 1024 * 1024];
    vec![
        (
            "truncated protobuf",
            "/v1/logs",
            "application/x-protobuf",
            false,
            truncated,
            400,
            "protobuf",
        ),
        (
            "invalid JSON",
            "/v1/traces",
            "application/json",
            false,
            b"{\"resourceSpans\": [".to_vec(),
            400,
            "OTLP/JSON",
        ),
        (
            "wrong content type",
            "/v1/metrics",
            "text/plain",
            false,
            b"hello".to_vec(),
            415,
            "content type",
        ),
        (
            "oversized body",
            "/v1/logs",
            "application/json",
            false,
            vec![b' '; 9 * 1024 * 1024],
            413,
            "limit",
        ),
        (
            "gzip bomb",
            "/v1/logs",
            "application/json",
            true,
            bomb,
            413,
            "limit",
        ),
        (
            "hook not JSON",
            "/v1/hooks",
            "application/json",
            false,
            b"PreToolUse please".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "hook without session_id",
            "/v1/hooks",
            "application/json",
            false,
            br#"{"hook_event_name":"Stop"}"#.to_vec(),
            400,
            "session_id",
        ),
        (
            "unknown hook event",
            "/v1/hooks",
            "application/json",
            false,
            br#"{"session_id":"s1","hook_event_name":"TeaTime"}"#.to_vec(),
            400,
            "TeaTime",
        ),
    ]
}

#[tokio::test]
async fn bad_input_gets_its_status_and_message_while_good_requests_flow() {
    let backend = Backend::http(Mode::Ok).await;
    let mut config = Config::default();
    config.exporters.push(exporter(
        "sink",
        backend.endpoint(),
        Protocol::HttpProtobuf,
        "logs",
    ));
    let app = spawn_app(config).await;
    let good = fixtures::otlp("tools-basic")
        .into_iter()
        .find(|c| c.path == "/v1/logs")
        .unwrap();

    // Good traffic in parallel with every bad case, twice over.
    let mut good_tasks = Vec::new();
    for _ in 0..20 {
        let client = app.client.clone();
        let url = app.url("/v1/logs");
        let body = good.body.clone();
        good_tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }));
    }
    for _ in 0..2 {
        for (what, path, ct, gz, body, status, words) in bad_cases() {
            let r = post(&app, path, ct, gz, body).await;
            assert_eq!(r.status().as_u16(), status, "{what}");
            let text = r.text().await.unwrap();
            assert!(
                text.contains(words),
                "{what}: message {text:?} lacks {words:?}"
            );
        }
    }
    for t in good_tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let health = app.health().await;
    assert_eq!(health["receive"]["log_requests"], 20);
    assert_eq!(health["receive"]["bad_requests"], 16);
    app.shutdown().await;
    let records: usize = backend
        .received()
        .logs
        .iter()
        .map(|r| r.resource_logs.len())
        .sum();
    assert_eq!(records, 20, "every good request reached the backend");
}

#[tokio::test]
async fn protobuf_errors_are_google_rpc_status_and_partial_success_counts_bad_spans() {
    let app = spawn_app(Config::default()).await;
    let r = post(
        &app,
        "/v1/logs",
        "application/x-protobuf",
        false,
        vec![0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!(r.status(), 400);
    let status = tonic_types::Status::decode(r.bytes().await.unwrap()).unwrap();
    assert_eq!(status.code, tonic::Code::InvalidArgument as i32);
    assert!(status.message.contains("protobuf"));

    // One span with a short trace id among good ones.
    let capture = fixtures::otlp("tools-basic")
        .into_iter()
        .find(|c| c.path == "/v1/traces")
        .unwrap();
    let mut req: ExportTraceServiceRequest = decode(&capture);
    let spans = &mut req.resource_spans[0].scope_spans[0].spans;
    let total = spans.len();
    spans[0].trace_id = vec![1, 2, 3];
    let r = post(
        &app,
        "/v1/traces",
        "application/json",
        false,
        serde_json::to_vec(&req).unwrap(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], 1, "{answer}");
    assert_eq!(
        app.health().await["receive"]["native_spans"],
        (total - 1) as u64
    );
    app.shutdown().await;
}

#[tokio::test]
async fn grpc_refuses_oversized_and_accepts_gzip() {
    let logs: Vec<ExportLogsServiceRequest> = fixtures::otlp("tools-basic")
        .iter()
        .filter(|c| c.path == "/v1/logs")
        .map(decode)
        .collect();
    let largest = logs.iter().map(|r| r.encoded_len()).max().unwrap();
    let smallest = logs.iter().map(|r| r.encoded_len()).min().unwrap();
    assert!(smallest < largest / 2);
    let mut config = Config::default();
    config.server.max_body_bytes = largest - 1;
    let app = spawn_app(config).await;
    let req = logs
        .iter()
        .find(|r| r.encoded_len() == largest)
        .unwrap()
        .clone();
    let mut client = LogsServiceClient::connect(format!("http://{}", app.grpc))
        .await
        .unwrap();
    let err = client.export(req.clone()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    let mut client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let small = logs
        .iter()
        .find(|r| r.encoded_len() == smallest)
        .unwrap()
        .clone();
    client.export(small).await.unwrap();
    app.shutdown().await;
}

#[tokio::test]
async fn a_hung_backend_does_not_delay_another() {
    let hung = Backend::http(Mode::Hang).await;
    let healthy = Backend::http(Mode::Ok).await;
    let mut config = Config::default();
    config.exporters.push(exporter(
        "hung",
        hung.endpoint(),
        Protocol::HttpProtobuf,
        "logs,metrics",
    ));
    config.exporters.push(exporter(
        "healthy",
        healthy.endpoint(),
        Protocol::HttpJson,
        "logs,metrics",
    ));
    let app = spawn_app(config).await;
    let captures: Vec<_> = fixtures::otlp("subagent")
        .into_iter()
        .filter(|c| c.path != "/v1/traces")
        .collect();
    let started = Instant::now();
    for c in &captures {
        let r = post(&app, &c.path, "application/json", false, c.body.clone()).await;
        assert_eq!(r.status(), 200);
    }
    let n = captures.len();
    assert!(
        eventually(Duration::from_secs(5), || {
            let got = healthy.received();
            got.logs
                .iter()
                .map(|r| r.resource_logs.len())
                .sum::<usize>()
                + got
                    .metrics
                    .iter()
                    .map(|r| r.resource_metrics.len())
                    .sum::<usize>()
                == n
        })
        .await,
        "the healthy backend got everything while the other hangs"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(hung.received().requests, 0);
    // Dropping the app without waiting: the hung exporter would hold shutdown
    // up to its flush timeout.
    drop(app);
}

/// The HTTP and gRPC receivers on `ingest`, with a 1 MiB body limit; their
/// addresses.
async fn receivers(
    ingest: ccotel::receive::Ingest,
    registry: &std::sync::Arc<ccotel::telemetry::Registry>,
) -> (std::net::SocketAddr, std::net::SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = ccotel::receive::http::HttpState {
        ingest: ingest.clone(),
        max_body: 1 << 20,
        registry: registry.clone(),
        auth: Default::default(),
    };
    tokio::spawn(ccotel::receive::http::serve(
        listener,
        state,
        std::future::pending(),
    ));
    let glistener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gaddr = glistener.local_addr().unwrap();
    tokio::spawn(ccotel::receive::grpc::serve(
        glistener,
        ingest,
        1 << 20,
        tonic::service::Routes::default(),
        Default::default(),
        std::future::pending(),
    ));
    (addr, gaddr)
}

#[tokio::test]
async fn a_full_queue_answers_503_and_unavailable() {
    use ccotel::receive::Ingest;
    use ccotel::telemetry::Registry;
    use std::sync::Arc;
    let registry = Arc::new(Registry::default());
    // A queue of one event that nobody drains.
    let (ingest, _rx) = Ingest::channel(1, 1 << 20, registry.stats.clone());
    let (addr, gaddr) = receivers(ingest, &registry).await;
    let client = reqwest::Client::new();
    let hook = br#"{"session_id":"s","hook_event_name":"Stop"}"#.to_vec();
    let first = client
        .post(format!("http://{addr}/v1/hooks"))
        .header("content-type", "application/json")
        .body(hook.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let second = client
        .post(format!("http://{addr}/v1/logs"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 503);
    assert!(second.headers().contains_key("retry-after"));
    let mut grpc = LogsServiceClient::connect(format!("http://{gaddr}"))
        .await
        .unwrap();
    let err = grpc
        .export(ExportLogsServiceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(registry.stats.snapshot()["refused_full"], 2);
}

/// The buffer's byte bound counts what the queued requests hold in memory,
/// decoded, not their size on the wire: a backlog of Claude Code's log
/// requests stays within the bound an operator set.
#[tokio::test]
async fn the_buffer_bound_counts_decoded_requests_and_refuses_before_decoding() {
    use ccotel::receive::{Ingest, DECODED_PER_ENCODED_BYTE};
    use ccotel::telemetry::Registry;
    use std::sync::Arc;
    let body = fixtures::otlp("protobuf")
        .into_iter()
        .find(|c| c.path == "/v1/logs" && c.content_type == "application/x-protobuf")
        .expect("a protobuf log capture")
        .body;
    // Room for three such requests as received, but not for two decoded.
    let bound = 3 * body.len();
    assert!(2 * body.len() * (DECODED_PER_ENCODED_BYTE + 1) > bound);
    let registry = Arc::new(Registry::default());
    let (ingest, _rx) = Ingest::channel(100, bound, registry.stats.clone());
    let (addr, gaddr) = receivers(ingest, &registry).await;
    let client = reqwest::Client::new();
    let send = || {
        client
            .post(format!("http://{addr}/v1/logs"))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    let second = send().await.unwrap();
    assert_eq!(second.status(), 503);
    assert!(second.headers().contains_key("retry-after"));
    // Refused before it is decoded: under overload a refusal costs the
    // read only, so even a body that would not decode gets the 503.
    let garbage = client
        .post(format!("http://{addr}/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff; body.len()])
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 503);
    assert_eq!(registry.stats.snapshot()["refused_full"], 2);
    assert_eq!(registry.stats.snapshot()["bad_requests"], 0);
    // gRPC too: a request over the size limit would be refused as too
    // large once read; with the buffer full it is not read at all.
    let mut grpc = LogsServiceClient::connect(format!("http://{gaddr}"))
        .await
        .unwrap();
    let mut large = ExportLogsServiceRequest::decode(&body[..]).unwrap();
    while large.encoded_len() <= 1 << 20 {
        large.resource_logs.extend(large.resource_logs.clone());
    }
    let err = grpc.export(large).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    assert_eq!(registry.stats.snapshot()["refused_full"], 3);
}

/// Claude Code never retries a refused HTTP hook: under a burst the hook
/// waits for the merge to make room instead of being lost, and only a buffer
/// that stays full past the wait is refused.
#[tokio::test]
async fn a_hook_waits_for_room_in_a_full_queue_instead_of_being_refused() {
    use ccotel::model::Payload;
    use ccotel::receive::{http::HttpState, Ingest};
    use ccotel::telemetry::Registry;
    use std::sync::Arc;
    async fn serve(ingest: Ingest, registry: Arc<Registry>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = HttpState {
            ingest,
            max_body: 1 << 20,
            registry,
            auth: Default::default(),
        };
        tokio::spawn(ccotel::receive::http::serve(
            listener,
            state,
            std::future::pending(),
        ));
        format!("http://{addr}/v1/hooks")
    }
    fn hook(n: usize) -> String {
        format!(r#"{{"session_id":"s","hook_event_name":"Stop","prompt_id":"p{n}"}}"#)
    }
    let client = reqwest::Client::new();
    let post = |url: &str, body: String| {
        client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // Drained while the hook waits: accepted, in order, nothing refused.
    let registry = Arc::new(Registry::default());
    let (ingest, mut rx) = Ingest::channel(1, 1 << 20, registry.stats.clone());
    let url = serve(
        ingest.with_hook_wait(Duration::from_secs(30)),
        registry.clone(),
    )
    .await;
    assert_eq!(post(&url, hook(0)).await.unwrap().status(), 200);
    let waiting = tokio::spawn(post(&url, hook(1)));
    assert!(
        eventually(Duration::from_secs(10), || registry.stats.snapshot()
            ["waited_full"]
            == 1)
        .await,
        "the second hook waits for room"
    );
    let prompt = |a: ccotel::receive::Accepted| match a.into_event().unwrap().payload {
        Payload::Hook(h) => h.fields["prompt_id"].as_str().map(str::to_owned),
        other => panic!("not a hook: {other:?}"),
    };
    assert_eq!(prompt(rx.recv().await.unwrap()).as_deref(), Some("p0"));
    assert_eq!(waiting.await.unwrap().unwrap().status(), 200);
    assert_eq!(prompt(rx.recv().await.unwrap()).as_deref(), Some("p1"));
    assert_eq!(registry.stats.snapshot()["refused_full"], 0);

    // The command hook spools what is refused: it gets its 503 at once, so
    // it never gives up on an event that is still waiting here.
    assert_eq!(post(&url, hook(2)).await.unwrap().status(), 200);
    let command = client
        .post(&url)
        .header("content-type", "application/json")
        .header("x-ccotel-transport", "command")
        .body(hook(3))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(command.status(), 503);
    assert_eq!(registry.stats.snapshot()["refused_full"], 1);

    // Never drained: refused once the wait is over, with a hint to retry.
    let registry = Arc::new(Registry::default());
    let (ingest, _rx) = Ingest::channel(1, 1 << 20, registry.stats.clone());
    let url = serve(
        ingest.with_hook_wait(Duration::from_millis(200)),
        registry.clone(),
    )
    .await;
    assert_eq!(post(&url, hook(0)).await.unwrap().status(), 200);
    let refused = post(&url, hook(1)).await.unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(registry.stats.snapshot()["refused_full"], 1);
}

#[tokio::test]
async fn shutdown_flushes_everything_accepted() {
    let backend = Backend::http(Mode::Ok).await;
    let mut config = Config::default();
    config.exporters.push(exporter(
        "sink",
        backend.endpoint(),
        Protocol::HttpProtobuf,
        "metrics,logs",
    ));
    let app = spawn_app(config).await;
    let captures: Vec<_> = fixtures::otlp("multi-turn")
        .into_iter()
        .filter(|c| c.path != "/v1/traces")
        .collect();
    for c in &captures {
        assert_eq!(
            post(&app, &c.path, "application/json", false, c.body.clone())
                .await
                .status(),
            200
        );
    }
    app.shutdown().await;
    let got = backend.received();
    let n = got
        .logs
        .iter()
        .map(|r| r.resource_logs.len())
        .sum::<usize>()
        + got
            .metrics
            .iter()
            .map(|r| r.resource_metrics.len())
            .sum::<usize>();
    assert_eq!(n, captures.len());
}

#[tokio::test]
async fn exporter_headers_and_gzip_reach_the_backend() {
    let backend = Backend::http(Mode::Ok).await;
    let mut config = Config::default();
    let mut e = exporter("hc", backend.endpoint(), Protocol::HttpProtobuf, "logs");
    e.headers
        .insert("x-honeycomb-team".into(), "secret-key".into());
    e.compression = ccotel::config::Compression::Gzip;
    config.exporters.push(e);
    let app = spawn_app(config).await;
    let c = fixtures::otlp("denied")
        .into_iter()
        .find(|c| c.path == "/v1/logs")
        .unwrap();
    assert_eq!(
        post(&app, &c.path, "application/json", false, c.body.clone())
            .await
            .status(),
        200
    );
    app.shutdown().await;
    let got = backend.received();
    assert_eq!(got.requests, 1);
    assert_eq!(got.headers[0]["x-honeycomb-team"], "secret-key");
    assert_eq!(got.headers[0]["content-encoding"], "gzip");
}

#[tokio::test]
async fn a_503_is_retried_and_a_400_is_dropped_and_counted() {
    let flaky = Backend::http(Mode::Status(503)).await;
    let refusing = Backend::http(Mode::Status(400)).await;
    let mut config = Config::default();
    config.exporters.push(exporter(
        "flaky",
        flaky.endpoint(),
        Protocol::HttpProtobuf,
        "logs",
    ));
    config.exporters.push(exporter(
        "refusing",
        refusing.endpoint(),
        Protocol::HttpJson,
        "logs",
    ));
    let app = spawn_app(config).await;
    let c = fixtures::otlp("denied")
        .into_iter()
        .find(|c| c.path == "/v1/logs")
        .unwrap();
    assert_eq!(
        post(&app, &c.path, "application/json", false, c.body.clone())
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    flaky.set_mode(Mode::Ok);
    assert!(
        eventually(Duration::from_secs(10), || flaky.received().requests == 1).await,
        "the 503 was retried until the backend recovered"
    );
    let health = app.health().await;
    assert!(health["exporters"]["flaky"]["retries"].as_u64().unwrap() >= 1);
    assert_eq!(health["exporters"]["refusing"]["failed_requests"], 1);
    assert_eq!(health["exporters"]["refusing"]["retries"], 0);
    assert!(
        health["exporters"]["refusing"]["dropped_items"]
            .as_u64()
            .unwrap()
            > 0
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_refusing_the_size_gets_everything_in_smaller_requests() {
    let backend = Backend::http(Mode::Status(503)).await;
    let mut config = Config::default();
    config.exporters.push(exporter(
        "small",
        backend.endpoint(),
        Protocol::HttpProtobuf,
        "logs",
    ));
    let app = spawn_app(config).await;
    // Every log export of every scenario queues up while the backend is down.
    let mut sent = 0usize;
    let mut largest = 0usize;
    for scenario in fixtures::SCENARIOS {
        for c in fixtures::otlp(scenario)
            .into_iter()
            .filter(|c| c.path == "/v1/logs")
        {
            let r = post(&app, &c.path, &c.content_type, false, c.body.clone()).await;
            assert_eq!(r.status(), 200);
            let req = decode_logs(&c.content_type, &c.body);
            sent += log_records(&req);
            largest = largest.max(req.encoded_len());
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Back up, but refusing anything bigger than the largest single export.
    backend.set_mode(Mode::MaxBody(largest));
    assert!(
        eventually(Duration::from_secs(20), || {
            backend
                .received()
                .logs
                .iter()
                .map(log_records)
                .sum::<usize>()
                >= sent
        })
        .await,
        "every record arrived once the requests were small enough"
    );
    let got = backend.received();
    assert_eq!(
        got.logs.iter().map(log_records).sum::<usize>(),
        sent,
        "none twice"
    );
    let health = app.health().await;
    assert_eq!(health["exporters"]["small"]["dropped_items"], 0);
    assert_eq!(health["exporters"]["small"]["failed_requests"], 0);
    app.shutdown().await;
}

fn decode_logs(content_type: &str, body: &[u8]) -> ExportLogsServiceRequest {
    if content_type.contains("json") {
        serde_json::from_slice(body).unwrap()
    } else {
        ExportLogsServiceRequest::decode(body).unwrap()
    }
}

fn log_records(r: &ExportLogsServiceRequest) -> usize {
    r.resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_session_traces_reach_the_backend_over_the_wire() {
    let backend = Backend::http(Mode::Ok).await;
    let mut config = Config::default();
    config.merge.read_transcripts = false;
    config.exporters.push(exporter(
        "traces",
        backend.endpoint(),
        Protocol::HttpProtobuf,
        "traces",
    ));
    let app = spawn_app(config).await;
    for scenario in fixtures::SCENARIOS {
        // Hooks and OTLP interleaved as they arrived.
        let mut inputs: Vec<(f64, String, Vec<u8>, &str)> = fixtures::hooks(scenario)
            .into_iter()
            .map(|h| (h.ts, "/v1/hooks".to_string(), h.body, "application/json"))
            .collect();
        for c in fixtures::otlp(scenario) {
            let ct = if c.content_type.contains("json") {
                "application/json"
            } else {
                "application/x-protobuf"
            };
            inputs.push((c.ts, c.path, c.body, ct));
        }
        inputs.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, path, body, ct) in inputs {
            assert_eq!(post(&app, &path, ct, false, body).await.status(), 200);
        }
    }
    app.shutdown().await;
    let spans = fixtures::spans_from_otlp(&backend.received().traces);
    for scenario in fixtures::SCENARIOS {
        let sid = fixtures::expected(scenario)["session_ids"][0]
            .as_str()
            .unwrap()
            .to_string();
        let mine: Vec<_> = spans
            .iter()
            .filter(|s| s.attr("session.id").and_then(|a| a.as_str()) == Some(sid.as_str()))
            .cloned()
            .collect();
        crate::merge::check_facts(scenario, &mine, "over the wire");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spooled_hook_keeps_the_time_claude_code_ran_it() {
    let backend = Backend::http(Mode::Ok).await;
    let mut config = Config::default();
    config.exporters.push(exporter(
        "traces",
        backend.endpoint(),
        Protocol::HttpJson,
        "traces",
    ));
    let app = spawn_app(config).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let ran_at = now - 120_000_000_000;
    let send = |name: &str, at: u64| {
        let body = serde_json::json!({
            "session_id": "spooled-session", "hook_event_name": name,
            "prompt_id": "p1", "prompt": "hello", "cwd": "/tmp"
        });
        app.client
            .post(app.url("/v1/hooks"))
            .header("content-type", "application/json")
            .header("x-ccotel-transport", "command")
            .header(ccotel::cli::hook::HOOK_TIME_HEADER, at.to_string())
            .body(body.to_string())
            .send()
    };
    assert_eq!(
        send("UserPromptSubmit", ran_at).await.unwrap().status(),
        200
    );
    assert_eq!(
        send("Stop", ran_at + 1_000_000_000).await.unwrap().status(),
        200
    );
    assert_eq!(
        send("SessionEnd", ran_at + 2_000_000_000)
            .await
            .unwrap()
            .status(),
        200
    );
    app.shutdown().await;
    let spans = fixtures::spans_from_otlp(&backend.received().traces);
    let turn = spans
        .iter()
        .find(|s| s.name == "claude_code.interaction")
        .expect("a turn");
    assert_eq!(turn.start_ns, ran_at);
    assert_eq!(turn.end_ns, ran_at + 1_000_000_000);
}

/// A hook as a receiver queues it.
fn stop_hook() -> ccotel::receive::Input {
    ccotel::receive::Input::Hook {
        body: bytes::Bytes::from_static(br#"{"session_id":"s","hook_event_name":"Stop"}"#),
        transport: ccotel::model::Transport::HookHttp,
        received_at: 1,
    }
}

/// An ingest buffer of 1 000 bytes, and the merge's end of it.
fn small_ingest() -> (
    ccotel::receive::Ingest,
    tokio::sync::mpsc::Receiver<ccotel::receive::Accepted>,
) {
    let registry = ccotel::telemetry::Registry::default();
    ccotel::receive::Ingest::channel(100, 1000, registry.stats.clone())
}

/// The merge leaves the CPU to the receivers while they are queueing a
/// burst, but only while the buffer has room for the merge to catch up
/// afterwards: past half full it must merge at once, or it would fall
/// behind a sustained load.
#[test]
fn the_merge_sees_a_burst_only_while_the_buffer_has_room() {
    let (ingest, _rx) = small_ingest();
    let receivers = ingest.activity();
    let long = Duration::from_secs(3600);
    assert!(!receivers.in_burst(long), "nothing queued yet");
    ingest.submit(stop_hook(), 10).unwrap();
    assert!(receivers.in_burst(long), "an input was just queued");
    assert!(!receivers.in_burst(Duration::ZERO));
    // More than half the byte budget held: the burst no longer counts.
    let held = ingest.room(600).unwrap();
    ingest.submit(stop_hook(), 10).unwrap();
    assert!(
        !receivers.in_burst(long),
        "past half full the merge must not wait"
    );
    drop(held);
    assert!(receivers.in_burst(long));
}

/// However long a burst lasts, the merge waits for it a bounded time, and
/// not at all while the buffer is past half full.
#[test]
fn the_merge_waits_out_a_burst_for_a_bounded_time() {
    use ccotel::merge::engine::wait_out_burst;
    let (ingest, _rx) = small_ingest();
    let receivers = ingest.activity();
    let quiet = Duration::from_secs(1);
    let most = Duration::from_millis(10);
    assert_eq!(
        wait_out_burst(&receivers, quiet, most).as_secs(),
        0,
        "no burst, no wait"
    );
    ingest.submit(stop_hook(), 10).unwrap();
    // A burst that would last an hour: one nap of `quiet`, then the bound.
    let waited = wait_out_burst(&receivers, quiet, most);
    assert!(waited >= quiet, "waited {waited:?} during a burst");
    assert!(
        waited < 10 * quiet,
        "waited {waited:?}: the wait is bounded"
    );
    let _held = ingest.room(600).unwrap();
    ingest.submit(stop_hook(), 10).unwrap();
    assert!(
        wait_out_burst(&receivers, quiet, most) < quiet,
        "past half full the merge does not wait"
    );
}
