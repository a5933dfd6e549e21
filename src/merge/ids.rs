//! Deterministic ids. The trace id is a hash of the session id, and each span
//! id a hash of the session and the span's natural key (prompt_id, request_id,
//! tool_use_id). The same session always maps to the same trace, so replays,
//! restarts and resumed sessions never produce a second copy of a span.

use sha2::{Digest, Sha256};

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"ccotel/v1");
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// The trace id of a session.
pub fn trace_id(session_id: &str) -> [u8; 16] {
    let d = digest(&["trace", session_id]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    if id == [0; 16] {
        id[15] = 1;
    }
    id
}

/// The span id of the entity `kind:key` within a session.
pub fn span_id(session_id: &str, kind: &str, key: &str) -> [u8; 8] {
    let d = digest(&["span", session_id, kind, key]);
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_distinct() {
        assert_eq!(trace_id("s1"), trace_id("s1"));
        assert_ne!(trace_id("s1"), trace_id("s2"));
        assert_eq!(span_id("s", "tool", "t1"), span_id("s", "tool", "t1"));
        assert_ne!(span_id("s", "tool", "t1"), span_id("s", "llm", "t1"));
        assert_ne!(span_id("s", "tool", "t1"), span_id("s2", "tool", "t1"));
        // Length-prefixed parts: no ambiguity between ("ab","c") and ("a","bc").
        assert_ne!(span_id("s", "ab", "c"), span_id("s", "a", "bc"));
    }
}
