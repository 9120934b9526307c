//! The engine against the reference model, output by output, on random command streams
//! (invalid commands included), with the invariants checked after every event; and the same
//! stream replayed twice, and through a snapshot taken at a random point.

mod model;

use std::collections::BTreeMap;

use model::Model;
use ordo_engine::hash::StableHasher;
use ordo_engine::*;
use proptest::prelude::*;

const BASE_NS: u64 = 1_790_000_000_000_000_000;

fn config() -> EngineConfig {
    EngineConfig {
        max_instruments: 4,
        max_accounts: 4,
        max_sessions: 4,
        max_orders: 12,
        max_levels: 8,
        max_ladder_ticks: 100_000,
        day_end_ns: Some(21 * 3_600 * 1_000_000_000),
        default_limits: AccountLimits::UNLIMITED,
    }
}

fn setup() -> Vec<Command> {
    let spec = |id, sym: &str, min_price, max_price, collar_bps, breaker_bps| InstrumentSpec {
        id,
        symbol: Symbol::from_text(sym).unwrap(),
        tick_size_nanos: 10_000_000,
        lot_size: 1,
        min_price,
        max_price,
        collar_bps,
        breaker_bps,
        breaker_window_ns: 1_000_000_000,
        breaker_halt_ns: 2_000_000_000,
    };
    vec![
        Command::Admin(Admin::UpsertInstrument(spec(0, "AAA", 9_900, 10_100, 20, 0))),
        Command::Admin(Admin::UpsertInstrument(spec(1, "BBB", 1, 100_000, 0, 0))),
        Command::Admin(Admin::UpsertInstrument(spec(2, "CCC", 1, 100_000, 0, 30))),
        Command::ReferencePrice {
            instrument: 0,
            price: 10_000,
        },
        Command::ReferencePrice {
            instrument: 2,
            price: 10_000,
        },
    ]
}

fn clordid(i: u8) -> ClOrdId {
    ClOrdId::from_text(&format!("c{i}")).unwrap()
}

