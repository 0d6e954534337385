//! What both targets share: a fixed environment and an issue with every field set.
#![allow(unused_imports)]

use symphony::workflow::MapEnv;

#[allow(dead_code)] // the template target needs no environment
pub fn env() -> MapEnv {
    MapEnv::new([
        ("LINEAR_API_KEY", "fuzz-key"),
        ("GITHUB_TOKEN", "fuzz-token"),
    ])
}

pub use symphony::workflow::sample_issue as issue;
