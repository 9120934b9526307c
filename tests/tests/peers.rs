//! The node against independent FIX peers: QuickFIX's session acceptance suite (strict) and
//! the QuickFIX order-flow client.

use std::process::Command;

use ordo_tests::{Node, python, repo_root, shared_fix};

fn run_acceptance(port: u16, extra: &[&str]) -> (bool, String) {
    let out = Command::new("python3")
        .arg(shared_fix().join("run_acceptance.py"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(extra)
        .output()
        .expect("run the acceptance runner");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The 45 session-level scripts against the real node (engine behind the sessions).
#[test]
fn acceptance_suite_strict_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    let config = repo_root().join("tests/fix/acceptance.toml");
    let node = Node::start(dir.path(), &["--config", config.to_str().unwrap()]);
    let (ok, text) = run_acceptance(node.port, &["--skip-echo"]);
    assert!(ok && text.contains("fix44: 45 passed, 0 failed"), "{text}");
}

/// All 59 scripts with the test-only echo application.
#[test]
fn acceptance_suite_strict_with_echo() {
    let dir = tempfile::tempdir().unwrap();
    let config = repo_root().join("tests/fix/acceptance.toml");
    let node = Node::start(dir.path(), &["--config", config.to_str().unwrap(), "--echo"]);
    let (ok, text) = run_acceptance(node.port, &[]);
    assert!(ok && text.contains("fix44: 59 passed, 0 failed"), "{text}");
}

/// 10,000 crossing orders with cancels and replaces from QuickFIX: every answer checked.
#[test]
fn quickfix_client_10000_orders_zero_violations() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(dir.path(), &[]);
    let out = Command::new(python())
        .arg(shared_fix().join("qf_client.py"))
        .args([
            "--port",
            &node.port.to_string(),
            "--sender",
            "CLIENT4",
            "--target",
            "ORDO",
        ])
        .args(["--username", "CLIENT4", "--password", "demo", "--account", "ACC4"])
        .args([
            "--orders",
            "10000",
            "--rate",
            "2000",
            "--symbols",
            "AAA,BBB",
            "--expect-balanced",
        ])
        .output()
        .expect("run qf_client.py");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let summary = text
        .lines()
        .find(|l| l.starts_with("SUMMARY"))
        .unwrap_or_default();
    assert!(
        summary.contains("result=PASS")
            && summary.contains("orders=10000")
            && summary.contains("violations=0"),
        "{text}"
    );
    assert!(node.alive());
    assert!(node.terminate().success());
}
