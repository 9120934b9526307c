//! `ordo bench engine`: the matching and risk engine alone (no network, no journal) on a
//! seeded exchange-core-like workload, and the same workload through the `orderbook-rs` crate.
//!
//! Two passes per engine over the same commands after the same setup: one untimed per command
//! (throughput), one timing every command with a pair of `Instant::now()` calls (latency; the
//! timer's own cost is measured and printed). Allocations are counted by the process's
//! counting allocator over each measured pass.

use std::process::ExitCode;
use std::time::Instant;

use hdrhistogram::Histogram;
use ordo_engine::hash::hex128;
use ordo_engine::workload::{Workload, WorkloadSpec, generate};
use ordo_engine::{Command, CountingSink, Engine, Output, Side, TimeInForce};

use super::latency_histogram;
use crate::alloc_count::allocations;

/// Arguments of `ordo bench engine`.
#[derive(Debug, clap::Args)]
pub struct EngineBenchArgs {
    /// Workload seed: the same seed gives the same commands and the same final state hash.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Instruments; default: a run with 1, then a run with 100.
    #[arg(long)]
    pub instruments: Option<u32>,
    /// Measured commands.
    #[arg(long, default_value_t = 3_000_000)]
    pub commands: u64,
    /// Resting orders per instrument.
    #[arg(long, default_value_t = 1_000)]
    pub resting: u32,
    /// Skip the orderbook-rs baseline.
    #[arg(long)]
    pub no_baseline: bool,
}

/// Runs the benchmark.
pub fn run(args: &EngineBenchArgs) -> ExitCode {
    if args.commands == 0 || args.resting == 0 || args.instruments == Some(0) {
        eprintln!("error: --commands, --resting and --instruments must be at least 1");
        return ExitCode::from(2);
    }
    let runs = args.instruments.map_or_else(|| vec![1, 100], |n| vec![n]);
    for instruments in runs {
        bench(args, instruments);
    }
    ExitCode::SUCCESS
}

struct Measured {
    ops_per_sec: f64,
    hist: Histogram<u64>,
    allocations: u64,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn print_line(name: &str, m: &Measured, ops: u64, extra: &str) {
    let h = &m.hist;
    println!(
        "  {name:<13} {:>6.2} M ops/s  latency p50 {:.3} us  p99 {:.3} us  p99.99 {:.3} us  max {:.1} us  allocations {} ({:.3}/op){extra}",
        m.ops_per_sec / 1e6,
        us(h.value_at_quantile(0.5)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.9999)),
        us(h.max()),
        m.allocations,
        m.allocations as f64 / ops as f64,
    );
}

fn timer_overhead_ns() -> u64 {
    let mut h = latency_histogram();
    for _ in 0..100_000 {
        let t = Instant::now();
        h.record(t.elapsed().as_nanos().max(1) as u64).expect("in range");
    }
    h.value_at_quantile(0.5)
}

fn bench(args: &EngineBenchArgs, instruments: u32) {
    let spec = WorkloadSpec {
        seed: args.seed,
        instruments,
        commands: args.commands,
        resting: args.resting,
        accounts: 1_000,
    };
    let started = Instant::now();
    let workload = generate(&spec);
    let (mut moves, mut news, mut cancels, mut iocs) = (0u64, 0u64, 0u64, 0u64);
    for c in &workload.commands {
        match c {
            Command::CancelReplace(_) => moves += 1,
            Command::Cancel(_) => cancels += 1,
            Command::NewOrder(o) if o.tif == TimeInForce::Ioc => iocs += 1,
            Command::NewOrder(_) => news += 1,
            _ => {}
        }
    }
    let n = workload.commands.len() as f64;
    println!(
        "ordo bench engine: seed {} | {instruments} instrument(s) | {} commands: {:.1}% move, {:.1}% new GTC, {:.1}% cancel, {:.1}% IOC | {} resting orders per instrument over ~750 levels | 1000 accounts | generated in {:.1} s",
        args.seed,
        workload.commands.len(),
        100.0 * moves as f64 / n,
        100.0 * news as f64 / n,
        100.0 * cancels as f64 / n,
        100.0 * iocs as f64 / n,
        args.resting,
        started.elapsed().as_secs_f64()
    );
    println!(
        "  timer overhead (Instant::now pair, p50): {} ns, included in the latencies below",
        timer_overhead_ns()
    );

    let (ours, hash, trades) = bench_ordo(&workload);
    print_line("ordo-engine", &ours, args.commands, "");
    println!(
        "  trades: {trades} ({:.1}% of commands) | final state hash {}",
        100.0 * trades as f64 / n,
        hex128(hash)
    );
    if !args.no_baseline {
        let (theirs, errors) = bench_orderbook_rs(&workload);
        print_line(
            "orderbook-rs",
            &theirs,
            args.commands,
            &format!("  errors {errors}"),
        );
        println!(
            "  ratio ordo-engine / orderbook-rs: throughput {:.2}x, p50 latency {:.2}x lower, p99 {:.2}x lower",
            ours.ops_per_sec / theirs.ops_per_sec,
            theirs.hist.value_at_quantile(0.5) as f64 / ours.hist.value_at_quantile(0.5).max(1) as f64,
            theirs.hist.value_at_quantile(0.99) as f64 / ours.hist.value_at_quantile(0.99).max(1) as f64,
        );
    }
}

fn setup_engine(workload: &Workload) -> Engine {
    let mut engine = Engine::new(workload.config).expect("valid configuration");
    let mut sink = CountingSink::default();
    for (i, cmd) in workload.setup.iter().enumerate() {
        engine
            .apply(i as u64 + 1, Workload::timestamp(i), cmd, &mut sink)
            .expect("in sequence");
    }
    engine
}

