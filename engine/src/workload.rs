//! A seeded, exchange-core-like workload for benchmarks and allocation tests (not used by the
//! engine itself): about `resting` orders per instrument over ~750 price levels, then commands
//! that are 82% moves (replace to a nearby price), 9% new GTC orders, 6% cancels and 3% IOC
//! orders that cross, from 1,000 accounts, at evenly spaced timestamps.
//!
//! Commands are generated while running them through an engine of their own, so that every
//! move and cancel names an order that is live at that point: the same seed always gives the
//! same commands, and replaying them gives the same outputs and state hash.

use std::collections::HashMap;

use crate::command::{
    AccountLimits, Admin, Cancel, CancelReplace, Command, InstrumentSpec, NewOrder, OrderRef,
};
use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::output::Output;
use crate::types::{ClOrdId, InstrumentId, OrdType, Side, StpMode, Symbol, TimeInForce};

/// Mid price of every instrument, ticks.
pub const MID: i64 = 100_000;
/// Half-width of the band new orders are placed in, ticks (~750 levels in all).
pub const BAND: i64 = 375;
/// First timestamp of a workload.
pub const START_NS: u64 = 1_790_000_000_000_000_000;
/// Spacing of timestamps.
pub const STEP_NS: u64 = 1_000;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct WorkloadSpec {
    /// PRNG seed.
    pub seed: u64,
    /// Instruments.
    pub instruments: u32,
    /// Measured commands.
    pub commands: u64,
    /// Resting orders per instrument to aim for.
    pub resting: u32,
    /// Accounts.
    pub accounts: u32,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            seed: 1,
            instruments: 1,
            commands: 1_000_000,
            resting: 1_000,
            accounts: 1_000,
        }
    }
}

/// The generated workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The engine configuration the commands assume.
    pub config: EngineConfig,
    /// Instruments, limits and the initial book: applied before the measured commands.
    pub setup: Vec<Command>,
    /// The measured commands.
    pub commands: Vec<Command>,
}

impl Workload {
    /// The timestamp of event `i` (setup first, then commands).
    pub fn timestamp(i: usize) -> u64 {
        START_NS + i as u64 * STEP_NS
    }
}

/// SplitMix64: small, fast, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// Next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

#[derive(Debug, Clone, Copy)]
struct Live {
    order_id: u64,
    session: u32,
    side: Side,
    price: i64,
    qty: u64,
}

/// Live orders of one instrument, with O(1) random pick and removal.
#[derive(Debug, Default)]
struct LiveSet {
    orders: Vec<Live>,
    index: HashMap<u64, usize>,
}

impl LiveSet {
    fn insert(&mut self, o: Live) {
        self.index.insert(o.order_id, self.orders.len());
        self.orders.push(o);
    }
    fn remove(&mut self, order_id: u64) {
        if let Some(i) = self.index.remove(&order_id) {
            self.orders.swap_remove(i);
            if let Some(moved) = self.orders.get(i) {
                self.index.insert(moved.order_id, i);
            }
        }
    }
    fn get_mut(&mut self, order_id: u64) -> Option<&mut Live> {
        self.index.get(&order_id).map(|&i| &mut self.orders[i])
    }
}

struct Generator {
    engine: Engine,
    rng: Rng,
    spec: WorkloadSpec,
    live: Vec<LiveSet>,
    next_clordid: u64,
    seq: u64,
    out: Vec<Output>,
}

fn clordid(n: u64) -> ClOrdId {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    i -= 1;
    buf[i] = b'w';
    ClOrdId::new(&buf[i..]).expect("short")
}

impl Generator {
    fn apply(&mut self, cmd: Command) -> Command {
        self.seq += 1;
        self.out.clear();
        self.engine
            .apply(
                self.seq,
                Workload::timestamp(self.seq as usize - 1),
                &cmd,
                &mut self.out,
            )
            .expect("generated events are in sequence");
        for o in &self.out {
            match o {
                Output::Ack(v) if v.tif == TimeInForce::Gtc => {
                    self.live[v.instrument as usize].insert(Live {
                        order_id: v.order_id,
                        session: v.session,
                        side: v.side,
                        price: v.price,
                        qty: v.qty,
                    })
                }
                Output::Fill { buy, sell, .. } => {
                    for v in [buy, sell] {
                        if v.leaves == 0 {
                            self.live[v.instrument as usize].remove(v.order_id);
                        }
                    }
                }
                Output::Cancelled { order, .. } => {
                    self.live[order.instrument as usize].remove(order.order_id)
                }
                Output::Replaced { order, .. } => {
                    if let Some(l) = self.live[order.instrument as usize].get_mut(order.order_id) {
                        l.price = order.price;
                        l.qty = order.qty;
                    }
                }
                Output::Reject { reason, .. } => panic!("workload order rejected: {reason:?}"),
                _ => {}
            }
        }
        cmd
    }

    fn new_order(
        &mut self,
        instrument: InstrumentId,
        side: Side,
        price: i64,
        qty: u64,
        tif: TimeInForce,
    ) -> Command {
        let account = self.rng.below(u64::from(self.spec.accounts)) as u32;
        let session = account % self.engine.config().max_sessions;
        self.next_clordid += 1;
        Command::NewOrder(NewOrder {
            session,
            account,
            clordid: clordid(self.next_clordid),
            instrument,
            side,
            ord_type: OrdType::Limit,
            tif,
            qty,
            price,
            expire_ns: 0,
            post_only: false,
            stp: StpMode::None,
        })
    }

