//! The node's tables: instruments (symbol, tick, lot), accounts and sessions, with the
//! conversions between FIX decimals and the engine's integer ticks and lots. Everything is
//! fixed at start but the instruments an operator adds to a running node (`ordo admin add`):
//! up to [`ADDED_INSTRUMENTS_MAX`], each published once, after the engine accepted it, and
//! found again in the journal at the next start.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use ordo_engine::command::{AccountLimits, Admin, InstrumentSpec};
use ordo_engine::{Command, EngineConfig, Symbol};

use crate::config::{InstrumentSettings, NodeConfig, SessionKind};

/// Instruments an operator may add to a running node: the engine is configured with this many
/// ids beyond the configured instruments (the journal's Genesis record holds that capacity).
/// `ordo admin add` beyond it answers an error.
pub const ADDED_INSTRUMENTS_MAX: usize = 16;

/// Nano-units per unit: prices and tick sizes are handled as integer nanos.
const NANOS: i128 = 1_000_000_000;

/// Parses a FIX decimal ("100", "100.05", "-0.5") into nanos; None if malformed or beyond 9
/// fractional digits.
pub fn parse_nanos(b: &[u8]) -> Option<i128> {
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 30 {
        return None;
    }
    let mut int: i128 = 0;
    let mut frac: i128 = 0;
    let mut frac_digits = 0u32;
    let mut seen_dot = false;
    let mut any = false;
    for &c in digits {
        match c {
            b'0'..=b'9' => {
                any = true;
                if seen_dot {
                    if frac_digits == 9 {
                        if c != b'0' {
                            return None;
                        }
                        continue;
                    }
                    frac = frac * 10 + i128::from(c - b'0');
                    frac_digits += 1;
                } else {
                    int = int.checked_mul(10)?.checked_add(i128::from(c - b'0'))?;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return None,
        }
    }
    if !any {
        return None;
    }
    let v = int.checked_mul(NANOS)? + frac * 10i128.pow(9 - frac_digits);
    Some(if neg { -v } else { v })
}

/// One instrument as the gateway sees it.
#[derive(Debug, Clone)]
pub struct InstrumentInfo {
    /// Symbol.
    pub symbol: String,
    /// Tick size in nanos.
    pub tick_nanos: i128,
    /// Units per lot.
    pub lot: u64,
    /// The engine's definition.
    pub spec: InstrumentSpec,
    /// Initial reference price, ticks.
    pub reference_ticks: i64,
}

/// One session as the node sees it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Our CompID.
    pub ours: String,
    /// Their CompID.
    pub theirs: String,
    /// Accounts it may trade (ids); the first is the default.
    pub accounts: Vec<u32>,
    /// Orders or market data.
    pub kind: SessionKind,
    /// Cancel resting orders on disconnect.
    pub cancel_on_disconnect: bool,
    /// Throttle, messages per second.
    pub throttle_per_second: u32,
}

/// The node's tables.
#[derive(Debug)]
pub struct Catalog {
    /// The configured instruments, by engine id (0, 1, ...).
    instruments: Vec<InstrumentInfo>,
    symbols: HashMap<Vec<u8>, u32>,
    /// Instruments added while running: id `instruments.len() + k` in slot k, each set once.
    /// Read without a lock on the gateway's path; `added_count` slots are set.
    added: [OnceLock<InstrumentInfo>; ADDED_INSTRUMENTS_MAX],
    added_count: AtomicUsize,
    /// Account names by engine id.
    pub accounts: Vec<String>,
    account_ids: HashMap<Vec<u8>, u32>,
    /// Sessions by id (their index in the configuration).
    pub sessions: Vec<SessionInfo>,
}

impl InstrumentInfo {
    /// Instrument `id` from its settings (decimals checked: positive multiples of the tick).
    pub fn from_settings(id: u32, i: &InstrumentSettings) -> Result<Self, String> {
        let tick = parse_nanos(i.tick.as_bytes())
            .filter(|t| *t > 0 && *t <= i128::from(u64::MAX))
            .ok_or_else(|| format!("{}: bad tick {:?}", i.symbol, i.tick))?;
        let ticks_of = |v: &str, what: &str| -> Result<i64, String> {
            let n = parse_nanos(v.as_bytes()).ok_or_else(|| format!("{}: bad {what} {v:?}", i.symbol))?;
            if n % tick != 0 || n <= 0 {
                return Err(format!(
                    "{}: {what} {v} is not a positive multiple of the tick {}",
                    i.symbol, i.tick
                ));
            }
            i64::try_from(n / tick).map_err(|_| format!("{}: {what} out of range", i.symbol))
        };
        let min_price = ticks_of(&i.min_price, "min_price")?;
        let max_price = ticks_of(&i.max_price, "max_price")?;
        let reference_ticks = ticks_of(&i.reference, "reference")?;
        // A FIX value: printable ASCII (spaces allowed, "BRK B"), never SOH or other controls.
        if i.symbol.trim().is_empty() || !i.symbol.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(format!("symbol {:?}: printable ASCII, not blank", i.symbol));
        }
        let symbol = Symbol::from_text(&i.symbol)
            .ok_or_else(|| format!("symbol {} longer than 32 bytes", i.symbol))?;
        let spec = InstrumentSpec {
            id,
            symbol,
            tick_size_nanos: tick as u64,
            lot_size: 1,
            min_price,
            max_price,
            collar_bps: i.collar_bps,
            breaker_bps: i.breaker_bps,
            breaker_window_ns: i.breaker_window_s.saturating_mul(1_000_000_000),
            breaker_halt_ns: i.breaker_halt_s.saturating_mul(1_000_000_000),
        };
        Ok(InstrumentInfo {
            symbol: i.symbol.clone(),
            tick_nanos: tick,
            lot: 1,
            spec,
            reference_ticks,
        })
    }

    /// An instrument as the journal defines it (an added one, found at start). Its reference
    /// price is the engine's, replayed from the journal.
    pub fn from_spec(spec: &InstrumentSpec) -> Option<Self> {
        let symbol = std::str::from_utf8(spec.symbol.as_bytes()).ok()?.to_string();
        Some(InstrumentInfo {
            symbol,
            tick_nanos: i128::from(spec.tick_size_nanos),
            lot: spec.lot_size,
            spec: *spec,
            reference_ticks: 0,
        })
    }
}

