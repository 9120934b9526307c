//! Snapshots: the logical state as an rkyv archive (not the memory layout: live orders in book
//! order, not the whole pool), and restore, which rebuilds the indexes. restore(snapshot)
//! followed by the rest of a stream gives the same outputs and state hash as the uninterrupted
//! run, because nothing observable depends on slot numbers.

use crate::book::Book;
use crate::command::{AccountLimits, InstrumentSpec};
use crate::config::EngineConfig;
use crate::done::{DoneOrder, Ending};
use crate::engine::{Engine, EngineError, Instrument};
use crate::order::{NIL, Order};
use crate::output::{HaltReason, OrderView};
use crate::risk::Position;
use crate::state_hash::halt_code;
use crate::types::{ClOrdId, OrdType, Side, StpMode, TimeInForce};

/// 2: the finished orders (`crate::done`) and their digest.
const SNAPSHOT_VERSION: u32 = 2;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct InstrumentSnap {
    spec: InstrumentSpec,
    reference: i64,
    last_trade: i64,
    halt: u8,
    halted_until: u64,
    anchor_price: i64,
    anchor_ns: u64,
    anchor_set: bool,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct OrderSnap {
    id: u64,
    clordid: ClOrdId,
    session: u32,
    account: u32,
    instrument: u32,
    side: Side,
    ord_type: OrdType,
    tif: TimeInForce,
    stp: StpMode,
    post_only: bool,
    price: i64,
    qty: u64,
    leaves: u64,
    cum: u64,
    cum_notional: i128,
    expire_ns: u64,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct PositionSnap {
    index: u64,
    qty: i64,
    cost: i128,
    realized: i128,
    bought: u64,
    sold: u64,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Snapshot {
    version: u32,
    config: EngineConfig,
    last_seq: u64,
    now_ns: u64,
    next_order_id: u64,
    next_trade_id: u64,
    next_day_end_ns: u64,
    instruments: Vec<Option<InstrumentSnap>>,
    /// Resting orders in book order: instrument, side (buy, sell), level best to worst, FIFO.
    orders: Vec<OrderSnap>,
    accounts: Vec<(AccountLimits, bool)>,
    positions: Vec<PositionSnap>,
    sessions: Vec<(u32, u64, u64)>,
    /// Finished orders, oldest first (each with its ending's code), and the digest over every
    /// order ever finished.
    done: Vec<(OrderView, u8)>,
    done_digest: u64,
}

fn halt_from(code: u8) -> Result<Option<HaltReason>, EngineError> {
    match code {
        0 => Ok(None),
        1 => Ok(Some(HaltReason::Operator)),
        2 => Ok(Some(HaltReason::CircuitBreaker)),
        other => Err(EngineError::Snapshot(format!("unknown halt code {other}"))),
    }
}

impl Engine {
    /// The state as bytes (an rkyv archive). Allocates: taken between events, off the hot path.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut orders = Vec::with_capacity(self.orders.live() as usize);
        for inst in self.instruments.iter().flatten() {
            for side in [Side::Buy, Side::Sell] {
                let ladder = inst.book.side(side);
                let mut price = ladder.best();
                while let Some(p) = price {
                    let mut slot = self.levels.get(ladder.level_at(p)).head;
                    while slot != NIL {
                        let o = self.orders.get(slot);
                        orders.push(OrderSnap {
                            id: o.id,
                            clordid: o.clordid,
                            session: o.session,
                            account: o.account,
                            instrument: o.instrument,
                            side: o.side,
                            ord_type: o.ord_type,
                            tif: o.tif,
                            stp: o.stp,
                            post_only: o.post_only,
                            price: o.price,
                            qty: o.qty,
                            leaves: o.leaves,
                            cum: o.cum,
                            cum_notional: o.cum_notional,
                            expire_ns: o.expire_ns,
                        });
                        slot = o.level_link.next;
                    }
                    price = ladder.next_worse(p);
                }
            }
        }
        let snapshot = Snapshot {
            version: SNAPSHOT_VERSION,
            config: self.config,
            last_seq: self.last_seq,
            now_ns: self.now_ns,
            next_order_id: self.next_order_id,
            next_trade_id: self.next_trade_id,
            next_day_end_ns: self.next_day_end_ns,
            instruments: self
                .instruments
                .iter()
                .map(|i| {
                    i.as_ref().map(|i| InstrumentSnap {
                        spec: i.spec,
                        reference: i.reference,
                        last_trade: i.last_trade,
                        halt: halt_code(i.halt),
                        halted_until: i.halted_until,
                        anchor_price: i.anchor_price,
                        anchor_ns: i.anchor_ns,
                        anchor_set: i.anchor_set,
                    })
                })
                .collect(),
            orders,
            accounts: self.accounts.iter().map(|a| (a.limits, a.killed)).collect(),
            positions: self
                .positions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.qty != 0 || p.cost != 0 || p.realized != 0 || p.bought != 0 || p.sold != 0)
                .map(|(i, p)| PositionSnap {
                    index: i as u64,
                    qty: p.qty,
                    cost: p.cost,
                    realized: p.realized,
                    bought: p.bought,
                    sold: p.sold,
                })
                .collect(),
            sessions: self
                .sessions
                .iter()
                .map(|s| (s.per_second, s.tokens, s.refilled_ns))
                .collect(),
            done: self
                .done
                .oldest_first()
                .map(|d| (d.view, d.ending.code()))
                .collect(),
            done_digest: self.done.digest(),
        };
        rkyv::to_bytes::<rkyv::rancor::Error>(&snapshot)
            .expect("serializing plain data cannot fail")
            .to_vec()
    }

    /// Rebuilds an engine from [`Engine::snapshot`] bytes. Damaged or inconsistent bytes give
    /// [`EngineError::Snapshot`], never a panic.
    pub fn restore(bytes: &[u8]) -> Result<Engine, EngineError> {
        let bad = |m: String| EngineError::Snapshot(m);
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
        aligned.extend_from_slice(bytes);
        let snap =
            rkyv::from_bytes::<Snapshot, rkyv::rancor::Error>(&aligned).map_err(|e| bad(e.to_string()))?;
        if snap.version != SNAPSHOT_VERSION {
            return Err(bad(format!(
                "snapshot version {} (this build reads {SNAPSHOT_VERSION})",
                snap.version
            )));
        }
        let config = snap.config;
        let mut e = Engine::new(config)?;
        let sizes_ok = snap.instruments.len() == config.max_instruments as usize
            && snap.accounts.len() == config.max_accounts as usize
            && snap.sessions.len() == config.max_sessions as usize
            && snap.orders.len() <= config.max_orders as usize
            && snap.done.len() <= config.max_orders as usize;
        if !sizes_ok {
            return Err(bad("table sizes do not match the configuration".into()));
        }
        e.last_seq = snap.last_seq;
        e.now_ns = snap.now_ns;
        e.next_order_id = snap.next_order_id;
        e.next_trade_id = snap.next_trade_id;
        e.next_day_end_ns = snap.next_day_end_ns;
        for (id, s) in snap.instruments.iter().enumerate() {
            let Some(s) = s else { continue };
            let width = i128::from(s.spec.max_price) - i128::from(s.spec.min_price) + 1;
            if s.spec.id as usize != id
                || s.spec.min_price <= 0
                || width < 1
                || width > i128::from(config.max_ladder_ticks)
            {
                return Err(bad(format!("instrument {id} has an invalid specification")));
            }
            let halt = halt_from(s.halt)?;
            if halt == Some(HaltReason::CircuitBreaker) {
                e.breaker_halts += 1;
            }
            e.instruments[id] = Some(Instrument {
                spec: s.spec,
                book: Book::new(s.spec.min_price, s.spec.max_price),
                reference: s.reference,
                last_trade: s.last_trade,
                halt,
                halted_until: s.halted_until,
                anchor_price: s.anchor_price,
                anchor_ns: s.anchor_ns,
                anchor_set: s.anchor_set,
                tob_epoch: 0,
            });
        }
        for (a, (limits, killed)) in e.accounts.iter_mut().zip(&snap.accounts) {
            a.limits = *limits;
            a.killed = *killed;
        }
        for p in &snap.positions {
            let cell = e
                .positions
                .get_mut(usize::try_from(p.index).unwrap_or(usize::MAX))
                .ok_or_else(|| bad(format!("position index {} out of range", p.index)))?;
            *cell = Position {
                qty: p.qty,
                cost: p.cost,
                realized: p.realized,
                bought: p.bought,
                sold: p.sold,
                ..Position::default()
            };
        }
        for (s, (per_second, tokens, refilled_ns)) in e.sessions.iter_mut().zip(&snap.sessions) {
            s.per_second = *per_second;
            s.tokens = *tokens;
            s.refilled_ns = *refilled_ns;
        }
        for (view, code) in &snap.done {
            let ending = Ending::from_code(*code)
                .ok_or_else(|| bad(format!("finished order {}: ending {code}", view.order_id)))?;
            if view.leaves != 0 {
                return Err(bad(format!(
                    "finished order {} has {} open",
                    view.order_id, view.leaves
                )));
            }
            e.done.record(DoneOrder { view: *view, ending });
        }
        e.done.set_digest(snap.done_digest);

        // Orders: registered in id order (that is the order of the global, session and account
        // lists), then rested in book order (that is time priority).
        let mut by_id: Vec<usize> = (0..snap.orders.len()).collect();
        by_id.sort_unstable_by_key(|&i| snap.orders[i].id);
        let mut levels_needed = std::collections::BTreeSet::new();
        for &i in &by_id {
            let o = &snap.orders[i];
            let inst = e
                .instrument(o.instrument)
                .ok_or_else(|| bad(format!("order {} in unknown instrument", o.id)))?;
            let valid = o.id != 0
                && o.id < snap.next_order_id
                && o.session < config.max_sessions
                && o.account < config.max_accounts
                && o.leaves > 0
                && o.cum.checked_add(o.leaves).is_some_and(|t| t <= o.qty)
                && o.ord_type == OrdType::Limit
                && o.tif.may_rest()
                && inst.book.side(o.side).in_range(o.price);
            if !valid || e.find_id(o.id).is_some() || e.find_clordid(o.session, &o.clordid).is_some() {
                return Err(bad(format!("order {} is invalid or duplicated", o.id)));
            }
            levels_needed.insert((o.instrument, o.side as u8, o.price));
            if levels_needed.len() > config.max_levels as usize {
                return Err(bad("more price levels than the configuration allows".into()));
            }
            e.register(Order {
                id: o.id,
                clordid: o.clordid,
                session: o.session,
                account: o.account,
                instrument: o.instrument,
                side: o.side,
                ord_type: o.ord_type,
                tif: o.tif,
                stp: o.stp,
                post_only: o.post_only,
                price: o.price,
                qty: o.qty,
                leaves: o.leaves,
                cum: o.cum,
                cum_notional: o.cum_notional,
                expire_ns: o.expire_ns,
                ..Order::blank()
            });
        }
        for o in &snap.orders {
            let slot = e.find_id(o.id).expect("registered above");
            e.rest(slot);
        }
        e.dirty_levels.clear();
        e.dirty_tobs.clear();
        Ok(e)
    }
}
