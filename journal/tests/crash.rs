//! Crash simulation: cut the last segment at random byte offsets and flip random bits in it.
//! Reopening yields exactly a prefix of what was written (the torn tail is truncated and
//! reported); damage before the tail is an error naming the file and offset, never data.

mod common;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use common::{Written, append_all, read_all, segment_paths, small_config};
use ordo_journal::{JournalError, JournalReader, JournalWriter};
use proptest::prelude::*;

/// Frames of the last segment: (offset, end offset, index into `written`).
struct LastSegment {
    path: PathBuf,
    frames: Vec<(u64, u64, usize)>,
    end_offset: u64,
}

/// Writes a journal of several segments; returns what was written and the last segment's layout.
fn build(dir: &Path, sizes: &[usize]) -> (Vec<Written>, LastSegment) {
    let mut writer = JournalWriter::open(small_config(dir)).unwrap();
    let written = append_all(&mut writer, sizes);
    writer.close().unwrap();
    let path = segment_paths(dir).pop().unwrap();
    let first_seq: u64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let mut reader = JournalReader::open(dir, first_seq).unwrap();
    let mut frames = Vec::new();
    while let Some(r) = reader.next().unwrap() {
        let end = r.offset() + ordo_journal::frame::frame_bytes(r.payload().len()) as u64;
        frames.push((r.offset(), end, (r.seq() - 1) as usize));
    }
    let end_offset = frames.last().map_or(128, |f| f.1);
    (
        written,
        LastSegment {
            path,
            frames,
            end_offset,
        },
    )
}

fn sizes() -> impl Strategy<Value = Vec<usize>> {
    // 40..120 records of 0..1500 bytes: a few 16 KiB segments.
    prop::collection::vec(0usize..1500, 40..120)
}

fn first_seq_of_last(last: &LastSegment, written: &[Written]) -> usize {
    last.frames.first().map_or(written.len(), |f| f.2)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn cut_last_segment_at_any_offset(sizes in sizes(), cut_fraction in 0.0f64..1.05) {
        let dir = tempfile::tempdir().unwrap();
        let (written, last) = build(dir.path(), &sizes);
        let cut = ((last.end_offset as f64) * cut_fraction) as u64;
        OpenOptions::new().write(true).open(&last.path).unwrap().set_len(cut).unwrap();

        if cut == 0 {
            // An empty segment file (created, renamed, contents lost) holds nothing: removed.
            let writer = JournalWriter::open(small_config(dir.path())).unwrap();
            prop_assert_eq!(writer.last_seq(), first_seq_of_last(&last, &written) as u64);
            prop_assert!(writer.recovery().removed_files.contains(&last.path));
            return Ok(());
        }
        if cut < 128 {
            // A cut header is not a crash our writer can produce (segments appear by rename
            // once their header is written): a typed error naming the file, never a guess.
            match JournalWriter::open(small_config(dir.path())) {
                Err(JournalError::BadHeader { path, .. }) => prop_assert_eq!(path, last.path.clone()),
                other => prop_assert!(false, "expected BadHeader, got {:?}", other.map(|w| w.last_seq())),
            }
            return Ok(());
        }
        // Records that survive: everything before the last segment, and the frames of the last
        // segment that end at or before the cut.
        let survivors = first_seq_of_last(&last, &written)
            + last.frames.iter().filter(|f| f.1 <= cut).count();
        let mut writer = JournalWriter::open(small_config(dir.path())).unwrap();
        prop_assert_eq!(writer.last_seq(), survivors as u64);
        let lost_bytes = last.frames.iter().any(|f| f.0 < cut && f.1 > cut);
        prop_assert_eq!(writer.recovery().torn_tail.is_some(), lost_bytes);
        if let Some((path, tail)) = &writer.recovery().torn_tail {
            prop_assert_eq!(path, &last.path);
            let cut_frame = last.frames.iter().find(|f| f.0 < cut && f.1 > cut).unwrap();
            prop_assert_eq!(tail.offset, cut_frame.0);
        }
        // The journal goes on from the prefix, and reads back as prefix + new records.
        let more = append_all(&mut writer, &[10, 20, 30]);
        writer.close().unwrap();
        let mut expected = written[..survivors].to_vec();
        for (i, w) in more.iter().enumerate() {
            prop_assert_eq!(w.seq, (survivors + i + 1) as u64);
        }
        expected.extend(more);
        let got = read_all(dir.path()).unwrap();
        prop_assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            prop_assert_eq!(g.seq, e.seq);
            prop_assert_eq!(&g.payload, &e.payload);
        }
        prop_assert!(ordo_journal::verify(dir.path()).unwrap().is_clean());
    }

    #[test]
    fn flipped_bits_in_last_segment(sizes in sizes(), at_fraction in 0.0f64..1.0, bits in prop::collection::vec(0u64..512, 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let (written, last) = build(dir.path(), &sizes);
        // Damage a window of 64 bytes starting anywhere up to 128 bytes past the last frame.
        let start = ((last.end_offset + 128) as f64 * at_fraction) as u64;
        let mut bytes = std::fs::read(&last.path).unwrap();
        let positions: Vec<u64> = bits.iter().map(|b| start + b / 8).collect();
        for (&pos, b) in positions.iter().zip(&bits) {
            bytes[pos as usize] ^= 1 << (b % 8);
        }
        std::fs::write(&last.path, &bytes).unwrap();
        // A flip can cancel another flip of the same bit: work from what actually changed.
        let original = {
            let mut o = bytes.clone();
            for (&pos, b) in positions.iter().zip(&bits) {
                o[pos as usize] ^= 1 << (b % 8);
            }
            o
        };
        let changed: Vec<u64> = (0..bytes.len() as u64).filter(|&i| bytes[i as usize] != original[i as usize]).collect();
        let Some(&first) = changed.first() else { return Ok(()) };
        let damaged = |f: &(u64, u64, usize)| changed.iter().any(|&c| c >= f.0 && c < f.1);
        let first_damaged = last.frames.iter().position(damaged);
        let intact_after = first_damaged.is_some_and(|k| last.frames[k + 1..].iter().any(|f| !damaged(f)));

        let result = JournalWriter::open(small_config(dir.path()));
        if first < 128 {
            let err = result.unwrap_err();
            prop_assert!(matches!(err, JournalError::BadHeader { .. } | JournalError::NewerFormat { .. }), "{err}");
            prop_assert!(err.to_string().contains(last.path.file_name().unwrap().to_str().unwrap()));
        } else if intact_after {
            // Mid-file damage: an error that names the file and the damaged frame's offset.
            let k = first_damaged.unwrap();
            match result {
                Err(JournalError::Corrupt { path, offset, .. }) => {
                    prop_assert_eq!(path, last.path.clone());
                    prop_assert_eq!(offset, last.frames[k].0);
                }
                other => prop_assert!(false, "expected Corrupt, got {:?}", other.map(|w| w.last_seq())),
            }
            // And a reader never returns it as data.
            let got = read_all(dir.path());
            prop_assert!(got.is_err());
        } else {
            // Torn tail: the damaged frames (all at the end) are cut, everything before stays.
            let writer = result.unwrap();
            let keep = first_seq_of_last(&last, &written) + first_damaged.unwrap_or(last.frames.len());
            prop_assert_eq!(writer.last_seq(), keep as u64);
            let (_, tail) = writer.recovery().torn_tail.clone().expect("torn tail reported");
            let expected_offset = first_damaged.map_or(last.end_offset, |k| last.frames[k].0);
            prop_assert_eq!(tail.offset, expected_offset);
            drop(writer);
            prop_assert_eq!(read_all(dir.path()).unwrap(), written[..keep].to_vec());
        }
    }
}

