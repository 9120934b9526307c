//! `ordo demo`: the product in one command. Starts the 3-member local cluster
//! (`tests/cluster/local3.toml`: FIX on 127.0.0.1:9881-9883) in a temporary directory, drives it
//! with `ordo loadgen --connect` all three, kills the leader with SIGKILL midway, lets the
//! sessions follow the new leader, checks that every order acknowledged is in the new leader's
//! committed journal, and ends with one line:
//!
//! `DEMO nodes=3 orders=N acked=N lost=N duplicates=N failover_ms=N p50_us=N p99_us=N p999_us=N`
//! (`nodes=1` with `--members 1`, a cluster of one without a failover: `ordo bench members`)
//!
//! `orders`: new-order, cancel and replace requests sent; `acked`: new orders acknowledged;
//! `lost`: acknowledged orders missing from the new leader's committed journal; `duplicates`:
//! fills reported twice; `failover_ms`: the leader's death to the first ExecutionReport from the
//! new leader on a session that logged on again; the percentiles are the loadgen's (request ->
//! first ExecutionReport, corrected for coordinated omission), failover included. Exit 0 when
//! nothing acknowledged was lost or duplicated.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

use crate::loadgen::{self, LoadgenArgs};

/// The cluster the demo runs.
const CLUSTER_FILE: &str = include_str!("../../tests/cluster/local3.toml");

/// Arguments of `ordo demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Requests per second.
    #[arg(long, default_value_t = 5_000)]
    pub rate: u64,
    /// Measured seconds of load; the leader is killed halfway.
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Where the members' data goes (default: a temporary directory, removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The cluster's `max_in_flight_entries` (default: the cluster file's).
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// Leaders to kill, evenly spread over the measured seconds; each killed member is
    /// restarted once a new leader serves (so a majority stays up). `failover_ms` is then the
    /// median, and each failover is printed. 0: no fault (the run shows whether leadership
    /// moved by itself: `demo: terms A to B: N leader changes, M not caused by the demo`).
    #[arg(long, default_value_t = 1)]
    pub failovers: u32,
    /// Run this cluster file instead of the embedded `tests/cluster/local3.toml` (the load
    /// generator connects to its members' `fix` addresses).
    #[arg(long)]
    pub cluster: Option<PathBuf>,
    /// Members to run: the cluster file's first N (1 or 3). A cluster of one cannot fail over:
    /// it needs `--failovers 0` (it is what `ordo bench members` compares three members with).
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Hand leadership over with `ordo admin transfer-leader` (to the next member) instead of
    /// killing the leader; each answer (with its `pause_ms`) is printed.
    #[arg(long)]
    pub transfer: bool,
    /// Keep the media drivers' files in the data directory instead of /dev/shm (to compare).
    #[arg(long)]
    pub aeron_on_disk: bool,
}

/// Removes a directory when dropped (after the members, which are declared later).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Parser)]
struct LoadgenCli {
    #[command(flatten)]
    args: LoadgenArgs,
}

/// The members' processes.
struct Members {
    children: Vec<Option<Child>>,
    dirs: Vec<PathBuf>,
}

impl Drop for Members {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What a demo run measured.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Nothing acknowledged lost or duplicated, the load generator's checks passed, every
    /// failover ended with a report.
    pub ok: bool,
    /// Requests sent.
    pub sent: u64,
    /// Request -> first ExecutionReport percentiles, us (corrected for coordinated omission).
    pub p50_us: u64,
    /// See `p50_us`.
    pub p99_us: u64,
    /// See `p50_us`.
    pub p999_us: u64,
    /// Leader changes the demo did not cause.
    pub own_leader_changes: u64,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> ExitCode {
    match demo(args) {
        Ok(o) if o.ok => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::from(2)
        }
    }
}

/// The cluster file's text with only its first `members` members, and their FIX addresses.
fn first_members(text: &str, members: usize) -> Result<(String, Vec<String>), String> {
    let mut table: toml::Table = text.parse().map_err(|e| format!("cluster file: {e}"))?;
    let list = table
        .get_mut("member")
        .and_then(|m| m.as_array_mut())
        .ok_or("cluster file: no [[member]]")?;
    if list.len() < members {
        return Err(format!(
            "cluster file: {} members, {members} asked for",
            list.len()
        ));
    }
    list.truncate(members);
    let text = table.to_string();
    let file = ordo_replica::cluster_file::ClusterFile::parse(&text).map_err(|e| e.to_string())?;
    let fix = file.members.iter().map(|m| m.fix.to_string()).collect();
    Ok((text, fix))
}

