//! The cluster file: who the members are and the consensus timings (`docs/REPLICATION.md`, 7).
//!
//! ```toml
//! [cluster]
//! heartbeat_ms = 50
//! leader_timeout_ms = 150
//! election_timeout_min_ms = 190
//! election_timeout_max_ms = 250
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
    /// A leader that has heard no quorum's answer for this long stops serving FIX
    /// (`docs/REPLICATION.md`, 4.4); every voter refuses candidates for a little longer
    /// ([`Timings::lease_ms`]) after it last heard a leader.
    pub leader_timeout_ms: u64,
    /// Election timeout range. A member campaigns once it has been quiet (no leader heard, no
    /// vote granted, no campaign) for a time drawn from a narrow slice of its own, by its place
    /// among the ids ([`Timings::election_slice`]; `docs/REPLICATION.md`, 4.5). At least the
    /// lease plus half a heartbeat.
    pub election_timeout_min_ms: u64,
    /// See `election_timeout_min_ms`.
    pub election_timeout_max_ms: u64,
    /// Entries the leader proposes and has not had answered, at most. While that many are in
    /// flight, inputs wait and the next entry carries all of them: fewer, bigger entries under
    /// load (an entry costs raft and the transport far more than an event does), one entry per
    /// input when idle.
    pub max_in_flight_entries: usize,
    /// Every this many records each member's engine takes its state hash, and the leader's is
    /// written in the log for every member to compare (`docs/REPLICATION.md`, 3.3); 0: none.
    pub checkpoint_every: u64,
    /// Every this many records a follower writes a snapshot of its engine and derived session
    /// state, from which it restarts (`docs/REPLICATION.md`, 6.3); 0: none.
    pub snapshot_every: u64,
    /// How long a new leader waits before it disconnects, for the venue, the cancel-on-disconnect
    /// sessions that have not logged on to it again (their orders are then cancelled); 0: at
    /// once, in the first entry of its term (`docs/REPLICATION.md`, 8.3). At most
    /// [`MAX_TAKEOVER_GRACE_MS`].
    pub takeover_grace_ms: u64,
    /// The longest an idle member's embedded Aeron driver sleeps, us (a send or an arriving
    /// datagram wakes it; this bounds how late the driver's own duties run when idle): idle
    /// CPU against those duties' timeliness. 10 to [`MAX_TRANSPORT_IDLE_US`].
    pub transport_idle_max_us: u64,
}

/// The longest driver sleep a cluster file may ask for (100 ms).
pub const MAX_TRANSPORT_IDLE_US: u64 = 100_000;

/// The longest takeover grace a cluster file may ask for: a minute (orders of a session that
/// lost its connection should not rest unattended for longer).
pub const MAX_TAKEOVER_GRACE_MS: u64 = 60_000;

/// Most entries in flight a cluster file may ask for.
pub const MAX_IN_FLIGHT_ENTRIES: usize = 64;

impl Default for Timings {
    fn default() -> Self {
        Timings {
            heartbeat_ms: 50,
            leader_timeout_ms: 150,
            election_timeout_min_ms: 190,
            election_timeout_max_ms: 250,
            max_in_flight_entries: 4,
            checkpoint_every: 100_000,
            snapshot_every: 1_000_000,
            takeover_grace_ms: 0,
            transport_idle_max_us: 4_000,
        }
    }
}

impl Timings {
    /// The campaign time range of the member at `place` (0-based, by id) among `count`:
    /// `[lo, lo + width)` with `lo` spread over the cluster's range by place and `width` a
    /// quarter of the spacing (`docs/REPLICATION.md`, 4.5). The spacing keeps two members from
    /// campaigning together; the width is narrow because all of it adds to a failover.
    pub fn election_slice(&self, place: u64, count: u64) -> (u64, u64) {
        assert!(place < count, "place {place} among {count}");
        let step = (self.election_timeout_max_ms - self.election_timeout_min_ms) / count;
        let lo = self.election_timeout_min_ms + place * step;
        (lo, lo + (step / 4).max(1))
    }

    /// How long every voter refuses candidates after it last heard a leader, ms: the leader's
    /// cut-off plus its watch's period plus 1, so a leader without a quorum has stopped serving
    /// before any vote for a successor is granted.
    pub fn lease_ms(&self) -> u64 {
        self.leader_timeout_ms + self.watch_period_ms() + 1
    }

