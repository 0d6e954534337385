//! Parse + validate + render of a 64 KiB WORKFLOW.md. Target: <= 1 ms at the template density
//! of real workflows; a tag-dense worst case is measured too. Figures in
//! `docs/performance.md`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use symphony::workflow::{MapEnv, Overrides, parse, sample_issue};

const FRONT_MATTER: &str = "---
tracker:
  kind: linear
  provider:
    project_slug: bench-project
    api_key: $LINEAR_API_KEY
  active_states: [Todo, In Progress, Merging, Rework]
  terminal_states: [Closed, Cancelled, Canceled, Duplicate, Done]
polling:
  interval_ms: 5000
workspace:
  root: ~/code/workspaces
hooks:
  after_create: |
    git clone --depth 1 file:///srv/git/repo.git .
  before_run: git fetch --quiet
  timeout_ms: 120000
agent:
  max_concurrent_agents: 8
  max_turns: 12
  max_concurrent_agents_by_state:
    In Progress: 4
    Merging: 1
codex:
  command: codex app-server
  approval_policy: never
  thread_sandbox: workspace-write
  turn_sandbox_policy:
    type: workspaceWrite
    networkAccess: true
---
";

/// A prompt section of realistic shape: prose, interpolations, a conditional and a loop.
const SECTION: &str = "
## Context for {{ issue.identifier }}

You are working on {{ issue.title }} (state {{ issue.state }}, priority {{ issue.priority }}).
{% if attempt %}This is attempt {{ attempt }}: resume from the workspace as it is.{% endif %}
Labels: {{ issue.labels | join(sep=\", \") }}.
{% for blocker in issue.blocked_by %}- blocked by {{ blocker.identifier }} ({{ blocker.state }})
{% endfor %}
Keep the change small, run the tests, and describe what you did in the final message. Do not
ask a human for follow-up; record blockers in the workpad and move the issue as the workflow
says. Work only in the provided repository copy.
";

/// Tag-dense worst case: 64 KiB of the section above, about 2,000 template tags.
fn dense_text() -> String {
    let mut text = FRONT_MATTER.to_owned();
    while text.len() + SECTION.len() <= 64 * 1024 {
        text.push_str(SECTION);
    }
    text
}

/// Realistic density: the reference implementation's WORKFLOW.md (19 KiB, 13 tags) with its
/// body repeated to 64 KiB.
fn reference_text() -> String {
    let reference = include_str!("../../fixtures/workflows/openai-symphony-elixir.WORKFLOW.md");
    let body_start = reference[4..]
        .find("\n---\n")
        .map(|i| i + 4 + 5)
        .expect("front matter");
    let (front, body) = reference.split_at(body_start);
    let mut text = front.to_owned();
    while text.len() + body.len() <= 64 * 1024 {
        text.push_str(body);
    }
    // Top up with the body's plain prose lines (no tags, so no block is cut in half).
    let prose = body.lines().filter(|l| !l.contains('{'));
    for line in prose.cycle() {
        if text.len() + line.len() + 1 > 64 * 1024 {
            break;
        }
        text.push_str(line);
        text.push('\n');
    }
    text
}

fn load_and_render(c: &mut Criterion) {
    let env = MapEnv::new([("LINEAR_API_KEY", "lin_api_bench")]);
    let path = Path::new("/srv/flows/WORKFLOW.md");
    let issue = sample_issue();
    let mut group = c.benchmark_group("workflow");
    for (name, text) in [
        ("reference_64k", reference_text()),
        ("dense_64k", dense_text()),
    ] {
        // Sanity: it loads, renders, and is the size the target is about.
        let workflow = parse(&text, path, &env, &Overrides::default()).expect("loads");
        let rendered = workflow.prompt.render(&issue, Some(2)).expect("renders");
        assert!(text.len() > 60 * 1024 && rendered.contains("SAMPLE-1"));
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("{name}/parse_validate_render"), |b| {
            b.iter(|| {
                let workflow =
                    parse(black_box(&text), path, &env, &Overrides::default()).expect("loads");
                black_box(workflow.prompt.render(&issue, Some(2)).expect("renders"))
            });
        });
        group.bench_function(format!("{name}/render"), |b| {
            b.iter(|| black_box(workflow.prompt.render(&issue, Some(2)).expect("renders")));
        });
    }
    group.finish();
}

criterion_group!(benches, load_and_render);
criterion_main!(benches);
