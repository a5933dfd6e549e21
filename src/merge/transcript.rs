//! Claude Code transcripts (JSONL) as a source: prompts, model calls with
//! their usage and output, tool calls with their results, and the subagent
//! meta files that name the Agent call that spawned each subagent. The format
//! is internal to Claude Code, so every field is optional here.

use super::attrs::parse_time;
use super::session::{
    is_agent_tool, set_json, set_key, set_max, set_min, set_text, Session, Usage,
};
use serde_json::Value;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Largest slice of a transcript read in one go.
const MAX_READ: u64 = 64 * 1024 * 1024;

/// Reads what was appended to `path` since the last read and applies it.
/// Returns false when the file cannot be read (another machine, no access).
pub fn read_new(session: &mut Session, path: &str) -> bool {
    let offset = session.transcript_offsets.get(path).copied().unwrap_or(0);
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len < offset {
        // Rewritten: start again; applying is idempotent.
        session.transcript_offsets.insert(path.to_string(), 0);
        session.transcript_prompts.remove(path);
        return read_new(session, path);
    }
    if len == offset {
        return true;
    }
    if file.seek(SeekFrom::Start(offset)).is_err() {
        return false;
    }
    let mut buf = Vec::new();
    if file.take(MAX_READ).read_to_end(&mut buf).is_err() {
        return false;
    }
    // Only whole lines: the last one may still be being written.
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
        return true;
    };
    let text = String::from_utf8_lossy(&buf[..=end]);
    let prompt = session.transcript_prompts.get(path).cloned();
    if let Some(p) = apply_lines_from(session, &text, prompt) {
        session.transcript_prompts.insert(path.to_string(), p);
    }
    session
        .transcript_offsets
        .insert(path.to_string(), offset + end as u64 + 1);
    if let Some(meta) = meta_path(path) {
        if let Ok(text) = std::fs::read_to_string(&meta) {
            apply_meta(session, path, &text);
        }
    }
    true
}

/// `agent-<id>.jsonl` → `agent-<id>.meta.json`.
fn meta_path(path: &str) -> Option<String> {
    let name = Path::new(path).file_name()?.to_str()?;
    if name.starts_with("agent-") && name.ends_with(".jsonl") {
        Some(format!("{}.meta.json", path.strip_suffix(".jsonl")?))
    } else {
        None
    }
}

/// Applies a subagent meta file (`toolUseId`, `agentType`, `description`).
pub fn apply_meta(session: &mut Session, transcript_path: &str, text: &str) {
    let Ok(meta) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let Some(agent_id) = Path::new(transcript_path)
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("agent-"))
        .and_then(|n| n.strip_suffix(".jsonl"))
    else {
        return;
    };
    let agent = session.agents.entry(agent_id.to_string()).or_default();
    set_key(
        &mut agent.meta_tool_use_id,
        meta.get("toolUseId").and_then(Value::as_str),
    );
    set_key(
        &mut agent.agent_type,
        meta.get("agentType").and_then(Value::as_str),
    );
    set_text(
        &mut agent.description,
        meta.get("description").and_then(Value::as_str),
    );
}

/// Applies transcript lines (main or subagent file).
pub fn apply_lines(session: &mut Session, text: &str) {
    apply_lines_from(session, text, None);
}

/// Applies transcript lines that follow a line where `prompt_id` was in
/// force; returns the prompt id in force after them.
fn apply_lines_from(
    session: &mut Session,
    text: &str,
    mut prompt_id: Option<String>,
) -> Option<String> {
    for line in text.lines() {
        let Ok(rec) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let s = |k: &str| rec.get(k).and_then(Value::as_str);
        if let Some(p) = s("promptId") {
            prompt_id = Some(p.to_string());
        }
        let at = s("timestamp").and_then(parse_time);
        let agent_id = s("agentId");
        let f = &mut session.facts;
        set_key(&mut f.cwd, s("cwd"));
        set_key(&mut f.git_branch, s("gitBranch").filter(|b| *b != "HEAD"));
        set_key(&mut f.version, s("version"));
        set_key(&mut f.entrypoint, s("entrypoint"));
        match s("type") {
            Some("user") => apply_user(session, &rec, prompt_id.as_deref(), agent_id, at),
            Some("assistant") => apply_assistant(session, &rec, prompt_id.as_deref(), agent_id, at),
            _ => {}
        }
    }
    prompt_id
}

