//! A scripted fake of the Anthropic Messages API on 127.0.0.1, for driving
//! the real Claude Code CLI offline.
//!
//! It plays a [`Script`] of assistant turns. Which turn a request gets is
//! derived from the request alone, so retries get the same answer and a
//! session spread over several prompts or processes keeps counting: the turn
//! index is the number of assistant messages already in `messages`. A
//! subagent's conversation is served from its own queue, chosen by a marker
//! the parent put into the `Agent` call's prompt (it becomes the subagent's
//! first user message), and starts again at turn 0.
//!
//! Requests outside the scripted loop ("side requests": `max_tokens <= 1`,
//! the `/compact` summariser, requests without tools) get a short text and
//! never consume the script. Answers stream SSE as the real API does and carry
//! a unique `request-id: req_…` header, which Claude Code reports as
//! `request_id`. Everything served is logged as [`Served`], so a test knows
//! which model calls, tool calls and token counts the trace must show.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rand::Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Token counts one answer reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_creation: u64,
}

impl Usage {
    pub const fn new(input: u64, output: u64, cache_read: u64, cache_creation: u64) -> Usage {
        Usage {
            input,
            output,
            cache_read,
            cache_creation,
        }
    }

    pub fn add(&mut self, o: &Usage) {
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_creation += o.cache_creation;
    }
}

/// How a scripted tool call must end up in the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The tool ran and failed: ERROR status.
    Failed,
    /// A permission rule or the (absent) user said no: `tool.status = denied`.
    Denied,
}

/// One content block of an assistant turn.
#[derive(Debug, Clone)]
pub enum Block {
    Text(String),
    Thinking(String),
    ToolUse {
        name: String,
        input: Value,
        outcome: Outcome,
    },
}

pub fn text(t: &str) -> Block {
    Block::Text(t.into())
}

pub fn thinking(t: &str) -> Block {
    Block::Thinking(t.into())
}

pub fn tool(name: &str, input: Value, outcome: Outcome) -> Block {
    Block::ToolUse {
        name: name.into(),
        input,
        outcome,
    }
}

/// An error the API answers instead of a turn, `times` times, before serving
/// the turn itself.
#[derive(Debug, Clone)]
pub struct ScriptedError {
    pub status: u16,
    pub kind: String,
    pub message: String,
    pub times: u32,
}

/// One assistant turn.
#[derive(Debug, Clone)]
pub struct Turn {
    pub content: Vec<Block>,
    pub usage: Usage,
    pub error: Option<ScriptedError>,
}

pub fn turn(content: Vec<Block>, usage: Usage) -> Turn {
    Turn {
        content,
        usage,
        error: None,
    }
}

/// What the fake API plays: `queues["main"]` serves the main conversation;
/// `routes` send a conversation whose first user message contains a marker to
/// another queue.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Model echoed back; the request's model when `None`.
    pub model: Option<String>,
    /// (marker, queue), first match wins.
    pub routes: Vec<(String, String)>,
    pub queues: BTreeMap<String, Vec<Turn>>,
    /// The user prompts of the scenario, to tell which prompt a main-thread
    /// request belongs to.
    pub prompts: Vec<String>,
}

/// Why a request was answered the way it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A turn of the script.
    Scripted { queue: String, turn: usize },
    /// A scripted error answer for that turn.
    Error {
        queue: String,
        turn: usize,
        status: u16,
    },
    /// Not part of the agent loop; the reason.
    Side(&'static str),
    /// Any other endpoint (count_tokens, models, HEAD, unknown paths).
    Other,
}

/// A tool call the fake asked for.
#[derive(Debug, Clone)]
pub struct ServedTool {
    pub id: String,
    pub name: String,
    pub input: Value,
    pub outcome: Outcome,
}

/// One request and what it got.
#[derive(Debug, Clone)]
pub struct Served {
    pub seq: usize,
    pub method: String,
    pub path: String,
    pub kind: Kind,
    /// The `request-id` header sent back (`/v1/messages` only).
    pub request_id: Option<String>,
    pub model: Option<String>,
    pub usage: Option<Usage>,
    pub stream: bool,
    /// `x-claude-code-agent-id`, present on a subagent's requests.
    pub agent_header: Option<String>,
    /// The session header Claude Code sends.
    pub session_header: Option<String>,
    /// 1-based index of the latest scenario prompt in the request (0: none).
    pub prompt: usize,
    pub tools: Vec<ServedTool>,
    /// The script had no turn left for this request.
    pub exhausted: bool,
}

