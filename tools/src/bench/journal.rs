//! `ordo bench journal`: append throughput and latency per payload size and durability
//! policy, then the replay rate (records read and checksum-verified per second).
//!
//! Every case appends to the same journal (in `--dir`, or a temporary directory on the same
//! file system as the current directory), so the directory holds one valid journal afterwards.
//! Each case runs two passes of `--records` appends after a warm-up: one untimed per append
//! (throughput, as fast as possible), one timing every append (latency). With `--rate` only the
//! latency pass runs, open-loop: record i is due at start + i/rate, and its latency is counted from
//! when it was due (coordinated omission corrected), so a stall shows up in every record that
//! waited behind it. Under `batch` and `interval`, throughput counts until the last record is
//! durable, and a second histogram gives the time from append (or due time) to durable, sampled
//! by a watcher thread every ~20 us. Without `--rate` that histogram measures a queue that grows
//! without bound (the writer outruns the disk), not a latency: use `--rate` for it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ordo_journal::{Durability, JournalConfig, JournalReader, JournalWriter};

use super::{latency_histogram, percentiles_us};

/// Arguments of `ordo bench journal`.
#[derive(Debug, clap::Args)]
pub struct JournalBenchArgs {
    /// Journal directory; kept after the run. Default: a temporary directory, removed after.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Appends per measured pass.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Payload size; default: both 64 and 256.
    #[arg(long)]
    pub payload_bytes: Option<usize>,
    /// Durability policy; default: none, batch and interval (1 ms).
    #[arg(long)]
    pub durability: Option<Durability>,
    /// Segment size in MiB.
    #[arg(long, default_value_t = 64)]
    pub segment_mib: u64,
    /// Appends per second in the latency pass (open loop); 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// Kind used for benchmark records.
const BENCH_KIND: u16 = 0xBE;
/// Appends before each measured pass (page cache, branch predictors, segment roll).
const WARMUP_RECORDS: u64 = 100_000;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

struct Case {
    payload_bytes: usize,
    durability: Durability,
}

/// Runs the benchmark.
pub fn run(args: &JournalBenchArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_inner(args: &JournalBenchArgs) -> Result<(), String> {
    if args.records == 0 {
        return Err("--records must be at least 1".into());
    }
    let temp;
    let dir: PathBuf = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("ordo-bench-journal-")
                .tempdir_in(".")
                .map_err(|e| format!("create temporary directory: {e}"))?;
            temp.path().to_path_buf()
        }
    };
    let payloads = args.payload_bytes.map_or_else(|| vec![64, 256], |p| vec![p]);
    let policies = args.durability.map_or_else(
        || {
            vec![
                Durability::None,
                Durability::Batch,
                Durability::Interval { period_us: 1_000 },
            ]
        },
        |d| vec![d],
    );
    println!(
        "ordo bench journal: dir={} records={} per pass, warm-up {}, segment {} MiB, cpus {}",
        dir.display(),
        args.records,
        WARMUP_RECORDS,
        args.segment_mib,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for &payload_bytes in &payloads {
        for &durability in &policies {
            bench_case(
                &dir,
                args,
                &Case {
                    payload_bytes,
                    durability,
                },
            )?;
        }
    }
    bench_replay(&dir)?;
    Ok(())
}

fn open(dir: &Path, args: &JournalBenchArgs, case: &Case) -> Result<JournalWriter, String> {
    let mut config = JournalConfig::new(dir);
    config.segment_bytes = args.segment_mib * 1024 * 1024;
    config.durability = case.durability;
    config.max_payload_bytes = config.max_payload_bytes.max(case.payload_bytes);
    JournalWriter::open(config).map_err(|e| format!("open journal: {e}"))
}

fn bench_case(dir: &Path, args: &JournalBenchArgs, case: &Case) -> Result<(), String> {
    let mut writer = open(dir, args, case)?;
    let mut payload = vec![0u8; case.payload_bytes];
    for (i, b) in payload.iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    let mut ts = now_ns().max(writer.last_timestamp_ns());
    let frame_bytes = ordo_journal::frame::frame_bytes(case.payload_bytes) as f64;
    let fsyncs = case.durability.fsyncs();
    let wait = |writer: &JournalWriter, seq: u64| -> Result<(), String> {
        let durable = writer
            .wait_durable(seq, Duration::from_secs(120))
            .map_err(|e| e.to_string())?;
        if durable < seq {
            Err(format!("record {seq} not durable after 120 s"))
        } else {
            Ok(())
        }
    };

    // Warm-up.
    for _ in 0..WARMUP_RECORDS {
        ts += 1;
        writer
            .append(ts, BENCH_KIND, &payload)
            .map_err(|e| e.to_string())?;
    }
    wait(&writer, writer.last_seq())?;

    // Pass 1: throughput, as fast as possible. Skipped in open-loop mode, where its backlog of
    // dirty pages would still be written back during (and distort) the paced pass.
    let mut last = 0;
    let mut rate = None;
    if args.rate == 0 {
        let start = Instant::now();
        for i in 0..args.records {
            ts += 1;
            let n = 8.min(case.payload_bytes);
            payload[..n].copy_from_slice(&i.to_le_bytes()[..n]);
            last = writer
                .append(ts, BENCH_KIND, &payload)
                .map_err(|e| e.to_string())?;
        }
        let appended = start.elapsed();
        wait(&writer, last)?;
        let durable_after = start.elapsed();
        let elapsed = if fsyncs { durable_after } else { appended };
        rate = Some(args.records as f64 / elapsed.as_secs_f64());
    }

    // Pass 2: latency of every append; a watcher samples the durable position.
    let mut hist = latency_histogram();
    let first_seq = writer.next_seq();
    let append_at_ns: Arc<Vec<AtomicU64>> = Arc::new((0..args.records).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let watcher = fsyncs.then(|| {
        let positions = Arc::clone(writer.positions());
        let append_at_ns = Arc::clone(&append_at_ns);
        let stop = Arc::clone(&stop);
        let records = args.records;
        std::thread::spawn(move || {
            let mut hist = latency_histogram();
            let mut seen = first_seq - 1;
            let end = first_seq + records - 1;
            while seen < end && !stop.load(Ordering::Relaxed) {
                let durable = positions.durable().min(end);
                if durable > seen {
                    let now = epoch.elapsed().as_nanos() as u64;
                    for seq in seen + 1..=durable {
                        let at = append_at_ns[(seq - first_seq) as usize].load(Ordering::Relaxed);
                        hist.record(now.saturating_sub(at).max(1)).expect("in range");
                    }
                    seen = durable;
                }
                std::thread::sleep(Duration::from_micros(20));
            }
            hist
        })
    });
    let interval_ns = 1_000_000_000u64.checked_div(args.rate).unwrap_or(0);
    let pass_start = Instant::now();
    for i in 0..args.records {
        ts += 1;
        let t0 = if interval_ns > 0 {
            // Open loop: wait for the due time, and count latency from it.
            let due = pass_start + Duration::from_nanos(i * interval_ns);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            due
        } else {
            Instant::now()
        };
        if fsyncs {
            append_at_ns[i as usize].store(t0.duration_since(epoch).as_nanos() as u64, Ordering::Relaxed);
        }
        last = writer
            .append(ts, BENCH_KIND, &payload)
            .map_err(|e| e.to_string())?;
        hist.record(t0.elapsed().as_nanos().max(1) as u64)
            .expect("in range");
    }
    let pass_rate = args.records as f64 / pass_start.elapsed().as_secs_f64();
    let wait_result = wait(&writer, last);
    stop.store(true, Ordering::Relaxed);
    let durable_hist = watcher.map(|w| w.join().expect("watcher thread"));
    wait_result?;
    writer.close().map_err(|e| e.to_string())?;

    let rate = rate.unwrap_or(pass_rate);
    println!(
        "append  payload {:>4} B  durability {:<13} {:>10.0} appends/s {:>7.1} MB/s{}",
        case.payload_bytes,
        case.durability.to_string(),
        rate,
        rate * frame_bytes / 1e6,
        if args.rate > 0 { " (paced)" } else { "" },
    );
    let pacing = if interval_ns > 0 {
        format!("open loop at {}/s", args.rate)
    } else {
        "closed loop".to_string()
    };
    println!(
        "        append latency ({pacing}, {pass_rate:.0}/s achieved): {}",
        percentiles_us(&hist)
    );
    if let Some(h) = durable_hist {
        println!("        append -> durable ({pacing}): {}", percentiles_us(&h));
    }
    Ok(())
}

fn bench_replay(dir: &Path) -> Result<(), String> {
    // Two passes: the first warms the page cache and mappings, the second is reported.
    let mut result = (0u64, 0u64, Duration::ZERO);
    for _ in 0..2 {
        let mut reader = JournalReader::open_offline(dir, 1).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let mut records = 0u64;
        let mut bytes = 0u64;
        while let Some(r) = reader.next().map_err(|e| e.to_string())? {
            records += 1;
            bytes += r.payload().len() as u64;
        }
        result = (records, bytes, start.elapsed());
    }
    let (records, bytes, elapsed) = result;
    println!(
        "replay  {} records, {:.1} MB payload, read and checksum-verified: {:.0} records/s, {:.1} MB/s",
        records,
        bytes as f64 / 1e6,
        records as f64 / elapsed.as_secs_f64(),
        bytes as f64 / 1e6 / elapsed.as_secs_f64()
    );
    Ok(())
}
