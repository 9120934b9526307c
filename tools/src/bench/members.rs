//! `ordo bench members`: the load generator against a cluster of one and against three members,
//! at each rate, one run after the other in one command (issue 11, section 6: the ratio of the
//! two p99s is the figure; target: three members' p99 at most 1.5 times one member's at 20K/s).
//! Each run is an `ordo demo --failovers 0` of its own (fresh data directories, the same
//! cluster file, the first one or three of its members); the percentiles are the load
//! generator's, request -> first ExecutionReport, corrected for coordinated omission.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::demo::{self, DemoArgs, Outcome};

/// Arguments of `ordo bench members`.
#[derive(Debug, clap::Args)]
pub struct MembersBenchArgs {
    /// Requests per second, comma-separated; each rate runs one member, then three.
    #[arg(long, value_delimiter = ',', default_value = "20000,50000")]
    pub rates: Vec<u64>,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 30)]
    pub duration_s: u64,
    /// Cluster file (default: the embedded `tests/cluster/local3.toml`).
    #[arg(long)]
    pub cluster: Option<PathBuf>,
}

/// Runs the comparison; exit 1 if a run lost or duplicated anything or its checks failed.
pub fn run(args: &MembersBenchArgs) -> ExitCode {
    let mut rows: Vec<(u64, usize, Outcome)> = Vec::new();
    for &rate in &args.rates {
        for members in [1, 3] {
            let demo_args = DemoArgs {
                rate,
                duration_s: args.duration_s,
                dir: None,
                max_in_flight: None,
                failovers: 0,
                cluster: args.cluster.clone(),
                members,
                transfer: false,
                aeron_on_disk: false,
            };
            match demo::demo(&demo_args) {
                Ok(o) => rows.push((rate, members, o)),
                Err(e) => {
                    eprintln!("bench members: {members} member(s) at {rate}/s: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    println!("members  rate/s   sent      p50_us   p99_us   p99.9_us  own-leader-changes  ok");
    for (rate, members, o) in &rows {
        println!(
            "{members:<8} {rate:<8} {:<9} {:<8} {:<8} {:<9} {:<19} {}",
            o.sent, o.p50_us, o.p99_us, o.p999_us, o.own_leader_changes, o.ok
        );
    }
    for &rate in &args.rates {
        let p99 = |m: usize| {
            rows.iter()
                .find(|(r, n, _)| *r == rate && *n == m)
                .map(|(_, _, o)| o.p99_us)
        };
        if let (Some(one), Some(three)) = (p99(1), p99(3)) {
            println!(
                "RATIO rate={rate} p99_1_us={one} p99_3_us={three} ratio={:.1}",
                three as f64 / one.max(1) as f64
            );
        }
    }
    if rows.iter().all(|(_, _, o)| o.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
