//! The engine's outputs, emitted into a caller-provided [`OutputSink`] in a deterministic order.

use crate::types::{
    AccountId, ClOrdId, InstrumentId, OrdType, OrderId, SessionId, Side, TimeInForce, TradeId,
};

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    /// Unknown instrument id.
    UnknownInstrument = 1,
    /// Account id out of range.
    UnknownAccount = 2,
    /// Session id out of range.
    UnknownSession = 3,
    /// Quantity zero, or a replace quantity not above the filled quantity.
    InvalidQuantity = 4,
    /// Price missing or not positive for a limit order, or given for a market order.
    InvalidPrice = 5,
    /// Price outside the instrument's accepted range.
    PriceOutOfRange = 6,
    /// Time in force not allowed for this order (a market GTC/GTD order, a GTD without expiry).
    InvalidTimeInForce = 7,
    /// Post-only on an order that cannot rest (market, IOC, FOK).
    InvalidPostOnly = 8,
    /// The client order id is in use by a live order of the session.
    DuplicateClOrdId = 9,
    /// The instrument is halted.
    InstrumentHalted = 10,
    /// The account's kill switch is on.
    KillSwitchActive = 11,
    /// A market order needs a reference price for its collar.
    NoReferencePrice = 12,
    /// GTD expiry not after the current time.
    ExpiryInPast = 13,
    /// Larger than the account's maximum order quantity.
    MaxOrderQty = 14,
    /// Larger than the account's maximum order notional.
    MaxOrderNotional = 15,
    /// Limit price outside the collar around the reference price.
    PriceCollar = 16,
    /// The account has the maximum number of open orders.
    MaxOpenOrders = 17,
    /// The position limit would be exceeded (worst case of open orders included).
    PositionLimit = 18,
    /// The credit limit (open order notional) would be exceeded.
    CreditLimit = 19,
    /// The session's message throttle is exhausted.
    Throttled = 20,
    /// A post-only order would cross.
    PostOnlyWouldCross = 21,
    /// The order pool is full (configured capacity).
    OrderCapacity = 22,
    /// The price-level pool is full (configured capacity).
    LevelCapacity = 23,
    /// No live order matches the reference (unknown, or already done).
    UnknownOrder = 24,
    /// The order belongs to another session.
    NotYourOrder = 25,
    /// The instrument's parameters are invalid, or its range cannot change while orders rest.
    InvalidInstrument = 26,
}

impl Reason {
    /// A short text for FIX Text (58) and logs.
    pub fn text(self) -> &'static str {
        match self {
            Reason::UnknownInstrument => "unknown instrument",
            Reason::UnknownAccount => "unknown account",
            Reason::UnknownSession => "unknown session",
            Reason::InvalidQuantity => "invalid quantity",
            Reason::InvalidPrice => "invalid price",
            Reason::PriceOutOfRange => "price out of range",
            Reason::InvalidTimeInForce => "invalid time in force",
            Reason::InvalidPostOnly => "post-only needs a resting limit order",
            Reason::DuplicateClOrdId => "duplicate ClOrdID",
            Reason::InstrumentHalted => "instrument halted",
            Reason::KillSwitchActive => "kill switch active",
            Reason::NoReferencePrice => "no reference price",
            Reason::ExpiryInPast => "expiry in the past",
            Reason::MaxOrderQty => "order quantity above limit",
            Reason::MaxOrderNotional => "order notional above limit",
            Reason::PriceCollar => "price outside collar",
            Reason::MaxOpenOrders => "too many open orders",
            Reason::PositionLimit => "position limit",
            Reason::CreditLimit => "credit limit",
            Reason::Throttled => "throttled",
            Reason::PostOnlyWouldCross => "post-only order would cross",
            Reason::OrderCapacity => "order capacity exhausted",
            Reason::LevelCapacity => "price level capacity exhausted",
            Reason::UnknownOrder => "unknown order",
            Reason::NotYourOrder => "order belongs to another session",
            Reason::InvalidInstrument => "invalid instrument parameters",
        }
    }
}

/// Why an order left the book without being filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CancelReason {
    /// The client asked.
    User = 1,
    /// The remainder of an IOC or market order.
    Unfilled = 2,
    /// A FOK order that could not fill completely.
    FokUnfilled = 3,
    /// Self-trade prevention.
    SelfTrade = 4,
    /// The account's kill switch.
    KillSwitch = 5,
    /// The session disconnected (cancel-on-disconnect).
    Disconnect = 6,
    /// GTD expiry.
    Expired = 7,
    /// End of the trading day (DAY orders).
    DayEnd = 8,
    /// The remainder of an order whose next trade tripped the circuit breaker.
    CircuitBreaker = 9,
    /// A mass cancel.
    MassCancel = 10,
}

/// Why an instrument was halted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum HaltReason {
    /// An operator.
    Operator = 1,
    /// The circuit breaker.
    CircuitBreaker = 2,
}

