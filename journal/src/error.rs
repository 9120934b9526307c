//! Typed errors of the journal. Every error that concerns bytes on disk names the file and, where
//! it applies, the byte offset, so that an operator can find the damage with `xxd` alone.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong opening, writing or reading a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// An operating-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing ("open", "fsync", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A segment or index file does not start with a valid header.
    #[error("{path}: bad header at offset {offset}: {reason}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// Byte offset of the offending header field.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// A file was written by a newer version of the format than this build understands.
    #[error("{path}: format version {found} is newer than the newest this build reads ({supported})")]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// Version found in the header.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },

    /// A frame that is followed by good data does not validate: damage in the middle of the log.
    /// It is never skipped and never returned as data.
    #[error("{path}: corrupt record at offset {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the first byte of the bad frame.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// Sequence numbers do not follow each other (between records or between segments).
    #[error("{path}: sequence gap at offset {offset}: expected {expected}, found {found}")]
    SequenceGap {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the segment header or frame that carries the unexpected number.
        offset: u64,
        /// The next sequence number the journal should hold.
        expected: u64,
        /// What it holds.
        found: u64,
    },

    /// A segment's header does not chain to the previous segment's last record: a segment was
    /// deleted, reordered or swapped.
    #[error(
        "{path}: segment does not chain to its predecessor: header says previous last record crc {expected:#010x}, \
         previous segment ends with {found:#010x}"
    )]
    BrokenChain {
        /// The segment file whose header does not match.
        path: PathBuf,
        /// Checksum recorded in this segment's header.
        expected: u32,
        /// Checksum of the previous segment's last record.
        found: u32,
    },

    /// A record is larger than the configured maximum.
    #[error("record of {payload_bytes} payload bytes exceeds the maximum of {max_payload_bytes}")]
    RecordTooLarge {
        /// Requested payload size.
        payload_bytes: usize,
        /// Configured maximum payload size.
        max_payload_bytes: usize,
    },

    /// Timestamps must never go backwards inside a journal.
    #[error("timestamp {timestamp_ns} ns is before the previous record's {previous_ns} ns")]
    TimestampRegression {
        /// The rejected timestamp.
        timestamp_ns: u64,
        /// The last record's timestamp.
        previous_ns: u64,
    },

    /// Another writer holds the journal directory.
    #[error("{path}: journal is locked by another writer")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// A truncation would remove records that are already committed.
    #[error("cannot truncate after {after_seq}: records up to {committed_seq} are committed")]
    BelowCommitted {
        /// Requested truncation point.
        after_seq: u64,
        /// The committed watermark.
        committed_seq: u64,
    },

    /// A sequence number outside what the journal holds was asked for.
    #[error("sequence {seq} is outside the journal ({first_seq}..={last_seq})")]
    OutOfRange {
        /// The requested sequence number.
        seq: u64,
        /// First sequence number held.
        first_seq: u64,
        /// Last sequence number held (0 if empty).
        last_seq: u64,
    },

    /// The journal was truncated under a reader that had already read past the cut.
    #[error(
        "journal was truncated below this reader's position (read up to {read_seq}, now ends at {last_seq})"
    )]
    TruncatedUnderReader {
        /// Last sequence number the reader returned.
        read_seq: u64,
        /// Last sequence number the journal now holds.
        last_seq: u64,
    },

    /// A background fsync failed: nothing after the durable position can ever be acknowledged,
    /// and the writer refuses further appends (an fsync error cannot be retried safely).
    #[error("fsync failed, journal is read-only from now on: {0}")]
    DurabilityFailed(String),

    /// The configuration is inconsistent.
    #[error("invalid journal configuration: {0}")]
    Config(String),

    /// An archived payload failed rkyv validation.
    #[error("record {seq}: payload does not validate as the requested type: {reason}")]
    Payload {
        /// Sequence number of the record.
        seq: u64,
        /// The validator's message.
        reason: String,
    },
}

/// Shorthand for journal results.
pub type Result<T> = std::result::Result<T, JournalError>;

impl JournalError {
    /// Wraps an I/O error with the operation and path.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        JournalError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
