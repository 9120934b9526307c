//! The canonical state hash: a walk of the logical state in a fixed order (instruments by id,
//! each side's levels from best to worst, each level's orders in time priority, then accounts,
//! positions and sessions by id). It does not depend on memory layout (slot numbers, hash-table
//! probing, free lists), so a restored snapshot hashes like the original.

use crate::engine::Engine;
use crate::hash::StableHasher;
use crate::order::{NIL, Order};
use crate::output::HaltReason;
use crate::types::Side;

pub(crate) fn hash_order(h: &mut StableHasher, o: &Order) {
    h.u64(o.id);
    h.bytes(o.clordid.as_bytes());
    h.u32(o.session);
    h.u32(o.account);
    h.u32(o.instrument);
    h.u8(o.side as u8);
    h.u8(o.ord_type as u8);
    h.u8(o.tif as u8);
    h.u8(o.stp as u8);
    h.bool(o.post_only);
    h.i64(o.price);
    h.u64(o.qty);
    h.u64(o.leaves);
    h.u64(o.cum);
    h.i128(o.cum_notional);
    h.u64(o.expire_ns);
}

pub(crate) fn halt_code(h: Option<HaltReason>) -> u8 {
    h.map_or(0, |r| r as u8)
}

impl Engine {
    /// The canonical hash of the whole state (books, orders, positions, limits, counters).
    pub fn state_hash(&self) -> u128 {
        let mut h = StableHasher::new();
        h.u64(self.last_seq);
        h.u64(self.now_ns);
        h.u64(self.next_order_id);
        h.u64(self.next_trade_id);
        h.u64(self.next_day_end_ns);
        h.u64(self.done.digest());
        for inst in &self.instruments {
            let Some(inst) = inst else {
                h.u8(0);
                continue;
            };
            h.u8(1);
            let s = &inst.spec;
            h.u32(s.id);
            h.bytes(s.symbol.as_bytes());
            h.u64(s.tick_size_nanos);
            h.u64(s.lot_size);
            h.i64(s.min_price);
            h.i64(s.max_price);
            h.u32(s.collar_bps);
            h.u32(s.breaker_bps);
            h.u64(s.breaker_window_ns);
            h.u64(s.breaker_halt_ns);
            h.i64(inst.reference);
            h.i64(inst.last_trade);
            h.u8(halt_code(inst.halt));
            h.u64(inst.halted_until);
            h.i64(inst.anchor_price);
            h.u64(inst.anchor_ns);
            h.bool(inst.anchor_set);
            for side in [Side::Buy, Side::Sell] {
                let ladder = inst.book.side(side);
                let mut price = ladder.best();
                while let Some(p) = price {
                    let level = self.levels.get(ladder.level_at(p));
                    h.i64(p);
                    h.u64(level.qty);
                    h.u32(level.count);
                    let mut slot = level.head;
                    while slot != NIL {
                        let o = self.orders.get(slot);
                        hash_order(&mut h, o);
                        slot = o.level_link.next;
                    }
                    price = ladder.next_worse(p);
                }
                h.u8(0xff);
            }
        }
        for a in &self.accounts {
            h.u64(a.limits.max_order_qty);
            h.i128(a.limits.max_order_notional);
            h.u32(a.limits.max_open_orders);
            h.u64(a.limits.max_position);
            h.i128(a.limits.credit_limit);
            h.bool(a.killed);
            h.u32(a.open_orders);
            h.i128(a.open_notional);
        }
        for (i, p) in self.positions.iter().enumerate() {
            if *p != crate::risk::Position::default() {
                h.u64(i as u64);
                h.i64(p.qty);
                h.i128(p.cost);
                h.i128(p.realized);
                h.u64(p.open_buy);
                h.u64(p.open_sell);
                h.u64(p.bought);
                h.u64(p.sold);
            }
        }
        for s in &self.sessions {
            h.u32(s.per_second);
            h.u64(s.tokens);
            h.u64(s.refilled_ns);
        }
        h.finish()
    }
}