impl Catalog {
    /// Builds the tables from the configuration.
    pub fn new(cfg: &NodeConfig) -> Result<Self, String> {
        let mut instruments = Vec::new();
        let mut symbols = HashMap::new();
        for (id, i) in cfg.instruments.iter().enumerate() {
            let info = InstrumentInfo::from_settings(id as u32, i)?;
            if symbols.insert(i.symbol.as_bytes().to_vec(), id as u32).is_some() {
                return Err(format!("instrument {} configured twice", i.symbol));
            }
            instruments.push(info);
        }
        let mut accounts: Vec<String> = Vec::new();
        let mut account_ids = HashMap::new();
        let mut sessions = Vec::new();
        for s in &cfg.sessions {
            let mut ids = Vec::new();
            for a in &s.accounts {
                let id = *account_ids.entry(a.as_bytes().to_vec()).or_insert_with(|| {
                    accounts.push(a.clone());
                    (accounts.len() - 1) as u32
                });
                ids.push(id);
            }
            sessions.push(SessionInfo {
                ours: s.sender_comp_id.clone(),
                theirs: s.target_comp_id.clone(),
                accounts: ids,
                kind: s.kind,
                cancel_on_disconnect: s.cancel_on_disconnect,
                throttle_per_second: s.throttle_per_second,
            });
        }
        if accounts.is_empty() {
            accounts.push("DEFAULT".into());
        }
        Ok(Catalog {
            instruments,
            symbols,
            added: std::array::from_fn(|_| OnceLock::new()),
            added_count: AtomicUsize::new(0),
            accounts,
            account_ids,
            sessions,
        })
    }

    /// The engine id of a symbol.
    pub fn instrument_id(&self, symbol: &[u8]) -> Option<u32> {
        if let Some(&id) = self.symbols.get(symbol) {
            return Some(id);
        }
        // At most ADDED_INSTRUMENTS_MAX compares, only for symbols not configured.
        let added = self
            .added_count
            .load(Ordering::Acquire)
            .min(ADDED_INSTRUMENTS_MAX);
        self.added[..added]
            .iter()
            .filter_map(OnceLock::get)
            .find(|i| i.symbol.as_bytes() == symbol)
            .map(|i| i.spec.id)
    }