/// The state of an order after an event, as an ExecutionReport needs it (archived as is in a
/// snapshot's finished orders).
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OrderView {
    /// Engine order id.
    pub order_id: OrderId,
    /// Session.
    pub session: SessionId,
    /// Account.
    pub account: AccountId,
    /// Client order id (current).
    pub clordid: ClOrdId,
    /// Instrument.
    pub instrument: InstrumentId,
    /// Side.
    pub side: Side,
    /// Order type.
    pub ord_type: OrdType,
    /// Time in force.
    pub tif: TimeInForce,
    /// Limit price in ticks (0 for market).
    pub price: i64,
    /// Total quantity.
    pub qty: u64,
    /// Open quantity (0 once done).
    pub leaves: u64,
    /// Filled quantity.
    pub cum: u64,
    /// Sum of price x quantity over fills, tick-lots (average price = cum_notional / cum).
    pub cum_notional: i128,
}

/// A refused new order, with what the request said (an ExecutionReport needs it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectedOrder {
    /// Session.
    pub session: SessionId,
    /// Account.
    pub account: AccountId,
    /// Client order id.
    pub clordid: ClOrdId,
    /// Instrument.
    pub instrument: InstrumentId,
    /// Side.
    pub side: Side,
    /// Order type.
    pub ord_type: OrdType,
    /// Price.
    pub price: i64,
    /// Quantity.
    pub qty: u64,
}

/// One output of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A new order was accepted.
    Ack(OrderView),
    /// A new order was refused.
    Reject {
        /// The request.
        order: RejectedOrder,
        /// Why.
        reason: Reason,
    },
    /// A trade: both sides, after the trade.
    Fill {
        /// Trade id.
        trade_id: TradeId,
        /// Instrument.
        instrument: InstrumentId,
        /// Price (the resting order's).
        price: i64,
        /// Quantity.
        qty: u64,
        /// Side of the incoming (aggressive) order.
        aggressor: Side,
        /// The buy order after the trade.
        buy: OrderView,
        /// The sell order after the trade.
        sell: OrderView,
    },
    /// An order left the book (leaves is 0 in the view).
    Cancelled {
        /// The order after cancellation.
        order: OrderView,
        /// Quantity that was open and is now cancelled.
        cancelled_qty: u64,
        /// Why.
        reason: CancelReason,
    },
    /// An order was replaced (the view has the new client order id, price and quantity).
    Replaced {
        /// The order after the replace.
        order: OrderView,
        /// Its client order id before.
        orig_clordid: ClOrdId,
    },
    /// An order's open quantity was reduced by the engine (self-trade prevention, decrement).
    Restated {
        /// The order after the change.
        order: OrderView,
        /// Open quantity removed.
        reduced_by: u64,
        /// Why.
        reason: CancelReason,
    },
    /// A cancel or replace request was refused.
    CancelReject {
        /// Requesting session.
        session: SessionId,
        /// The request's client order id.
        clordid: ClOrdId,
        /// The client order id it referred to.
        orig_clordid: ClOrdId,
        /// The order, if it was found.
        order_id: OrderId,
        /// A replace (FIX 434=2) rather than a cancel (434=1).
        is_replace: bool,
        /// Why.
        reason: Reason,
    },
    /// The end of a mass cancel (after a `Cancelled` per order).
    MassCancelDone {
        /// Requesting session.
        session: SessionId,
        /// The request's client order id.
        clordid: ClOrdId,
        /// Orders cancelled.
        cancelled: u32,
        /// Why the request was refused (nothing cancelled), if it was.
        rejected: Option<Reason>,
    },
    /// An instrument halted.
    Halted {
        /// Instrument.
        instrument: InstrumentId,
        /// Why.
        reason: HaltReason,
        /// When it resumes by itself (ns), 0 for an operator halt.
        until_ns: u64,
    },
    /// An instrument resumed.
    Resumed {
        /// Instrument.
        instrument: InstrumentId,
    },
    /// An account's kill switch changed.
    KillSwitch {
        /// Account.
        account: AccountId,
        /// Now on.
        active: bool,
    },
    /// An operator command took effect.
    AdminDone,
    /// An operator command was refused.
    AdminRejected {
        /// Why.
        reason: Reason,
    },
    /// A price level's total changed during the event (market data; after order outputs).
    Level {
        /// Instrument.
        instrument: InstrumentId,
        /// Side.
        side: Side,
        /// Price.
        price: i64,
        /// Total open quantity at the price (0: the level is gone).
        qty: u64,
        /// Orders at the price.
        orders: u32,
    },
    /// The best bid/offer changed during the event (market data; last).
    TopOfBook {
        /// Instrument.
        instrument: InstrumentId,
        /// Best bid price, 0 if none.
        bid_price: i64,
        /// Quantity at the best bid.
        bid_qty: u64,
        /// Best offer price, 0 if none.
        ask_price: i64,
        /// Quantity at the best offer.
        ask_qty: u64,
    },
}

