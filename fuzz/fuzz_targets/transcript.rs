//! Transcript text, as read from Claude Code's JSONL files, then rendered.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut session = ccotel::merge::session::Session::new("fuzz");
    ccotel::merge::transcript::apply_lines(&mut session, &text);
    let _ = ccotel::merge::render::render(
        &session,
        &ccotel::merge::render::RenderOptions {
            idle_closed_at: Some(1),
            max_content: 1024,
        },
    );
});
