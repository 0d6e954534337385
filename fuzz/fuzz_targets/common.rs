//! What both targets share: a fixed environment and an issue with every field set.

use symphony::workflow::MapEnv;
use symphony_core::{BlockerRef, Issue, IssueId, Timestamp};

#[allow(dead_code)] // the template target needs no environment
pub fn env() -> MapEnv {
    MapEnv::new([
        ("LINEAR_API_KEY", "fuzz-key"),
        ("GITHUB_TOKEN", "fuzz-token"),
    ])
}

pub fn issue() -> Issue {
    Issue {
        id: IssueId("id-1".into()),
        identifier: "FZ-1".into(),
        title: "Fuzz".into(),
        description: Some("body".into()),
        priority: Some(1),
        state: "Todo".into(),
        labels: vec!["a".into(), "b".into()],
        blocked_by: vec![BlockerRef {
            id: Some("id-0".into()),
            identifier: Some("FZ-0".into()),
            state: Some("Done".into()),
        }],
        created_at: Some(Timestamp(0)),
        dispatchable: true,
        ..Issue::default()
    }
}
