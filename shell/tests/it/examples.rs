//! The runnable setups in `examples/` stay runnable: the compose file parses, everything it
//! mounts exists, its health check and published port match the port the daemon is told to
//! serve on, and the workflow it mounts passes `symphony check`. (No container engine runs
//! here, so the image itself is not started.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn the_compose_example_is_consistent_and_its_workflow_checks() {
    let dir = examples().join("compose");
    let text = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    let compose: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let service = &compose["services"]["symphony"];
    let command: Vec<&str> = service["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let port = command[command.iter().position(|a| *a == "--port").unwrap() + 1];
    // Every bind mount of a local file exists.
    let mut workflow = None;
    for volume in service["volumes"].as_sequence().unwrap() {
        let spec = volume.as_str().unwrap();
        let (source, target) = spec.split_once(':').unwrap();
        if let Some(local) = source.strip_prefix("./") {
            assert!(dir.join(local).exists(), "{spec}: {local} is missing");
            if target.starts_with(command[0]) {
                workflow = Some(dir.join(local));
            }
        }
    }
    let workflow = workflow.expect("the workflow the command names is mounted");
    // The health check and the published port use the port the daemon serves on.
    let check: Vec<&str> = service["healthcheck"]["test"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        check.iter().any(|a| a.contains(&format!(":{port}/livez"))),
        "{check:?} vs port {port}"
    );
    let published = service["ports"][0].as_str().unwrap();
    assert!(published.ends_with(&format!(":{port}")), "{published}");
    // Its token comes from the environment, and the workflow loads and renders.
    let workflow_text = std::fs::read_to_string(&workflow).unwrap();
    assert!(workflow_text.contains("auth_token: $SYMPHONY_TOKEN"));
    let out = Command::new(env!("CARGO_BIN_EXE_symphony"))
        .args(["check", workflow.to_str().unwrap()])
        .env("LINEAR_API_KEY", "lin_api_example")
        .env("SYMPHONY_TOKEN", "example-token-0123456789")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
