//! One test per order type, rule and reject reason.

mod common;

use Side::{Buy, Sell};
use common::*;
use ordo_engine::*;

#[test]
fn limit_order_rests_with_ack_level_and_top_of_book() {
    let mut h = Harness::new();
    let out = h.run(limit(0, 0, "b1", Buy, 10, 9_990).cmd());
    match &out[0] {
        Output::Ack(v) => {
            assert_eq!(
                (v.order_id, v.qty, v.leaves, v.cum, v.price),
                (1, 10, 10, 0, 9_990)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        out[1],
        Output::Level {
            instrument: AAA,
            side: Buy,
            price: 9_990,
            qty: 10,
            orders: 1
        }
    );
    assert_eq!(
        out[2],
        Output::TopOfBook {
            instrument: AAA,
            bid_price: 9_990,
            bid_qty: 10,
            ask_price: 0,
            ask_qty: 0
        }
    );
    assert_eq!(out.len(), 3);
    assert_eq!(h.engine.depth(AAA, Buy), vec![(9_990, 10, 1)]);
}

#[test]
fn crossing_limit_trades_at_resting_prices_in_price_time_priority() {
    let mut h = Harness::new();
    h.run(limit(0, 0, "s1", Sell, 5, 10_010).cmd());
    h.run(limit(0, 0, "s2", Sell, 5, 10_000).cmd());
    h.run(limit(1, 1, "s3", Sell, 5, 10_000).cmd()); // same price, later: after s2
    let out = h.run(limit(2, 2, "b1", Buy, 12, 10_010).cmd());
    assert_eq!(
        fills(&out),
        vec![
            (10_000, 5, "b1".into(), "s2".into()),
            (10_000, 5, "b1".into(), "s3".into()),
            (10_010, 2, "b1".into(), "s1".into())
        ]
    );
    // Trade ids run on; the aggressor's cumulative and average price are in each fill.
    let last = out.iter().rev().find_map(|o| match o {
        Output::Fill {
            trade_id,
            buy,
            sell,
            aggressor,
            ..
        } => Some((*trade_id, *buy, *sell, *aggressor)),
        _ => None,
    });
    let (trade_id, buy, sell, aggressor) = last.unwrap();
    assert_eq!((trade_id, aggressor), (3, Buy));
    assert_eq!(
        (buy.cum, buy.leaves, buy.cum_notional),
        (12, 0, 5 * 10_000 * 2 + 2 * 10_010)
    );
    assert_eq!((sell.cum, sell.leaves), (2, 3));
    assert_eq!(h.engine.depth(AAA, Sell), vec![(10_010, 3, 1)]);
    assert!(
        h.engine.depth(AAA, Buy).is_empty(),
        "fully filled aggressor does not rest"
    );
}

#[test]
fn market_order_sweeps_but_never_beyond_the_collar() {
    let mut h = Harness::new();
    h.run(limit(0, 0, "s1", Sell, 5, 10_500).cmd());
    h.run(limit(0, 0, "s2", Sell, 5, 11_000).cmd()); // collar 10%: 11_000 is the edge
    h.run(limit(0, 0, "s3", Sell, 5, 11_001).cmd()); // collar blocks it (but it was entered... no)
    let out = h.run(market(1, 1, "m1", Buy, 20).cmd());
    assert_eq!(
        fills(&out).iter().map(|f| f.0).collect::<Vec<_>>(),
        vec![10_500, 11_000]
    );
    assert_eq!(cancels(&out), vec![("m1".into(), CancelReason::Unfilled, 10)]);
}

#[test]
fn market_order_rules() {
    let mut h = Harness::new();
    assert_eq!(
        reject_reason(&h.run(market(0, 0, "m1", Buy, 5).tif(TimeInForce::Gtc).cmd())),
        Some(Reason::InvalidTimeInForce)
    );
    let mut priced = market(0, 0, "m2", Buy, 5);
    priced.0.price = 10_000;
    assert_eq!(reject_reason(&h.run(priced.cmd())), Some(Reason::InvalidPrice));
    // Without a reference price a market order has no collar: refused.
    let mut spec = spec(2, "CCC");
    spec.collar_bps = 500;
    h.admin(Admin::UpsertInstrument(spec));
    assert_eq!(
        reject_reason(&h.run(market(0, 0, "m3", Buy, 5).instrument(2).cmd())),
        Some(Reason::NoReferencePrice)
    );
    // An empty book: acked, then the whole order is cancelled unfilled.
    let out = h.run(market(0, 0, "m4", Sell, 5).cmd());
    assert!(acked(&out));
    assert_eq!(cancels(&out), vec![("m4".into(), CancelReason::Unfilled, 5)]);
}

#[test]
fn ioc_fills_what_it_can_and_cancels_the_rest() {
    let mut h = Harness::new();
    h.run(limit(0, 0, "s1", Sell, 3, 10_000).cmd());
    let out = h.run(limit(1, 1, "b1", Buy, 10, 10_000).tif(TimeInForce::Ioc).cmd());
    assert_eq!(fills(&out).len(), 1);
    assert_eq!(cancels(&out), vec![("b1".into(), CancelReason::Unfilled, 7)]);
    assert!(h.engine.depth(AAA, Buy).is_empty());
}

#[test]
fn fok_fills_completely_or_not_at_all() {
    let mut h = Harness::new();
    h.run(limit(0, 0, "s1", Sell, 3, 10_000).cmd());
    h.run(limit(0, 0, "s2", Sell, 3, 10_001).cmd());
    let out = h.run(limit(1, 1, "b1", Buy, 7, 10_001).tif(TimeInForce::Fok).cmd());
    assert!(acked(&out));
    assert!(fills(&out).is_empty());
    assert_eq!(cancels(&out), vec![("b1".into(), CancelReason::FokUnfilled, 7)]);
    assert_eq!(h.engine.depth(AAA, Sell).len(), 2, "nothing traded");
    let out = h.run(limit(1, 1, "b2", Buy, 6, 10_001).tif(TimeInForce::Fok).cmd());
    assert_eq!(fills(&out).len(), 2);
    assert!(cancels(&out).is_empty());
}

#[test]
fn fok_and_self_trade_prevention() {
    let mut h = Harness::new();
    h.run(limit(0, 0, "own", Sell, 5, 10_000).cmd());
    h.run(limit(1, 1, "other", Sell, 5, 10_001).cmd());
    // CancelIncoming would stop at the own order: the FOK cannot fill.
    let out = h.run(
        limit(0, 0, "f1", Buy, 5, 10_001)
            .tif(TimeInForce::Fok)
            .stp(StpMode::CancelIncoming)
            .cmd(),
    );
    assert_eq!(cancels(&out), vec![("f1".into(), CancelReason::FokUnfilled, 5)]);
    // CancelResting skips (and cancels) the own order and fills against the other.
    let out = h.run(
        limit(0, 0, "f2", Buy, 5, 10_001)
            .tif(TimeInForce::Fok)
            .stp(StpMode::CancelResting)
            .cmd(),
    );
    assert_eq!(cancels(&out), vec![("own".into(), CancelReason::SelfTrade, 5)]);
    assert_eq!(fills(&out), vec![(10_001, 5, "f2".into(), "other".into())]);
}

#[test]
fn post_only_rests_or_is_rejected() {
    let mut h = Harness::new();
    h.run(limit(0, 0, "s1", Sell, 5, 10_000).cmd());
    assert_eq!(
        reject_reason(&h.run(limit(1, 1, "p1", Buy, 5, 10_000).post_only().cmd())),
        Some(Reason::PostOnlyWouldCross)
    );
    assert!(acked(&h.run(limit(1, 1, "p2", Buy, 5, 9_999).post_only().cmd())));
    assert_eq!(
        reject_reason(
            &h.run(
                limit(1, 1, "p3", Buy, 5, 9_999)
                    .post_only()
                    .tif(TimeInForce::Ioc)
                    .cmd()
            )
        ),
        Some(Reason::InvalidPostOnly)
    );
}

#[test]
fn gtd_orders_expire_on_event_time() {
    let mut h = Harness::new();
    let now = h.now;
    assert_eq!(
        reject_reason(&h.run(limit(0, 0, "g0", Buy, 1, 9_000).gtd(now).cmd())),
        Some(Reason::ExpiryInPast)
    );
    let mut no_expiry = limit(0, 0, "g00", Buy, 1, 9_000);
    no_expiry.0.tif = TimeInForce::Gtd;
    assert_eq!(
        reject_reason(&h.run(no_expiry.cmd())),
        Some(Reason::InvalidTimeInForce)
    );
    h.run(limit(0, 0, "g2", Buy, 1, 9_000).gtd(now + 50_000).cmd());
    h.run(limit(0, 0, "g1", Buy, 1, 9_000).gtd(now + 20_000).cmd());
    assert!(cancels(&h.at(now + 19_999, Command::Tick)).is_empty());
    let out = h.at(now + 60_000, Command::Tick);
    // Both expire, in expiry order.
    assert_eq!(
        cancels(&out),
        vec![
            ("g1".into(), CancelReason::Expired, 1),
            ("g2".into(), CancelReason::Expired, 1)
        ]
    );
}

#[test]
fn day_orders_end_with_the_trading_day() {
    let mut config = small_config();
    config.day_end_ns = Some(22 * 3_600 * 1_000_000_000); // 22:00 UTC
    let mut h = Harness::with_config(config);
    let day = 86_400 * 1_000_000_000u64;
    let morning = 20_000 * day + 9 * 3_600 * 1_000_000_000;
    h.at(morning, limit(0, 0, "day", Buy, 1, 9_000).cmd());
    h.at(
        morning + 1,
        limit(0, 0, "gtc", Buy, 1, 9_000).tif(TimeInForce::Gtc).cmd(),
    );
    assert!(cancels(&h.at(20_000 * day + 22 * 3_600 * 1_000_000_000 - 1, Command::Tick)).is_empty());
    let out = h.at(20_000 * day + 22 * 3_600 * 1_000_000_000, Command::Tick);
    assert_eq!(cancels(&out), vec![("day".into(), CancelReason::DayEnd, 1)]);
    assert_eq!(h.engine.depth(AAA, Buy), vec![(9_000, 1, 1)]);
}

#[test]
fn self_trade_prevention_modes() {
    // (mode, expected cancels, expected fills with the other account)
    type Case = (StpMode, Vec<(&'static str, CancelReason, u64)>, usize);
    let cases: [Case; 4] = [
        (
            StpMode::CancelResting,
            vec![("own", CancelReason::SelfTrade, 5)],
            1,
        ),
        (
            StpMode::CancelIncoming,
            vec![("in", CancelReason::SelfTrade, 8)],
            0,
        ),
        (
            StpMode::CancelBoth,
            vec![
                ("own", CancelReason::SelfTrade, 5),
                ("in", CancelReason::SelfTrade, 8),
            ],
            0,
        ),
        (StpMode::None, vec![], 2),
    ];
    for (mode, expected, other_fills) in cases {
        let mut h = Harness::new();
        h.run(limit(0, 0, "own", Sell, 5, 10_000).cmd());
        h.run(limit(1, 1, "other", Sell, 5, 10_000).cmd());
        let out = h.run(limit(0, 0, "in", Buy, 8, 10_000).stp(mode).cmd());
        let got: Vec<(String, CancelReason, u64)> = cancels(&out);
        let expected: Vec<(String, CancelReason, u64)> = expected
            .into_iter()
            .map(|(a, b, c)| (a.to_string(), b, c))
            .collect();
        assert_eq!(got, expected, "{mode:?}");
        assert_eq!(fills(&out).len(), other_fills, "{mode:?}");
    }
}

#[test]
fn decrement_and_cancel() {
    let mut h = Harness::new();
    h.run(limit(0, 0, "own", Sell, 5, 10_000).cmd());
    h.run(limit(1, 1, "other", Sell, 5, 10_000).cmd());
    let out = h.run(
        limit(0, 0, "in", Buy, 8, 10_000)
            .stp(StpMode::DecrementAndCancel)
            .cmd(),
    );
    // own (5) is smaller: cancelled; in is decremented by 5 to 3 and trades 3 with other.
    assert_eq!(cancels(&out), vec![("own".into(), CancelReason::SelfTrade, 5)]);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Restated { order, reduced_by: 5, .. } if order.leaves == 3))
    );
    assert_eq!(fills(&out), vec![(10_000, 3, "in".into(), "other".into())]);
    // Larger resting: it is decremented (restated), the incoming is cancelled.
    h.run(limit(0, 0, "own2", Sell, 9, 10_000).cmd());
    let out = h.run(
        limit(0, 0, "in2", Buy, 4, 10_005)
            .stp(StpMode::DecrementAndCancel)
            .cmd(),
    );
    // other (2 left) trades first: it is ahead in time.
    assert_eq!(fills(&out), vec![(10_000, 2, "in2".into(), "other".into())]);
    assert_eq!(cancels(&out), vec![("in2".into(), CancelReason::SelfTrade, 2)]);
    assert_eq!(h.engine.depth(AAA, Sell), vec![(10_000, 7, 1)]);
}

#[test]
fn cancel_rules() {
    let mut h = Harness::new();
    h.run(limit(0, 0, "b1", Buy, 5, 9_000).cmd());
    assert_eq!(
        cancel_reject_reason(&h.run(cancel(0, "c1", "nope"))),
        Some(Reason::UnknownOrder)
    );
    // Another session cannot find it by its client order id, nor cancel it by order id.
    assert_eq!(
        cancel_reject_reason(&h.run(cancel(1, "c2", "b1"))),
        Some(Reason::UnknownOrder)
    );
    let by_id = Command::Cancel(Cancel {
        session: 1,
        clordid: clid("c3"),
        target: OrderRef {
            order_id: 1,
            orig_clordid: clid("b1"),
        },
    });
    assert_eq!(cancel_reject_reason(&h.run(by_id)), Some(Reason::NotYourOrder));
    let out = h.run(cancel(0, "c4", "b1"));
    assert_eq!(cancels(&out), vec![("b1".into(), CancelReason::User, 5)]);
    assert_eq!(
        cancel_reject_reason(&h.run(cancel(0, "c5", "b1"))),
        Some(Reason::UnknownOrder),
        "already done"
    );
}

#[test]
fn replace_keeps_priority_only_for_a_quantity_decrease() {
    let mut h = Harness::new();
    h.run(limit(0, 0, "a", Sell, 5, 10_000).cmd());
    h.run(limit(1, 1, "b", Sell, 5, 10_000).cmd());
    let out = h.run(replace(0, "a2", "a", 3, 10_000));
    assert!(out.iter().any(|o| matches!(o, Output::Replaced { order, orig_clordid } if order.leaves == 3 && orig_clordid.as_str() == "a")));
    // a2 is still first.
    assert_eq!(fills(&h.run(limit(2, 2, "x", Buy, 1, 10_000).cmd()))[0].3, "a2");
    // Quantity up: to the back.
    h.run(replace(0, "a3", "a2", 6, 10_000));
    assert_eq!(fills(&h.run(limit(2, 2, "y", Buy, 1, 10_000).cmd()))[0].3, "b");
    // Price change and back: to the back as well.
    h.run(replace(1, "b2", "b", 5, 10_001));
    h.run(replace(1, "b3", "b2", 5, 10_000));
    assert_eq!(fills(&h.run(limit(2, 2, "z", Buy, 1, 10_000).cmd()))[0].3, "a3");
}

#[test]
fn replace_that_crosses_trades_and_replace_rejects() {
    let mut h = Harness::new();
    h.run(limit(0, 0, "s", Sell, 5, 10_010).cmd());
    h.run(limit(1, 1, "b", Buy, 5, 10_000).cmd());
    h.run(limit(1, 1, "b9", Buy, 1, 9_000).cmd());
    let out = h.run(replace(1, "b2", "b", 5, 10_010));
    assert_eq!(fills(&out), vec![(10_010, 5, "b2".into(), "s".into())]);
    assert_eq!(
        cancel_reject_reason(&h.run(replace(1, "x", "b9", 0, 9_000))),
        Some(Reason::InvalidQuantity)
    );
    assert_eq!(
        cancel_reject_reason(&h.run(replace(1, "x", "b9", 1, -5))),
        Some(Reason::InvalidPrice)
    );
    assert_eq!(
        cancel_reject_reason(&h.run(replace(1, "x", "b9", 1, 100_001))),
        Some(Reason::PriceOutOfRange)
    );
    h.run(limit(1, 1, "dup", Buy, 1, 9_000).cmd());
    assert_eq!(
        cancel_reject_reason(&h.run(replace(1, "dup", "b9", 2, 9_000))),
        Some(Reason::DuplicateClOrdId)
    );
    // Partially filled: the new quantity must stay above what is filled.
    h.run(limit(0, 0, "s2", Sell, 10, 9_500).cmd());
    h.run(limit(1, 1, "hit", Buy, 4, 9_500).cmd());
    assert_eq!(
        cancel_reject_reason(&h.run(replace(0, "s3", "s2", 4, 9_500))),
        Some(Reason::InvalidQuantity)
    );
    assert!(
        h.run(replace(0, "s3", "s2", 5, 9_500))
            .iter()
            .any(|o| matches!(o, Output::Replaced { order, .. } if order.leaves == 1))
    );
    // A post-only order's replace may not cross.
    h.run(limit(0, 0, "po", Sell, 1, 10_500).post_only().cmd());
    assert_eq!(
        cancel_reject_reason(&h.run(replace(0, "po2", "po", 1, 9_000))),
        Some(Reason::PostOnlyWouldCross)
    );
}

#[test]
fn mass_cancel_by_session_account_instrument_and_all() {
    let mut h = Harness::new();
    h.run(limit(0, 0, "a", Buy, 1, 9_000).cmd());
    h.run(limit(0, 1, "b", Buy, 1, 9_000).cmd());
    h.run(limit(0, 0, "c", Buy, 1, 9_000).instrument(BBB).cmd());
    h.run(limit(1, 2, "d", Buy, 1, 9_000).cmd());
    h.run(limit(1, 2, "e", Buy, 1, 9_000).instrument(BBB).cmd());
    let mc = |session, account, instrument, all_sessions| {
        Command::MassCancel(MassCancel {
            session,
            clordid: clid("mc"),
            account,
            instrument,
            all_sessions,
        })
    };
    let names = |out: &[Output]| cancels(out).into_iter().map(|c| c.0).collect::<Vec<_>>();
    assert_eq!(names(&h.run(mc(0, Some(1), None, false))), vec!["b"]);
    assert_eq!(names(&h.run(mc(0, None, Some(BBB), false))), vec!["c"]);
    let out = h.run(mc(0, None, None, true));
    assert_eq!(
        names(&out),
        vec!["a", "d", "e"],
        "all sessions, in order id order"
    );
    assert!(matches!(
        out.iter()
            .rev()
            .find(|o| matches!(o, Output::MassCancelDone { .. })),
        Some(Output::MassCancelDone {
            cancelled: 3,
            rejected: None,
            ..
        })
    ));
    let out = h.run(mc(0, Some(99), None, false));
    assert!(matches!(
        out[0],
        Output::MassCancelDone {
            cancelled: 0,
            rejected: Some(Reason::UnknownAccount),
            ..
        }
    ));
}

#[test]
fn validation_rejects() {
    let mut h = Harness::new();
    let r = |h: &mut Harness, o: Order| reject_reason(&h.run(o.cmd()));
    assert_eq!(
        r(&mut h, limit(99, 0, "x", Buy, 1, 9_000)),
        Some(Reason::UnknownSession)
    );
    assert_eq!(
        r(&mut h, limit(0, 99, "x", Buy, 1, 9_000)),
        Some(Reason::UnknownAccount)
    );
    assert_eq!(
        r(&mut h, limit(0, 0, "x", Buy, 1, 9_000).instrument(3)),
        Some(Reason::UnknownInstrument)
    );
    assert_eq!(
        r(&mut h, limit(0, 0, "x", Buy, 0, 9_000)),
        Some(Reason::InvalidQuantity)
    );
    assert_eq!(r(&mut h, limit(0, 0, "x", Buy, 1, 0)), Some(Reason::InvalidPrice));
    assert_eq!(
        r(&mut h, limit(0, 0, "x", Buy, 1, 100_001)),
        Some(Reason::PriceOutOfRange)
    );
    assert!(acked(&h.run(limit(0, 0, "x", Buy, 1, 9_000).cmd())));
    assert_eq!(
        r(&mut h, limit(0, 0, "x", Buy, 1, 9_000)),
        Some(Reason::DuplicateClOrdId)
    );
    // The same client order id in another session is fine.
    assert!(acked(&h.run(limit(1, 1, "x", Buy, 1, 9_000).cmd())));
}

#[test]
fn pre_trade_risk_limits() {
    let mut h = Harness::new();
    let limits = AccountLimits {
        max_order_qty: 100,
        max_order_notional: 50 * 10_000,
        max_open_orders: 2,
        max_position: 60,
        credit_limit: 85 * 10_000,
    };
    h.admin(Admin::SetAccountLimits { account: 3, limits });
    let r = |h: &mut Harness, o: Order| reject_reason(&h.run(o.cmd()));
    assert_eq!(
        r(&mut h, limit(0, 3, "q", Buy, 101, 100)),
        Some(Reason::MaxOrderQty)
    );
    assert_eq!(
        r(&mut h, limit(0, 3, "n", Buy, 51, 10_000)),
        Some(Reason::MaxOrderNotional)
    );
    assert_eq!(
        r(&mut h, limit(0, 3, "c", Buy, 1, 8_999)),
        Some(Reason::PriceCollar),
        "10% collar around 100.00"
    );
    assert!(acked(&h.run(limit(0, 3, "o1", Buy, 40, 10_000).cmd())));
    // Position: 40 open buys + 21 > 60.
    assert_eq!(
        r(&mut h, limit(0, 3, "p", Buy, 21, 9_500)),
        Some(Reason::PositionLimit)
    );
    // Credit: 40 x 100.00 open + 50 x 100.00 > 85 x 100.00.
    assert_eq!(
        r(&mut h, limit(0, 3, "cr", Sell, 50, 10_000)),
        Some(Reason::CreditLimit)
    );
    assert!(acked(&h.run(limit(0, 3, "o2", Sell, 5, 10_500).cmd())));
    assert_eq!(
        r(&mut h, limit(0, 3, "o3", Sell, 5, 10_500)),
        Some(Reason::MaxOpenOrders)
    );
    // An IOC does not count against open orders.
    assert!(acked(
        &h.run(limit(0, 3, "ioc", Sell, 1, 10_900).tif(TimeInForce::Ioc).cmd())
    ));
}

#[test]
fn throttle_counts_messages_on_event_time() {
    let mut h = Harness::new();
    h.admin(Admin::SetThrottle {
        session: 2,
        per_second: 2,
    });
    let t = h.now;
    assert!(acked(&h.at(t + 1, limit(2, 0, "a", Buy, 1, 9_000).cmd())));
    assert!(acked(&h.at(t + 2, limit(2, 0, "b", Buy, 1, 9_000).cmd())));
    assert_eq!(
        reject_reason(&h.at(t + 3, limit(2, 0, "c", Buy, 1, 9_000).cmd())),
        Some(Reason::Throttled)
    );
    assert_eq!(
        cancel_reject_reason(&h.at(t + 4, cancel(2, "x", "a"))),
        Some(Reason::Throttled)
    );
    assert!(
        acked(&h.at(t + 500_000_003, limit(2, 0, "d", Buy, 1, 9_000).cmd())),
        "half a second: one token"
    );
    // Other sessions are not throttled.
    assert!(acked(
        &h.at(t + 500_000_004, limit(3, 0, "e", Buy, 1, 9_000).cmd())
    ));
}

#[test]
fn kill_switch_cancels_resting_and_rejects_new() {
    let mut h = Harness::new();
    h.run(limit(0, 5, "a", Buy, 1, 9_000).cmd());
    h.run(limit(1, 5, "b", Sell, 1, 11_000).cmd());
    h.run(limit(0, 6, "c", Buy, 1, 9_000).cmd());
    let out = h.admin(Admin::KillSwitch {
        account: 5,
        active: true,
    });
    assert_eq!(
        out[0],
        Output::KillSwitch {
            account: 5,
            active: true
        }
    );
    assert_eq!(
        cancels(&out),
        vec![
            ("a".into(), CancelReason::KillSwitch, 1),
            ("b".into(), CancelReason::KillSwitch, 1)
        ]
    );
    assert_eq!(
        reject_reason(&h.run(limit(0, 5, "d", Buy, 1, 9_000).cmd())),
        Some(Reason::KillSwitchActive)
    );
    h.admin(Admin::KillSwitch {
        account: 5,
        active: false,
    });
    assert!(acked(&h.run(limit(0, 5, "e", Buy, 1, 9_000).cmd())));
    assert_eq!(h.engine.depth(AAA, Buy), vec![(9_000, 2, 2)]);
}

#[test]
fn circuit_breaker_halts_then_resumes() {
    let mut h = Harness::new();
    let mut s = spec(AAA, "AAA");
    s.collar_bps = 0;
    s.breaker_bps = 500; // 5%
    s.breaker_window_ns = 10_000_000_000;
    s.breaker_halt_ns = 5_000_000_000;
    h.admin(Admin::UpsertInstrument(s));
    h.run(limit(0, 0, "s1", Sell, 5, 10_400).cmd());
    h.run(limit(0, 0, "s2", Sell, 5, 10_600).cmd());
    let out = h.run(limit(1, 1, "b", Buy, 10, 10_600).cmd());
    // 104.00 is within 5% of 100.00; 106.00 is not: the breaker trips before that trade.
    assert_eq!(fills(&out).len(), 1);
    let halted = out.iter().find_map(|o| match o {
        Output::Halted { reason, until_ns, .. } => Some((*reason, *until_ns)),
        _ => None,
    });
    assert_eq!(halted, Some((HaltReason::CircuitBreaker, h.now + 5_000_000_000)));
    assert_eq!(cancels(&out), vec![("b".into(), CancelReason::CircuitBreaker, 5)]);
    assert_eq!(
        reject_reason(&h.run(limit(1, 1, "x", Buy, 1, 10_000).cmd())),
        Some(Reason::InstrumentHalted)
    );
    assert_eq!(
        cancel_reject_reason(&h.run(replace(0, "s3", "s2", 5, 10_500))),
        Some(Reason::InstrumentHalted)
    );
    assert_eq!(
        cancels(&h.run(cancel(0, "c", "s2"))).len(),
        1,
        "cancels are allowed while halted"
    );
    let until = halted.unwrap().1;
    assert!(
        !h.at(until - 1, Command::Tick)
            .contains(&Output::Resumed { instrument: AAA })
    );
    assert_eq!(
        h.at(until, Command::Tick),
        vec![Output::Resumed { instrument: AAA }]
    );
    assert!(acked(&h.run(limit(1, 1, "y", Buy, 1, 10_000).cmd())));
}

#[test]
fn operator_halt_and_resume() {
    let mut h = Harness::new();
    let out = h.admin(Admin::Halt { instrument: AAA });
    assert_eq!(
        out,
        vec![
            Output::Halted {
                instrument: AAA,
                reason: HaltReason::Operator,
                until_ns: 0
            },
            Output::AdminDone
        ]
    );
    assert_eq!(
        reject_reason(&h.run(limit(0, 0, "a", Buy, 1, 9_000).cmd())),
        Some(Reason::InstrumentHalted)
    );
    assert!(
        acked(&h.run(limit(0, 0, "b", Buy, 1, 9_000).instrument(BBB).cmd())),
        "other instruments trade"
    );
    assert_eq!(
        h.admin(Admin::Resume { instrument: AAA }),
        vec![Output::Resumed { instrument: AAA }, Output::AdminDone]
    );
    assert!(acked(&h.run(limit(0, 0, "c", Buy, 1, 9_000).cmd())));
    assert_eq!(
        h.admin(Admin::Halt { instrument: 3 }),
        vec![Output::AdminRejected {
            reason: Reason::UnknownInstrument
        }]
    );
}

#[test]
fn capacities_are_clean_rejects() {
    let mut config = small_config();
    config.max_orders = 3;
    config.max_levels = 2;
    let mut h = Harness::with_config(config);
    assert!(acked(&h.run(limit(0, 0, "a", Buy, 1, 9_000).cmd())));
    assert!(acked(&h.run(limit(0, 0, "b", Buy, 1, 9_001).cmd())));
    assert_eq!(
        reject_reason(&h.run(limit(0, 0, "c", Buy, 1, 9_002).cmd())),
        Some(Reason::LevelCapacity)
    );
    assert!(
        acked(&h.run(limit(0, 0, "c", Buy, 1, 9_001).cmd())),
        "an existing level needs no new one"
    );
    assert_eq!(
        reject_reason(&h.run(limit(0, 0, "d", Buy, 1, 9_001).cmd())),
        Some(Reason::OrderCapacity)
    );
    h.run(cancel(0, "x", "a"));
    assert!(
        acked(&h.run(limit(0, 0, "d", Buy, 1, 9_001).cmd())),
        "capacity comes back"
    );
}

#[test]
fn positions_and_realized_pnl() {
    let mut h = Harness::new();
    h.run(limit(0, 0, "s", Sell, 10, 10_000).cmd());
    h.run(limit(1, 1, "b", Buy, 10, 10_000).cmd());
    h.run(limit(1, 1, "s2", Sell, 4, 10_500).cmd());
    h.run(limit(0, 0, "b2", Buy, 4, 10_500).cmd());
    let p1 = h.engine.position(1, AAA).unwrap();
    assert_eq!((p1.qty, p1.realized, p1.bought, p1.sold), (6, 4 * 500, 10, 4));
    let p0 = h.engine.position(0, AAA).unwrap();
    assert_eq!((p0.qty, p0.realized), (-6, -4 * 500));
}

#[test]
fn disconnect_cancels_only_when_asked() {
    let mut h = Harness::new();
    h.run(limit(4, 0, "a", Buy, 1, 9_000).cmd());
    assert!(
        h.run(Command::SessionDisconnected {
            session: 4,
            cancel_orders: false
        })
        .is_empty()
    );
    let out = h.run(Command::SessionDisconnected {
        session: 4,
        cancel_orders: true,
    });
    assert_eq!(cancels(&out), vec![("a".into(), CancelReason::Disconnect, 1)]);
}

#[test]
fn sequence_and_time_are_checked() {
    let mut h = Harness::new();
    let mut out = Vec::new();
    let seq = h.seq;
    assert_eq!(
        h.engine.apply(seq + 2, h.now + 1, &Command::Tick, &mut out),
        Err(EngineError::SequenceGap {
            expected: seq + 1,
            found: seq + 2
        })
    );
    assert!(matches!(
        h.engine.apply(seq + 1, h.now - 1, &Command::Tick, &mut out),
        Err(EngineError::TimeRegression { .. })
    ));
    assert!(out.is_empty());
    assert_eq!(h.engine.last_seq(), seq, "nothing applied");
}

#[test]
fn instrument_administration() {
    let mut h = Harness::new();
    let mut bad = spec(2, "CCC");
    bad.max_price = 0;
    assert_eq!(
        h.admin(Admin::UpsertInstrument(bad)),
        vec![Output::AdminRejected {
            reason: Reason::InvalidInstrument
        }]
    );
    h.run(limit(0, 0, "a", Buy, 1, 9_000).cmd());
    let mut moved = spec(AAA, "AAA");
    moved.max_price = 50_000;
    assert_eq!(
        h.admin(Admin::UpsertInstrument(moved)),
        vec![Output::AdminRejected {
            reason: Reason::InvalidInstrument
        }],
        "the range cannot change under resting orders"
    );
    let mut wider = spec(AAA, "AAA");
    wider.collar_bps = 2_000;
    assert_eq!(h.admin(Admin::UpsertInstrument(wider)), vec![Output::AdminDone]);
    assert!(
        acked(&h.run(limit(0, 0, "b", Buy, 1, 8_500).cmd())),
        "the wider collar applies"
    );
    assert_eq!(
        h.run(Command::ReferencePrice {
            instrument: 3,
            price: 1
        }),
        vec![Output::AdminRejected {
            reason: Reason::UnknownInstrument
        }]
    );
}

#[test]
fn snapshot_restore_and_damaged_snapshots() {
    let mut h = Harness::new();
    h.run(limit(0, 0, "a", Buy, 3, 9_000).gtd(h.now + 1_000_000).cmd());
    h.run(limit(1, 1, "b", Sell, 3, 9_500).cmd());
    h.run(limit(1, 1, "c", Buy, 1, 9_500).cmd());
    let bytes = h.engine.snapshot();
    let restored = Engine::restore(&bytes).unwrap();
    assert_eq!(restored.state_hash(), h.engine.state_hash());
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        assert!(matches!(
            Engine::restore(&bytes[..cut]),
            Err(EngineError::Snapshot(_))
        ));
    }
    let mut flipped = bytes.clone();
    let n = flipped.len();
    flipped[n - 20] ^= 0xff;
    // Either refused, or (a flip in plain data) a different state, never a panic.
    if let Ok(e) = Engine::restore(&flipped) {
        assert_ne!(e.state_hash(), h.engine.state_hash());
    }
}

