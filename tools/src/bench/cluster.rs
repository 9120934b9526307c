//! `ordo bench cluster`: the replicated log alone (no FIX, no engine). N members in this process,
//! each with its journal and its embedded Aeron media driver, talking UDP over loopback, as the
//! cluster's members do on one host. Prints the idle CPU of the cluster, then for each rate an
//! open-loop run: events are due at even intervals, batched into raft entries (up to 256 events
//! an entry, as the sequencer batches them), proposed to the leader, and timed until the leader
//! has them committed (held by a majority under the durability policy) and applied.
//!
//! Two latencies per event (hdrhistogram): *commit* (the entry proposed at the leader -> committed:
//! the figure of `docs/REPLICATION.md`), and *from due* (the event's due time -> committed: adds
//! the wait for the generator thread's next wake-up, every ~100-150 us, and any queueing when the log
//! falls behind: coordinated omission is corrected by timing from the due time).

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use openraft::{BasicNode, ServerState};
use ordo_journal::Durability;
use ordo_replica::aeron::{AeronConfig, AeronTransport, SharedDriver};
use ordo_replica::batch::Batch;
use ordo_replica::member::{MemberConfig, RunningMember};
use ordo_replica::types::{NodeId, Raft};

use super::{latency_histogram, percentiles_us};

/// Events per raft entry at most (the sequencer's batch bound).
const MAX_BATCH_EVENTS: usize = 256;
/// Entries proposed and not yet committed, at most (`docs/REPLICATION.md`, 4.1): while the log
/// is behind, due events wait and the next entry carries more of them.
const MAX_IN_FLIGHT_ENTRIES: usize = 64;
/// Record timestamps of the benchmark's events: one clock across rates (the journal refuses a
/// timestamp below the previous record's).
static CLOCK_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_800_000_000_000_000_000);

/// Arguments of `ordo bench cluster`.
#[derive(Debug, clap::Args)]
pub struct ClusterBenchArgs {
    /// Members (1 or 3), all in this process, each with its own journal and Aeron driver.
    #[arg(long, default_value_t = 3)]
    pub members: u64,
    /// Event rates to measure, events/s, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [20_000u64, 50_000])]
    pub rates: Vec<u64>,
    /// Measured seconds per rate.
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Seconds per rate before measuring.
    #[arg(long, default_value_t = 2)]
    pub warmup_s: u64,
    /// Payload bytes per event.
    #[arg(long, default_value_t = 96)]
    pub payload_bytes: usize,
    /// The members' journal durability: none, batch, interval[:<us>].
    #[arg(long, default_value = "none")]
    pub durability: String,
    /// Seconds of an idle cluster over which its CPU is measured.
    #[arg(long, default_value_t = 5)]
    pub idle_s: u64,
    /// All members use one media driver (as members of one host may) instead of one each.
    #[arg(long)]
    pub shared_driver: bool,
}

