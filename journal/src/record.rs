//! A validated record, borrowed from the segment it lives in.

use crate::error::{JournalError, Result};

/// One journal record: its checksum was verified before this value was made.
///
/// The payload borrows the mapped segment (zero-copy) and starts 16-byte aligned, so an rkyv
/// archive can be accessed in place with [`Record::access`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    seq: u64,
    timestamp_ns: u64,
    kind: u16,
    crc: u32,
    offset: u64,
    payload: &'a [u8],
}

impl<'a> Record<'a> {
    pub(crate) fn new(
        seq: u64,
        timestamp_ns: u64,
        kind: u16,
        crc: u32,
        offset: u64,
        payload: &'a [u8],
    ) -> Self {
        Record {
            seq,
            timestamp_ns,
            kind,
            crc,
            offset,
            payload,
        }
    }

    /// Gap-free sequence number (the first record of a journal is 1).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Nanoseconds since the Unix epoch (UTC), as stamped by the sequencer.
    pub fn timestamp_ns(&self) -> u64 {
        self.timestamp_ns
    }

    /// Record kind, defined by the layers above the journal.
    pub fn kind(&self) -> u16 {
        self.kind
    }

    /// The frame's crc32, which the next segment's header chains to.
    pub fn crc(&self) -> u32 {
        self.crc
    }

    /// Byte offset of the frame inside its segment file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The payload bytes.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Validates the payload as an rkyv archive of type `A` (an `Archived*` type) and returns a
    /// reference into the mapped segment: no copy, no deserialization.
    pub fn access<A>(&self) -> Result<&'a A>
    where
        A: rkyv::Portable
            + for<'v> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'v, rkyv::rancor::Error>>,
    {
        rkyv::access::<A, rkyv::rancor::Error>(self.payload).map_err(|e| JournalError::Payload {
            seq: self.seq,
            reason: e.to_string(),
        })
    }
}