    fn passive_price(&mut self, side: Side) -> i64 {
        let offset = 1 + self.rng.below(BAND as u64) as i64;
        match side {
            Side::Buy => MID - offset,
            Side::Sell => MID + offset,
        }
    }

    fn random_side(&mut self) -> Side {
        if self.rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        }
    }

    fn next_command(&mut self) -> Command {
        let instrument = self.rng.below(u64::from(self.spec.instruments)) as InstrumentId;
        let live = self.live[instrument as usize].orders.len() as u64;
        let target = u64::from(self.spec.resting);
        let roll = self.rng.below(100);
        // Moves 82, new 9, cancel 6, IOC 3; new and cancel trade places to hold the book size.
        let kind = match roll {
            0..82 => 0,
            82..91 => {
                if live > target + target / 10 {
                    2
                } else {
                    1
                }
            }
            91..97 => {
                if live < target - target / 10 {
                    1
                } else {
                    2
                }
            }
            _ => 3,
        };
        if (kind == 0 || kind == 2) && live == 0 {
            let side = self.random_side();
            let price = self.passive_price(side);
            let qty = 1 + self.rng.below(10);
            return self.new_order(instrument, side, price, qty, TimeInForce::Gtc);
        }
        match kind {
            0 => {
                let pick = self.rng.below(live) as usize;
                let o = self.live[instrument as usize].orders[pick];
                let step = 1 + self.rng.below(8) as i64;
                let toward = self.rng.below(2) == 0;
                let delta = if toward == (o.side == Side::Buy) {
                    step
                } else {
                    -step
                };
                let price = (o.price + delta).clamp(MID - BAND - 50, MID + BAND + 50);
                self.next_clordid += 1;
                Command::CancelReplace(CancelReplace {
                    session: o.session,
                    clordid: clordid(self.next_clordid),
                    target: OrderRef {
                        order_id: o.order_id,
                        orig_clordid: ClOrdId::default(),
                    },
                    qty: o.qty,
                    price,
                })
            }
            1 => {
                let side = self.random_side();
                let price = self.passive_price(side);
                let qty = 1 + self.rng.below(10);
                self.new_order(instrument, side, price, qty, TimeInForce::Gtc)
            }
            2 => {
                let pick = self.rng.below(live) as usize;
                let o = self.live[instrument as usize].orders[pick];
                self.next_clordid += 1;
                Command::Cancel(Cancel {
                    session: o.session,
                    clordid: clordid(self.next_clordid),
                    target: OrderRef {
                        order_id: o.order_id,
                        orig_clordid: ClOrdId::default(),
                    },
                })
            }
            _ => {
                let side = self.random_side();
                let (bid, _, ask, _) = self.engine.top_of_book(instrument).expect("instrument exists");
                let through = self.rng.below(3) as i64;
                let price = match side {
                    Side::Buy if ask != 0 => ask + through,
                    Side::Sell if bid != 0 => bid - through,
                    _ => MID,
                };
                let qty = 1 + self.rng.below(20);
                self.new_order(instrument, side, price, qty, TimeInForce::Ioc)
            }
        }
    }
}

/// The engine configuration a workload of this shape needs (with room to spare).
pub fn config_for(spec: &WorkloadSpec) -> EngineConfig {
    EngineConfig {
        max_instruments: spec.instruments,
        max_accounts: spec.accounts,
        max_sessions: 64,
        max_orders: spec.instruments * spec.resting * 2 + 1_024,
        max_levels: spec.instruments * 2 * (BAND as u32 + 100) + 64,
        max_ladder_ticks: 20_000,
        day_end_ns: None,
        default_limits: AccountLimits::UNLIMITED,
    }
}

/// Generates a workload.
pub fn generate(spec: &WorkloadSpec) -> Workload {
    assert!(spec.instruments > 0 && spec.accounts > 0 && spec.resting > 0);
    let config = config_for(spec);
    let mut g = Generator {
        engine: Engine::new(config).expect("valid workload configuration"),
        rng: Rng::new(spec.seed),
        spec: *spec,
        live: (0..spec.instruments).map(|_| LiveSet::default()).collect(),
        next_clordid: 0,
        seq: 0,
        out: Vec::new(),
    };
    let mut setup = Vec::new();
    for id in 0..spec.instruments {
        setup.push(g.apply(Command::Admin(Admin::UpsertInstrument(InstrumentSpec {
            id,
            symbol: Symbol::from_text(&format!("S{id}")).expect("short"),
            tick_size_nanos: 10_000_000,
            lot_size: 1,
            min_price: MID - 10_000 + 1,
            max_price: MID + 10_000,
            collar_bps: 1_000,
            breaker_bps: 0,
            breaker_window_ns: 0,
            breaker_halt_ns: 0,
        }))));
        setup.push(g.apply(Command::ReferencePrice {
            instrument: id,
            price: MID,
        }));
    }
    for id in 0..spec.instruments {
        for _ in 0..spec.resting {
            let side = g.random_side();
            let price = g.passive_price(side);
            let qty = 1 + g.rng.below(10);
            let cmd = g.new_order(id, side, price, qty, TimeInForce::Gtc);
            setup.push(g.apply(cmd));
        }
    }
    let mut commands = Vec::with_capacity(spec.commands as usize);
    for _ in 0..spec.commands {
        let cmd = g.next_command();
        commands.push(g.apply(cmd));
    }
    Workload {
        config,
        setup,
        commands,
    }
}