struct Inner {
    script: Script,
    nonce: String,
    log: Vec<Served>,
    errors_served: BTreeMap<(String, usize), u32>,
}

/// A running fake API.
#[derive(Clone)]
pub struct FakeApi {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeApi {
    pub async fn start(script: Script) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let nonce: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(8)
            .map(char::from)
            .collect();
        let api = FakeApi {
            addr: listener.local_addr().unwrap(),
            inner: Arc::new(Mutex::new(Inner {
                script,
                nonce,
                log: Vec::new(),
                errors_served: BTreeMap::new(),
            })),
        };
        let app = Router::new().fallback(handle).with_state(api.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        api
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything served so far, in order.
    pub fn log(&self) -> Vec<Served> {
        self.inner.lock().unwrap().log.clone()
    }
}

async fn handle(
    State(api): State<FakeApi>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let rec = Served {
        seq: 0,
        method: method.to_string(),
        path: uri.to_string(),
        kind: Kind::Other,
        request_id: None,
        model: None,
        usage: None,
        stream: false,
        agent_header: header("x-claude-code-agent-id"),
        session_header: header("x-claude-code-session-id"),
        prompt: 0,
        tools: Vec::new(),
        exhausted: false,
    };
    let parsed: Option<Value> = if method == Method::POST {
        let raw = match header("content-encoding").as_deref() {
            Some("gzip") => {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
                    .ok()
                    .map(|_| out)
            }
            Some("deflate") => {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&body[..]), &mut out)
                    .ok()
                    .map(|_| out)
            }
            _ => Some(body.to_vec()),
        };
        raw.and_then(|b| serde_json::from_slice(&b).ok())
    } else {
        None
    };

    match (&method, path.as_str(), parsed) {
        (&Method::POST, "/v1/messages", Some(req)) if req.is_object() => {
            messages(&api, rec, &req).await
        }
        (&Method::POST, "/v1/messages/count_tokens", req) => {
            let n = req.map_or(1, |r| (r.to_string().len() / 4).max(1));
            push(&api, rec);
            json_response(StatusCode::OK, json!({ "input_tokens": n }), None, &[])
        }
        (&Method::GET, "/v1/models", _) => {
            let model = api.inner.lock().unwrap().script.model.clone();
            push(&api, rec);
            let model = model.unwrap_or_else(|| "claude-opus-5-5".into());
            json_response(
                StatusCode::OK,
                json!({"data": [{"type": "model", "id": model, "display_name": "Fake model",
                        "created_at": "2025-01-01T00:00:00Z"}],
                       "has_more": false, "first_id": model, "last_id": model}),
                None,
                &[],
            )
        }
        (&Method::HEAD, _, _) => {
            push(&api, rec);
            StatusCode::OK.into_response()
        }
        _ => {
            push(&api, rec);
            json_response(
                StatusCode::NOT_FOUND,
                json!({"type": "error", "error": {"type": "not_found_error",
                        "message": "fake API: no such endpoint"}}),
                None,
                &[],
            )
        }
    }
}

fn push(api: &FakeApi, mut rec: Served) -> usize {
    let mut inner = api.inner.lock().unwrap();
    rec.seq = inner.log.len() + 1;
    inner.log.push(rec);
    inner.log.len()
}

