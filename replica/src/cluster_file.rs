//! The cluster file: who the members are and the consensus timings (`docs/REPLICATION.md`, 7).
//!
//! ```toml
//! [cluster]
//! heartbeat_ms = 40
//! election_timeout_min_ms = 120
//! election_timeout_max_ms = 240
//!
//! [[member]]
//! id = 1
//! fix = "127.0.0.1:9881"     # its FIX listener
//! raft = "127.0.0.1:9891"    # its Aeron UDP endpoint
//! data_dir = "data/m1"       # optional: --data-dir overrides, else ./ordo-data-m<id>
//! ```
//!
//! The same file holds the node settings every member shares (sessions, instruments, limits:
//! the keys of `ordo node --config`); this module reads only `[cluster]` and `[[member]]` and
//! leaves the rest to the node.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::types::NodeId;

/// Most members a cluster may have.
pub const MAX_MEMBERS: usize = 7;

/// Consensus timings, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timings {
    /// Leader heartbeat interval.
    pub heartbeat_ms: u64,
    /// Election timeout range: a follower that hears no leader for a time drawn from it
    /// campaigns; a leader that hears no quorum for the maximum stops serving.
    pub election_timeout_min_ms: u64,
    /// See `election_timeout_min_ms`.
    pub election_timeout_max_ms: u64,
    /// Entries the leader proposes and has not had answered, at most. While that many are in
    /// flight, inputs wait and the next entry carries all of them: fewer, bigger entries under
    /// load (an entry costs raft and the transport far more than an event does), one entry per
    /// input when idle.
    pub max_in_flight_entries: usize,
}

/// Most entries in flight a cluster file may ask for.
pub const MAX_IN_FLIGHT_ENTRIES: usize = 64;

impl Default for Timings {
    fn default() -> Self {
        Timings {
            heartbeat_ms: 40,
            election_timeout_min_ms: 120,
            election_timeout_max_ms: 240,
            max_in_flight_entries: 4,
        }
    }
}

/// One member.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberEntry {
    /// Its id (1..).
    pub id: NodeId,
    /// Its FIX listener (clients connect there; followers answer with the leader's).
    pub fix: SocketAddr,
    /// Its Aeron UDP endpoint (members' traffic).
    pub raft: SocketAddr,
    /// Its data directory, if the file names one.
    pub data_dir: Option<PathBuf>,
}

/// A parsed, checked cluster file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterFile {
    /// Timings.
    pub timings: Timings,
    /// Members, by id.
    pub members: Vec<MemberEntry>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    cluster: Timings,
    #[serde(default)]
    member: Vec<MemberEntry>,
}

/// What is wrong with a cluster file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cluster file: {0}")]
pub struct ClusterFileError(pub String);

impl ClusterFile {
    /// Parses and checks a cluster file's text. Keys other than `[cluster]` and `[[member]]`
    /// (the node settings) are left alone.
    pub fn parse(text: &str) -> Result<ClusterFile, ClusterFileError> {
        let table: toml::Table = text.parse().map_err(|e| ClusterFileError(format!("{e}")))?;
        let mut ours = toml::Table::new();
        for key in ["cluster", "member"] {
            if let Some(v) = table.get(key) {
                ours.insert(key.to_string(), v.clone());
            }
        }
        let raw: Raw = ours.try_into().map_err(|e| ClusterFileError(format!("{e}")))?;
        let file = ClusterFile {
            timings: raw.cluster,
            members: raw.member,
        };
        file.check()?;
        Ok(file)
    }

