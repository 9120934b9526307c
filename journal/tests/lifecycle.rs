//! The writer's life around its appends: the durable listener (the syncer calls it after every
//! advance of the durable position, so a consumer waiting for durability is woken instead of
//! polling), and a clean close that leaves nothing to recover.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::small_config;
use ordo_journal::{Durability, JournalWriter};

#[test]
fn syncer_calls_the_listener_with_durable_already_advanced() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.durability = Durability::Batch;
    let mut writer = JournalWriter::open(config).unwrap();
    let positions = Arc::clone(writer.positions());
    // The listener records the durable position it sees when called: it must already cover
    // what the syncer made durable (the store happens before the call).
    let seen = Arc::new(AtomicU64::new(0));
    let calls = Arc::new(AtomicU64::new(0));
    {
        let (seen, calls, observed) = (Arc::clone(&seen), Arc::clone(&calls), Arc::clone(&positions));
        assert!(positions.set_durable_listener(move || {
            seen.fetch_max(observed.durable(), Ordering::AcqRel);
            calls.fetch_add(1, Ordering::AcqRel);
        }));
    }
    // Only the first registration takes.
    assert!(!positions.set_durable_listener(|| {}));
    let mut last = 0;
    for i in 0..50u64 {
        last = writer.append(i + 1, 1, &[7u8; 40]).unwrap();
    }
    writer.wait_durable(last, Duration::from_secs(30)).unwrap();
    // The call comes right after the store: give it a moment on a loaded machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seen.load(Ordering::Acquire) < last && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(calls.load(Ordering::Acquire) >= 1);
    assert_eq!(seen.load(Ordering::Acquire), last);
    writer.close().unwrap();
}

/// A clean close leaves nothing for the next open to recover: no torn tail, no temporary file
/// removed (the spare segment in preparation is abandoned and deleted at close).
#[test]
fn clean_close_leaves_nothing_to_recover() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3u64 {
        let mut writer = JournalWriter::open(small_config(dir.path())).unwrap();
        if round > 0 {
            let r = writer.recovery();
            assert!(
                r.torn_tail.is_none() && r.removed_files.is_empty(),
                "round {round}: {r}"
            );
        }
        for i in 0..20u64 {
            writer.append(round * 100 + i + 1, 1, &[1u8; 100]).unwrap();
        }
        writer.close().unwrap();
        assert!(!dir.path().join("spare.seg.tmp").exists(), "round {round}");
    }
}

/// The next segment's file is prepared once the active segment is a sixteenth full, not at
/// open: a journal that writes little (an idle session's store) never writes a spare's worth
/// of zeros to disk. Rolls still find their spare ready.
#[test]
fn the_spare_is_prepared_only_once_the_segment_fills() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let segment_bytes = config.segment_bytes as usize;
    let spare = dir.path().join("spare.seg.tmp");
    let mut writer = JournalWriter::open(config).unwrap();
    // One record: below a sixteenth of the 16 KiB segment (the header takes 64 bytes).
    let mut ts = 1u64;
    for _ in 0..1 {
        writer.append(ts, 1, &[3u8; 100]).unwrap();
        ts += 1;
    }
    // Nothing was asked for, so nothing can appear (the helper would take well under this).
    std::thread::sleep(Duration::from_millis(300));
    assert!(!spare.exists(), "a spare was prepared for a nearly empty segment");
    // Past a sixteenth: it appears.
    let record_bytes = 144; // 32 header + 100 payload, padded to 16
    for _ in 0..(segment_bytes / 16 / record_bytes + 1) {
        writer.append(ts, 1, &[3u8; 100]).unwrap();
        ts += 1;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !spare.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(spare.exists(), "no spare once the segment was past a sixteenth");
    // Rolls keep working across several segments, and the data reads back.
    for _ in 0..(3 * segment_bytes / record_bytes) {
        writer.append(ts, 1, &[3u8; 100]).unwrap();
        ts += 1;
    }
    let last = writer.close().unwrap();
    let mut reader = ordo_journal::JournalReader::open_offline(dir.path(), 1).unwrap();
    let mut n = 0;
    while let Some(r) = reader.next().unwrap() {
        n += 1;
        assert_eq!(r.seq(), n);
    }
    assert_eq!(n, last);
}

/// Bytes this process passed to write(2)-family calls so far (`wchar` of /proc/self/io: counts
/// on every file system, unlike `write_bytes`). Test binaries run one test per process.
fn written_by_syscalls() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wchar in /proc/self/io")
}

/// Appends 100-byte records until the journal has rolled into a second segment (the roll
/// takes the spare the helper prepared); returns the bytes written by system calls meanwhile.
fn written_while_rolling(durability: Durability) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.segment_bytes = 4 << 20;
    config.durability = durability;
    let segment_bytes = config.segment_bytes;
    let mut writer = JournalWriter::open(config).unwrap();
    let before = written_by_syscalls();
    let mut ts = 1u64;
    let segments = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".seg")
            })
            .count()
    };
    while segments() < 2 {
        writer.append(ts, 1, &[5u8; 100]).unwrap();
        ts += 1;
        assert!(ts * 144 < 2 * segment_bytes, "no roll after two segments' worth");
    }
    let written = written_by_syscalls() - before;
    writer.close().unwrap();
    written
}

/// A journal that never fsyncs (durability none) gets its spare segments allocated but not
/// written with zeros: the zeros would go to disk in a burst and then again as data. One that
/// fsyncs still gets them zeroed (an fdatasync over written blocks commits no extent
/// conversion).
#[test]
fn spares_are_zeroed_only_for_journals_that_fsync() {
    let segment_bytes = 4u64 << 20;
    let none = written_while_rolling(Durability::None);
    assert!(
        none < segment_bytes / 4,
        "durability none wrote {none} bytes through system calls around one roll"
    );
    let batch = written_while_rolling(Durability::Batch);
    assert!(
        batch >= segment_bytes,
        "durability batch wrote only {batch} bytes: its spare was not zeroed"
    );
}
