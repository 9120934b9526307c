//! The application data of a raft entry: a batch of sequenced records, exactly as they go into
//! the journal (timestamp, kind, payload), so that every member appends the same bytes.
//!
//! Layout of a batch's bytes, little-endian, records back to back:
//!
//! ```text
//! timestamp_ns u64 | kind u16 | payload_len u32 | payload (payload_len bytes)
//! ```

use serde::{Deserialize, Serialize};

/// Header bytes of one record in a batch.
const RECORD_HEADER_BYTES: usize = 8 + 2 + 4;

/// Most bytes a batch may hold (one raft entry). openraft sends up to
/// [`crate::member::MAX_PAYLOAD_ENTRIES`] of them per AppendEntries, which must stay below
/// Aeron's largest message (an eighth of the 16 MiB default term: 2 MiB) and
/// [`crate::wire::MAX_MESSAGE_BYTES`].
pub const MAX_BATCH_BYTES: usize = 128 * 1024;

/// A batch of records for one raft entry.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    bytes: Vec<u8>,
    records: u32,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batch({} records, {} bytes)", self.records, self.bytes.len())
    }
}

impl std::fmt::Display for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// A batch whose bytes do not hold whole records, or one over its bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Adding the record would take the batch over [`MAX_BATCH_BYTES`].
    #[error("batch full: {bytes} bytes, at most {MAX_BATCH_BYTES}")]
    Full {
        /// The size the batch would have had.
        bytes: usize,
    },
    /// The bytes end inside a record (a damaged or foreign message).
    #[error("batch damaged at byte {offset}: {reason}")]
    Damaged {
        /// Where the bad record starts.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// One record of a batch, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRecord<'a> {
    /// Timestamp (ns since the Unix epoch, UTC).
    pub timestamp_ns: u64,
    /// Record kind (the journal's opaque kind).
    pub kind: u16,
    /// Payload.
    pub payload: &'a [u8],
}

impl Batch {
    /// An empty batch with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        Batch {
            bytes: Vec::with_capacity(bytes.min(MAX_BATCH_BYTES)),
            records: 0,
        }
    }

    /// Appends a record; refused (and the batch unchanged) beyond [`MAX_BATCH_BYTES`].
    pub fn push(&mut self, timestamp_ns: u64, kind: u16, payload: &[u8]) -> Result<(), BatchError> {
        let bytes = self.bytes.len() + RECORD_HEADER_BYTES + payload.len();
        if bytes > MAX_BATCH_BYTES {
            return Err(BatchError::Full { bytes });
        }
        self.bytes.extend_from_slice(&timestamp_ns.to_le_bytes());
        self.bytes.extend_from_slice(&kind.to_le_bytes());
        self.bytes
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(payload);
        self.records += 1;
        Ok(())
    }

    /// Records in the batch.
    pub fn len(&self) -> u32 {
        self.records
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Bytes the batch holds.
    pub fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    /// The records, in order; an error for bytes that do not hold exactly `len()` whole
    /// records (a batch that came over the network is checked before it is appended).
    pub fn records(&self) -> Result<Vec<BatchRecord<'_>>, BatchError> {
        let mut out = Vec::with_capacity(self.records as usize);
        let mut at = 0;
        let b = &self.bytes;
        while at < b.len() {
            let damaged = |reason| BatchError::Damaged { offset: at, reason };
            let head = b
                .get(at..at + RECORD_HEADER_BYTES)
                .ok_or(damaged("record header cut short"))?;
            let timestamp_ns = u64::from_le_bytes(head[0..8].try_into().expect("8 bytes"));
            let kind = u16::from_le_bytes(head[8..10].try_into().expect("2 bytes"));
            let len = u32::from_le_bytes(head[10..14].try_into().expect("4 bytes")) as usize;
            let start = at + RECORD_HEADER_BYTES;
            let payload = b
                .get(start..start.saturating_add(len))
                .ok_or(damaged("payload cut short"))?;
            out.push(BatchRecord {
                timestamp_ns,
                kind,
                payload,
            });
            at = start + len;
        }
        if out.len() != self.records as usize {
            return Err(BatchError::Damaged {
                offset: 0,
                reason: "record count does not match the records",
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_as_pushed_and_damage_is_named() {
        let mut b = Batch::default();
        b.push(10, 1, b"first").unwrap();
        b.push(11, 1, b"").unwrap();
        b.push(12, 7, &[0xab; 100]).unwrap();
        let r = b.records().unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[0].timestamp_ns, r[0].kind, r[0].payload),
            (10, 1, &b"first"[..])
        );
        assert_eq!(r[1].payload, b"");
        assert_eq!((r[2].kind, r[2].payload.len()), (7, 100));

        let mut cut = b.clone();
        cut.bytes.truncate(cut.bytes.len() - 1);
        assert!(matches!(
            cut.records(),
            Err(BatchError::Damaged {
                reason: "payload cut short",
                ..
            })
        ));
        let mut miscounted = b.clone();
        miscounted.records = 4;
        assert!(matches!(miscounted.records(), Err(BatchError::Damaged { .. })));
    }

    #[test]
    fn a_batch_refuses_what_would_take_it_over_its_bound() {
        let mut b = Batch::default();
        let big = vec![0u8; MAX_BATCH_BYTES / 2];
        b.push(1, 1, &big).unwrap();
        assert!(matches!(b.push(2, 1, &big), Err(BatchError::Full { .. })));
        assert_eq!(b.len(), 1);
    }
}