/// Where outputs go. `Vec<Output>` is one (it allocates only while growing in warm-up).
pub trait OutputSink {
    /// Receives one output.
    fn emit(&mut self, output: Output);
}

impl OutputSink for Vec<Output> {
    #[inline]
    fn emit(&mut self, output: Output) {
        self.push(output);
    }
}

/// A sink that only counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingSink {
    /// Outputs received.
    pub count: u64,
}

impl OutputSink for CountingSink {
    #[inline]
    fn emit(&mut self, _output: Output) {
        self.count += 1;
    }
}

impl Output {
    /// Feeds a canonical byte encoding of the output to `h` (fields little-endian, in declaration
    /// order, each variant tagged): two runs that emit the same outputs feed the same bytes.
    pub fn digest(&self, h: &mut crate::hash::StableHasher) {
        fn view(h: &mut crate::hash::StableHasher, v: &OrderView) {
            h.u64(v.order_id);
            h.u32(v.session);
            h.u32(v.account);
            h.bytes(v.clordid.as_bytes());
            h.u32(v.instrument);
            h.u8(v.side as u8);
            h.u8(v.ord_type as u8);
            h.u8(v.tif as u8);
            h.i64(v.price);
            h.u64(v.qty);
            h.u64(v.leaves);
            h.u64(v.cum);
            h.i128(v.cum_notional);
        }
        match self {
            Output::Ack(v) => {
                h.u8(1);
                view(h, v);
            }
            Output::Reject { order, reason } => {
                h.u8(2);
                h.u32(order.session);
                h.u32(order.account);
                h.bytes(order.clordid.as_bytes());
                h.u32(order.instrument);
                h.u8(order.side as u8);
                h.u8(order.ord_type as u8);
                h.i64(order.price);
                h.u64(order.qty);
                h.u8(*reason as u8);
            }
            Output::Fill {
                trade_id,
                instrument,
                price,
                qty,
                aggressor,
                buy,
                sell,
            } => {
                h.u8(3);
                h.u64(*trade_id);
                h.u32(*instrument);
                h.i64(*price);
                h.u64(*qty);
                h.u8(*aggressor as u8);
                view(h, buy);
                view(h, sell);
            }
            Output::Cancelled {
                order,
                cancelled_qty,
                reason,
            } => {
                h.u8(4);
                view(h, order);
                h.u64(*cancelled_qty);
                h.u8(*reason as u8);
            }
            Output::Replaced { order, orig_clordid } => {
                h.u8(5);
                view(h, order);
                h.bytes(orig_clordid.as_bytes());
            }
            Output::Restated {
                order,
                reduced_by,
                reason,
            } => {
                h.u8(6);
                view(h, order);
                h.u64(*reduced_by);
                h.u8(*reason as u8);
            }
            Output::CancelReject {
                session,
                clordid,
                orig_clordid,
                order_id,
                is_replace,
                reason,
            } => {
                h.u8(7);
                h.u32(*session);
                h.bytes(clordid.as_bytes());
                h.bytes(orig_clordid.as_bytes());
                h.u64(*order_id);
                h.u8(u8::from(*is_replace));
                h.u8(*reason as u8);
            }
            Output::MassCancelDone {
                session,
                clordid,
                cancelled,
                rejected,
            } => {
                h.u8(8);
                h.u32(*session);
                h.bytes(clordid.as_bytes());
                h.u32(*cancelled);
                h.u8(rejected.map_or(0, |r| r as u8));
            }
            Output::Halted {
                instrument,
                reason,
                until_ns,
            } => {
                h.u8(9);
                h.u32(*instrument);
                h.u8(*reason as u8);
                h.u64(*until_ns);
            }
            Output::Resumed { instrument } => {
                h.u8(10);
                h.u32(*instrument);
            }
            Output::KillSwitch { account, active } => {
                h.u8(11);
                h.u32(*account);
                h.u8(u8::from(*active));
            }
            Output::AdminDone => h.u8(12),
            Output::AdminRejected { reason } => {
                h.u8(13);
                h.u8(*reason as u8);
            }
            Output::Level {
                instrument,
                side,
                price,
                qty,
                orders,
            } => {
                h.u8(14);
                h.u32(*instrument);
                h.u8(*side as u8);
                h.i64(*price);
                h.u64(*qty);
                h.u32(*orders);
            }
            Output::TopOfBook {
                instrument,
                bid_price,
                bid_qty,
                ask_price,
                ask_qty,
            } => {
                h.u8(15);
                h.u32(*instrument);
                h.i64(*bid_price);
                h.u64(*bid_qty);
                h.i64(*ask_price);
                h.u64(*ask_qty);
            }
        }
    }
}
