//! The engine's inputs: the payloads of sequenced journal records (rkyv archives).
//!
//! Every command is applied at the timestamp of its record; the engine has no other clock.

// rkyv generates undocumented layout structs for enum variants with named fields; every type
// written here is documented.
#![allow(missing_docs)]

use crate::types::{
    AccountId, ClOrdId, InstrumentId, OrdType, OrderId, SessionId, Side, StpMode, Symbol, TimeInForce,
};

/// A new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct NewOrder {
    /// Entering session.
    pub session: SessionId,
    /// Account the order trades for (the gateway checked the session may use it).
    pub account: AccountId,
    /// Client order id, unique among the session's live orders.
    pub clordid: ClOrdId,
    /// Instrument.
    pub instrument: InstrumentId,
    /// Side.
    pub side: Side,
    /// Limit or market.
    pub ord_type: OrdType,
    /// Time in force.
    pub tif: TimeInForce,
    /// Quantity in lots, > 0.
    pub qty: u64,
    /// Limit price in ticks (> 0); 0 for market orders.
    pub price: i64,
    /// Expiry (ns since the Unix epoch) for GTD; 0 otherwise.
    pub expire_ns: u64,
    /// Rejected instead of trading if it would cross on entry.
    pub post_only: bool,
    /// Self-trade prevention mode.
    pub stp: StpMode,
}

/// Identifies an existing order: by the engine's order id if known (non-zero), else by the
/// session's client order id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct OrderRef {
    /// Engine order id, or 0.
    pub order_id: OrderId,
    /// The client order id the order currently has (FIX OrigClOrdID).
    pub orig_clordid: ClOrdId,
}

/// Cancel an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct Cancel {
    /// Requesting session: only its own orders can be cancelled.
    pub session: SessionId,
    /// This request's client order id.
    pub clordid: ClOrdId,
    /// The order.
    pub target: OrderRef,
}

/// Replace an order's price and/or quantity (and client order id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct CancelReplace {
    /// Requesting session: only its own orders can be replaced.
    pub session: SessionId,
    /// The order's new client order id.
    pub clordid: ClOrdId,
    /// The order.
    pub target: OrderRef,
    /// New total quantity (filled included), > filled quantity.
    pub qty: u64,
    /// New limit price in ticks, > 0.
    pub price: i64,
}

/// Cancel many orders at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct MassCancel {
    /// Requesting session.
    pub session: SessionId,
    /// This request's client order id.
    pub clordid: ClOrdId,
    /// Only orders of this account, if set.
    pub account: Option<AccountId>,
    /// Only orders in this instrument, if set.
    pub instrument: Option<InstrumentId>,
    /// Orders of every session (an operator's request); otherwise only the requester's.
    pub all_sessions: bool,
}

/// Static and risk parameters of an instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct InstrumentSpec {
    /// Id (dense, `< max_instruments`).
    pub id: InstrumentId,
    /// Symbol.
    pub symbol: Symbol,
    /// Size of one price tick in nano-units of the quote currency (0.01 -> 10_000_000): the
    /// gateway converts decimal prices with it; the engine only sees ticks.
    pub tick_size_nanos: u64,
    /// Size of one lot in units of the instrument (quantities are in lots).
    pub lot_size: u64,
    /// Lowest price accepted, in ticks (> 0).
    pub min_price: i64,
    /// Highest price accepted, in ticks; `max_price - min_price < max_ladder_ticks`.
    pub max_price: i64,
    /// Price collar: limit prices within this many basis points of the reference price; market
    /// orders never trade beyond it. 0 = no collar for limit orders (market orders then need a
    /// reference price and trade at most 100% away).
    pub collar_bps: u32,
    /// Circuit breaker band in basis points of the window's anchor price; 0 = no breaker.
    pub breaker_bps: u32,
    /// Circuit breaker window, ns.
    pub breaker_window_ns: u64,
    /// Halt duration after the breaker trips, ns.
    pub breaker_halt_ns: u64,
}

/// Per-account limits. `u64::MAX` / `i128::MAX` mean "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct AccountLimits {
    /// Largest quantity of one order, lots.
    pub max_order_qty: u64,
    /// Largest notional of one order, tick-lots.
    pub max_order_notional: i128,
    /// Most orders resting at once.
    pub max_open_orders: u32,
    /// Largest net position per instrument, counting the worst case of open orders, lots.
    pub max_position: u64,
    /// Largest total notional of open orders, tick-lots.
    pub credit_limit: i128,
}

impl AccountLimits {
    /// No limits at all.
    pub const UNLIMITED: AccountLimits = AccountLimits {
        max_order_qty: u64::MAX,
        max_order_notional: i128::MAX,
        max_open_orders: u32::MAX,
        max_position: u64::MAX,
        credit_limit: i128::MAX,
    };
}

/// Operator and configuration commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub enum Admin {
    /// Adds an instrument, or changes its parameters (the price range cannot change while orders rest).
    UpsertInstrument(InstrumentSpec),
    /// Sets an account's limits.
    SetAccountLimits {
        /// Account.
        account: AccountId,
        /// Limits.
        limits: AccountLimits,
    },
    /// Kill switch on (cancels the account's resting orders, rejects new ones) or off.
    KillSwitch {
        /// Account.
        account: AccountId,
        /// On or off.
        active: bool,
    },
    /// Halts an instrument until resumed (new orders and replaces rejected, cancels allowed).
    Halt {
        /// Instrument.
        instrument: InstrumentId,
    },
    /// Resumes a halted instrument.
    Resume {
        /// Instrument.
        instrument: InstrumentId,
    },
    /// A session's order-entry throttle: messages per second, counted on event time; 0 = none.
    SetThrottle {
        /// Session.
        session: SessionId,
        /// Messages per second.
        per_second: u32,
    },
}

/// Everything the engine applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub enum Command {
    /// A new order.
    NewOrder(NewOrder),
    /// Cancel an order.
    Cancel(Cancel),
    /// Replace an order.
    CancelReplace(CancelReplace),
    /// Cancel many orders.
    MassCancel(MassCancel),
    /// A reference price from the upstream feed.
    ReferencePrice {
        /// Instrument.
        instrument: InstrumentId,
        /// Price in ticks (> 0).
        price: i64,
    },
    /// A session disconnected; `cancel_orders` if it asked for cancel-on-disconnect.
    SessionDisconnected {
        /// Session.
        session: SessionId,
        /// Cancel its resting orders.
        cancel_orders: bool,
    },
    /// Operator / configuration command.
    Admin(Admin),
    /// Nothing but the passage of time (the sequencer emits these when idle so that time rules
    /// fire on time).
    Tick,
}
