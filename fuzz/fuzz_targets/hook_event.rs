//! Hook bodies: the receiver's check against the parse, then a short
//! sequence of them through the merge engine (each input line is one hook
//! event).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut engine = ccotel::merge::Engine::new(Default::default(), None);
    let mut events = Vec::new();
    for (i, line) in data.split(|b| *b == b'\n').take(64).enumerate() {
        // The receiver answers after `check` and the merge thread parses:
        // what the check accepts must parse, or an accepted hook is lost.
        let parsed = ccotel::model::HookEvent::parse(line);
        if let Ok(name) = ccotel::model::HookEvent::check(line) {
            assert_eq!(parsed.as_ref().map(|h| h.name).ok(), Some(name));
        }
        if let Ok(h) = parsed {
            events.push(ccotel::model::Event {
                received_at: 1_000_000_000 + i as u64 * 1_000_000,
                transport: ccotel::model::Transport::HookHttp,
                payload: ccotel::model::Payload::Hook(h),
                wire: None,
            });
        }
    }
    engine.ingest(&events);
    let _ = engine.tick(2_000_000_000, false);
    let _ = engine.tick(u64::MAX / 2, true);
});