#[test]
fn damage_in_a_sealed_segment_is_reported_never_returned() {
    let dir = tempfile::tempdir().unwrap();
    let sizes: Vec<usize> = (0..200).map(|i| 100 + i % 300).collect();
    let (written, _) = build(dir.path(), &sizes);
    let segments = segment_paths(dir.path());
    assert!(segments.len() >= 3);
    // Flip a bit in the third record of the first segment.
    let mut reader = JournalReader::open(dir.path(), 3).unwrap();
    let offset = reader.next().unwrap().unwrap().offset();
    drop(reader);
    let mut bytes = std::fs::read(&segments[0]).unwrap();
    bytes[offset as usize + 40] ^= 0x04;
    std::fs::write(&segments[0], &bytes).unwrap();

    // Reading stops with an error at exactly that frame, after returning the two good ones.
    let mut reader = JournalReader::open_offline(dir.path(), 1).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().payload(), &written[0].payload[..]);
    assert_eq!(reader.next().unwrap().unwrap().payload(), &written[1].payload[..]);
    match reader.next() {
        Err(JournalError::Corrupt {
            path,
            offset: o,
            reason,
        }) => {
            assert_eq!(path, segments[0]);
            assert_eq!(o, offset);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // verify reports it (and only it) with the file and offset.
    let report = ordo_journal::verify(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let msg = report.problems[0].to_string();
    assert!(
        msg.contains("00000000000000000001.seg") && msg.contains(&format!("offset {offset}")),
        "{msg}"
    );
    // A reader opened past the damage (through the index) is not affected.
    let mut reader = JournalReader::open(dir.path(), 150).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().seq(), 150);
}

/// An offline reader (the tools, before the writer has reopened the journal) names a torn tail
/// as such, and damage followed by valid records as plain damage.
#[test]
fn offline_reader_names_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let (_, last) = build(dir.path(), &[200; 60]);
    let (offset, end, _) = *last.frames.last().unwrap();
    let read_error = |dir: &Path| {
        let mut reader = JournalReader::open_offline(dir, 1).unwrap();
        loop {
            match reader.next() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("read to the end without an error"),
                Err(e) => return e.to_string(),
            }
        }
    };
    // The last record half written: a torn tail.
    let mut bytes = std::fs::read(&last.path).unwrap();
    let original = bytes.clone();
    for b in &mut bytes[(offset + end) as usize / 2..end as usize] {
        *b = 0;
    }
    std::fs::write(&last.path, &bytes).unwrap();
    let e = read_error(dir.path());
    assert!(
        e.contains("torn tail") && e.contains(&format!("offset {offset}")),
        "{e}"
    );
    // A record damaged before the last one: damage, not a torn tail.
    let (earlier, _, _) = last.frames[last.frames.len() - 2];
    let mut bytes = original;
    bytes[earlier as usize + 40] ^= 0xff;
    std::fs::write(&last.path, &bytes).unwrap();
    let e = read_error(dir.path());
    assert!(
        !e.contains("torn tail") && e.contains(&format!("offset {earlier}")),
        "{e}"
    );
}
