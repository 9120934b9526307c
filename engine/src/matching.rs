//! Matching: price-time priority against the opposite side, self-trade prevention, the circuit
//! breaker, and the fill-or-kill precheck.

use crate::engine::{Engine, Instrument};
use crate::order::NIL;
use crate::output::{CancelReason, HaltReason, Output, OutputSink};
use crate::types::{InstrumentId, Side, StpMode, TimeInForce};

/// Why matching stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The incoming order is completely filled.
    Filled,
    /// No (more) crossing liquidity.
    Exhausted,
    /// Self-trade prevention stopped it (its remainder is to be cancelled).
    SelfTrade,
    /// The next trade would have tripped the circuit breaker (the instrument is now halted).
    Breaker,
    /// The order is already finished (decrement-and-cancel took its last lots).
    Done,
}

/// Whether an order on `side` with limit `limit` trades with a resting price `price`.
#[inline]
pub(crate) fn crosses(side: Side, limit: i64, price: i64) -> bool {
    match side {
        Side::Buy => price <= limit,
        Side::Sell => price >= limit,
    }
}

/// Whether `price` lies more than `bps` basis points away from `anchor`.
#[inline]
pub(crate) fn beyond_band(price: i64, anchor: i64, bps: u32) -> bool {
    i128::from((price - anchor).abs()) * 10_000 > i128::from(anchor) * i128::from(bps)
}

impl Engine {
    /// The circuit breaker's anchor for a trade now, and whether a new window starts (the
    /// anchor is then the last trade price, else the reference price, else none: 0).
    #[inline]
    fn breaker_anchor(&self, inst: &Instrument) -> (i64, bool) {
        let expired =
            !inst.anchor_set || self.now_ns >= inst.anchor_ns.saturating_add(inst.spec.breaker_window_ns);
        if expired {
            (
                if inst.last_trade != 0 {
                    inst.last_trade
                } else {
                    inst.reference
                },
                true,
            )
        } else {
            (inst.anchor_price, false)
        }
    }

    /// Whether a trade at `price` trips the breaker (starting a new window if the last ended).
    fn breaker_trips(&mut self, instrument: InstrumentId, price: i64) -> bool {
        let inst = self.instruments[instrument as usize]
            .as_ref()
            .expect("existing instrument");
        if inst.spec.breaker_bps == 0 {
            return false;
        }
        let (anchor, new_window) = self.breaker_anchor(inst);
        let bps = inst.spec.breaker_bps;
        if new_window {
            let now = self.now_ns;
            let inst = self.inst_mut(instrument);
            inst.anchor_price = anchor;
            inst.anchor_ns = now;
            inst.anchor_set = true;
        }
        anchor != 0 && beyond_band(price, anchor, bps)
    }

    fn trip_breaker(&mut self, instrument: InstrumentId, out: &mut impl OutputSink) {
        let now = self.now_ns;
        let inst = self.inst_mut(instrument);
        let until_ns = now.saturating_add(inst.spec.breaker_halt_ns);
        debug_assert!(inst.halt.is_none(), "a halted instrument does not trade");
        inst.halt = Some(HaltReason::CircuitBreaker);
        inst.halted_until = until_ns;
        self.breaker_halts += 1;
        out.emit(Output::Halted {
            instrument,
            reason: HaltReason::CircuitBreaker,
            until_ns,
        });
    }

