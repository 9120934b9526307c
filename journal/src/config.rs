//! Journal configuration and durability policies.

use std::path::PathBuf;

use crate::error::{JournalError, Result};
use crate::frame::frame_bytes;
use crate::segment::SEGMENT_HEADER_BYTES;

/// When appended records become durable, i.e. when the durable position advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The page cache is the durability: the durable position follows the written position at
    /// once. Survives a process crash, not a power loss or kernel crash.
    None,
    /// Group commit: a syncer thread fsyncs continuously; everything appended while an fsync is
    /// in flight is made durable by the next one. Survives power loss.
    Batch,
    /// A syncer thread fsyncs every `period_us` microseconds. Survives power loss, with at most
    /// `period_us` of appends not yet durable (and so not yet acknowledged).
    Interval {
        /// Period between fsyncs.
        period_us: u64,
    },
}

impl Durability {
    /// Whether a syncer thread calls fsync (any policy but `None`).
    pub fn fsyncs(self) -> bool {
        !matches!(self, Durability::None)
    }
}

impl std::str::FromStr for Durability {
    type Err = String;

    /// `none`, `batch`, `interval` (1 ms) or `interval:<us>`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "none" => Ok(Durability::None),
            "batch" => Ok(Durability::Batch),
            "interval" => Ok(Durability::Interval {
                period_us: DEFAULT_INTERVAL_US,
            }),
            other => match other.strip_prefix("interval:").map(str::parse::<u64>) {
                Some(Ok(period_us)) if period_us > 0 => Ok(Durability::Interval { period_us }),
                _ => Err(format!(
                    "unknown durability policy {other:?}: none, batch, interval or interval:<us>"
                )),
            },
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Durability::None => f.write_str("none"),
            Durability::Batch => f.write_str("batch"),
            Durability::Interval { period_us } => write!(f, "interval:{period_us}"),
        }
    }
}

/// Default fsync period of the `interval` policy.
pub const DEFAULT_INTERVAL_US: u64 = 1_000;
/// Default preallocated segment size.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Default largest payload.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// Default distance between sparse index entries, in records.
pub const DEFAULT_INDEX_INTERVAL: u64 = 1024;
/// Largest segment we accept (1 TiB): keeps every offset far inside u64 and off_t.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 40;

/// Everything a writer needs to know.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Directory holding the segments (created if missing).
    pub dir: PathBuf,
    /// Node id written into segment headers.
    pub node_id: u64,
    /// Preallocated size of each segment file, header included; a multiple of 4096.
    pub segment_bytes: u64,
    /// Largest payload accepted; larger appends get [`JournalError::RecordTooLarge`].
    pub max_payload_bytes: usize,
    /// Durability policy.
    pub durability: Durability,
    /// A sparse index entry every this many records.
    pub index_interval: u64,
    /// How much of the active segment, from the write offset, is faulted in writable when the
    /// writer opens it (at start): None, all of it, so appends take no page fault until the
    /// first roll; Some(n), n bytes, and appends fault in the rest 256 KiB at a time.
    /// Faulting in dirties the pages, so a journal that fills slower than the kernel's
    /// writeback delay (30 s) has its zeros written to disk once and its data again: a small
    /// window suits journals that are mostly idle (a session's message store: 16 MiB of
    /// zeros written per session ~30 s after every start otherwise). Segments after the
    /// first are mapped by the helper thread and faulted in by appends, 256 KiB ahead.
    pub open_prefault_bytes: Option<u64>,
}

impl JournalConfig {
    /// A configuration with the defaults for everything but the directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        JournalConfig {
            dir: dir.into(),
            node_id: 1,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            durability: Durability::Batch,
            index_interval: DEFAULT_INDEX_INTERVAL,
            open_prefault_bytes: None,
        }
    }

    /// Checks the limits against each other.
    pub fn validate(&self) -> Result<()> {
        if !self.segment_bytes.is_multiple_of(4096) {
            return Err(JournalError::Config(format!(
                "segment size {} is not a multiple of 4096",
                self.segment_bytes
            )));
        }
        if self.segment_bytes > MAX_SEGMENT_BYTES {
            return Err(JournalError::Config(format!(
                "segment size {} exceeds {MAX_SEGMENT_BYTES}",
                self.segment_bytes
            )));
        }
        if self.max_payload_bytes > (u32::MAX as usize) / 2 {
            return Err(JournalError::Config(format!(
                "max payload {} too large",
                self.max_payload_bytes
            )));
        }
        let needed = (SEGMENT_HEADER_BYTES + frame_bytes(self.max_payload_bytes)) as u64;
        if self.segment_bytes < needed {
            return Err(JournalError::Config(format!(
                "segment size {} cannot hold a record of the maximum payload size {} ({} bytes needed)",
                self.segment_bytes, self.max_payload_bytes, needed
            )));
        }
        if self.index_interval == 0 {
            return Err(JournalError::Config("index interval must be at least 1".into()));
        }
        if let Durability::Interval { period_us: 0 } = self.durability {
            return Err(JournalError::Config(
                "interval durability needs a period above 0 us".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_durability() {
        assert_eq!("none".parse::<Durability>().unwrap(), Durability::None);
        assert_eq!("batch".parse::<Durability>().unwrap(), Durability::Batch);
        assert_eq!(
            "interval:250".parse::<Durability>().unwrap(),
            Durability::Interval { period_us: 250 }
        );
        assert!("interval:0".parse::<Durability>().is_err());
        assert!("fsync".parse::<Durability>().is_err());
    }

    #[test]
    fn limits_are_checked() {
        let mut c = JournalConfig::new("/tmp/x");
        c.validate().unwrap();
        c.segment_bytes = 4096;
        assert!(c.validate().is_err(), "64 KiB records do not fit a 4 KiB segment");
        c.max_payload_bytes = 1024;
        c.validate().unwrap();
        c.segment_bytes = 5000;
        assert!(c.validate().is_err());
    }
}
