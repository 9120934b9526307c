//! The engine: state, the `apply` entry point, time rules, and the bookkeeping every flow shares
//! (resting, removing, finishing orders; market-data change tracking).
//!
//! The flows themselves live beside this file: `order_entry.rs` (new, cancel, replace, mass
//! cancel), `matching.rs` (the matching loop, FOK, circuit breaker), `admin.rs` (operator and
//! feed commands), `state_hash.rs` and `snapshot.rs`.

use crate::book::{Book, LevelPool};
use crate::command::{Command, InstrumentSpec};
use crate::config::{DAY_NS, EngineConfig};
use crate::done::{DoneOrder, DoneOrders, Ending};
use crate::expiry::ExpiryHeap;
use crate::order::{ListHead, ListKind, NIL, Order, OrderPool};
use crate::output::{CancelReason, HaltReason, OrderView, Output, OutputSink};
use crate::risk::{Account, Position, Session};
use crate::slot_table::{SlotTable, hash_bytes, mix64};
use crate::types::{AccountId, ClOrdId, InstrumentId, OrderId, SessionId, Side, TimeInForce};

/// Errors of `apply` and `restore`: the event was not applied, the state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// Events must come with consecutive sequence numbers.
    #[error("sequence gap: expected {expected}, got {found}")]
    SequenceGap {
        /// The next sequence number.
        expected: u64,
        /// The one given.
        found: u64,
    },
    /// Timestamps must not decrease.
    #[error("timestamp {found} ns is before the engine's clock {now} ns")]
    TimeRegression {
        /// The engine's clock.
        now: u64,
        /// The event's timestamp.
        found: u64,
    },
    /// Invalid configuration.
    #[error("invalid engine configuration: {0}")]
    Config(String),
    /// A snapshot that does not validate or does not fit the configuration.
    #[error("invalid snapshot: {0}")]
    Snapshot(String),
}

/// An instrument's state.
#[derive(Debug, Clone)]
pub(crate) struct Instrument {
    pub spec: InstrumentSpec,
    pub book: Book,
    /// Reference price from the feed, 0 if none yet.
    pub reference: i64,
    /// Last trade price, 0 if none yet.
    pub last_trade: i64,
    /// Halted, and why.
    pub halt: Option<HaltReason>,
    /// When a circuit-breaker halt ends.
    pub halted_until: u64,
    /// Circuit breaker window: anchor price and when the window started.
    pub anchor_price: i64,
    pub anchor_ns: u64,
    pub anchor_set: bool,
    /// Last event that recorded this instrument's top of book (market data).
    pub tob_epoch: u64,
}

/// The top of book: (bid price, bid qty, ask price, ask qty), zeros for an empty side.
pub(crate) type Tob = (i64, u64, i64, u64);

#[derive(Debug, Clone, Copy)]
pub(crate) struct DirtyLevel {
    pub instrument: InstrumentId,
    pub side: Side,
    pub price: i64,
    pub before: (u64, u32),
    pub order: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct DirtyTob {
    pub instrument: InstrumentId,
    pub before: Tob,
}

/// The deterministic matching and risk engine. See `docs/ENGINE.md`.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) instruments: Vec<Option<Instrument>>,
    pub(crate) accounts: Vec<Account>,
    /// `positions[account * max_instruments + instrument]`.
    pub(crate) positions: Vec<Position>,
    pub(crate) sessions: Vec<Session>,
    pub(crate) session_lists: Vec<ListHead>,
    pub(crate) account_lists: Vec<ListHead>,
    pub(crate) global: ListHead,
    pub(crate) orders: OrderPool,
    pub(crate) levels: LevelPool,
    pub(crate) by_id: SlotTable,
    pub(crate) by_clordid: SlotTable,
    /// Orders that have left the book (`crate::done`).
    pub(crate) done: DoneOrders,
    pub(crate) expiries: ExpiryHeap,
    pub(crate) last_seq: u64,
    pub(crate) now_ns: u64,
    pub(crate) next_order_id: OrderId,
    pub(crate) next_trade_id: u64,
    /// Next end of a trading day (0 until the first event sets it).
    pub(crate) next_day_end_ns: u64,
    /// Instruments in a circuit-breaker halt (the time rule skips the scan when 0).
    pub(crate) breaker_halts: u32,
    /// Incremented per event: market-data change tracking.
    pub(crate) epoch: u64,
    pub(crate) dirty_levels: Vec<DirtyLevel>,
    pub(crate) dirty_tobs: Vec<DirtyTob>,
}

