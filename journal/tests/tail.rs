//! A tailing reader in another thread sees every record exactly once, in order, while the
//! writer appends (across segment rolls), and never reads past the published position.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{payload, small_config};
use ordo_journal::{Durability, JournalReader, JournalWriter, Positions, ReadLimit};

const RECORDS: u64 = 100_000;

fn tail(durability: Durability, limit: ReadLimit) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.durability = durability;
    config.segment_bytes = 64 * 1024;
    let mut writer = JournalWriter::open(config).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let reader_progress = Arc::clone(&progress);

    let reader_dir = dir.path().to_path_buf();
    let reader_done = Arc::clone(&done);
    let reader = std::thread::spawn(move || {
        let positions = Positions::open_read_only(&reader_dir).unwrap();
        let mut reader = JournalReader::open_with(&reader_dir, 1, limit).unwrap();
        let mut expected = 1u64;
        let mut idle_polls = 0u64;
        while expected <= RECORDS {
            match reader.next().unwrap() {
                Some(r) => {
                    assert_eq!(r.seq(), expected, "every record once, in order");
                    assert_eq!(r.payload(), &payload(expected, (expected % 97) as usize)[..]);
                    let bound = match limit {
                        ReadLimit::Written => positions.written(),
                        ReadLimit::Durable => positions.durable(),
                        ReadLimit::Committed => positions.committed(),
                    };
                    assert!(r.seq() <= bound, "read {} beyond the published {bound}", r.seq());
                    reader_progress.store(expected, Ordering::Release);
                    expected += 1;
                }
                None => {
                    idle_polls += 1;
                    assert!(!reader_done.load(Ordering::Acquire) || expected <= RECORDS);
                    std::thread::yield_now();
                }
            }
        }
        assert!(reader.next().unwrap().is_none(), "nothing after the last record");
        idle_polls
    });

    let mut seq = 1u64;
    let mut batch_len = 1u64;
    while seq <= RECORDS {
        let mut batch = writer.batch();
        for _ in 0..batch_len.min(RECORDS - seq + 1) {
            batch.append(seq, 3, &payload(seq, (seq % 97) as usize)).unwrap();
            seq += 1;
        }
        batch.commit();
        batch_len = batch_len % 50 + 1;
        if seq % 10_000 < 50 {
            // A checkpoint: let the reader catch up with the published position, so that it
            // certainly tails (finds nothing new, polls again) rather than reads a finished log.
            while progress.load(Ordering::Acquire) < seq - 1 {
                std::thread::yield_now();
            }
        }
    }
    writer.sync().unwrap();
    done.store(true, Ordering::Release);
    let idle_polls = reader.join().unwrap();
    // The reader really tailed: it found nothing new and polled again, at least at checkpoints.
    assert!(idle_polls > 0);
    assert!(
        ordo_journal::segment::list_segments(dir.path()).unwrap().len() > 20,
        "the tail crossed segment rolls"
    );
}

#[test]
fn tail_written_position_while_appending() {
    tail(Durability::None, ReadLimit::Written);
}

#[test]
fn tail_durable_position_under_group_commit() {
    tail(Durability::Batch, ReadLimit::Durable);
}

/// A reader bounded by the committed position reads nothing consensus has not committed, and
/// goes on as the watermark moves.
#[test]
fn a_committed_reader_stops_at_the_committed_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = JournalWriter::open(small_config(dir.path())).unwrap();
    for i in 1..=5u64 {
        writer.append(1_000 + i, 1, &payload(i, 16)).unwrap();
    }
    writer.publish();
    let mut reader = JournalReader::open_with(dir.path(), 1, ReadLimit::Committed).unwrap();
    assert!(
        reader.next().unwrap().is_none(),
        "read a record before anything was committed"
    );
    writer.set_committed(3);
    let mut seen = Vec::new();
    while let Some(r) = reader.next().unwrap() {
        seen.push(r.seq());
    }
    assert_eq!(seen, [1, 2, 3]);
    writer.set_committed(5);
    while let Some(r) = reader.next().unwrap() {
        seen.push(r.seq());
    }
    assert_eq!(seen, [1, 2, 3, 4, 5]);
}