    /// How often a member's role watch looks at its metrics when nothing changes, ms.
    pub fn watch_period_ms(&self) -> u64 {
        (self.heartbeat_ms / 4).max(1)
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
        if !(10..=MAX_TRANSPORT_IDLE_US).contains(&t.transport_idle_max_us) {
            return Err(ClusterFileError(format!(
                "transport_idle_max_us {} must be 10 to {MAX_TRANSPORT_IDLE_US}",
                t.transport_idle_max_us
            )));
        }
        if t.takeover_grace_ms > MAX_TAKEOVER_GRACE_MS {
            return Err(ClusterFileError(format!(
                "takeover_grace_ms {} is above the bound of {MAX_TAKEOVER_GRACE_MS}",
                t.takeover_grace_ms
            )));
        }
        if t.heartbeat_ms == 0 || t.heartbeat_ms >= t.leader_timeout_ms {
            return Err(ClusterFileError(format!(
                "heartbeat_ms {} must be above 0 and below leader_timeout_ms {}",
                t.heartbeat_ms, t.leader_timeout_ms
            )));
        }
        if t.election_timeout_min_ms >= t.election_timeout_max_ms {
            return Err(ClusterFileError(format!(
                "election_timeout_min_ms {} must be below election_timeout_max_ms {}",
                t.election_timeout_min_ms, t.election_timeout_max_ms
            )));
        }
        // A leader cut off from the majority stops serving before any voter's lease runs out,
        // and no member campaigns before then (`docs/REPLICATION.md`, 4.4, 4.5): half a
        // heartbeat of margin for followers that heard the last heartbeat a little apart.
        let earliest = t.lease_ms() + t.heartbeat_ms / 2;
        if t.election_timeout_min_ms < earliest {
            return Err(ClusterFileError(format!(
                "election_timeout_min_ms {} must be at least {earliest} ms: leader_timeout_ms {} plus {} ms for the leader's watch to see it is the voters' lease ({} ms), and no member may campaign before it has run out (plus half a heartbeat): raise election_timeout_min_ms or lower leader_timeout_ms",
                t.election_timeout_min_ms,
                t.leader_timeout_ms,
                t.watch_period_ms() + 1,
                t.lease_ms()
            )));
        }
        let count = self.members.len().clamp(1, MAX_MEMBERS) as u64;
        if (t.election_timeout_max_ms - t.election_timeout_min_ms) / count < 4 {
            return Err(ClusterFileError(format!(
                "election_timeout_max_ms - election_timeout_min_ms must be at least {} ms: 4 ms for each of {count} members' slices",
                4 * count
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

    /// The cluster of one that `ordo node` runs without `--cluster`: member 1, FIX on `fix`,
    /// the default timings. It has no peers, so it opens no transport; its raft address
    /// (loopback, port 0) is never bound.
    pub fn single(fix: SocketAddr) -> ClusterFile {
        let raft = SocketAddr::from(([127, 0, 0, 1], 0));
        let file = ClusterFile {
            timings: Timings::default(),
            members: vec![MemberEntry {
                id: 1,
                fix,
                raft,
                data_dir: None,
            }],
        };
        file.check().expect("the cluster of one is a valid cluster file");
        file
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
        assert_eq!(
            f.timings,
            Timings {
                checkpoint_every: 10_000,
                snapshot_every: 50_000,
                ..Timings::default()
            }
        );
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
        // A follower could campaign before a cut-off leader has stopped: the old timings.
        let early = |min: u64| {
            format!(
                "[cluster]\nelection_timeout_min_ms = {min}\nelection_timeout_max_ms = 250\n{}{}{}",
                member(1, 9000),
                member(2, 9020),
                member(3, 9040)
            )
        };
        assert!(
            ClusterFile::parse(&early(187))
                .unwrap_err()
                .0
                .contains("election_timeout_min_ms 187 must be at least 188 ms")
        );
        assert!(ClusterFile::parse(&early(188)).is_ok());
        let narrow = format!(
            "[cluster]\nelection_timeout_min_ms = 190\nelection_timeout_max_ms = 201\n{}{}{}",
            member(1, 9000),
            member(2, 9020),
            member(3, 9040)
        );
        assert!(
            ClusterFile::parse(&narrow)
                .unwrap_err()
                .0
                .contains("4 ms for each of 3")
        );
        let in_flight = format!("[cluster]\nmax_in_flight_entries = 0\n{}", member(1, 9000));
        assert!(
            ClusterFile::parse(&in_flight)
                .unwrap_err()
                .0
                .contains("max_in_flight_entries 0")
        );
        let grace = |ms: u64| format!("[cluster]\ntakeover_grace_ms = {ms}\n{}", member(1, 9000));
        assert!(ClusterFile::parse(&grace(MAX_TAKEOVER_GRACE_MS)).is_ok());
        assert!(
            ClusterFile::parse(&grace(MAX_TAKEOVER_GRACE_MS + 1))
                .unwrap_err()
                .0
                .contains("takeover_grace_ms 60001 is above the bound")
        );
        let idle = |us: u64| format!("[cluster]\ntransport_idle_max_us = {us}\n{}", member(1, 9000));
        assert!(ClusterFile::parse(&idle(MAX_TRANSPORT_IDLE_US)).is_ok());
        for us in [9, MAX_TRANSPORT_IDLE_US + 1] {
            assert!(
                ClusterFile::parse(&idle(us))
                    .unwrap_err()
                    .0
                    .contains(&format!("transport_idle_max_us {us} must be 10 to"))
            );
        }
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

    #[test]
    fn members_draw_from_narrow_slices_spread_by_place() {
        let t = Timings::default();
        assert_eq!(t.election_slice(0, 3), (190, 195));
        assert_eq!(t.election_slice(1, 3), (210, 215));
        assert_eq!(t.election_slice(2, 3), (230, 235));
        // The cut-off (150) and the watch's period (12) come before the voters' lease runs
        // out (163), and the earliest campaign after it, with half a heartbeat to spare.
        assert_eq!(t.watch_period_ms(), 12);
        assert_eq!(t.lease_ms(), 163);
        assert!(t.leader_timeout_ms + t.watch_period_ms() < t.lease_ms());
        assert!(t.lease_ms() + t.heartbeat_ms / 2 <= t.election_slice(0, 3).0);
        // Seven members: slices of one tick's width stay apart.
        let slices: Vec<(u64, u64)> = (0..7).map(|p| t.election_slice(p, 7)).collect();
        assert!(slices.windows(2).all(|w| w[0].1 <= w[1].0), "{slices:?}");
    }
}
