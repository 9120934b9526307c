//! Helpers shared by the journal's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;

use ordo_journal::{Durability, JournalConfig, JournalReader, JournalWriter};

/// A record as written, to compare with what is read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub seq: u64,
    pub timestamp_ns: u64,
    pub kind: u16,
    pub payload: Vec<u8>,
}

/// Small segments (16 KiB) and payloads (up to 2 KiB), so that tests roll segments often.
pub fn small_config(dir: &Path) -> JournalConfig {
    let mut c = JournalConfig::new(dir);
    c.segment_bytes = 16 * 1024;
    c.max_payload_bytes = 2 * 1024;
    c.durability = Durability::None;
    c.index_interval = 4;
    c
}

/// A payload whose bytes depend on `seq` and `len`, so that misplaced data cannot compare equal.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq.wrapping_mul(131) as usize + i * 7) as u8)
        .collect()
}

/// Appends records with the given payload sizes; returns what was written.
pub fn append_all(writer: &mut JournalWriter, sizes: &[usize]) -> Vec<Written> {
    let mut out = Vec::with_capacity(sizes.len());
    for &len in sizes {
        let seq = writer.next_seq();
        let ts = 1_000_000 + seq * 10;
        let kind = (seq % 7) as u16;
        let p = payload(seq, len);
        assert_eq!(writer.append(ts, kind, &p).unwrap(), seq);
        out.push(Written {
            seq,
            timestamp_ns: ts,
            kind,
            payload: p,
        });
    }
    out
}

/// Reads every record of a journal, offline.
pub fn read_all(dir: &Path) -> ordo_journal::Result<Vec<Written>> {
    let mut reader = JournalReader::open_offline(dir, 1)?;
    let mut out = Vec::new();
    while let Some(r) = reader.next()? {
        out.push(Written {
            seq: r.seq(),
            timestamp_ns: r.timestamp_ns(),
            kind: r.kind(),
            payload: r.payload().to_vec(),
        });
    }
    Ok(out)
}

/// Segment files of a journal, in log order.
pub fn segment_paths(dir: &Path) -> Vec<std::path::PathBuf> {
    ordo_journal::segment::list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|s| s.path)
        .collect()
}