fn apply_user(
    session: &mut Session,
    rec: &Value,
    prompt_id: Option<&str>,
    agent_id: Option<&str>,
    at: Option<u64>,
) {
    let content = rec.pointer("/message/content");
    let is_meta = rec.get("isMeta").and_then(Value::as_bool) == Some(true);
    match content {
        Some(Value::String(text)) if !is_meta && agent_id.is_none() => {
            if let Some(p) = prompt_id {
                let turn = session.turns.entry(p.to_string()).or_default();
                set_min(&mut turn.tx_at, at);
                set_text(&mut turn.prompt, Some(text));
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                if item.get("type").and_then(Value::as_str) != Some("tool_result") {
                    continue;
                }
                let Some(id) = item.get("tool_use_id").and_then(Value::as_str) else {
                    continue;
                };
                let tool = session.tools.entry(id.to_string()).or_default();
                set_max(&mut tool.tx_result_at, at);
                set_key(&mut tool.prompt_id, prompt_id);
                set_key(&mut tool.agent_id, agent_id);
                if let Some(e) = item.get("is_error").and_then(Value::as_bool) {
                    tool.tx_is_error = Some(tool.tx_is_error.unwrap_or(false) || e);
                }
                set_json(&mut tool.tx_result, item.get("content"));
                set_key(
                    &mut tool.denial_kind,
                    rec.get("toolDenialKind").and_then(Value::as_str),
                );
                if let Some(agent) = rec
                    .pointer("/toolUseResult/agentId")
                    .and_then(Value::as_str)
                {
                    set_key(&mut tool.spawned_agent, Some(agent));
                }
            }
        }
        _ => {}
    }
}

fn apply_assistant(
    session: &mut Session,
    rec: &Value,
    prompt_id: Option<&str>,
    agent_id: Option<&str>,
    at: Option<u64>,
) {
    let Some(msg) = rec.get("message") else {
        return;
    };
    let request_id = rec.get("requestId").and_then(Value::as_str);
    let message_id = msg.get("id").and_then(Value::as_str);
    // Synthetic messages (errors, interruptions) carry no request id.
    let Some(key) = request_id else {
        return;
    };
    let model = msg
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| *m != "<synthetic>");
    if let Some(m) = model {
        session.facts.models.insert(m.to_string());
    }
    let llm = session.llms.entry(key.to_string()).or_default();
    set_key(&mut llm.prompt_id, prompt_id);
    set_key(&mut llm.agent_id, agent_id);
    set_key(&mut llm.model, model);
    set_key(&mut llm.message_id, message_id);
    set_min(&mut llm.tx_at, at);
    set_key(
        &mut llm.stop_reason,
        msg.get("stop_reason").and_then(Value::as_str),
    );
    if let Some(u) = msg.get("usage") {
        let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
        let usage = Usage {
            input: n("input_tokens"),
            output: n("output_tokens"),
            cache_read: n("cache_read_input_tokens"),
            cache_creation: n("cache_creation_input_tokens"),
        };
        // Each content block repeats the message's usage: take it once.
        if llm
            .usage
            .is_none_or(|(r, u)| r < 1 || (r == 1 && usage > u))
        {
            llm.usage = Some((1, usage));
        }
    }
    let blocks = msg
        .get("content")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for block in blocks {
        if !llm.tx_blocks.contains(&block) {
            llm.tx_blocks.push(block.clone());
        }
        if block.get("type").and_then(Value::as_str) == Some("tool_use") {
            let Some(id) = block.get("id").and_then(Value::as_str) else {
                continue;
            };
            let tool = session.tools.entry(id.to_string()).or_default();
            let name = block.get("name").and_then(Value::as_str);
            set_key(
                &mut tool.name,
                name.map(|n| if is_agent_tool(n) { "Agent" } else { n }),
            );
            set_key(&mut tool.prompt_id, prompt_id);
            set_key(&mut tool.agent_id, agent_id);
            set_key(&mut tool.request_id, Some(key));
            set_min(&mut tool.tx_use_at, at);
            if tool.input.is_none() {
                tool.input = block.get("input").cloned();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A transcript read while Claude Code writes it: the assistant line of a
    /// prompt arrives in a later read than the user line naming the prompt.
    #[test]
    fn a_prompt_carries_over_to_lines_read_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let path_str = path.to_str().unwrap();
        let mut file = std::fs::File::create(&path).unwrap();
        let mut session = Session::new("s");
        writeln!(
            file,
            r#"{{"type":"user","promptId":"p1","message":{{"content":"hi"}}}}"#
        )
        .unwrap();
        assert!(read_new(&mut session, path_str));
        writeln!(
            file,
            r#"{{"type":"assistant","requestId":"req_1","message":{{"id":"msg_1","content":[]}}}}"#
        )
        .unwrap();
        assert!(read_new(&mut session, path_str));
        assert_eq!(session.llms["req_1"].prompt_id.as_deref(), Some("p1"));
    }
}