#[inline]
pub(crate) fn clordid_hash(session: SessionId, clordid: &ClOrdId) -> u64 {
    hash_bytes(u64::from(session), clordid.as_bytes())
}

impl Engine {
    /// An empty engine: every capacity of `config` is allocated here, once.
    pub fn new(config: EngineConfig) -> Result<Self, EngineError> {
        config.validate().map_err(EngineError::Config)?;
        let max_orders = config.max_orders;
        Ok(Engine {
            instruments: (0..config.max_instruments).map(|_| None).collect(),
            accounts: vec![Account::new(config.default_limits); config.max_accounts as usize],
            positions: vec![
                Position::default();
                config.max_accounts as usize * config.max_instruments as usize
            ],
            sessions: vec![Session::default(); config.max_sessions as usize],
            session_lists: vec![ListHead::default(); config.max_sessions as usize],
            account_lists: vec![ListHead::default(); config.max_accounts as usize],
            global: ListHead::default(),
            orders: OrderPool::new(max_orders),
            levels: LevelPool::new(config.max_levels),
            by_id: SlotTable::new(max_orders as usize),
            by_clordid: SlotTable::new(max_orders as usize),
            done: DoneOrders::new(max_orders),
            expiries: ExpiryHeap::new(max_orders),
            last_seq: 0,
            now_ns: 0,
            next_order_id: 1,
            next_trade_id: 1,
            next_day_end_ns: 0,
            breaker_halts: 0,
            epoch: 0,
            dirty_levels: Vec::with_capacity(config.max_levels as usize + 64),
            dirty_tobs: Vec::with_capacity(config.max_instruments as usize),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Sequence number of the last event applied (0 if none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The engine's clock: the timestamp of the last event applied.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Applies one sequenced event. Outputs go to `out`, in order. The first event may have any
    /// sequence number; each later one must be the next. On `Err` nothing was applied.
    pub fn apply(
        &mut self,
        seq: u64,
        timestamp_ns: u64,
        command: &Command,
        out: &mut impl OutputSink,
    ) -> Result<(), EngineError> {
        if self.last_seq != 0 && seq != self.last_seq + 1 {
            return Err(EngineError::SequenceGap {
                expected: self.last_seq + 1,
                found: seq,
            });
        }
        if seq == 0 {
            return Err(EngineError::SequenceGap {
                expected: self.last_seq + 1,
                found: 0,
            });
        }
        if timestamp_ns < self.now_ns {
            return Err(EngineError::TimeRegression {
                now: self.now_ns,
                found: timestamp_ns,
            });
        }
        self.last_seq = seq;
        self.now_ns = timestamp_ns;
        self.epoch += 1;
        self.time_rules(out);
        match command {
            Command::NewOrder(c) => self.new_order(c, out),
            Command::Cancel(c) => self.cancel(c, out),
            Command::CancelReplace(c) => self.replace(c, out),
            Command::MassCancel(c) => self.mass_cancel(c, out),
            Command::ReferencePrice { instrument, price } => self.reference_price(*instrument, *price, out),
            Command::SessionDisconnected {
                session,
                cancel_orders,
            } => {
                self.session_disconnected(*session, *cancel_orders, out);
            }
            Command::Admin(a) => self.admin(a, out),
            Command::Tick => {}
        }
        self.flush_market_data(out);
        Ok(())
    }

    /// Time-driven rules, fired by the passage of event time before each event's command:
    /// circuit-breaker resumes (instrument id order), GTD expiries ((expiry, order id) order),
    /// then the end of the trading day (DAY orders, order id order).
    fn time_rules(&mut self, out: &mut impl OutputSink) {
        if self.breaker_halts > 0 {
            for id in 0..self.instruments.len() {
                let due = self.instruments[id].as_ref().is_some_and(|i| {
                    i.halt == Some(HaltReason::CircuitBreaker) && i.halted_until <= self.now_ns
                });
                if due {
                    self.resume(id as InstrumentId, out);
                }
            }
        }
        while let Some(slot) = self.expiries.peek() {
            if self.orders.get(slot).expire_ns > self.now_ns {
                break;
            }
            self.cancel_resting(slot, CancelReason::Expired, out);
        }
        if let Some(day_end) = self.config.day_end_ns {
            if self.next_day_end_ns == 0 {
                self.next_day_end_ns = self.now_ns - self.now_ns % DAY_NS + day_end;
                if self.next_day_end_ns <= self.now_ns {
                    self.next_day_end_ns += DAY_NS;
                }
            } else if self.now_ns >= self.next_day_end_ns {
                let mut slot = self.global.head;
                while slot != NIL {
                    let next = self.orders.list_next(ListKind::Global, slot);
                    if self.orders.get(slot).tif == TimeInForce::Day {
                        self.cancel_resting(slot, CancelReason::DayEnd, out);
                    }
                    slot = next;
                }
                while self.next_day_end_ns <= self.now_ns {
                    self.next_day_end_ns += DAY_NS;
                }
            }
        }
    }

    /// Ends a halt.
    pub(crate) fn resume(&mut self, instrument: InstrumentId, out: &mut impl OutputSink) {
        let inst = self.instruments[instrument as usize]
            .as_mut()
            .expect("existing instrument");
        if inst.halt == Some(HaltReason::CircuitBreaker) {
            self.breaker_halts -= 1;
        }
        inst.halt = None;
        inst.halted_until = 0;
        inst.anchor_set = false;
        out.emit(Output::Resumed { instrument });
    }

    // ----- lookups -------------------------------------------------------------------------

    #[inline]
    pub(crate) fn instrument(&self, id: InstrumentId) -> Option<&Instrument> {
        self.instruments.get(id as usize).and_then(Option::as_ref)
    }

    #[inline]
    pub(crate) fn inst_mut(&mut self, id: InstrumentId) -> &mut Instrument {
        self.instruments[id as usize]
            .as_mut()
            .expect("existing instrument")
    }

    #[inline]
    pub(crate) fn position_index(&self, account: AccountId, instrument: InstrumentId) -> usize {
        account as usize * self.config.max_instruments as usize + instrument as usize
    }

    /// The live order of `session` with client order id `clordid`.
    #[inline]
    pub(crate) fn find_clordid(&self, session: SessionId, clordid: &ClOrdId) -> Option<u32> {
        let orders = &self.orders;
        self.by_clordid.find(clordid_hash(session, clordid), |slot| {
            let o = orders.get(slot);
            o.session == session && o.clordid == *clordid
        })
    }

    /// The live order with engine id `id`.
    #[inline]
    pub(crate) fn find_id(&self, id: OrderId) -> Option<u32> {
        let orders = &self.orders;
        self.by_id.find(mix64(id), |slot| orders.get(slot).id == id)
    }

    /// The output view of the order in `slot`.
    #[inline]
    pub(crate) fn view(&self, slot: u32) -> OrderView {
        let o = self.orders.get(slot);
        OrderView {
            order_id: o.id,
            session: o.session,
            account: o.account,
            clordid: o.clordid,
            instrument: o.instrument,
            side: o.side,
            ord_type: o.ord_type,
            tif: o.tif,
            price: o.price,
            qty: o.qty,
            leaves: o.leaves,
            cum: o.cum,
            cum_notional: o.cum_notional,
        }
    }

    // ----- order lifecycle -----------------------------------------------------------------

    /// Takes a slot for an accepted order and registers it (id and client order id maps, the
    /// global, session and account lists). The caller checked that a slot is free.
    pub(crate) fn register(&mut self, order: Order) -> u32 {
        let slot = self
            .orders
            .alloc(order)
            .expect("capacity checked before acceptance");
        let (id, session, account, clordid) = (order.id, order.session, order.account, order.clordid);
        self.by_id.insert(mix64(id), slot);
        self.by_clordid.insert(clordid_hash(session, &clordid), slot);
        self.orders.list_push(&mut self.global, ListKind::Global, slot);
        self.orders
            .list_push(&mut self.session_lists[session as usize], ListKind::Session, slot);
        self.orders
            .list_push(&mut self.account_lists[account as usize], ListKind::Account, slot);
        slot
    }

    /// Unregisters and frees an order that is done (not resting): filled (`cancelled` None) or
    /// its remainder cancelled. It is kept among the finished orders (`crate::done`).
    pub(crate) fn finish(&mut self, slot: u32, cancelled: Option<CancelReason>) {
        let o = *self.orders.get(slot);
        debug_assert!(!o.is_resting());
        let ending = match cancelled {
            None => Ending::Filled,
            Some(r) => Ending::Cancelled(r),
        };
        self.done.record(DoneOrder {
            view: self.view(slot),
            ending,
        });
        self.expiries.remove(&mut self.orders, slot);
        let by_id = self.by_id.remove(mix64(o.id), slot);
        let by_clordid = self.by_clordid.remove(clordid_hash(o.session, &o.clordid), slot);
        debug_assert!(by_id && by_clordid, "a live order is in both maps");
        self.orders.list_remove(&mut self.global, ListKind::Global, slot);
        self.orders.list_remove(
            &mut self.session_lists[o.session as usize],
            ListKind::Session,
            slot,
        );
        self.orders.list_remove(
            &mut self.account_lists[o.account as usize],
            ListKind::Account,
            slot,
        );
        self.orders.release(slot);
    }

    /// Changes a live order's client order id (replace).
    pub(crate) fn rename(&mut self, slot: u32, clordid: ClOrdId) {
        let o = *self.orders.get(slot);
        if o.clordid == clordid {
            return;
        }
        self.by_clordid.remove(clordid_hash(o.session, &o.clordid), slot);
        self.orders.get_mut(slot).clordid = clordid;
        self.by_clordid.insert(clordid_hash(o.session, &clordid), slot);
    }

    /// Puts an order (with its price and leaves set) into the book and the risk counters.
    pub(crate) fn rest(&mut self, slot: u32) {
        let o = *self.orders.get(slot);
        debug_assert!(o.leaves > 0 && !o.is_resting());
        self.touch_level(o.instrument, o.side, o.price);
        let epoch = self.epoch;
        let inst = self.instruments[o.instrument as usize]
            .as_mut()
            .expect("existing instrument");
        let level = inst
            .book
            .side_mut(o.side)
            .push_order(&mut self.levels, &mut self.orders, slot)
            .expect("level capacity checked before acceptance");
        self.levels.get_mut(level).touched_epoch = epoch;
        let account = &mut self.accounts[o.account as usize];
        account.open_orders += 1;
        account.open_notional += i128::from(o.price) * i128::from(o.leaves);
        let p = self.position_index(o.account, o.instrument);
        match o.side {
            Side::Buy => self.positions[p].open_buy += o.leaves,
            Side::Sell => self.positions[p].open_sell += o.leaves,
        }
        if o.tif == TimeInForce::Gtd && o.heap_pos == NIL {
            self.expiries.push(&mut self.orders, slot);
        }
    }

    /// Takes a resting order out of the book and the risk counters (its leaves unchanged).
    pub(crate) fn unrest(&mut self, slot: u32) {
        let o = *self.orders.get(slot);
        debug_assert!(o.is_resting());
        self.touch_level(o.instrument, o.side, o.price);
        let inst = self.instruments[o.instrument as usize]
            .as_mut()
            .expect("existing instrument");
        inst.book
            .side_mut(o.side)
            .remove_order(&mut self.levels, &mut self.orders, slot);
        let account = &mut self.accounts[o.account as usize];
        account.open_orders -= 1;
        account.open_notional -= i128::from(o.price) * i128::from(o.leaves);
        let p = self.position_index(o.account, o.instrument);
        match o.side {
            Side::Buy => self.positions[p].open_buy -= o.leaves,
            Side::Sell => self.positions[p].open_sell -= o.leaves,
        }
    }

    /// Reduces a resting order's leaves in place (time priority kept).
    pub(crate) fn reduce_resting(&mut self, slot: u32, by: u64) {
        let o = *self.orders.get(slot);
        debug_assert!(o.is_resting() && by <= o.leaves);
        self.touch_level(o.instrument, o.side, o.price);
        let inst = self.instruments[o.instrument as usize]
            .as_mut()
            .expect("existing instrument");
        inst.book
            .side_mut(o.side)
            .reduce_order(&mut self.levels, &mut self.orders, slot, by);
        self.accounts[o.account as usize].open_notional -= i128::from(o.price) * i128::from(by);
        let p = self.position_index(o.account, o.instrument);
        match o.side {
            Side::Buy => self.positions[p].open_buy -= by,
            Side::Sell => self.positions[p].open_sell -= by,
        }
    }

    /// Cancels a resting order: out of the book, `Cancelled` emitted, slot freed.
    pub(crate) fn cancel_resting(&mut self, slot: u32, reason: CancelReason, out: &mut impl OutputSink) {
        self.unrest(slot);
        self.cancel_unrested(slot, reason, out);
    }

    /// Cancels an order that is not resting (an incoming order's remainder).
    pub(crate) fn cancel_unrested(&mut self, slot: u32, reason: CancelReason, out: &mut impl OutputSink) {
        let o = self.orders.get_mut(slot);
        let cancelled_qty = o.leaves;
        o.leaves = 0;
        out.emit(Output::Cancelled {
            order: self.view(slot),
            cancelled_qty,
            reason,
        });
        self.finish(slot, Some(reason));
    }

    // ----- market data ---------------------------------------------------------------------

    pub(crate) fn tob_of(&self, inst: &Instrument) -> Tob {
        let side = |s: Side| {
            let ladder = inst.book.side(s);
            ladder
                .best()
                .map_or((0, 0), |p| (p, self.levels.get(ladder.level_at(p)).qty))
        };
        let (bp, bq) = side(Side::Buy);
        let (ap, aq) = side(Side::Sell);
        (bp, bq, ap, aq)
    }

    /// Records, once per event, the level's and the instrument's state before a change.
    #[inline]
    pub(crate) fn touch_level(&mut self, instrument: InstrumentId, side: Side, price: i64) {
        let epoch = self.epoch;
        let inst = self.instruments[instrument as usize]
            .as_ref()
            .expect("existing instrument");
        if inst.tob_epoch != epoch {
            let before = self.tob_of(inst);
            self.instruments[instrument as usize]
                .as_mut()
                .expect("exists")
                .tob_epoch = epoch;
            self.dirty_tobs.push(DirtyTob { instrument, before });
        }
        let inst = self.instruments[instrument as usize]
            .as_ref()
            .expect("existing instrument");
        let level_slot = inst.book.side(side).level_at(price);
        let before = if level_slot == NIL {
            (0, 0)
        } else {
            let level = self.levels.get_mut(level_slot);
            if level.touched_epoch == epoch {
                return;
            }
            level.touched_epoch = epoch;
            (level.qty, level.count)
        };
        let order = self.dirty_levels.len() as u32;
        self.dirty_levels.push(DirtyLevel {
            instrument,
            side,
            price,
            before,
            order,
        });
    }

    /// Emits `Level` for each level whose (quantity, order count) differs from before the event,
    /// ordered by (instrument, side buy first, price ascending), then `TopOfBook` for each
    /// instrument whose top changed, by instrument id.
    fn flush_market_data(&mut self, out: &mut impl OutputSink) {
        if !self.dirty_levels.is_empty() {
            self.dirty_levels
                .sort_unstable_by_key(|d| (d.instrument, d.side.index(), d.price, d.order));
            let mut i = 0;
            while i < self.dirty_levels.len() {
                let d = self.dirty_levels[i];
                let inst = self.instruments[d.instrument as usize]
                    .as_ref()
                    .expect("existing instrument");
                let slot = inst.book.side(d.side).level_at(d.price);
                let now = if slot == NIL {
                    (0, 0)
                } else {
                    let l = self.levels.get(slot);
                    (l.qty, l.count)
                };
                if now != d.before {
                    out.emit(Output::Level {
                        instrument: d.instrument,
                        side: d.side,
                        price: d.price,
                        qty: now.0,
                        orders: now.1,
                    });
                }
                i += 1;
                while i < self.dirty_levels.len()
                    && (
                        self.dirty_levels[i].instrument,
                        self.dirty_levels[i].side,
                        self.dirty_levels[i].price,
                    ) == (d.instrument, d.side, d.price)
                {
                    i += 1;
                }
            }
            self.dirty_levels.clear();
        }
        if !self.dirty_tobs.is_empty() {
            self.dirty_tobs.sort_unstable_by_key(|d| d.instrument);
            for k in 0..self.dirty_tobs.len() {
                let d = self.dirty_tobs[k];
                let inst = self.instruments[d.instrument as usize]
                    .as_ref()
                    .expect("existing instrument");
                let now = self.tob_of(inst);
                if now != d.before {
                    out.emit(Output::TopOfBook {
                        instrument: d.instrument,
                        bid_price: now.0,
                        bid_qty: now.1,
                        ask_price: now.2,
                        ask_qty: now.3,
                    });
                }
            }
            self.dirty_tobs.clear();
        }
    }

    // ----- queries (read-only; for the gateway, tools and tests) ---------------------------

    /// The live order of `session` with client order id `clordid`.
    pub fn order_by_clordid(&self, session: SessionId, clordid: &ClOrdId) -> Option<OrderView> {
        self.find_clordid(session, clordid).map(|s| self.view(s))
    }

    /// The live order with engine id `order_id`.
    pub fn order(&self, order_id: OrderId) -> Option<OrderView> {
        self.find_id(order_id).map(|s| self.view(s))
    }

    /// An order that has left the book, by engine id, while it is kept (`crate::done`: the last
    /// `max_orders` to finish).
    pub fn done_order(&self, order_id: OrderId) -> Option<DoneOrder> {
        self.done.by_id(order_id)
    }

    /// The last order of `session` named `clordid` to leave the book, while it is kept.
    pub fn done_order_by_clordid(&self, session: SessionId, clordid: &ClOrdId) -> Option<DoneOrder> {
        self.done.by_clordid(session, clordid)
    }

    /// (bid price, bid qty, ask price, ask qty) of an instrument, zeros for an empty side.
    pub fn top_of_book(&self, instrument: InstrumentId) -> Option<(i64, u64, i64, u64)> {
        self.instrument(instrument).map(|i| self.tob_of(i))
    }

    /// The levels of one side, best first: (price, quantity, orders). Allocates: for tools/tests.
    pub fn depth(&self, instrument: InstrumentId, side: Side) -> Vec<(i64, u64, u32)> {
        let Some(inst) = self.instrument(instrument) else {
            return Vec::new();
        };
        let ladder = inst.book.side(side);
        let mut out = Vec::new();
        let mut price = ladder.best();
        while let Some(p) = price {
            let l = self.levels.get(ladder.level_at(p));
            out.push((p, l.qty, l.count));
            price = ladder.next_worse(p);
        }
        out
    }

    /// The orders of one side in priority order. Allocates: for tools/tests.
    pub fn resting_orders(&self, instrument: InstrumentId, side: Side) -> Vec<OrderView> {
        let Some(inst) = self.instrument(instrument) else {
            return Vec::new();
        };
        let ladder = inst.book.side(side);
        let mut out = Vec::new();
        let mut price = ladder.best();
        while let Some(p) = price {
            let mut slot = self.levels.get(ladder.level_at(p)).head;
            while slot != NIL {
                out.push(self.view(slot));
                slot = self.orders.get(slot).level_link.next;
            }
            price = ladder.next_worse(p);
        }
        out
    }

    /// An account's position in an instrument.
    pub fn position(&self, account: AccountId, instrument: InstrumentId) -> Option<Position> {
        (account < self.config.max_accounts && instrument < self.config.max_instruments)
            .then(|| self.positions[self.position_index(account, instrument)])
    }

    /// An account's risk state.
    pub fn account(&self, account: AccountId) -> Option<Account> {
        self.accounts.get(account as usize).copied()
    }

    /// Live orders (resting).
    pub fn live_orders(&self) -> u32 {
        self.orders.live()
    }

    /// Whether an instrument is halted, and why.
    pub fn halt(&self, instrument: InstrumentId) -> Option<HaltReason> {
        self.instrument(instrument).and_then(|i| i.halt)
    }

    /// An instrument's reference price (0 if none).
    pub fn reference(&self, instrument: InstrumentId) -> Option<i64> {
        self.instrument(instrument).map(|i| i.reference)
    }
}