/// Runs the benchmark.
pub fn run(args: &ClusterBenchArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench cluster: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench cluster: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The members, their transports and their directories.
struct Members {
    running: BTreeMap<NodeId, RunningMember>,
    transports: Vec<Arc<AeronTransport>>,
    /// Dropped after the transports (field order): the members' shared driver, if any.
    _shared: Option<SharedDriver>,
    _data: tempfile::TempDir,
    _aeron: tempfile::TempDir,
}

async fn start(args: &ClusterBenchArgs) -> Result<Members, String> {
    if args.members != 1 && args.members != 3 {
        return Err(format!("--members {}: 1 or 3", args.members));
    }
    let durability: Durability = args.durability.parse()?;
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let shm = std::path::Path::new("/dev/shm");
    let aeron = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .map_err(|e| e.to_string())?;
    let ids: Vec<NodeId> = (1..=args.members).collect();
    let mut endpoints = BTreeMap::new();
    for &id in &ids {
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        endpoints.insert(id, SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let shared = if args.shared_driver {
        Some(SharedDriver::launch(&aeron.path().join("shared-driver"))?)
    } else {
        None
    };
    let mut running = BTreeMap::new();
    let mut transports = Vec::new();
    for &id in &ids {
        let cfg = AeronConfig {
            me: id,
            endpoints: endpoints.clone(),
            aeron_root: aeron.path().to_path_buf(),
            shared_driver: shared.as_ref().map(|d| d.dir().to_path_buf()),
            driver_idle_max: ordo_replica::aeron::DRIVER_IDLE_MAX,
        };
        let (transport, inbox) = AeronTransport::start(&cfg)?;
        let mut member = MemberConfig::new(id, data.path().join(format!("m{id}")));
        member.durability = durability;
        let m = RunningMember::start(&member, transport.clone(), inbox).await?;
        transports.push(transport);
        running.insert(id, m);
    }
    let nodes: BTreeMap<NodeId, BasicNode> = ids
        .iter()
        .map(|&id| (id, BasicNode::new(endpoints[&id])))
        .collect();
    running[&1]
        .raft
        .initialize(nodes)
        .await
        .map_err(|e| format!("initialize: {e}"))?;
    Ok(Members {
        running,
        transports,
        _shared: shared,
        _data: data,
        _aeron: aeron,
    })
}

async fn leader(m: &Members) -> Result<Raft, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for member in m.running.values() {
            if member.raft.metrics().borrow().state == ServerState::Leader {
                return Ok(member.raft.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err("no leader within 30 s".into())
}

/// CPU time of this process (user + system), from getrusage.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv =
        |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

async fn bench(args: &ClusterBenchArgs) -> Result<(), String> {
    let members = start(args).await?;
    let leader = leader(&members).await?;
    println!(
        "cluster: {} member(s) in this process, Aeron UDP on loopback ({}), durability {}, heartbeat 20 ms",
        args.members,
        if args.shared_driver {
            "one shared media driver"
        } else {
            "a media driver each"
        },
        args.durability
    );
    // Idle: heartbeats only.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu0, t0) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(args.idle_s)).await;
    let idle_pct = cpu_time().saturating_sub(cpu0).as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0;
    println!(
        "idle: {idle_pct:.1}% of one core for the whole cluster over {} s",
        args.idle_s
    );
    for &rate in &args.rates {
        let r = open_loop(&leader, rate, args).await?;
        println!(
            "rate {rate}/s: {} events in {} entries, {:.0} events/s committed, CPU {:.0}% of one core",
            r.events, r.entries, r.committed_per_s, r.cpu_pct
        );
        println!(
            "  commit   (proposed -> committed): {}",
            percentiles_us(&r.commit)
        );
        println!(
            "  from due (due -> committed):      {}",
            percentiles_us(&r.from_due)
        );
    }
    for (_, m) in members.running {
        m.shutdown().await;
    }
    for t in members.transports {
        t.shutdown();
    }
    Ok(())
}

struct RateResult {
    events: u64,
    entries: u64,
    committed_per_s: f64,
    cpu_pct: f64,
    commit: Histogram<u64>,
    from_due: Histogram<u64>,
}

/// One entry in flight: when its events were due, when it was proposed, and its answer.
type InFlight = (Vec<Instant>, Instant, Answer);
/// What openraft answers a proposal with.
type Answer =
    tokio::sync::oneshot::Receiver<openraft::raft::ClientWriteResult<ordo_replica::types::TypeConfig>>;

async fn open_loop(leader: &Raft, rate: u64, args: &ClusterBenchArgs) -> Result<RateResult, String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<InFlight>(1 << 16);
    let raft = leader.clone();
    let handle = tokio::runtime::Handle::current();
    let total = Duration::from_secs(args.warmup_s + args.duration_s);
    let payload = vec![0x5au8; args.payload_bytes];
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let generator_in_flight = Arc::clone(&in_flight);
    // The generator: a thread of its own, so that events leave at their due time and not at the
    // runtime timer's 1 ms granularity.
    let generator = std::thread::spawn(move || {
        let start = Instant::now();
        let interval_ns = 1_000_000_000 / rate.max(1);
        let mut sent = 0u64;
        let in_flight = generator_in_flight;
        while start.elapsed() < total {
            let due_now = start.elapsed().as_nanos() as u64 / interval_ns;
            while sent < due_now
                && in_flight.load(std::sync::atomic::Ordering::Acquire) < MAX_IN_FLIGHT_ENTRIES
            {
                let n = ((due_now - sent) as usize).min(MAX_BATCH_EVENTS);
                let mut batch = Batch::with_capacity(n * (payload.len() + 16));
                let mut due = Vec::with_capacity(n);
                for i in 0..n as u64 {
                    let clock_ns = CLOCK_NS.fetch_add(1_000, std::sync::atomic::Ordering::Relaxed);
                    batch
                        .push(clock_ns, 1, &payload)
                        .expect("a batch of 256 small events fits");
                    due.push(start + Duration::from_nanos((sent + i + 1) * interval_ns));
                }
                sent += n as u64;
                in_flight.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                let proposed = Instant::now();
                // Proposed in order, from this one thread (the journal refuses a timestamp
                // below the previous record's, so entries must reach raft in stamp order, as
                // the sequencer's do); the answer is awaited by the collector.
                let done_rx = match handle.block_on(raft.client_write_ff(batch)) {
                    Ok(answer) => answer,
                    Err(e) => {
                        eprintln!("bench cluster: propose: {e}");
                        return;
                    }
                };
                if tx.blocking_send((due, proposed, done_rx)).is_err() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    });
    let warmup_end = Instant::now() + Duration::from_secs(args.warmup_s);
    let (mut commit, mut from_due) = (latency_histogram(), latency_histogram());
    let (mut events, mut entries) = (0u64, 0u64);
    let mut measured_start = None;
    let mut cpu_start = cpu_time();
    while let Some((due, proposed, done)) = rx.recv().await {
        let result = done.await.map_err(|_| "an entry got no answer".to_string())?;
        in_flight.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        result.map_err(|e| format!("an entry was not committed: {e}"))?;
        let now = Instant::now();
        if due[0] < warmup_end {
            continue;
        }
        if measured_start.is_none() {
            measured_start = Some(now);
            cpu_start = cpu_time();
        }
        let commit_ns = now.duration_since(proposed).as_nanos() as u64;
        for d in &due {
            commit.saturating_record(commit_ns.max(1));
            from_due.saturating_record(now.saturating_duration_since(*d).as_nanos().max(1) as u64);
        }
        events += due.len() as u64;
        entries += 1;
    }
    let _ = generator.join();
    let elapsed = measured_start.map_or(Duration::from_secs(1), |s| s.elapsed());
    Ok(RateResult {
        events,
        entries,
        committed_per_s: events as f64 / elapsed.as_secs_f64(),
        cpu_pct: cpu_time().saturating_sub(cpu_start).as_secs_f64() / elapsed.as_secs_f64() * 100.0,
        commit,
        from_due,
    })
}