/// A command with its expiry relative to its event time.
#[derive(Debug, Clone)]
enum Raw {
    New { o: NewOrder, expire_in: u64 },
    Other(Command),
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

/// Ids are mostly valid (a few invalid ones test the rejects).
fn session() -> impl Strategy<Value = u32> {
    prop_oneof![30 => 0u32..3, 1 => Just(4u32)]
}

fn account() -> impl Strategy<Value = u32> {
    prop_oneof![30 => 0u32..4, 1 => Just(9u32)]
}

fn instrument() -> impl Strategy<Value = u32> {
    prop_oneof![12 => Just(0u32), 4 => Just(1u32), 12 => Just(2u32), 1 => Just(3u32)]
}

/// A small pool of client order ids, so that cancels and replaces find live orders.
fn cl() -> impl Strategy<Value = u8> {
    0u8..8
}

fn target() -> impl Strategy<Value = OrderRef> {
    prop_oneof![
        4 => cl().prop_map(|i| OrderRef { order_id: 0, orig_clordid: clordid(i) }),
        1 => (1u64..60).prop_map(|id| OrderRef { order_id: id, orig_clordid: clordid(0) }),
    ]
}

fn price() -> impl Strategy<Value = i64> {
    // Mostly a narrow band, so that orders meet at the same prices (priority, replaces in
    // place); sometimes wider (collars, the breaker), sometimes invalid.
    prop_oneof![40 => 9_996i64..=10_004, 10 => 9_970i64..=10_030, 1 => Just(0i64), 1 => Just(-3i64), 1 => Just(200_000i64)]
}

fn new_order() -> impl Strategy<Value = Raw> {
    (
        (session(), account(), cl(), instrument(), side()),
        (
            prop_oneof![9 => Just(OrdType::Limit), 1 => Just(OrdType::Market)],
            prop_oneof![7 => Just(0usize), 6 => Just(1usize), 2 => Just(2usize), 2 => Just(3usize), 3 => Just(4usize)],
            prop_oneof![20 => 1u64..=6, 4 => 7u64..=12, 1 => Just(0u64)],
        ),
        (price(), 0u64..3_000_000_000, prop::bool::weighted(0.1), 0usize..5),
    )
        .prop_map(|((session, account, c, instrument, side), (ord_type, tif, qty), (price, expire_in, post_only, stp))| {
            let tif = [TimeInForce::Day, TimeInForce::Gtc, TimeInForce::Ioc, TimeInForce::Fok, TimeInForce::Gtd][tif];
            let stp = [StpMode::None, StpMode::CancelResting, StpMode::CancelIncoming, StpMode::CancelBoth, StpMode::DecrementAndCancel][stp];
            let price = if ord_type == OrdType::Market && price > 0 && price < 100_000 { 0 } else { price };
            Raw::New {
                o: NewOrder { session, account, clordid: clordid(c), instrument, side, ord_type, tif, qty, price, expire_ns: 0, post_only, stp },
                expire_in,
            }
        })
}

fn limits() -> impl Strategy<Value = AccountLimits> {
    prop_oneof![
        Just(AccountLimits::UNLIMITED),
        (
            1u64..30,
            50_000i128..400_000,
            1u32..6,
            1u64..40,
            100_000i128..800_000
        )
            .prop_map(
                |(max_order_qty, max_order_notional, max_open_orders, max_position, credit_limit)| {
                    AccountLimits {
                        max_order_qty,
                        max_order_notional,
                        max_open_orders,
                        max_position,
                        credit_limit,
                    }
                }
            ),
    ]
}

fn other() -> impl Strategy<Value = Raw> {
    prop_oneof![
        15 => (session(), cl(), target()).prop_map(|(session, c, target)| Command::Cancel(Cancel { session, clordid: clordid(c), target })),
        20 => (session(), cl(), target(), prop_oneof![10 => 1u64..=8, 1 => 0u64..=15], price()).prop_map(|(session, c, target, qty, price)| {
            Command::CancelReplace(CancelReplace { session, clordid: clordid(c), target, qty, price })
        }),
        2 => (session(), cl(), prop::option::of(account()), prop::option::of(instrument()), any::<bool>()).prop_map(
            |(session, c, account, instrument, all_sessions)| Command::MassCancel(MassCancel { session, clordid: clordid(c), account, instrument, all_sessions })
        ),
        4 => (0u32..4, prop_oneof![9_950i64..=10_050, Just(0)]).prop_map(|(instrument, price)| Command::ReferencePrice { instrument, price }),
        1 => (session(), any::<bool>()).prop_map(|(session, cancel_orders)| Command::SessionDisconnected { session, cancel_orders }),
        2 => (account(), prop::bool::weighted(0.3)).prop_map(|(account, active)| Command::Admin(Admin::KillSwitch { account, active })),
        1 => (instrument(), any::<bool>()).prop_map(|(instrument, halt)| Command::Admin(if halt { Admin::Halt { instrument } } else { Admin::Resume { instrument } })),
        1 => (session(), prop_oneof![3 => Just(0u32), 1 => 1u32..4]).prop_map(|(session, per_second)| Command::Admin(Admin::SetThrottle { session, per_second })),
        2 => (account(), limits()).prop_map(|(account, limits)| Command::Admin(Admin::SetAccountLimits { account, limits })),
        1 => (0u32..3, 0u32..60, 0u32..50, 9_900i64..9_950).prop_map(|(id, collar_bps, breaker_bps, min_price)| {
            Command::Admin(Admin::UpsertInstrument(InstrumentSpec {
                id,
                symbol: Symbol::from_text("UPD").unwrap(),
                tick_size_nanos: 10_000_000,
                lot_size: if collar_bps == 0 { 0 } else { 100 },
                min_price,
                max_price: 10_100,
                collar_bps,
                breaker_bps,
                breaker_window_ns: 1_000_000_000,
                breaker_halt_ns: 2_000_000_000,
            }))
        }),
        5 => Just(Command::Tick),
    ]
    .prop_map(Raw::Other)
}

fn dt() -> impl Strategy<Value = u64> {
    prop_oneof![90 => 0u64..200_000, 8 => 0u64..3_000_000_000, 1 => 0u64..86_400_000_000_000]
}

fn stream() -> impl Strategy<Value = Vec<(u64, Raw)>> {
    prop::collection::vec((dt(), prop_oneof![3 => new_order(), 2 => other()]), 1..250)
}

/// Absolute timestamps and commands.
fn concrete(raw: &[(u64, Raw)]) -> Vec<(u64, Command)> {
    let mut ts = BASE_NS;
    let mut out: Vec<(u64, Command)> = setup().into_iter().map(|c| (BASE_NS, c)).collect();
    for (dt, r) in raw {
        ts += dt;
        out.push((
            ts,
            match r {
                Raw::New { o, expire_in } => {
                    let mut o = *o;
                    if o.tif == TimeInForce::Gtd {
                        o.expire_ns = ts + expire_in;
                    }
                    Command::NewOrder(o)
                }
                Raw::Other(c) => *c,
            },
        ));
    }
    out
}

/// Per-order bookkeeping reconstructed from outputs, for the invariants.
#[derive(Default)]
struct Books {
    /// order id -> quantity removed by decrement-and-cancel since the last replace.
    reduced: BTreeMap<u64, u64>,
    /// (account, instrument) -> net filled quantity.
    net: BTreeMap<(u32, u32), i64>,
    killed: BTreeMap<u32, bool>,
}

fn check_view(books: &Books, v: &OrderView, what: &str) -> Result<(), TestCaseError> {
    let reduced = books.reduced.get(&v.order_id).copied().unwrap_or(0);
    prop_assert_eq!(v.cum + v.leaves + reduced, v.qty, "{} {:?}", what, v);
    Ok(())
}

fn check_outputs(books: &mut Books, out: &[Output]) -> Result<(), TestCaseError> {
    for o in out {
        match o {
            Output::Ack(v) => check_view(books, v, "ack")?,
            Output::Fill {
                buy,
                sell,
                qty,
                price,
                instrument,
                ..
            } => {
                prop_assert!(*qty > 0);
                prop_assert!(buy.price == 0 || *price <= buy.price || buy.ord_type == OrdType::Market);
                prop_assert!(sell.price == 0 || *price >= sell.price || sell.ord_type == OrdType::Market);
                check_view(books, buy, "fill buy")?;
                check_view(books, sell, "fill sell")?;
                *books.net.entry((buy.account, *instrument)).or_default() += *qty as i64;
                *books.net.entry((sell.account, *instrument)).or_default() -= *qty as i64;
            }
            Output::Cancelled {
                order, cancelled_qty, ..
            } => {
                let reduced = books.reduced.get(&order.order_id).copied().unwrap_or(0);
                prop_assert_eq!(order.leaves, 0);
                prop_assert_eq!(
                    order.cum + cancelled_qty + reduced,
                    order.qty,
                    "cancel {:?}",
                    order
                );
            }
            Output::Restated {
                order, reduced_by, ..
            } => {
                *books.reduced.entry(order.order_id).or_default() += reduced_by;
                check_view(books, order, "restated")?;
            }
            Output::Replaced { order, .. } => {
                books.reduced.remove(&order.order_id);
                check_view(books, order, "replaced")?;
            }
            Output::KillSwitch { account, active } => {
                books.killed.insert(*account, *active);
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_state(engine: &Engine, books: &Books) -> Result<(), TestCaseError> {
    for instrument in 0..4 {
        if let Some((bid, bid_qty, ask, ask_qty)) = engine.top_of_book(instrument) {
            prop_assert!(
                bid == 0 || ask == 0 || bid < ask,
                "crossed book {} {} {}",
                instrument,
                bid,
                ask
            );
            prop_assert_eq!(bid == 0, bid_qty == 0);
            prop_assert_eq!(ask == 0, ask_qty == 0);
        }
        let (mut bought, mut sold) = (0, 0);
        for account in 0..4 {
            let p = engine.position(account, instrument).unwrap();
            bought += p.bought;
            sold += p.sold;
            prop_assert_eq!(p.qty, books.net.get(&(account, instrument)).copied().unwrap_or(0));
            prop_assert_eq!(p.qty, p.bought as i64 - p.sold as i64);
        }
        prop_assert_eq!(bought, sold, "bought = sold in {}", instrument);
    }
    for (account, killed) in &books.killed {
        if *killed {
            prop_assert_eq!(
                engine.account(*account).unwrap().open_orders,
                0,
                "killed account {} rests",
                account
            );
        }
    }
    Ok(())
}

fn digest(out: &[Output], h: &mut StableHasher) {
    for o in out {
        o.digest(h);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model(raw in stream(), snapshot_at in any::<prop::sample::Index>()) {
        let events = concrete(&raw);
        let mut engine = Engine::new(config()).unwrap();
        let mut model = Model::new(config());
        let mut books = Books::default();
        let mut out = Vec::new();
        let mut run_digest = StableHasher::new();
        let snapshot_at = snapshot_at.index(events.len());
        let mut snapshot = None;
        let mut digest_after_snapshot = StableHasher::new();
        for (i, (ts, cmd)) in events.iter().enumerate() {
            if i == snapshot_at {
                snapshot = Some(engine.snapshot());
            }
            out.clear();
            engine.apply(i as u64 + 1, *ts, cmd, &mut out).unwrap();
            let expected = model.apply(*ts, cmd);
            prop_assert_eq!(&out, &expected, "event {} {:?}", i, cmd);
            check_outputs(&mut books, &out)?;
            check_state(&engine, &books)?;
            digest(&out, &mut run_digest);
            if i >= snapshot_at {
                digest(&out, &mut digest_after_snapshot);
            }
        }
        let final_hash = engine.state_hash();

        // The same stream again: the same outputs, byte for byte, and the same state hash.
        let mut again = Engine::new(config()).unwrap();
        let mut again_digest = StableHasher::new();
        for (i, (ts, cmd)) in events.iter().enumerate() {
            out.clear();
            again.apply(i as u64 + 1, *ts, cmd, &mut out).unwrap();
            digest(&out, &mut again_digest);
        }
        prop_assert_eq!(again_digest.finish(), run_digest.finish());
        prop_assert_eq!(again.state_hash(), final_hash);

        // Snapshot at a random point, restore, apply the rest: the same outputs and hash.
        let mut restored = Engine::restore(&snapshot.unwrap()).unwrap();
        let mut restored_digest = StableHasher::new();
        for (i, (ts, cmd)) in events.iter().enumerate().skip(snapshot_at) {
            out.clear();
            restored.apply(i as u64 + 1, *ts, cmd, &mut out).unwrap();
            digest(&out, &mut restored_digest);
        }
        prop_assert_eq!(restored_digest.finish(), digest_after_snapshot.finish());
        prop_assert_eq!(restored.state_hash(), final_hash);
    }
}