/// Runs the demo and prints its report and `DEMO` line; returns what it measured.
pub fn demo(args: &DemoArgs) -> Result<Outcome, String> {
    if !matches!(args.members, 1 | 3) {
        return Err(format!("--members {}: 1 or 3", args.members));
    }
    if args.members == 1 && (args.failovers > 0 || args.transfer) {
        return Err("a cluster of one cannot fail over: use --failovers 0".to_string());
    }
    let temp;
    let root = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let file = root.join("local3.toml");
    let mut text = match &args.cluster {
        Some(f) => std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?,
        None => CLUSTER_FILE.to_string(),
    };
    if let Some(n) = args.max_in_flight {
        text = text.replacen(
            "[cluster]\n",
            &format!("[cluster]\nmax_in_flight_entries = {n}\n"),
            1,
        );
    }
    let (text, fix) = first_members(&text, args.members)?;
    std::fs::write(&file, text).map_err(|e| format!("{}: {e}", file.display()))?;
    // The media drivers' files in memory (/dev/shm) when there is one, as Aeron expects: on a
    // disk-backed directory their log buffers are written back to disk.
    let aeron = match (args.aeron_on_disk, Path::new("/dev/shm").is_dir()) {
        (false, true) => Path::new("/dev/shm").join(format!("ordo-demo-{}", std::process::id())),
        _ => root.join("aeron"),
    };
    let _remove_aeron = RemoveOnDrop(aeron.clone());
    let mut members = start(&file, &root, &aeron, args.members)?;
    let leader = wait_for_leader(&members, None, Duration::from_secs(30))?;
    let term_at_start = term_of(&members, leader);
    println!("demo: member {} leads", leader + 1);

    let cli = LoadgenCli::try_parse_from([
        "loadgen",
        "--connect",
        &fix.join(","),
        "--rate",
        &args.rate.to_string(),
        "--duration-s",
        &args.duration_s.to_string(),
        "--warmup-s",
        "1",
        "--drain-s",
        "5",
    ])
    .map_err(|e| format!("loadgen arguments: {e}"))?;
    let driver = std::thread::spawn(move || loadgen::drive(&cli.args));
    let started = Instant::now();
    let failovers = args.failovers;
    let every = Duration::from_millis(args.duration_s * 1000 / u64::from(failovers + 1));
    let mut kills = Vec::new();
    for n in 1..=failovers {
        let due = started + Duration::from_secs(1) + every * n;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        // Whoever leads now (an election of its own may have moved leadership).
        let leader = wait_for_leader(&members, None, Duration::from_secs(30))?;
        kills.push(Instant::now());
        if args.transfer {
            transfer(&members, leader)?;
            wait_for_leader(&members, Some(leader), Duration::from_secs(30))?;
            continue;
        }
        if let Some(mut c) = members.children[leader].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        println!(
            "demo: SIGKILL to the leader, member {}, at {}",
            leader + 1,
            crate::time_fmt::rfc3339_ns(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            )
        );
        wait_for_leader(&members, Some(leader), Duration::from_secs(30))?;
        if n < failovers {
            // Back on its journal: it catches up, and the next kill still leaves a majority.
            members.restart(leader, &file, &aeron)?;
        }
    }
    let report = driver
        .join()
        .map_err(|_| "the load generator panicked".to_string())??;
    report.print();
    let new_leader = wait_for_leader(&members, None, Duration::from_secs(30))?;
    println!("demo: member {} leads", new_leader + 1);
    let mut own_leader_changes = 0;
    if let (Some(t0), Some(t1)) = (term_at_start, term_of(&members, new_leader)) {
        // Each kill or transfer takes at least one term; more are elections of their own.
        own_leader_changes = (t1 - t0).saturating_sub(u64::from(failovers));
        println!(
            "demo: terms {t0} to {t1}: {} leader changes, {own_leader_changes} not caused by the demo",
            t1 - t0,
        );
    }
    let found = journaled_orders(&members.dirs[new_leader].join("journal"))?;
    let lost = report.acked.iter().filter(|k| !found.contains(*k)).count();
    // Per kill: to the first ExecutionReport on a session that logged on again after it.
    let mut times_ms: Vec<u128> = kills
        .iter()
        .enumerate()
        .filter_map(|(i, &k)| {
            let next = kills.get(i + 1).copied();
            report
                .failovers
                .iter()
                .filter(|f| f.first_report_ns > 0)
                .filter(|f| {
                    let lost_at = report.started + Duration::from_nanos(f.lost_ns);
                    lost_at + Duration::from_millis(50) >= k && next.is_none_or(|n| lost_at < n)
                })
                .map(|f| report.started + Duration::from_nanos(f.first_report_ns))
                .filter(|&t| t > k)
                .min()
                .map(|t| t.duration_since(k).as_millis())
        })
        .collect();
    times_ms.sort_unstable();
    if times_ms.len() > 1 {
        println!(
            "demo: {} {}, ms to the first ExecutionReport from the new leader: {times_ms:?}",
            times_ms.len(),
            if args.transfer { "transfers" } else { "failovers" }
        );
    }
    let failover_ms = times_ms
        .get(times_ms.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0);
    let complete = times_ms.len() == kills.len();
    let us = |q: f64| report.latency.value_at_quantile(q) / 1000;
    println!(
        "DEMO nodes={} orders={} acked={} lost={lost} duplicates={} failover_ms={failover_ms} p50_us={} p99_us={} p999_us={}",
        args.members,
        report.sent(),
        report.acked.len(),
        report.duplicate_fills(),
        us(0.5),
        us(0.99),
        us(0.999)
    );
    let checked = report.check();
    if let Err(e) = &checked {
        eprintln!("demo: {e}");
    }
    Ok(Outcome {
        ok: checked.is_ok() && lost == 0 && report.duplicate_fills() == 0 && complete,
        sent: report.sent(),
        p50_us: us(0.5),
        p99_us: us(0.99),
        p999_us: us(0.999),
        own_leader_changes,
    })
}

