//! The raft log on a journal at open: an entry a crash cut short is removed (it was never
//! acknowledged), and a journal that is not a raft log is refused, naming the record.

use openraft::{CommittedLeaderId, EntryPayload};
use ordo_journal::{Durability, JournalConfig, JournalWriter};
use ordo_replica::batch::Batch;
use ordo_replica::entry::{self, KIND_ENTRY};
use ordo_replica::storage::{self, OpenError};
use ordo_replica::types::{Entry, LogId};

fn entry(index: u64, records: usize) -> Entry {
    let mut b = Batch::default();
    for r in 0..records {
        b.push(100 + r as u64, 1, b"event").unwrap();
    }
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(b),
    }
}

#[test]
fn an_entry_cut_short_by_a_crash_is_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut w = JournalWriter::open(JournalConfig::new(dir.path().join("journal"))).unwrap();
        // Entry 0, whole: its ENTRY record and two events.
        w.append(100, KIND_ENTRY, &entry::encode(&entry(0, 2), 2))
            .unwrap();
        w.append(100, 1, b"event").unwrap();
        w.append(101, 1, b"event").unwrap();
        // Entry 1 says three events follow; the crash left one.
        w.append(102, KIND_ENTRY, &entry::encode(&entry(1, 3), 3))
            .unwrap();
        w.append(102, 1, b"event").unwrap();
        w.close().unwrap();
    }
    let (log, _sm) = storage::open(dir.path(), Durability::None).unwrap();
    assert_eq!(log.positions().written(), 3, "entry 1's records were not removed");
}

#[test]
fn a_journal_that_is_not_a_raft_log_is_refused_with_the_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut w = JournalWriter::open(JournalConfig::new(dir.path().join("journal"))).unwrap();
        w.append(100, 1, b"an event with no ENTRY before it").unwrap();
        w.close().unwrap();
    }
    match storage::open(dir.path(), Durability::None) {
        Err(OpenError::NotARaftLog { seq: 1, reason, .. }) => assert!(reason.contains("kind 1"), "{reason}"),
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a single node's journal opened as a raft log"),
    }
}
