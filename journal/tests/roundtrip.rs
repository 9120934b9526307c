//! Random append sequences (sizes, batch boundaries, reopen in between) read back identically,
//! from the start and from any sequence number.

mod common;

use common::{Written, payload, read_all, small_config};
use ordo_journal::{JournalReader, JournalWriter};
use proptest::prelude::*;

/// One step of a random session with the writer.
#[derive(Debug, Clone)]
enum Step {
    /// A batch of appends with these payload sizes, published together.
    Batch(Vec<usize>),
    /// Close and reopen the writer.
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => prop::collection::vec(prop_oneof![4 => 0usize..200, 1 => 200usize..=2048], 1..20).prop_map(Step::Batch),
        1 => Just(Step::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn appends_read_back_identically(steps in prop::collection::vec(step(), 1..30), seek in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = JournalWriter::open(small_config(dir.path())).unwrap();
        let mut written: Vec<Written> = Vec::new();
        for step in steps {
            match step {
                Step::Reopen => {
                    writer.close().unwrap();
                    writer = JournalWriter::open(small_config(dir.path())).unwrap();
                    prop_assert!(writer.recovery().torn_tail.is_none());
                    prop_assert_eq!(writer.next_seq(), written.len() as u64 + 1);
                }
                Step::Batch(sizes) => {
                    let mut batch = writer.batch();
                    for len in sizes {
                        let seq = written.len() as u64 + 1;
                        let p = payload(seq, len);
                        let ts = 1_000 + seq / 3; // equal timestamps are allowed
                        prop_assert_eq!(batch.append(ts, 9, &p).unwrap(), seq);
                        written.push(Written { seq, timestamp_ns: ts, kind: 9, payload: p });
                    }
                    batch.commit();
                    prop_assert_eq!(writer.positions().written(), written.len() as u64);
                }
            }
        }
        writer.close().unwrap();
        prop_assert_eq!(read_all(dir.path()).unwrap(), written.clone());

        // Open at a random sequence number (through the sparse index) and read the rest.
        if !written.is_empty() {
            let from = seek.index(written.len()) as u64 + 1;
            let mut reader = JournalReader::open(dir.path(), from).unwrap();
            let mut got = Vec::new();
            while let Some(r) = reader.next().unwrap() {
                got.push(r.seq());
            }
            prop_assert_eq!(got, (from..=written.len() as u64).collect::<Vec<_>>());
        }
        let report = ordo_journal::verify(dir.path()).unwrap();
        prop_assert!(report.is_clean(), "{:?}", report.problems);
        prop_assert_eq!(report.records, written.len() as u64);
    }
}

#[test]
fn archived_payloads_are_read_in_place() {
    #[derive(rkyv::Archive, rkyv::Serialize, Debug, PartialEq)]
    struct Order {
        id: u64,
        price_ticks: i64,
        qty_lots: u32,
        symbol: String,
    }
    let dir = tempfile::tempdir().unwrap();
    let mut writer = JournalWriter::open(small_config(dir.path())).unwrap();
    for id in 1..=100u64 {
        let order = Order {
            id,
            price_ticks: 10_000 + id as i64,
            qty_lots: id as u32,
            symbol: format!("SYM{id}"),
        };
        writer.append_archived(id, 1, &order).unwrap();
    }
    writer.close().unwrap();
    let mut reader = JournalReader::open(dir.path(), 1).unwrap();
    let mut n = 0;
    while let Some(r) = reader.next().unwrap() {
        assert_eq!(
            r.payload().as_ptr() as usize % 16,
            0,
            "payloads are 16-byte aligned"
        );
        let order = r.access::<ArchivedOrder>().unwrap();
        assert_eq!(order.id, r.seq());
        assert_eq!(order.symbol.as_str(), format!("SYM{}", r.seq()));
        n += 1;
    }
    assert_eq!(n, 100);
}
