//! `ordo bench ...`: benchmarks that print throughput and hdrhistogram percentiles.

pub mod cluster;
pub mod engine;
pub mod fix;
pub mod floor;
pub mod journal;
pub mod members;

use hdrhistogram::Histogram;

/// A latency histogram in nanoseconds, 1 ns .. 100 s, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// `p50 p99 p99.9 max` of a nanosecond histogram, formatted in microseconds.
pub fn percentiles_us(h: &Histogram<u64>) -> String {
    let us = |ns: u64| ns as f64 / 1000.0;
    format!(
        "p50 {:.3} us  p99 {:.3} us  p99.9 {:.3} us  max {:.3} us",
        us(h.value_at_quantile(0.50)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.max())
    )
}
