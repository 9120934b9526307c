//! `ordo`: the product's one binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: alloc_count::CountingAllocator = alloc_count::CountingAllocator;

mod alloc_count;
mod bench;
mod demo;
mod journal_cmd;
mod loadgen;
mod node_cmd;
mod time_fmt;

/// ordo: a replicated, event-sourced trading sequencer.
#[derive(Debug, Parser)]
#[command(name = "ordo", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node: FIX acceptor, sequencer, engine.
    Node(node_cmd::NodeArgs),
    /// Send an operator command to a running node (sequenced like any input).
    Admin(node_cmd::AdminArgs),
    /// Open-loop FIX load against a node: many sessions, fixed rate, latency corrected for
    /// coordinated omission.
    Loadgen(loadgen::LoadgenArgs),
    /// Inspect, verify and dump journals.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Benchmarks that print throughput and latency percentiles.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The 3-member local cluster driven by the load generator, its leader killed midway:
    /// ends with one `DEMO ...` line (orders, acknowledged, lost, duplicates, failover time,
    /// latency percentiles).
    Demo(demo::DemoArgs),
}

#[derive(Debug, Subcommand)]
enum JournalCommand {
    /// Check every header, record, checksum and the chain of segments; report every problem
    /// with file and byte offset. Exit status 0 if clean, 1 if damaged, 2 if unreadable.
    Verify {
        /// Journal directory.
        dir: PathBuf,
    },
    /// Summarise a journal: segments, sequence and time range, record kinds, positions.
    Inspect {
        /// Journal directory.
        dir: PathBuf,
    },
    /// Print records, one per line.
    Dump {
        /// Journal directory.
        dir: PathBuf,
        /// First sequence number to print.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last sequence number to print (default: the end).
        #[arg(long)]
        to: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = journal_cmd::DumpFormat::Text)]
        format: journal_cmd::DumpFormat,
    },
    /// Compare two journals record by record (seq, timestamp, kind, payload, CRC): the first seq
    /// at which they differ and what differs, or which is a prefix of the other. Exit 0 when
    /// one is a prefix of the other, 1 when they differ, 2 when one is unreadable.
    Diff {
        /// A journal directory.
        a: PathBuf,
        /// The other.
        b: PathBuf,
        /// Compare each only up to its committed position (a cluster member's journal).
        #[arg(long)]
        committed: bool,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Append throughput and latency per durability policy, then the replay rate.
    Journal(bench::journal::JournalBenchArgs),
    /// The matching and risk engine on a seeded exchange-core-like workload, and orderbook-rs.
    Engine(bench::engine::EngineBenchArgs),
    /// FIX framing, parsing and dictionary validation of NewOrderSingle messages.
    Fix(bench::fix::FixBenchArgs),
    /// A FIX responder that does none of the node's work: the loopback floor for `ordo loadgen`.
    Floor(bench::floor::FloorArgs),
    /// The replicated log alone: N members in this process on Aeron over loopback UDP; idle
    /// CPU, then commit latency (p50/p99/p99.9/max) at each rate.
    Cluster(bench::cluster::ClusterBenchArgs),
    /// `ordo loadgen` against a cluster of one, then three members, at each rate (the local
    /// cluster of `ordo demo`, no fault): p50/p99/p99.9 and `RATIO rate=R p99_1_us=A
    /// p99_3_us=B ratio=X` lines.
    Members(bench::members::MembersBenchArgs),
}

/// For commands that only print (the benchmarks): a closed stdout (`ordo bench fix | head`)
/// ends the process as it ends `yes | head`, by SIGPIPE, instead of a panic in `println!`.
/// Not for the node or anything with sockets, where a peer's closed connection must be an
/// error on that connection (Rust's default: SIGPIPE ignored).
fn quiet_on_closed_stdout() {
    // SAFETY: restores the default disposition of one signal before any thread is spawned;
    // no handler runs Rust code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ORDO_LOG")
                // openraft logs every vote and every timed-out request (at ERROR): thousands of
                // lines in a failover. The member logs its own role changes; ORDO_LOG=openraft=info
                // brings openraft's back.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=off")),
        )
        .init();
    match cli.command {
        Command::Node(args) => node_cmd::run(&args),
        Command::Admin(args) => node_cmd::admin(&args),
        Command::Loadgen(args) => match loadgen::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadgen: FAILED: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Demo(args) => demo::run(&args),
        Command::Journal(JournalCommand::Verify { dir }) => journal_cmd::verify(&dir),
        Command::Journal(JournalCommand::Inspect { dir }) => journal_cmd::inspect(&dir),
        Command::Journal(JournalCommand::Dump {
            dir,
            from,
            to,
            format,
        }) => journal_cmd::dump(&dir, from, to, format),
        Command::Journal(JournalCommand::Diff { a, b, committed }) => journal_cmd::diff(&a, &b, committed),
        Command::Bench(BenchCommand::Journal(args)) => {
            quiet_on_closed_stdout();
            bench::journal::run(&args)
        }
        Command::Bench(BenchCommand::Engine(args)) => {
            quiet_on_closed_stdout();
            bench::engine::run(&args)
        }
        Command::Bench(BenchCommand::Fix(args)) => {
            quiet_on_closed_stdout();
            bench::fix::run(&args)
        }
        Command::Bench(BenchCommand::Floor(args)) => bench::floor::run(&args),
        Command::Bench(BenchCommand::Cluster(args)) => {
            quiet_on_closed_stdout();
            bench::cluster::run(&args)
        }
        Command::Bench(BenchCommand::Members(args)) => {
            quiet_on_closed_stdout();
            bench::members::run(&args)
        }
    }
}