fn start(file: &Path, root: &Path, aeron: &Path, count: usize) -> Result<Members, String> {
    let mut members = Members {
        children: Vec::new(),
        dirs: Vec::new(),
    };
    std::fs::create_dir_all(aeron).map_err(|e| format!("{}: {e}", aeron.display()))?;
    for id in 1..=count {
        let dir = root.join(format!("m{id}"));
        members.children.push(Some(member(id, file, &dir, aeron)?));
        members.dirs.push(dir);
    }
    Ok(members)
}

/// Starts member `id` (its log appended to `<dir>.log`).
fn member(id: usize, file: &Path, dir: &Path, aeron: &Path) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.with_extension("log"))
        .map_err(|e| e.to_string())?;
    Command::new(&exe)
        .arg("node")
        .arg("--cluster")
        .arg(file)
        .args(["--id", &id.to_string()])
        .arg("--data-dir")
        .arg(dir)
        .arg("--aeron-dir")
        .arg(aeron)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("start member {id}: {e}"))
}

impl Members {
    /// Starts again the member at `index` (killed before).
    fn restart(&mut self, index: usize, file: &Path, aeron: &Path) -> Result<(), String> {
        let child = member(index + 1, file, &self.dirs[index], aeron)?;
        self.children[index] = Some(child);
        Ok(())
    }
}

/// `ordo admin transfer-leader` on the leader (index `leader`), to the next member.
fn transfer(members: &Members, leader: usize) -> Result<(), String> {
    let to = (leader + 1) % members.dirs.len();
    let answer =
        ordo_sequencer::admin::request(&members.dirs[leader], &format!("transfer-leader {}", to + 1))?;
    println!(
        "demo: transfer-leader from member {} to member {}: {answer}",
        leader + 1,
        to + 1
    );
    if answer.starts_with("OK") {
        Ok(())
    } else {
        Err(format!("transfer-leader refused: {answer}"))
    }
}

/// The term member `index` reports.
fn term_of(members: &Members, index: usize) -> Option<u64> {
    let status = ordo_sequencer::admin::request(&members.dirs[index], "status").ok()?;
    status
        .split_whitespace()
        .find_map(|w| w.strip_prefix("term="))
        .and_then(|t| t.parse().ok())
}

/// Waits until a member other than `not` leads and serves; its index.
fn wait_for_leader(members: &Members, not: Option<usize>, within: Duration) -> Result<usize, String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        for (i, dir) in members.dirs.iter().enumerate() {
            if Some(i) == not || members.children[i].is_none() {
                continue;
            }
            if let Ok(status) = ordo_sequencer::admin::request(dir, "status")
                && status.contains("role=leader")
                && status.contains("serving=yes")
            {
                return Ok(i);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("no member led and served within {within:?}"))
}

/// The ClOrdIDs (loadgen request numbers) of the new orders in a journal's committed prefix.
fn journaled_orders(dir: &Path) -> Result<BTreeSet<u64>, String> {
    let context = |e: ordo_journal::JournalError| format!("journal {}: {e}", dir.display());
    let mut reader = ordo_journal::JournalReader::open_with(dir, 1, ordo_journal::ReadLimit::Committed)
        .map_err(context)?;
    let mut found = BTreeSet::new();
    while let Some(r) = reader.next().map_err(context)? {
        if r.kind() != ordo_sequencer::schema::KIND_EVENT {
            continue;
        }
        let event = ordo_sequencer::schema::decode(&r).map_err(|e| e.to_string())?;
        if let ordo_sequencer::schema::Event::Command {
            command: ordo_engine::Command::NewOrder(o),
            ..
        } = event
            && let Ok(k) = o.clordid.as_str().parse::<u64>()
        {
            found.insert(k);
        }
    }
    Ok(found)
}
