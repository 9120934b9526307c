//! `ordo bench fix`: the gateway's per-message CPU work on an inbound NewOrderSingle, alone:
//! framing (BodyLength, CheckSum), splitting into borrowed fields, and validation against the
//! FIX 4.4 dictionary (required fields, enum values, formats, field order, repeating groups).
//! No socket, no session, no journal: the figure is the ceiling the parser puts on a gateway
//! thread.
//!
//! The input is a buffer of many different NewOrderSingle messages back to back, as a socket
//! read would deliver them, walked over and over, through one connection's remembered message
//! shapes (`fix::shape`) as a session does: the first message is proven field by field, the
//! rest by their shape.

use std::process::ExitCode;
use std::time::Instant;

use ordo_fix::builder::{Builder, Value, itoa_u64};
use ordo_fix::frame::{Frame, next_frame};
use ordo_fix::message::{Field, Message, parse};
use ordo_fix::shape::Shapes;
use ordo_fix::validate::validate;

use super::{latency_histogram, percentiles_us};
use crate::alloc_count::allocations;

/// Arguments of `ordo bench fix`.
#[derive(Debug, clap::Args)]
pub struct FixBenchArgs {
    /// Messages to parse and validate in the timed pass.
    #[arg(long, default_value_t = 10_000_000)]
    pub messages: u64,
}

/// Distinct messages in the input buffer (different ids, prices, quantities, sides).
const DISTINCT: usize = 4096;
/// Largest message the framing accepts (as the gateway's default).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Messages timed together for the latency histogram (a clock read costs ~20 ns).
const LATENCY_BATCH: u64 = 16;

fn input() -> Vec<u8> {
    let mut b = Builder::default();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    // A client sending one order a millisecond: SendingTime moves on with every message, and
    // TransactTime is 300 us earlier (so the two differ in their second now and then).
    let first_ns = 1_795_000_000_123_000_000u64;
    for i in 0..DISTINCT as u64 {
        let sent_ns = first_ns + i * 1_000_000;
        b.start(b"D");
        b.field(49, Value::Bytes(b"CLIENT1"))
            .field(56, Value::Bytes(b"ORDO"))
            .field(34, Value::U64(1000 + i))
            .field(52, Value::TimeMs(sent_ns))
            .field(11, Value::U64(7_000_000 + i))
            .field(1, Value::Bytes(b"ACC1"))
            .field(55, Value::Bytes(if i % 2 == 0 { b"AAA" } else { b"BBB" }))
            .field(54, Value::Bytes(if i % 3 == 0 { b"2" } else { b"1" }))
            .field(38, Value::U64(1 + i % 100))
            .field(40, Value::Bytes(b"2"))
            .field(44, Value::Decimal(9_900 + i128::from(i % 200), 2))
            .field(59, Value::Bytes(b"0"))
            .field(60, Value::TimeMs(sent_ns - 300_000));
        b.finish(&mut out);
        buf.extend_from_slice(&out);
    }
    buf
}

/// Frames, parses and validates every message in `buf`; returns how many were valid.
#[inline]
fn walk(buf: &[u8], fields: &mut Vec<Field>, shapes: &mut Shapes, limit: u64) -> u64 {
    let mut pos = 0;
    let mut valid = 0;
    let mut n = 0;
    while n < limit {
        match next_frame(&buf[pos..], MAX_MESSAGE_BYTES) {
            Frame::Message { start, end } => {
                let frame = &buf[pos + start..pos + end];
                // As the session does: the one-pass proof, else parse, then validate.
                let proven = shapes.parse_valid(frame, fields);
                if proven || parse(frame, fields).is_ok() {
                    let m = Message { buf: frame, fields };
                    if (proven || validate(&m).is_ok()) && m.msg_type() == b"D" {
                        valid += 1;
                    }
                }
                pos += end;
                n += 1;
            }
            _ => break,
        }
    }
    valid
}

