//! `ordo loadgen` against a real node (and against `ordo bench floor`), and `ordo bench fix`:
//! they run end to end, every request is answered, and the summaries carry the figures the
//! benchmarks document.

use std::process::Command;

use ordo_tests::{Node, ordo_bin};

/// Runs `ordo loadgen` against the node on `port` with `args`: (succeeded, stdout + stderr).
fn loadgen(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new(ordo_bin())
        .arg("loadgen")
        .args(["--connect", &format!("127.0.0.1:{port}")])
        .args(args)
        .output()
        .expect("run ordo loadgen");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// A short open-loop run over 4 sessions: every request answered, the latency line printed, the
/// node still healthy and its journal holds every request.
#[test]
fn loadgen_short_run_answers_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]);
    let (ok, text) = loadgen(
        node.port,
        &["--rate", "1000", "--duration-s", "2", "--warmup-s", "1"],
    );
    assert!(ok, "{text}");
    // 3 s at 1,000/s: 3,000 requests, all answered.
    assert!(text.contains("sent 3000 requests (2000 measured)"), "{text}");
    assert!(text.contains("answered 3000, missing 0"), "{text}");
    assert!(text.contains("rejects 0"), "{text}");
    let latency = text
        .lines()
        .find(|l| l.contains("request -> first ExecutionReport"))
        .unwrap_or_else(|| panic!("no latency line: {text}"));
    for p in ["p50 ", "p99 ", "p99.9 ", "max "] {
        assert!(latency.contains(p), "{latency}");
    }
    assert!(node.terminate().success());
    // Every request and the node's own events are in the journal, which verifies.
    let verify = Command::new(ordo_bin())
        .args(["journal", "verify"])
        .arg(dir.path().join("journal"))
        .output()
        .expect("run ordo journal verify");
    let v = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{v}");
    let records: u64 = v
        .split_whitespace()
        .skip_while(|w| !w.ends_with(':'))
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no record count in {v}"));
    assert!(records > 3000, "{v}");
}

/// A node that refuses the logons (wrong password) makes loadgen fail, not report figures.
#[test]
fn loadgen_fails_when_it_cannot_log_on() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), &[]);
    let (ok, text) = loadgen(
        node.port,
        &[
            "--password",
            "wrong",
            "--rate",
            "100",
            "--duration-s",
            "1",
            "--warmup-s",
            "0",
        ],
    );
    assert!(!ok, "{text}");
    assert!(text.contains("loadgen: FAILED"), "{text}");
    assert!(node.terminate().success());
}

/// The parser benchmark validates its input before timing it and prints its figures.
#[test]
fn bench_fix_prints_throughput_and_percentiles() {
    let out = Command::new(ordo_bin())
        .args(["bench", "fix", "--messages", "20000"])
        .output()
        .expect("run ordo bench fix");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("M msgs/s") && text.contains("allocations 0 "),
        "{text}"
    );
    assert!(text.contains("p99.9 "), "{text}");
}

/// `ordo bench floor` answers everything `ordo loadgen` sends (new orders, cancels, replaces,
/// the logons and logouts), so the floor it measures is a complete run, not a failed one.
#[test]
fn bench_floor_answers_every_loadgen_request() {
    let port = ordo_tests::free_port();
    let mut floor = Command::new(ordo_bin())
        .args([
            "bench",
            "floor",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--duration-s",
            "60",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start ordo bench floor");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "bench floor never listened");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (ok, text) = loadgen(port, &["--rate", "2000", "--duration-s", "1", "--warmup-s", "0"]);
    let _ = floor.kill();
    let _ = floor.wait();
    assert!(ok, "{text}");
    assert!(text.contains("answered 2000, missing 0"), "{text}");
    // Cancels and replaces were answered as such (the mix is 10% each).
    let count = |label: &str| -> u64 {
        text.split(label)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no '{label}' count in {text}"))
    };
    assert!(count("cancelled ") > 0 && count("replaced ") > 0, "{text}");
    assert!(text.contains("request -> first ExecutionReport"), "{text}");
}