    /// Matches the (not resting) order in `slot` against the opposite side up to `limit`.
    pub(crate) fn match_order(&mut self, slot: u32, limit: i64, out: &mut impl OutputSink) -> Stop {
        let aggressor = *self.orders.get(slot);
        debug_assert!(!aggressor.is_resting());
        let (instrument, side, account, stp) = (
            aggressor.instrument,
            aggressor.side,
            aggressor.account,
            aggressor.stp,
        );
        let opposite = side.opposite();
        loop {
            let leaves = self.orders.get(slot).leaves;
            if leaves == 0 {
                return Stop::Filled;
            }
            let inst = self.instruments[instrument as usize]
                .as_ref()
                .expect("existing instrument");
            let ladder = inst.book.side(opposite);
            let Some(price) = ladder.best() else {
                return Stop::Exhausted;
            };
            if !crosses(side, limit, price) {
                return Stop::Exhausted;
            }
            let resting = self.levels.get(ladder.level_at(price)).head;
            debug_assert_ne!(resting, NIL);
            let resting_order = *self.orders.get(resting);

            if stp != StpMode::None && resting_order.account == account {
                match stp {
                    StpMode::None => unreachable!(),
                    StpMode::CancelResting => {
                        self.cancel_resting(resting, CancelReason::SelfTrade, out);
                        continue;
                    }
                    StpMode::CancelIncoming => return Stop::SelfTrade,
                    StpMode::CancelBoth => {
                        self.cancel_resting(resting, CancelReason::SelfTrade, out);
                        return Stop::SelfTrade;
                    }
                    StpMode::DecrementAndCancel => {
                        let m = leaves.min(resting_order.leaves);
                        if m == resting_order.leaves {
                            self.cancel_resting(resting, CancelReason::SelfTrade, out);
                        } else {
                            self.reduce_resting(resting, m);
                            out.emit(Output::Restated {
                                order: self.view(resting),
                                reduced_by: m,
                                reason: CancelReason::SelfTrade,
                            });
                        }
                        if m == leaves {
                            self.cancel_unrested(slot, CancelReason::SelfTrade, out);
                            return Stop::Done;
                        }
                        self.orders.get_mut(slot).leaves -= m;
                        out.emit(Output::Restated {
                            order: self.view(slot),
                            reduced_by: m,
                            reason: CancelReason::SelfTrade,
                        });
                        continue;
                    }
                }
            }

            if self.breaker_trips(instrument, price) {
                self.trip_breaker(instrument, out);
                return Stop::Breaker;
            }

            let qty = leaves.min(resting_order.leaves);
            let notional = i128::from(price) * i128::from(qty);
            self.reduce_resting(resting, qty);
            {
                let r = self.orders.get_mut(resting);
                r.cum += qty;
                r.cum_notional += notional;
            }
            {
                let a = self.orders.get_mut(slot);
                a.leaves -= qty;
                a.cum += qty;
                a.cum_notional += notional;
            }
            let p = self.position_index(account, instrument);
            self.positions[p].fill(side, price, qty);
            let p = self.position_index(resting_order.account, instrument);
            self.positions[p].fill(opposite, price, qty);
            self.inst_mut(instrument).last_trade = price;
            let trade_id = self.next_trade_id;
            self.next_trade_id += 1;
            let (buy, sell) = match side {
                Side::Buy => (self.view(slot), self.view(resting)),
                Side::Sell => (self.view(resting), self.view(slot)),
            };
            out.emit(Output::Fill {
                trade_id,
                instrument,
                price,
                qty,
                aggressor: side,
                buy,
                sell,
            });
            if self.orders.get(resting).leaves == 0 {
                self.unrest(resting);
                self.finish(resting, None);
            }
        }
    }

    /// What happens to an incoming order after matching: finished, rested, or its remainder
    /// cancelled.
    pub(crate) fn settle(&mut self, slot: u32, stop: Stop, out: &mut impl OutputSink) {
        match stop {
            Stop::Done => {}
            Stop::Filled => self.finish(slot, None),
            Stop::SelfTrade => self.cancel_unrested(slot, CancelReason::SelfTrade, out),
            Stop::Breaker => self.cancel_unrested(slot, CancelReason::CircuitBreaker, out),
            Stop::Exhausted => {
                let o = self.orders.get(slot);
                if o.leaves == 0 {
                    self.finish(slot, None);
                } else if o.ord_type == crate::types::OrdType::Limit && o.tif.may_rest() {
                    self.rest(slot);
                } else {
                    self.cancel_unrested(slot, CancelReason::Unfilled, out);
                }
            }
        }
    }

    /// Whether a FOK order in `slot` can fill completely now, up to `limit`: walks the opposite
    /// side in priority order counting other accounts' quantity. Own orders are skipped under
    /// `CancelResting` (matching will cancel them) and make the FOK fail under the other STP
    /// modes (they would stop or shrink it). A price the circuit breaker would refuse ends the
    /// walk: the FOK is not filled rather than tripping the breaker.
    pub(crate) fn fok_fillable(&self, slot: u32, limit: i64) -> bool {
        let o = self.orders.get(slot);
        debug_assert_eq!(o.tif, TimeInForce::Fok);
        let inst = self.instruments[o.instrument as usize]
            .as_ref()
            .expect("existing instrument");
        let ladder = inst.book.side(o.side.opposite());
        let anchor = if inst.spec.breaker_bps > 0 {
            self.breaker_anchor(inst).0
        } else {
            0
        };
        let mut needed = o.leaves;
        let mut price = ladder.best();
        while let Some(p) = price {
            if !crosses(o.side, limit, p) {
                return false;
            }
            if anchor != 0 && beyond_band(p, anchor, inst.spec.breaker_bps) {
                return false;
            }
            let mut r = self.levels.get(ladder.level_at(p)).head;
            while r != NIL {
                let resting = self.orders.get(r);
                if o.stp != StpMode::None && resting.account == o.account {
                    if o.stp != StpMode::CancelResting {
                        return false;
                    }
                } else if resting.leaves >= needed {
                    return true;
                } else {
                    needed -= resting.leaves;
                }
                r = resting.level_link.next;
            }
            price = ladder.next_worse(p);
        }
        false
    }
}
