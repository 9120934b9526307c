//! The `ordo` commands (journal tools, benchmarks), run as a user would.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use ordo_journal::{Durability, JournalConfig, JournalReader, JournalWriter};

fn ordo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(args)
        .output()
        .expect("run ordo")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A journal of `records` records of 200 bytes, in 64 KiB segments.
fn write_journal(dir: &Path, records: u64) {
    let mut config = JournalConfig::new(dir);
    config.segment_bytes = 64 * 1024;
    config.max_payload_bytes = 4096;
    config.durability = Durability::None;
    let mut writer = JournalWriter::open(config).unwrap();
    for seq in 1..=records {
        writer
            .append(
                1_700_000_000_000_000_000 + seq,
                (seq % 3) as u16,
                &[seq as u8; 200],
            )
            .unwrap();
    }
    writer.close().unwrap();
}

#[test]
fn verify_clean_journal_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), 1000);
    let out = ordo(&["journal", "verify", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("OK "), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("1000 records"));
}

/// A cluster member's journal (a raft log: ENTRY records) says where its committed prefix ends
/// and which records beyond it are its uncommitted tail; a plain journal says nothing of it.
#[test]
fn verify_names_a_members_uncommitted_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut writer = JournalWriter::open(JournalConfig::new(dir.path())).unwrap();
        writer
            .append(
                1_700_000_000_000_000_000,
                ordo_replica::entry::KIND_ENTRY,
                b"entry",
            )
            .unwrap();
        for i in 1..=5u64 {
            writer.append(1_700_000_000_000_000_000 + i, 1, b"event").unwrap();
        }
        writer.set_committed(3);
        writer.close().unwrap();
    }
    let out = ordo(&["journal", "verify", dir.path().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("last seq 6, committed seq 3"), "{stdout}");
    assert!(
        stdout.contains("records 4..=6 are this member's uncommitted tail"),
        "{stdout}"
    );

    let plain = tempfile::tempdir().unwrap();
    write_journal(plain.path(), 10);
    let out = ordo(&["journal", "verify", plain.path().to_str().unwrap()]);
    assert!(!text(&out.stdout).contains("committed"), "{}", text(&out.stdout));
}

/// A directory that holds no journal (a mistyped path) is not a clean journal: exit 2, saying so.
#[test]
fn verify_of_a_directory_without_a_journal_exits_two() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"not a journal").unwrap();
    let out = ordo(&["journal", "verify", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("holds no journal"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stdout).starts_with("OK"), "{}", text(&out.stdout));
}

#[test]
fn verify_damaged_journal_names_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), 1000);
    let first = dir.path().join("00000000000000000001.seg");
    // The 10th frame of the first segment: frames are 240 bytes (32 + 200, padded) after a
    // 128-byte segment header.
    let offset = 128 + 9 * 240;
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[offset + 100] ^= 0x20;
    std::fs::write(&first, bytes).unwrap();

    let out = ordo(&["journal", "verify", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("00000000000000000001.seg"), "{stderr}");
    assert!(stderr.contains(&format!("offset {offset}")), "{stderr}");
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(text(&out.stdout).starts_with("DAMAGED"));
}

#[test]
fn verify_unreadable_directory_exits_two() {
    let dir = tempfile::tempdir().unwrap();
    let out = ordo(&["journal", "verify", dir.path().join("missing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing"));
}

#[test]
fn dump_text_and_json_with_range() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), 300);
    let d = dir.path().to_str().unwrap();
    let out = ordo(&["journal", "dump", d, "--from", "100", "--to", "109"]);
    assert!(out.status.success());
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 10);
    assert!(
        lines[0].starts_with(
            "seq=100 ts=2023-11-14T22:13:20.000000100Z ts_ns=1700000000000000100 kind=1 len=200"
        )
    );

    let out = ordo(&["journal", "dump", d, "--from", "299", "--format", "json"]);
    assert!(out.status.success());
    let records: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["seq"], 300);
    assert_eq!(records[1]["len"], 200);
    assert_eq!(records[1]["payload_hex"].as_str().unwrap().len(), 400);
}

#[test]
fn inspect_summarises() {
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path(), 500);
    let out = ordo(&["journal", "inspect", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("records: 500 (last seq 500)"), "{stdout}");
    assert!(stdout.contains("kind 0: 166 records"), "{stdout}");
    assert!(stdout.contains("positions: written 500 durable 500"), "{stdout}");
}

