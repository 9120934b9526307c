//! Identifiers, enums and fixed-size strings shared by commands, outputs and state.
//!
//! Prices are integers in ticks of the instrument, quantities integers in lots: the engine never
//! sees a float. Notional values (price x quantity) are `i128` in tick-lots.

/// Dense identifiers: each indexes an array sized by the engine's configuration.
pub type InstrumentId = u32;
/// An account (risk, positions). Dense, `< max_accounts`.
pub type AccountId = u32;
/// A FIX session (or any order-entry connection). Dense, `< max_sessions`.
pub type SessionId = u32;
/// The engine's order id: 1, 2, 3, ... in order of acceptance.
pub type OrderId = u64;
/// The engine's trade id: 1, 2, 3, ... in order of execution.
pub type TradeId = u64;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum Side {
    /// Bid.
    Buy = 1,
    /// Offer.
    Sell = 2,
}

impl Side {
    /// The other side.
    #[inline]
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// +1 for buy, -1 for sell.
    #[inline]
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }

    /// Index into per-side arrays: buy 0, sell 1.
    #[inline]
    pub fn index(self) -> usize {
        match self {
            Side::Buy => 0,
            Side::Sell => 1,
        }
    }
}

/// Order type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum OrdType {
    /// Trades at the limit price or better; may rest.
    Limit = 1,
    /// Trades at any price within the collar; never rests.
    Market = 2,
}

/// Time in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum TimeInForce {
    /// Rests until the end of the trading day (if configured) or cancelled.
    Day = 0,
    /// Rests until cancelled.
    Gtc = 1,
    /// Immediate or cancel: the remainder is cancelled.
    Ioc = 3,
    /// Fill or kill: fills completely at once or not at all.
    Fok = 4,
    /// Rests until the given time (nanoseconds since the Unix epoch) or cancelled.
    Gtd = 6,
}

impl TimeInForce {
    /// Whether an order with this time in force may rest in the book.
    #[inline]
    pub fn may_rest(self) -> bool {
        matches!(self, TimeInForce::Day | TimeInForce::Gtc | TimeInForce::Gtd)
    }
}

/// What happens when an order would trade against a resting order of the same account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum StpMode {
    /// Self-trades are allowed.
    None = 0,
    /// The resting order is cancelled; matching goes on.
    CancelResting = 1,
    /// The incoming order's remainder is cancelled; matching stops.
    CancelIncoming = 2,
    /// Both are cancelled.
    CancelBoth = 3,
    /// Both are decremented by the smaller quantity; the one that reaches zero is cancelled.
    DecrementAndCancel = 4,
}

/// Capacity of [`FixedStr`] in bytes.
pub const FIXED_STR_BYTES: usize = 32;

/// A short ASCII string stored inline (no allocation): client order ids, symbols. At most
/// [`FIXED_STR_BYTES`] bytes; the gateway rejects longer values before they are sequenced.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub struct FixedStr {
    len: u8,
    bytes: [u8; FIXED_STR_BYTES],
}

impl Default for FixedStr {
    fn default() -> Self {
        FixedStr {
            len: 0,
            bytes: [0; FIXED_STR_BYTES],
        }
    }
}

impl FixedStr {
    /// Maximum length in bytes.
    pub const CAPACITY: usize = FIXED_STR_BYTES;

    /// Copies `s`; `None` if it is longer than the capacity.
    pub fn new(s: &[u8]) -> Option<Self> {
        if s.len() > FIXED_STR_BYTES {
            return None;
        }
        let mut bytes = [0u8; FIXED_STR_BYTES];
        bytes[..s.len()].copy_from_slice(s);
        Some(FixedStr {
            len: s.len() as u8,
            bytes,
        })
    }

    /// Copies a `&str`; `None` if too long.
    pub fn from_text(s: &str) -> Option<Self> {
        Self::new(s.as_bytes())
    }

    /// The bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The bytes as text ("?" for non-UTF-8, which the gateway never lets through).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("?")
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for FixedStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl std::fmt::Display for FixedStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client order id (FIX ClOrdID), at most 32 bytes.
pub type ClOrdId = FixedStr;
/// An instrument symbol, at most 32 bytes.
pub type Symbol = FixedStr;
