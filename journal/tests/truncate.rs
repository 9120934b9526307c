//! Truncation after sequence N: removes an uncommitted tail, never below the committed
//! watermark, durably (a crash does not bring the records back), and readers past the cut are
//! told so.

mod common;

use common::{append_all, read_all, small_config};
use ordo_journal::{Durability, JournalError, JournalReader, JournalWriter};

#[test]
fn truncate_then_append_then_reopen() {
    for durability in [Durability::None, Durability::Batch] {
        for cut in [0u64, 1, 37, 99, 100, 150] {
            let dir = tempfile::tempdir().unwrap();
            let mut config = small_config(dir.path());
            config.durability = durability;
            let mut writer = JournalWriter::open(config.clone()).unwrap();
            let written = append_all(&mut writer, &vec![300; 100]);
            let segments_before = common::segment_paths(dir.path()).len();
            writer.truncate_after(cut).unwrap();
            let kept = cut.min(100);
            assert_eq!(writer.last_seq(), kept);
            assert_eq!(writer.positions().written(), kept);
            assert!(writer.positions().durable() <= kept);
            if cut < 100 {
                assert!(common::segment_paths(dir.path()).len() <= segments_before);
            }
            let more = append_all(&mut writer, &[5, 6, 7]);
            assert_eq!(more[0].seq, kept + 1);
            // Crash (no close) and reopen: the cut records do not come back.
            drop(writer);
            let writer = JournalWriter::open(config).unwrap();
            assert_eq!(writer.last_seq(), kept + 3);
            drop(writer);
            let mut expected = written[..kept as usize].to_vec();
            expected.extend(more);
            assert_eq!(read_all(dir.path()).unwrap(), expected, "cut {cut} {durability}");
            assert!(ordo_journal::verify(dir.path()).unwrap().is_clean());
        }
    }
}

#[test]
fn never_below_the_committed_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = JournalWriter::open(small_config(dir.path())).unwrap();
    append_all(&mut writer, &vec![100; 60]);
    writer.set_committed(50);
    match writer.truncate_after(40) {
        Err(JournalError::BelowCommitted {
            after_seq: 40,
            committed_seq: 50,
        }) => {}
        other => panic!("expected BelowCommitted, got {other:?}"),
    }
    assert_eq!(writer.last_seq(), 60, "a refused truncation changes nothing");
    writer.truncate_after(50).unwrap();
    assert_eq!(writer.last_seq(), 50);
}

#[test]
fn a_reader_past_the_cut_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = JournalWriter::open(small_config(dir.path())).unwrap();
    append_all(&mut writer, &vec![100; 60]);
    let mut behind = JournalReader::open(dir.path(), 1).unwrap();
    let mut ahead = JournalReader::open(dir.path(), 1).unwrap();
    for _ in 0..10 {
        behind.next().unwrap().unwrap();
    }
    for _ in 0..55 {
        ahead.next().unwrap().unwrap();
    }
    writer.truncate_after(30).unwrap();
    append_all(&mut writer, &[1, 2, 3]);
    assert!(matches!(
        ahead.next(),
        Err(JournalError::TruncatedUnderReader {
            read_seq: 55,
            last_seq: 33
        })
    ));
    // The reader behind the cut reads on, into the records written after it.
    let mut seqs = Vec::new();
    while let Some(r) = behind.next().unwrap() {
        seqs.push(r.seq());
    }
    assert_eq!(seqs, (11..=33).collect::<Vec<_>>());
}
