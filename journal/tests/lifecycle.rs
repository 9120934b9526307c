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
