//! Any bytes as WORKFLOW.md: split, YAML, config resolution, template parse and render must
//! return a value or a typed error, never panic or run away with memory.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use symphony::workflow::{Overrides, parse};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = common::env();
    if let Ok(workflow) = parse(
        text,
        Path::new("/fuzz/WORKFLOW.md"),
        &env,
        &Overrides::default(),
    ) {
        let issue = common::issue();
        let _ = workflow.prompt.render(&issue, None);
        let _ = workflow.prompt.render(&issue, Some(2));
        let _ = workflow.config.scheduler();
    }
});
