//! Any text as a prompt template: the Liquid check, Tera's parser and the renderer must return
//! a string or a typed error.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use symphony::workflow::{Position, PromptTemplate};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let template = PromptTemplate::new(
        body,
        Path::new("/fuzz/WORKFLOW.md"),
        Position { line: 1, col: 1 },
    );
    let issue = common::issue();
    let _ = template.render(&issue, None);
    let _ = template.render(&issue, Some(3));
});