#[test]
fn circuit_breaker_window_boundaries() {
    let setup = || {
        let mut h = Harness::new();
        let mut s = spec(AAA, "AAA");
        s.collar_bps = 0;
        s.breaker_bps = 100; // 1%
        s.breaker_window_ns = 1_000;
        s.breaker_halt_ns = 1_000;
        h.admin(Admin::UpsertInstrument(s));
        // The first trade check opens a window anchored at the reference, 100.00.
        h.run(limit(0, 0, "s1", Sell, 1, 10_100).cmd());
        h.run(limit(0, 0, "s2", Sell, 1, 10_201).cmd());
        let t0 = h.now + 10;
        assert_eq!(
            fills(&h.at(t0, limit(1, 1, "b1", Buy, 1, 10_100).cmd())).len(),
            1,
            "exactly 1% is inside"
        );
        (h, t0)
    };
    // 1 ns before the window ends the anchor is still 100.00: 102.01 trips the breaker.
    let (mut h, t0) = setup();
    let out = h.at(t0 + 999, limit(1, 1, "b2", Buy, 1, 10_201).cmd());
    assert!(fills(&out).is_empty() && out.iter().any(|o| matches!(o, Output::Halted { .. })));
    // At exactly the window's end a new window starts, anchored at the last trade, 101.00:
    // 102.01 is within 1% of it.
    let (mut h, t0) = setup();
    let out = h.at(t0 + 1_000, limit(1, 1, "b2", Buy, 1, 10_201).cmd());
    assert_eq!(fills(&out).len(), 1);
}

