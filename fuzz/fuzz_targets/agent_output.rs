//! Hostile agent output: any text as Claude Code's stream-json lines (decoded and turned into
//! updates) and Codex app-server lines, and as a `linear_graphql` document checked against every
//! mutation policy. Each must return, never panic or stall (the GraphQL parser recurses: its
//! nesting bound is what keeps a deep document from overflowing the stack).
#![no_main]

use libfuzzer_sys::fuzz_target;
use symphony::agent::claude::stream;
use symphony::agent::codex::decode_line;
use symphony::tracker::linear::{MutationPolicy, admit};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut translator = stream::Translator::default();
    for line in text.lines() {
        if let Some(message) = stream::decode(line) {
            let _ = translator.feed(message, 1, "turn-1");
        }
        let _ = decode_line(line);
    }
    for policy in [
        MutationPolicy::Any,
        MutationPolicy::None,
        MutationPolicy::Only(vec!["issueUpdate".into()]),
    ] {
        let _ = admit(&text, &policy);
    }
});