fn bench_ordo(workload: &Workload) -> (Measured, u128, u64) {
    let base = workload.setup.len();
    // Throughput pass.
    let mut engine = setup_engine(workload);
    let mut sink = CountingSink::default();
    let allocations_before = allocations();
    let start = Instant::now();
    for (i, cmd) in workload.commands.iter().enumerate() {
        let k = base + i;
        engine
            .apply(k as u64 + 1, Workload::timestamp(k), cmd, &mut sink)
            .expect("in sequence");
    }
    let elapsed = start.elapsed();
    let allocations_throughput = allocations() - allocations_before;
    let hash = engine.state_hash();

    // Latency pass, on a fresh engine; also counts trades.
    let mut engine = setup_engine(workload);
    let mut hist = latency_histogram();
    let mut out: Vec<Output> = Vec::with_capacity(1 << 16);
    let mut trades = 0u64;
    let allocations_before = allocations();
    for (i, cmd) in workload.commands.iter().enumerate() {
        let k = base + i;
        out.clear();
        let t = Instant::now();
        engine
            .apply(k as u64 + 1, Workload::timestamp(k), cmd, &mut out)
            .expect("in sequence");
        hist.record(t.elapsed().as_nanos().max(1) as u64)
            .expect("in range");
        trades += out.iter().filter(|o| matches!(o, Output::Fill { .. })).count() as u64;
    }
    let allocations_latency = allocations() - allocations_before;
    assert_eq!(engine.state_hash(), hash, "both passes end in the same state");
    let measured = Measured {
        ops_per_sec: workload.commands.len() as f64 / elapsed.as_secs_f64(),
        hist,
        allocations: allocations_throughput.max(allocations_latency),
    };
    (measured, hash, trades)
}

/// The workload as orderbook-rs operations (converted before timing).
enum ObOp {
    Add {
        book: usize,
        id: u64,
        price: u128,
        qty: u64,
        side: pricelevel::Side,
        tif: pricelevel::TimeInForce,
    },
    Move {
        book: usize,
        id: u64,
        price: u128,
    },
    Cancel {
        book: usize,
        id: u64,
    },
}

fn convert(workload: &Workload) -> (Vec<ObOp>, Vec<ObOp>) {
    // Order ids: ordo-engine numbers accepted orders 1, 2, ...; every workload order is accepted.
    let mut instrument_of: Vec<usize> = vec![usize::MAX];
    let mut convert_one = |cmd: &Command| -> Option<ObOp> {
        match cmd {
            Command::NewOrder(o) => {
                let id = instrument_of.len() as u64;
                instrument_of.push(o.instrument as usize);
                Some(ObOp::Add {
                    book: o.instrument as usize,
                    id,
                    price: o.price as u128,
                    qty: o.qty,
                    side: if o.side == Side::Buy {
                        pricelevel::Side::Buy
                    } else {
                        pricelevel::Side::Sell
                    },
                    tif: if o.tif == TimeInForce::Ioc {
                        pricelevel::TimeInForce::Ioc
                    } else {
                        pricelevel::TimeInForce::Gtc
                    },
                })
            }
            Command::CancelReplace(r) => Some(ObOp::Move {
                book: instrument_of[r.target.order_id as usize],
                id: r.target.order_id,
                price: r.price as u128,
            }),
            Command::Cancel(c) => Some(ObOp::Cancel {
                book: instrument_of[c.target.order_id as usize],
                id: c.target.order_id,
            }),
            _ => None,
        }
    };
    let setup = workload.setup.iter().filter_map(&mut convert_one).collect();
    let commands = workload.commands.iter().filter_map(&mut convert_one).collect();
    (setup, commands)
}

fn apply_ob(books: &[orderbook_rs::OrderBook<()>], op: &ObOp) -> bool {
    use pricelevel::{Id, OrderUpdate, Price};
    match *op {
        ObOp::Add {
            book,
            id,
            price,
            qty,
            side,
            tif,
        } => books[book]
            .add_limit_order(Id::Sequential(id), price, qty, side, tif, None)
            .is_ok(),
        ObOp::Move { book, id, price } => books[book]
            .update_order(OrderUpdate::UpdatePrice {
                order_id: Id::Sequential(id),
                new_price: Price::new(price),
            })
            .is_ok(),
        ObOp::Cancel { book, id } => books[book].cancel_order(Id::Sequential(id)).is_ok(),
    }
}

fn bench_orderbook_rs(workload: &Workload) -> (Measured, u64) {
    let (setup, commands) = convert(workload);
    let fresh = || {
        let books: Vec<orderbook_rs::OrderBook<()>> = (0..workload.config.max_instruments)
            .map(|i| orderbook_rs::OrderBook::new(&format!("S{i}")))
            .collect();
        for op in &setup {
            apply_ob(&books, op);
        }
        books
    };
    let books = fresh();
    let mut errors = 0u64;
    let allocations_before = allocations();
    let start = Instant::now();
    for op in &commands {
        errors += u64::from(!apply_ob(&books, op));
    }
    let elapsed = start.elapsed();
    let allocations_throughput = allocations() - allocations_before;
    drop(books);

    let books = fresh();
    let mut hist = latency_histogram();
    for op in &commands {
        let t = Instant::now();
        apply_ob(&books, op);
        hist.record(t.elapsed().as_nanos().max(1) as u64)
            .expect("in range");
    }
    let measured = Measured {
        ops_per_sec: commands.len() as f64 / elapsed.as_secs_f64(),
        hist,
        allocations: allocations_throughput,
    };
    (measured, errors)
}