/// `POST /v1/messages`: a scripted turn, a scripted error, or a side answer.
async fn messages(api: &FakeApi, mut rec: Served, req: &Value) -> Response {
    rec.stream = req["stream"].as_bool().unwrap_or(false);
    let request_id = new_request_id();
    rec.request_id = Some(request_id.clone());

    let (answer, model, usage) = {
        let mut inner = api.inner.lock().unwrap();
        let inner = &mut *inner;
        let script = &inner.script;
        rec.prompt = prompt_index(&script.prompts, req);
        let model = script
            .model
            .clone()
            .or_else(|| req["model"].as_str().map(str::to_string))
            .unwrap_or_else(|| "claude-opus-5-5".into());
        match classify(script, req) {
            Err(side) => {
                rec.kind = Kind::Side(side);
                let text = if side == "compaction" {
                    "<summary>\nThe user ran scripted end-to-end test prompts.\n</summary>"
                } else {
                    "OK"
                };
                let usage = Usage::new(12, 3, 0, 0);
                (vec![text_json(text)], model, usage)
            }
            Ok(queue) => {
                let idx = turn_index(req);
                let turns = &script.queues[&queue];
                match turns.get(idx) {
                    None => {
                        rec.kind = Kind::Scripted {
                            queue: queue.clone(),
                            turn: idx,
                        };
                        rec.exhausted = true;
                        let t = format!("(fake API: script exhausted for {queue} at turn {idx})");
                        (vec![text_json(&t)], model, Usage::new(10, 5, 0, 0))
                    }
                    Some(turn) => {
                        let key = (queue.clone(), idx);
                        let errors = inner.errors_served.entry(key).or_insert(0);
                        if let Some(e) = turn.error.as_ref().filter(|e| *errors < e.times) {
                            *errors += 1;
                            rec.kind = Kind::Error {
                                queue: queue.clone(),
                                turn: idx,
                                status: e.status,
                            };
                            let body = json!({"type": "error",
                                "error": {"type": e.kind, "message": e.message},
                                "request_id": request_id});
                            let status = StatusCode::from_u16(e.status).unwrap();
                            let rid = request_id.clone();
                            rec.seq = inner.log.len() + 1;
                            inner.log.push(rec);
                            return json_response(
                                status,
                                body,
                                Some(&rid),
                                &[("x-should-retry", "true")],
                            );
                        }
                        rec.kind = Kind::Scripted {
                            queue: queue.clone(),
                            turn: idx,
                        };
                        let mut blocks = Vec::new();
                        for (i, b) in turn.content.iter().enumerate() {
                            blocks.push(match b {
                                Block::Text(t) => text_json(t),
                                Block::Thinking(t) => json!({"type": "thinking", "thinking": t,
                                    "signature": format!("e2e-signature-{}", &hash(&[t])[..24])}),
                                Block::ToolUse {
                                    name,
                                    input,
                                    outcome,
                                } => {
                                    // Same id for a retried turn: derived from its place.
                                    let id = format!(
                                        "toolu_01{}",
                                        &hash(&[&inner.nonce, &queue, &idx.to_string(), &i.to_string()])
                                            [..22]
                                    );
                                    rec.tools.push(ServedTool {
                                        id: id.clone(),
                                        name: name.clone(),
                                        input: input.clone(),
                                        outcome: *outcome,
                                    });
                                    json!({"type": "tool_use", "id": id, "name": name, "input": input})
                                }
                            });
                        }
                        (blocks, model, turn.usage)
                    }
                }
            }
        }
    };
    rec.model = Some(model.clone());
    rec.usage = Some(usage);
    let stream = rec.stream;
    let seq = push(api, rec);
    let message_id = format!("msg_01{}", &hash(&[&request_id, &seq.to_string()])[..22]);
    let stop_reason = if answer.iter().any(|b| b["type"] == "tool_use") {
        "tool_use"
    } else {
        "end_turn"
    };
    let message = json!({
        "id": message_id, "type": "message", "role": "assistant", "model": model,
        "content": answer, "stop_reason": stop_reason, "stop_sequence": null,
        "usage": usage_json(&usage, usage.output),
    });
    if !stream {
        return json_response(StatusCode::OK, message, Some(&request_id), &[]);
    }
    let chunks: Vec<Result<Bytes, std::convert::Infallible>> = sse_events(&message, &usage)
        .into_iter()
        .map(|(event, data)| Ok(Bytes::from(format!("event: {event}\ndata: {data}\n\n"))))
        .collect();
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .header("request-id", &request_id)
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap()
}