#[test]
fn help_everywhere() {
    for args in [
        vec!["--help"],
        vec!["journal", "--help"],
        vec!["journal", "verify", "--help"],
        vec!["journal", "inspect", "--help"],
        vec!["journal", "dump", "--help"],
        vec!["bench", "--help"],
        vec!["bench", "journal", "--help"],
    ] {
        let out = ordo(&args);
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out.stdout).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn bench_leaves_a_verifiable_journal_in_dir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = ordo(&[
        "bench",
        "journal",
        "--dir",
        d,
        "--records",
        "2000",
        "--payload-bytes",
        "64",
        "--durability",
        "batch",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("appends/s") && stdout.contains("p99.9") && stdout.contains("append -> durable"),
        "{stdout}"
    );
    assert!(stdout.contains("replay"), "{stdout}");
    let out = ordo(&["journal", "verify", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Warm-up plus two passes of 2000.
    assert!(
        text(&out.stdout).contains("104000 records"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn bench_rejects_bad_arguments() {
    let out = ordo(&["bench", "journal", "--durability", "sometimes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown durability policy"));
}

/// A reader in this process tails the journal that an `ordo` process is writing.
#[test]
fn tail_a_journal_written_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args([
            "bench",
            "journal",
            "--dir",
            &d,
            "--records",
            "100000",
            "--payload-bytes",
            "64",
            "--durability",
            "none",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let total = 100_000 + 2 * 100_000u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !dir.path().join(ordo_journal::POSITIONS_FILE).exists() {
        assert!(Instant::now() < deadline, "writer never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut reader = JournalReader::open(dir.path(), 1).unwrap();
    let mut expected = 1u64;
    let mut caught_up = 0u64;
    while expected <= total {
        assert!(Instant::now() < deadline, "stuck at {expected}");
        match reader.next().unwrap() {
            Some(r) => {
                assert_eq!(r.seq(), expected);
                assert_eq!(r.payload().len(), 64);
                expected += 1;
            }
            None => {
                caught_up += 1;
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }
    assert!(child.wait().unwrap().success());
    assert!(reader.next().unwrap().is_none());
    eprintln!("reader caught up with the writer {caught_up} times");
}

#[test]
fn bench_engine_prints_the_same_hash_for_the_same_seed() {
    let hash_of = |seed: &str| {
        let out = ordo(&[
            "bench",
            "engine",
            "--seed",
            seed,
            "--instruments",
            "2",
            "--commands",
            "20000",
            "--resting",
            "100",
            "--no-baseline",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("M ops/s") && stdout.contains("p99.99") && stdout.contains("allocations 0 "),
            "{stdout}"
        );
        stdout
            .lines()
            .find_map(|l| l.split("final state hash ").nth(1).map(str::to_owned))
            .expect("hash line")
    };
    assert_eq!(hash_of("5"), hash_of("5"));
    assert_ne!(hash_of("5"), hash_of("6"));
}

/// `ordo bench fix | head -1`: the benchmark ends quietly when its reader goes away (before,
/// `println!` panicked on the broken pipe).
#[test]
fn bench_ends_quietly_when_stdout_closes() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(["bench", "fix", "--messages", "20000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("fix:"), "{first}");
    // The reader (and with it the pipe) is gone here.
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "{:?}: {stderr}",
        out.status
    );
}

#[test]
fn diff_names_the_first_difference_or_the_prefix() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, c, d) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("c"),
        root.path().join("d"),
    );
    write_journal(&a, 50);
    write_journal(&b, 50);
    write_journal(&c, 80);
    // d: like a, but record 31's payload has one byte changed (a journal that took another input).
    let mut writer = JournalWriter::open(JournalConfig::new(&d)).unwrap();
    for seq in 1..=50u64 {
        let mut payload = [seq as u8; 200];
        if seq == 31 {
            payload[7] ^= 1;
        }
        writer
            .append(1_700_000_000_000_000_000 + seq, (seq % 3) as u16, &payload)
            .unwrap();
    }
    writer.close().unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_string();

    let same = ordo(&["journal", "diff", &p(&a), &p(&b)]);
    assert_eq!(same.status.code(), Some(0));
    assert!(text(&same.stdout).starts_with("SAME "), "{}", text(&same.stdout));
    let prefix = ordo(&["journal", "diff", &p(&c), &p(&a)]);
    assert_eq!(prefix.status.code(), Some(0));
    assert!(
        text(&prefix.stdout).contains("(50 records) is a prefix of")
            && text(&prefix.stdout).contains("(80 records)"),
        "{}",
        text(&prefix.stdout)
    );
    let differ = ordo(&["journal", "diff", &p(&a), &p(&d)]);
    assert_eq!(differ.status.code(), Some(1));
    assert!(
        text(&differ.stdout).contains("at seq 31: payload byte 7"),
        "{}",
        text(&differ.stdout)
    );
    let missing = ordo(&["journal", "diff", &p(&a), &p(&root.path().join("nothing"))]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing.stderr));
}

/// A cluster of one cannot fail over: the demo refuses before it starts anything.
#[test]
fn demo_of_one_member_with_a_failover_is_refused() {
    let out = ordo(&["demo", "--members", "1", "--failovers", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("a cluster of one cannot fail over"),
        "{}",
        text(&out.stderr)
    );
    let out = ordo(&["demo", "--members", "2", "--failovers", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--members 2: 1 or 3"),
        "{}",
        text(&out.stderr)
    );
}