    /// An instrument by engine id (configured or added).
    pub fn instrument(&self, id: u32) -> Option<&InstrumentInfo> {
        let id = id as usize;
        match id.checked_sub(self.instruments.len()) {
            None => self.instruments.get(id),
            Some(k) => self.added.get(k)?.get(),
        }
    }

    /// The configured instruments.
    pub fn configured(&self) -> &[InstrumentInfo] {
        &self.instruments
    }

    /// The id the next added instrument gets, None when [`ADDED_INSTRUMENTS_MAX`] were added.
    /// (The caller serialises adds: the id is decided before the command is sequenced.)
    pub fn next_added_id(&self) -> Option<u32> {
        let k = self.added_count.load(Ordering::Acquire);
        (k < ADDED_INSTRUMENTS_MAX).then(|| (self.instruments.len() + k) as u32)
    }

    /// Publishes an added instrument (the engine holds it): from now on the gateway knows its
    /// symbol. Its id must be [`next_added_id`](Self::next_added_id).
    pub fn publish_added(&self, info: InstrumentInfo) -> Result<(), String> {
        let k = self.added_count.load(Ordering::Acquire);
        if Some(info.spec.id) != self.next_added_id() {
            return Err(format!(
                "instrument {} has id {}, the next free one is {}",
                info.symbol,
                info.spec.id,
                self.instruments.len() + k
            ));
        }
        if self.instrument_id(info.symbol.as_bytes()).is_some() {
            return Err(format!("instrument {} exists", info.symbol));
        }
        self.added[k]
            .set(info)
            .map_err(|i| format!("instrument slot {k} taken ({})", i.symbol))?;
        // Release: a reader that sees the count sees the slot set.
        self.added_count.store(k + 1, Ordering::Release);
        Ok(())
    }

    /// The engine id of an account name.
    pub fn account_id(&self, name: &[u8]) -> Option<u32> {
        self.account_ids.get(name).copied()
    }

    /// The session id used for operator (admin channel) commands.
    pub fn admin_session(&self) -> u32 {
        self.sessions.len() as u32
    }

    /// The engine configuration for this catalog.
    pub fn engine_config(&self) -> EngineConfig {
        let widest = self
            .instruments
            .iter()
            .map(|i| (i.spec.max_price - i.spec.min_price + 1) as u32)
            .max()
            .unwrap_or(1);
        EngineConfig {
            max_instruments: (self.instruments.len() as u32).max(1) + ADDED_INSTRUMENTS_MAX as u32,
            max_accounts: self.accounts.len() as u32,
            max_sessions: self.sessions.len() as u32 + 1,
            max_orders: 1 << 20,
            max_levels: 1 << 16,
            max_ladder_ticks: widest.max(1 << 20),
            day_end_ns: None,
            default_limits: AccountLimits::UNLIMITED,
        }
    }

    /// The commands that set up a fresh journal: instruments, reference prices, throttles.
    pub fn setup_commands(&self) -> Vec<Command> {
        let mut out = Vec::new();
        for i in &self.instruments {
            out.push(Command::Admin(Admin::UpsertInstrument(i.spec)));
            out.push(Command::ReferencePrice {
                instrument: i.spec.id,
                price: i.reference_ticks,
            });
        }
        for (id, s) in self.sessions.iter().enumerate() {
            if s.throttle_per_second > 0 {
                out.push(Command::Admin(Admin::SetThrottle {
                    session: id as u32,
                    per_second: s.throttle_per_second,
                }));
            }
        }
        out
    }

    /// FIX price (decimal) to ticks of `instrument`: None if not a positive multiple of the tick.
    pub fn price_ticks(&self, instrument: u32, value: &[u8]) -> Option<i64> {
        let i = self.instrument(instrument)?;
        let n = parse_nanos(value)?;
        (n > 0 && n % i.tick_nanos == 0)
            .then(|| i64::try_from(n / i.tick_nanos).ok())
            .flatten()
    }

    /// FIX quantity (decimal) to lots: None if not a positive whole number of lots.
    pub fn qty_lots(&self, instrument: u32, value: &[u8]) -> Option<u64> {
        let lot = i128::from(self.instrument(instrument).map_or(1, |i| i.lot)) * NANOS;
        let n = parse_nanos(value)?;
        (n > 0 && n % lot == 0)
            .then(|| u64::try_from(n / lot).ok())
            .flatten()
    }