    fn check(&self) -> Result<(), ClusterFileError> {
        let t = self.timings;
        if t.heartbeat_ms == 0 || t.heartbeat_ms >= t.election_timeout_min_ms {
            return Err(ClusterFileError(format!(
                "heartbeat_ms {} must be above 0 and below election_timeout_min_ms {}",
                t.heartbeat_ms, t.election_timeout_min_ms
            )));
        }
        if t.election_timeout_min_ms >= t.election_timeout_max_ms {
            return Err(ClusterFileError(format!(
                "election_timeout_min_ms {} must be below election_timeout_max_ms {}",
                t.election_timeout_min_ms, t.election_timeout_max_ms
            )));
        }
        if t.max_in_flight_entries == 0 || t.max_in_flight_entries > MAX_IN_FLIGHT_ENTRIES {
            return Err(ClusterFileError(format!(
                "max_in_flight_entries {}: 1 to {MAX_IN_FLIGHT_ENTRIES}",
                t.max_in_flight_entries
            )));
        }
        if self.members.is_empty() || self.members.len() > MAX_MEMBERS {
            return Err(ClusterFileError(format!(
                "{} members: 1 to {MAX_MEMBERS}",
                self.members.len()
            )));
        }
        let (mut ids, mut addrs) = (BTreeSet::new(), BTreeSet::new());
        for m in &self.members {
            if m.id == 0 || !ids.insert(m.id) {
                return Err(ClusterFileError(format!(
                    "member id {} is 0 or given twice",
                    m.id
                )));
            }
            for a in [m.fix, m.raft] {
                if !addrs.insert(a) {
                    return Err(ClusterFileError(format!("address {a} is given twice")));
                }
            }
        }
        Ok(())
    }

    /// The member with id `id`.
    pub fn member(&self, id: NodeId) -> Result<&MemberEntry, ClusterFileError> {
        self.members
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| ClusterFileError(format!("no member {id} (members: {:?})", self.ids())))
    }

    /// The members' ids.
    pub fn ids(&self) -> Vec<NodeId> {
        self.members.iter().map(|m| m.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_three_member_file_parses() {
        let text = include_str!("../../tests/cluster/local3.toml");
        let f = ClusterFile::parse(text).unwrap();
        assert_eq!(f.ids(), [1, 2, 3]);
        let fix: Vec<u16> = f.members.iter().map(|m| m.fix.port()).collect();
        assert_eq!(fix, [9881, 9882, 9883]);
        assert_eq!(f.timings, Timings::default());
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let member = |id: u64, port: u16| {
            format!(
                "[[member]]\nid = {id}\nfix = \"127.0.0.1:{port}\"\nraft = \"127.0.0.1:{}\"\n",
                port + 10
            )
        };
        let two = format!("{}{}", member(1, 9000), member(1, 9001));
        assert!(ClusterFile::parse(&two).unwrap_err().0.contains("given twice"));
        let same_addr = format!("{}{}", member(1, 9000), member(2, 9000));
        assert!(ClusterFile::parse(&same_addr).unwrap_err().0.contains("address"));
        let timings = format!("[cluster]\nheartbeat_ms = 200\n{}", member(1, 9000));
        assert!(
            ClusterFile::parse(&timings)
                .unwrap_err()
                .0
                .contains("heartbeat_ms")
        );
        let in_flight = format!("[cluster]\nmax_in_flight_entries = 0\n{}", member(1, 9000));
        assert!(
            ClusterFile::parse(&in_flight)
                .unwrap_err()
                .0
                .contains("max_in_flight_entries 0")
        );
        assert!(ClusterFile::parse("").unwrap_err().0.contains("0 members"));
        let at_bound: String = (1..=MAX_MEMBERS as u64)
            .map(|i| member(i, 9000 + 20 * i as u16))
            .collect();
        assert!(ClusterFile::parse(&at_bound).is_ok());
        let over: String = (1..=MAX_MEMBERS as u64 + 1)
            .map(|i| member(i, 9000 + 20 * i as u16))
            .collect();
        assert!(ClusterFile::parse(&over).unwrap_err().0.contains("8 members"));
        let unknown = format!("[cluster]\nhartbeat_ms = 10\n{}", member(1, 9000));
        assert!(ClusterFile::parse(&unknown).is_err());
        let f = ClusterFile::parse(&member(4, 9000)).unwrap();
        assert!(f.member(5).unwrap_err().0.contains("no member 5"));
        // Node settings beside the cluster's are left to the node.
        let with_node = format!("durability = \"batch\"\n{}", member(1, 9000));
        assert!(ClusterFile::parse(&with_node).is_ok());
    }
}