/// The events of a streamed answer, in the real API's order.
fn sse_events(message: &Value, usage: &Usage) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    let mut start = message.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"] = usage_json(usage, 1);
    out.push((
        "message_start",
        json!({"type": "message_start", "message": start}),
    ));
    out.push(("ping", json!({"type": "ping"})));
    for (i, b) in message["content"].as_array().unwrap().iter().enumerate() {
        let delta = |d: Value| json!({"type": "content_block_delta", "index": i, "delta": d});
        match b["type"].as_str().unwrap() {
            "text" => {
                out.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": i,
                           "content_block": {"type": "text", "text": ""}}),
                ));
                let t: Vec<char> = b["text"].as_str().unwrap().chars().collect();
                for piece in t.chunks(16) {
                    let piece: String = piece.iter().collect();
                    out.push((
                        "content_block_delta",
                        delta(json!({"type": "text_delta", "text": piece})),
                    ));
                }
            }
            "thinking" => {
                out.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": i,
                           "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
                ));
                out.push((
                    "content_block_delta",
                    delta(json!({"type": "thinking_delta", "thinking": b["thinking"]})),
                ));
                out.push((
                    "content_block_delta",
                    delta(json!({"type": "signature_delta", "signature": b["signature"]})),
                ));
            }
            _ => {
                out.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": i,
                           "content_block": {"type": "tool_use", "id": b["id"],
                                             "name": b["name"], "input": {}}}),
                ));
                let input: Vec<char> = b["input"].to_string().chars().collect();
                out.push((
                    "content_block_delta",
                    delta(json!({"type": "input_json_delta", "partial_json": ""})),
                ));
                for piece in input.chunks(24) {
                    let piece: String = piece.iter().collect();
                    out.push((
                        "content_block_delta",
                        delta(json!({"type": "input_json_delta", "partial_json": piece})),
                    ));
                }
            }
        }
        out.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        ));
    }
    out.push((
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": message["stop_reason"], "stop_sequence": null},
               "usage": usage_json(usage, usage.output)}),
    ));
    out.push(("message_stop", json!({"type": "message_stop"})));
    out
}

fn usage_json(u: &Usage, output: u64) -> Value {
    json!({
        "input_tokens": u.input,
        "cache_creation_input_tokens": u.cache_creation,
        "cache_read_input_tokens": u.cache_read,
        "output_tokens": output,
        "service_tier": "standard",
    })
}

fn text_json(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

fn json_response(
    status: StatusCode,
    body: Value,
    request_id: Option<&str>,
    extra: &[(&str, &str)],
) -> Response {
    let rid = request_id.map_or_else(new_request_id, str::to_string);
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("request-id", rid);
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// A fresh `req_…` id, unique per request.
fn new_request_id() -> String {
    let s: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("req_e2e{s}")
}

fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// The text of a message's content (a string or text / tool_result blocks).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| match b["type"].as_str() {
                Some("text") => b["text"].as_str().map(str::to_string),
                Some("tool_result") => Some(text_of(&b["content"])),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn user_texts(req: &Value) -> impl Iterator<Item = String> + '_ {
    req["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "user")
        .map(|m| text_of(&m["content"]))
}

/// `Err(reason)` for a side request, else the queue that serves it.
fn classify(script: &Script, req: &Value) -> Result<String, &'static str> {
    if req["max_tokens"].as_u64().is_some_and(|n| n <= 1) {
        return Err("quota_probe");
    }
    let last_user = user_texts(req).last().unwrap_or_default();
    if last_user.contains("Your task is to create a detailed summary of the conversation") {
        return Err("compaction");
    }
    if req["tools"].as_array().is_none_or(|t| t.is_empty()) {
        return Err("no_tools");
    }
    let first_user = user_texts(req).next().unwrap_or_default();
    let queue = script
        .routes
        .iter()
        .find(|(marker, _)| first_user.contains(marker.as_str()))
        .map_or("main", |(_, q)| q.as_str());
    if !script.queues.contains_key(queue) {
        return Err("unrouted");
    }
    Ok(queue.to_string())
}

/// Stateless and retry-safe: the number of assistant turns already played.
fn turn_index(req: &Value) -> usize {
    req["messages"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count())
}

/// 1-based index of the latest scenario prompt present in the request.
fn prompt_index(prompts: &[String], req: &Value) -> usize {
    let texts: Vec<String> = user_texts(req).collect();
    prompts
        .iter()
        .enumerate()
        .filter(|(_, p)| texts.iter().any(|t| t.contains(p.as_str())))
        .map(|(i, _)| i + 1)
        .max()
        .unwrap_or(0)
}