    /// Ticks of `instrument` as a FIX decimal (mantissa, scale 9).
    pub fn price_decimal(&self, instrument: u32, ticks: i128) -> (i128, u8) {
        let tick = self.instrument(instrument).map_or(NANOS, |i| i.tick_nanos);
        (ticks * tick, 9)
    }

    /// Lots of `instrument` as FIX units.
    pub fn qty_units(&self, instrument: u32, lots: u64) -> u64 {
        lots * self.instrument(instrument).map_or(1, |i| i.lot)
    }

    /// The symbol of an instrument id ("?" for unknown ids, which the engine rejects).
    pub fn symbol(&self, instrument: u32) -> &str {
        self.known_symbol(instrument).unwrap_or("?")
    }

    /// The symbol of an instrument id, None for an id the catalog does not know.
    pub fn known_symbol(&self, instrument: u32) -> Option<&str> {
        self.instrument(instrument).map(|i| i.symbol.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        assert_eq!(parse_nanos(b"100"), Some(100 * NANOS));
        assert_eq!(parse_nanos(b"100.05"), Some(100 * NANOS + 50_000_000));
        assert_eq!(parse_nanos(b"-0.5"), Some(-NANOS / 2));
        assert_eq!(parse_nanos(b"002000.00"), Some(2000 * NANOS));
        assert_eq!(parse_nanos(b"1.0000000001"), None);
        assert_eq!(parse_nanos(b"1.0000000000"), Some(NANOS));
        assert_eq!(parse_nanos(b"+1"), None);
        assert_eq!(parse_nanos(b"."), None);
        assert_eq!(parse_nanos(b"1e3"), None);
    }

    /// Added instruments: found by symbol and id once published, only the next id accepted,
    /// no symbol twice, and no more than ADDED_INSTRUMENTS_MAX.
    #[test]
    fn added_instruments_and_their_bound() {
        let cat = Catalog::new(&NodeConfig::embedded()).unwrap();
        let configured = cat.configured().len() as u32;
        let info = |id: u32, symbol: &str| {
            InstrumentInfo::from_settings(id, &InstrumentSettings::new(symbol, "0.05", "20")).unwrap()
        };
        assert_eq!(cat.instrument_id(b"EEE"), None);
        assert_eq!(cat.next_added_id(), Some(configured));
        assert!(
            cat.publish_added(info(configured + 1, "EEE")).is_err(),
            "not the next id"
        );
        cat.publish_added(info(configured, "EEE")).unwrap();
        assert_eq!(cat.instrument_id(b"EEE"), Some(configured));
        assert_eq!(cat.symbol(configured), "EEE");
        assert_eq!(cat.price_ticks(configured, b"20.05"), Some(401));
        assert_eq!(cat.price_ticks(configured, b"20.02"), None);
        assert!(
            cat.publish_added(info(configured + 1, "EEE")).is_err(),
            "symbol twice"
        );
        assert!(
            cat.publish_added(info(configured + 1, "AAA")).is_err(),
            "a configured symbol"
        );
        for k in 1..ADDED_INSTRUMENTS_MAX as u32 {
            cat.publish_added(info(configured + k, &format!("X{k}"))).unwrap();
        }
        assert_eq!(cat.next_added_id(), None);
        let last = configured + ADDED_INSTRUMENTS_MAX as u32;
        assert!(cat.publish_added(info(last, "Y")).is_err(), "beyond the bound");
        assert_eq!(cat.instrument_id(b"Y"), None);
        assert_eq!(cat.engine_config().max_instruments, last);
        assert!(
            InstrumentInfo::from_settings(0, &InstrumentSettings::new("A\u{1}B", "0.01", "1")).is_err(),
            "a symbol with SOH"
        );
    }

    #[test]
    fn ticks_and_lots() {
        let cat = Catalog::new(&NodeConfig::embedded()).unwrap();
        let aaa = cat.instrument_id(b"AAA").unwrap();
        assert_eq!(cat.price_ticks(aaa, b"100.05"), Some(10_005));
        assert_eq!(cat.price_ticks(aaa, b"100.055"), None, "not a tick multiple");
        assert_eq!(cat.qty_lots(aaa, b"300"), Some(300));
        assert_eq!(cat.qty_lots(aaa, b"0"), None);
        assert_eq!(cat.account_id(b"ACC3"), Some(2));
        assert_eq!(cat.sessions[2].accounts, vec![2]);
    }
}
