//! Bad input: garbage, truncated headers, newer formats, gaps, swapped or renamed segments,
//! oversized records, time going backwards, a second writer. Each gets a typed error naming the
//! path (and offset where there is one); nothing panics; `verify` reports the same.

mod common;

use std::path::Path;

use common::{append_all, segment_paths, small_config};
use ordo_journal::{JournalError, JournalWriter, verify};

fn journal_with_segments(dir: &Path, records: usize) -> Vec<std::path::PathBuf> {
    let mut writer = JournalWriter::open(small_config(dir)).unwrap();
    append_all(&mut writer, &vec![500; records]);
    writer.close().unwrap();
    let segments = segment_paths(dir);
    assert!(segments.len() >= 3, "test needs several segments");
    segments
}

fn verify_names(dir: &Path, file: &Path) {
    let report = verify(dir).unwrap();
    assert!(!report.is_clean());
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        report.problems.iter().any(|p| p.to_string().contains(name)),
        "verify should name {name}: {:?}",
        report.problems
    );
}

#[test]
fn garbage_segment_is_bad_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000001.seg");
    let garbage: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&path, garbage).unwrap();
    match JournalWriter::open(small_config(dir.path())) {
        Err(JournalError::BadHeader {
            path: p,
            offset: 0,
            reason,
        }) => {
            assert_eq!(p, path);
            assert!(reason.contains("magic"), "{reason}");
        }
        other => panic!("expected BadHeader, got {other:?}"),
    }
    verify_names(dir.path(), &path);
}

#[test]
fn truncated_header_is_bad_header_at_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let segments = journal_with_segments(dir.path(), 100);
    let last = segments.last().unwrap();
    let bytes = std::fs::read(last).unwrap();
    std::fs::write(last, &bytes[..60]).unwrap();
    match JournalWriter::open(small_config(dir.path())) {
        Err(JournalError::BadHeader { path, offset, .. }) => {
            assert_eq!(&path, last);
            assert_eq!(offset, 60);
        }
        other => panic!("expected BadHeader, got {other:?}"),
    }
    verify_names(dir.path(), last);
}

#[test]
fn newer_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let segments = journal_with_segments(dir.path(), 100);
    let mut bytes = std::fs::read(&segments[1]).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    std::fs::write(&segments[1], &bytes).unwrap();
    match JournalWriter::open(small_config(dir.path())) {
        Err(JournalError::NewerFormat {
            path,
            found: 7,
            supported: 1,
        }) => assert_eq!(path, segments[1]),
        other => panic!("expected NewerFormat, got {other:?}"),
    }
    verify_names(dir.path(), &segments[1]);
}

#[test]
fn deleted_middle_segment_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let segments = journal_with_segments(dir.path(), 100);
    std::fs::remove_file(&segments[1]).unwrap();
    match JournalWriter::open(small_config(dir.path())) {
        Err(JournalError::SequenceGap {
            path,
            expected,
            found,
            ..
        }) => {
            assert_eq!(path, segments[2]);
            assert!(found > expected);
        }
        other => panic!("expected SequenceGap, got {other:?}"),
    }
    verify_names(dir.path(), &segments[2]);
    // An offline reader stops with the same gap rather than jumping over it.
    let err = common::read_all(dir.path()).unwrap_err();
    assert!(matches!(err, JournalError::SequenceGap { .. }), "{err}");
}

#[test]
fn deleted_first_segment_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let segments = journal_with_segments(dir.path(), 100);
    std::fs::remove_file(&segments[0]).unwrap();
    match JournalWriter::open(small_config(dir.path())) {
        Err(JournalError::SequenceGap {
            path, expected: 1, ..
        }) => assert_eq!(path, segments[1]),
        other => panic!("expected SequenceGap, got {other:?}"),
    }
}