#[test]
fn orders_that_left_the_book_are_known_with_how_they_ended_within_the_bound() {
    let mut config = small_config();
    config.max_orders = 4;
    let mut h = Harness::with_config(config);
    h.run(limit(0, 0, "s1", Sell, 5, 10_000).cmd());
    h.run(limit(1, 1, "b1", Buy, 5, 10_000).cmd()); // both filled
    h.run(limit(0, 0, "c1", Buy, 4, 9_000).cmd());
    h.run(cancel(0, "c1x", "c1"));
    h.run(limit(0, 0, "p1", Sell, 2, 10_100).cmd());
    h.run(limit(1, 1, "i1", Buy, 5, 10_100).tif(TimeInForce::Ioc).cmd()); // 2 filled, 3 cancelled
    let now = h.now;
    h.run(limit(0, 0, "g1", Buy, 1, 9_000).gtd(now + 5_000).cmd());
    h.at(now + 10_000, Command::Tick);

    let done = |h: &Harness, s, c: &str| h.engine.done_order_by_clordid(s, &clid(c));
    let s1 = done(&h, 0, "s1");
    assert!(
        s1.is_none(),
        "five orders finished after s1; the bound is four: {s1:?}"
    );
    let b1 = done(&h, 1, "b1");
    assert_eq!(b1, None, "b1 is the second oldest: forgotten too");
    // Cancelled by the client: known by the ClOrdID it was accepted (or last replaced) with,
    // not the cancel request's, and by its engine id.
    assert_eq!(done(&h, 0, "c1x"), None);
    let c1 = done(&h, 0, "c1").expect("c1 cancelled");
    assert_eq!(c1.ending, Ending::Cancelled(CancelReason::User));
    assert_eq!((c1.view.cum, c1.view.leaves, c1.view.qty), (0, 0, 4));
    assert_eq!(h.engine.done_order(c1.view.order_id), Some(c1));
    let p1 = done(&h, 0, "p1").expect("p1 filled");
    assert_eq!((p1.ending, p1.view.cum), (Ending::Filled, 2));
    let i1 = done(&h, 1, "i1").expect("i1's remainder cancelled");
    assert_eq!(i1.ending, Ending::Cancelled(CancelReason::Unfilled));
    assert_eq!((i1.view.cum, i1.view.cum_notional), (2, 2 * 10_100));
    let g1 = done(&h, 0, "g1").expect("g1 expired");
    assert!(g1.ending.expired(), "{g1:?}");
    // A live order is not among them.
    h.run(limit(0, 0, "live", Buy, 1, 9_000).cmd());
    assert_eq!(done(&h, 0, "live"), None);
    // Snapshot and restore keep them, and the state hash.
    let restored = Engine::restore(&h.engine.snapshot()).unwrap();
    assert_eq!(restored.state_hash(), h.engine.state_hash());
    assert_eq!(restored.done_order_by_clordid(0, &clid("g1")), Some(g1));
}
