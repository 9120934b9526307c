//! Capacities and engine-wide parameters. Every capacity is a hard bound: reaching it is a clean
//! reject, never an allocation on the event path.

use crate::command::AccountLimits;

/// Nanoseconds per day.
pub const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// The engine's configuration. It changes outputs (capacity rejects, day end), so a journal
/// must be replayed with the configuration it was produced with: the sequencer records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct EngineConfig {
    /// Instrument ids are `0..max_instruments`.
    pub max_instruments: u32,
    /// Account ids are `0..max_accounts`.
    pub max_accounts: u32,
    /// Session ids are `0..max_sessions`.
    pub max_sessions: u32,
    /// Orders alive at once (resting, or being processed).
    pub max_orders: u32,
    /// Price levels alive at once, all instruments and sides together.
    pub max_levels: u32,
    /// Widest accepted price range of an instrument, in ticks.
    pub max_ladder_ticks: u32,
    /// End of the trading day, ns after midnight UTC: DAY orders are cancelled at the first event
    /// at or after it. `None`: DAY orders behave like GTC.
    pub day_end_ns: Option<u64>,
    /// Limits of accounts that have none set.
    pub default_limits: AccountLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_instruments: 16,
            max_accounts: 1024,
            max_sessions: 64,
            max_orders: 1 << 20,
            max_levels: 1 << 16,
            max_ladder_ticks: 1 << 20,
            day_end_ns: None,
            default_limits: AccountLimits::UNLIMITED,
        }
    }
}

/// Most of any capacity: indexes are u32 and u32::MAX is the "none" link.
pub const MAX_CAPACITY: u32 = 1 << 30;
/// Most account x instrument position cells (dense array).
pub const MAX_POSITION_CELLS: u64 = 1 << 26;

impl EngineConfig {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("max_instruments", self.max_instruments),
            ("max_accounts", self.max_accounts),
            ("max_sessions", self.max_sessions),
            ("max_orders", self.max_orders),
            ("max_levels", self.max_levels),
            ("max_ladder_ticks", self.max_ladder_ticks),
        ] {
            if v == 0 || v > MAX_CAPACITY {
                return Err(format!("{name} = {v} must be in 1..={MAX_CAPACITY}"));
            }
        }
        if u64::from(self.max_accounts) * u64::from(self.max_instruments) > MAX_POSITION_CELLS {
            return Err(format!(
                "max_accounts x max_instruments must be at most {MAX_POSITION_CELLS}"
            ));
        }
        if self.day_end_ns.is_some_and(|d| d >= DAY_NS) {
            return Err("day_end_ns must be less than a day".into());
        }
        Ok(())
    }
}
