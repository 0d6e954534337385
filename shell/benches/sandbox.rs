//! What the sandbox adds to an agent launch: planning its mounts (which includes the bounded
//! search for key files under the home directory) and starting a process inside it, against a
//! plain launch. No target: a launch happens once per session (Codex) or turn (Claude).
//! Figures in `docs/performance.md`. The srt row needs `$SYMPHONY_TEST_SRT` (as `.ci/test`
//! sets it); without it that row is skipped.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use symphony::host::sandbox::{self, Backend, Network, SandboxConfig};
use symphony::host::{Host, Launch, LocalHost, Sandboxed};

/// A home with `dirs` project directories of 20 files each, and the usual credential stores.
fn home(root: &Path, dirs: usize) {
    for d in 0..dirs {
        let dir = root.join(format!("projects/p{d}/src"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..20 {
            std::fs::write(dir.join(format!("f{f}.rs")), "fn main() {}").unwrap();
        }
    }
    for store in [".ssh", ".aws", ".config/gh", ".docker"] {
        std::fs::create_dir_all(root.join(store)).unwrap();
    }
    std::fs::write(root.join("projects/p0/server.key"), "key").unwrap();
}

fn run_true(host: &dyn Host, cwd: &Path, home: &Path) {
    let env = vec![
        ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
        ("HOME".into(), home.as_os_str().to_owned()),
    ];
    let child = host
        .launch(&Launch {
            program: "true",
            args: &[],
            cwd,
            env,
            stdin: false,
            writable: &[],
        })
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("symphony-sandbox-bench-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let root = dir.path().join("home");
    home(&root, 250); // about 5,500 entries
    let workspace = dir.path().join("ws");
    std::fs::create_dir_all(&workspace).unwrap();
    let bubblewrap = SandboxConfig {
        backend: Backend::Bubblewrap,
        ..SandboxConfig::default()
    };
    let mut group = c.benchmark_group("sandbox");
    group.bench_function("plan/home_5500_entries", |b| {
        b.iter(|| {
            black_box(sandbox::plan(&bubblewrap, &workspace, &[], Some(&root), None).unwrap())
        });
    });
    group.sample_size(30);
    group.bench_function("launch_true/none", |b| {
        b.iter(|| run_true(&LocalHost, &workspace, &root));
    });
    let host = Sandboxed::new(Arc::new(LocalHost), bubblewrap.clone());
    group.bench_function("launch_true/bubblewrap", |b| {
        b.iter(|| run_true(&host, &workspace, &root));
    });
    if let Some(srt) = std::env::var_os("SYMPHONY_TEST_SRT") {
        group.sample_size(10);
        let config = SandboxConfig {
            backend: Backend::Srt,
            network: Network::None,
            srt_command: srt.to_string_lossy().into_owned(),
            state_root: Some(dir.path().join("state")),
            ..SandboxConfig::default()
        };
        let host = Sandboxed::new(Arc::new(LocalHost), config);
        group.bench_function("launch_true/srt", |b| {
            b.iter(|| run_true(&host, &workspace, &root));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