/// Runs the benchmark.
pub fn run(args: &FixBenchArgs) -> ExitCode {
    if args.messages == 0 {
        eprintln!("error: --messages must be at least 1");
        return ExitCode::from(2);
    }
    let buf = input();
    let mut fields = Vec::with_capacity(64);
    // A connection's remembered message shapes, as each session keeps them.
    let mut shapes = Shapes::default();
    let per_pass = DISTINCT as u64;
    // Warm-up and a correctness check: every message is a valid NewOrderSingle.
    let valid = walk(&buf, &mut fields, &mut shapes, per_pass);
    if valid != per_pass {
        eprintln!("error: only {valid} of {per_pass} benchmark messages validate");
        return ExitCode::FAILURE;
    }
    println!(
        "fix: parse + validate NewOrderSingle ({} bytes average, {DISTINCT} distinct messages)",
        buf.len() / DISTINCT
    );

    // Throughput.
    let allocations_before = allocations();
    let started = Instant::now();
    let mut done = 0u64;
    let mut checked = 0u64;
    while done < args.messages {
        let n = per_pass.min(args.messages - done);
        checked += walk(&buf, &mut fields, &mut shapes, n);
        done += n;
    }
    let elapsed = started.elapsed();
    let allocated = allocations() - allocations_before;
    assert_eq!(checked, done, "every message validates");
    let rate = done as f64 / elapsed.as_secs_f64();
    println!(
        "  throughput   {:.2} M msgs/s  ({:.0} ns/msg, {:.0} MB/s)  allocations {allocated} ({:.3}/msg)",
        rate / 1e6,
        1e9 / rate,
        rate * (buf.len() / DISTINCT) as f64 / 1e6,
        allocated as f64 / done as f64
    );

    // Latency per message, timed in batches of LATENCY_BATCH (the batch time divided evenly).
    let mut hist = latency_histogram();
    let mut done = 0u64;
    let batches_per_pass = per_pass / LATENCY_BATCH;
    let mut offsets = Vec::with_capacity(DISTINCT);
    let mut pos = 0;
    while pos < buf.len() {
        if let Frame::Message { end, .. } = next_frame(&buf[pos..], MAX_MESSAGE_BYTES) {
            offsets.push(pos);
            pos += end;
        } else {
            break;
        }
    }
    offsets.push(buf.len());
    while done < args.messages {
        for b in 0..batches_per_pass as usize {
            let from = offsets[b * LATENCY_BATCH as usize];
            let t0 = Instant::now();
            let v = walk(&buf[from..], &mut fields, &mut shapes, LATENCY_BATCH);
            let ns = t0.elapsed().as_nanos() as u64;
            debug_assert_eq!(v, LATENCY_BATCH);
            hist.saturating_record((ns / LATENCY_BATCH).max(1));
        }
        done += batches_per_pass * LATENCY_BATCH;
    }
    println!(
        "  latency/msg  {} (batches of {LATENCY_BATCH})",
        percentiles_us(&hist)
    );
    build_reports(args.messages)
}

/// Builds one fill ExecutionReport the way the node's session does (header, then the body
/// fields `reports::build` gives a partial fill, in tag order as it gives them); returns the
/// message length.
#[inline]
fn build_fill(b: &mut Builder, out: &mut Vec<u8>, i: u64) -> usize {
    let clordid = itoa_u64(7_000_000 + i % DISTINCT as u64);
    let exec_id = itoa_u64(1_000_000 + i);
    let ts_ns = 1_795_000_000_000_000_000 + i * 1_000;
    b.start(b"8");
    b.field(34, Value::U64(1000 + i))
        .field(49, Value::Bytes(b"ORDO"))
        .field(52, Value::TimeMs(ts_ns + 500))
        .field(56, Value::Bytes(b"CLIENT1"));
    b.field(1, Value::Bytes(b"ACC1"))
        .field(6, Value::Decimal(100_005_000_000 + i128::from((i % 7) as u16), 9))
        .field(11, Value::Bytes(clordid.as_slice()))
        .field(14, Value::U64(6))
        .field(17, Value::Bytes(exec_id.as_slice()))
        .field(31, Value::Decimal(9_990 + i128::from((i % 40) as u16), 2))
        .field(32, Value::U64(6))
        .field(37, Value::U64(5_000 + i))
        .field(38, Value::U64(10))
        .field(39, Value::Bytes(b"1"))
        .field(40, Value::Bytes(b"2"))
        .field(44, Value::Decimal(10_000 + i128::from((i % 40) as u16), 2))
        .field(54, Value::Bytes(b"1"))
        .field(55, Value::Bytes(b"AAA"))
        .field(59, Value::Bytes(b"0"))
        .field(60, Value::TimeMs(ts_ns))
        .field(150, Value::Bytes(b"F"))
        .field(151, Value::U64(4));
    b.finish(out);
    out.len()
}

#[inline(never)] // (callgrind counts it by name: --toggle-collect=*build_reports*)
/// `ordo bench fix`'s second figure: building ExecutionReports (each request causes one or more).
fn build_reports(messages: u64) -> ExitCode {
    let mut b = Builder::default();
    let mut out = Vec::with_capacity(512);
    // Warm-up and a check: the message parses and validates.
    build_fill(&mut b, &mut out, 0);
    let mut fields = Vec::new();
    if parse(&out, &mut fields).is_err()
        || validate(&Message {
            buf: &out,
            fields: &fields,
        })
        .is_err()
    {
        eprintln!("error: the benchmark ExecutionReport does not validate");
        return ExitCode::FAILURE;
    }
    println!("fix: build ExecutionReport (a partial fill, {} bytes)", out.len());
    let allocations_before = allocations();
    let started = Instant::now();
    let mut bytes = 0u64;
    for i in 0..messages {
        bytes += build_fill(&mut b, &mut out, i) as u64;
    }
    let elapsed = started.elapsed();
    let allocated = allocations() - allocations_before;
    std::hint::black_box(bytes);
    let rate = messages as f64 / elapsed.as_secs_f64();
    println!(
        "  throughput   {:.2} M msgs/s  ({:.0} ns/msg)  allocations {allocated} ({:.3}/msg)",
        rate / 1e6,
        1e9 / rate,
        allocated as f64 / messages as f64
    );
    ExitCode::SUCCESS
}