#[test]
fn segment_swapped_in_from_another_journal_breaks_the_chain() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let segments_a = journal_with_segments(a.path(), 100);
    // Same sizes, different contents: same segment boundaries and names.
    let mut writer = JournalWriter::open(small_config(b.path())).unwrap();
    for i in 0..100u64 {
        writer.append(10 + i, 1, &[0xAB; 500]).unwrap();
    }
    writer.close().unwrap();
    let segments_b = segment_paths(b.path());
    assert_eq!(segments_b.len(), segments_a.len());
    std::fs::copy(&segments_a[1], &segments_b[1]).unwrap();
    match JournalWriter::open(small_config(b.path())) {
        Err(JournalError::BrokenChain { path, .. }) => assert_eq!(path, segments_b[1]),
        other => panic!("expected BrokenChain, got {other:?}"),
    }
    verify_names(b.path(), &segments_b[1]);
}

#[test]
fn renamed_segment_disagrees_with_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let segments = journal_with_segments(dir.path(), 100);
    let last = segments.last().unwrap();
    let renamed = dir.path().join("00000000000000999999.seg");
    std::fs::rename(last, &renamed).unwrap();
    match JournalWriter::open(small_config(dir.path())) {
        Err(JournalError::BadHeader { path, reason, .. }) => {
            assert_eq!(path, renamed);
            assert!(reason.contains("file name"), "{reason}");
        }
        other => panic!("expected BadHeader, got {other:?}"),
    }
    // A .seg file whose name is not a sequence number is reported, not skipped.
    std::fs::rename(&renamed, dir.path().join("backup.seg")).unwrap();
    assert!(matches!(
        JournalWriter::open(small_config(dir.path())),
        Err(JournalError::BadHeader { .. })
    ));
}

#[test]
fn unrelated_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    journal_with_segments(dir.path(), 100);
    std::fs::write(dir.path().join("NOTES.txt"), "operator notes").unwrap();
    let writer = JournalWriter::open(small_config(dir.path())).unwrap();
    assert_eq!(writer.last_seq(), 100);
}

#[test]
fn oversized_record_is_refused_and_the_maximum_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path());
    let max = config.max_payload_bytes;
    let mut writer = JournalWriter::open(config).unwrap();
    assert_eq!(writer.append(1, 1, &vec![7; max]).unwrap(), 1);
    match writer.append(2, 1, &vec![7; max + 1]) {
        Err(JournalError::RecordTooLarge {
            payload_bytes,
            max_payload_bytes,
        }) => {
            assert_eq!((payload_bytes, max_payload_bytes), (max + 1, max));
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    // The refused append consumed nothing.
    assert_eq!(writer.append(2, 1, b"next").unwrap(), 2);
}

#[test]
fn timestamps_never_go_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = JournalWriter::open(small_config(dir.path())).unwrap();
    writer.append(1_000, 1, b"a").unwrap();
    writer.append(1_000, 1, b"same time is fine").unwrap();
    assert!(matches!(
        writer.append(999, 1, b"b"),
        Err(JournalError::TimestampRegression {
            timestamp_ns: 999,
            previous_ns: 1_000
        })
    ));
    writer.close().unwrap();
    // Also across a reopen.
    let mut writer = JournalWriter::open(small_config(dir.path())).unwrap();
    assert!(matches!(
        writer.append(500, 1, b"b"),
        Err(JournalError::TimestampRegression { .. })
    ));
}

#[test]
fn second_writer_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let _writer = JournalWriter::open(small_config(dir.path())).unwrap();
    assert!(ordo_journal::writer_is_live(dir.path()));
    assert!(matches!(
        JournalWriter::open(small_config(dir.path())),
        Err(JournalError::Locked { .. })
    ));
}

#[test]
fn invalid_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path());
    config.segment_bytes = 4096;
    config.max_payload_bytes = 8192; // a maximal record would not fit a segment
    assert!(matches!(
        JournalWriter::open(config),
        Err(JournalError::Config(_))
    ));
}

#[test]
fn verify_of_a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(verify(&dir.path().join("nope")).is_err());
}
