//! `ordo loadgen`: an open-loop FIX load generator.
//!
//! Requests (new orders, cancels, replaces) are scheduled at fixed intervals from the start,
//! `k / rate` seconds, whether or not earlier ones have been answered (open loop). The latency
//! of a request is measured from its *scheduled* time to the arrival of the first
//! ExecutionReport (or OrderCancelReject) carrying its ClOrdID, so a stall in the node or in
//! the generator itself is charged to every request it delays: the correction for coordinated
//! omission that wrk2 and HdrHistogram's authors describe. One thread drives all sessions,
//! sleeping in ppoll(2) between sends, so it leaves the CPU to the node on a 2-core machine.

mod connection;
mod orders;

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

use hdrhistogram::Histogram;
use ordo_fix::builder::Value;
use ordo_fix::message::Message;

use connection::Connection;
use orders::{Action, MAX_REQUESTS, Mix, Orders};

/// Arguments of `ordo loadgen`.
#[derive(Debug, clap::Args)]
pub struct LoadgenArgs {
    /// The node's FIX address, or a cluster's members' (comma-separated): sessions log on to
    /// the one that answers, and when a connection is lost they log on again, without a reset,
    /// to whichever member leads then, and ask for what they missed.
    #[arg(long, default_value = "127.0.0.1:9878")]
    pub connect: String,
    /// Sessions to drive: CLIENT<first>..CLIENT<first+sessions-1>.
    #[arg(long, default_value_t = 4)]
    pub sessions: u32,
    /// Number of the first session.
    #[arg(long, default_value_t = 1)]
    pub first_session: u32,
    /// SenderCompID prefix (the session number is appended); Username is the SenderCompID.
    #[arg(long, default_value = "CLIENT")]
    pub sender_prefix: String,
    /// Account prefix (session n trades account <prefix>n).
    #[arg(long, default_value = "ACC")]
    pub account_prefix: String,
    /// The node's CompID.
    #[arg(long, default_value = "ORDO")]
    pub target: String,
    /// Logon password (554).
    #[arg(long, default_value = "demo")]
    pub password: String,
    /// Requests per second over all sessions (new orders, cancels and replaces).
    #[arg(long, default_value_t = 50_000)]
    pub rate: u64,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Seconds at full rate before measuring.
    #[arg(long, default_value_t = 2)]
    pub warmup_s: u64,
    /// Seconds to wait for the last answers.
    #[arg(long, default_value_t = 5)]
    pub drain_s: u64,
    /// Percent of requests that cancel an open order.
    #[arg(long, default_value_t = 10)]
    pub cancel_pct: u32,
    /// Percent of requests that replace an open order (new price).
    #[arg(long, default_value_t = 10)]
    pub replace_pct: u32,
    /// Open orders per session beyond which the next request is a cancel (keeps books bounded).
    #[arg(long, default_value_t = 200)]
    pub max_open: usize,
    /// Symbols, comma-separated.
    #[arg(long, default_value = "AAA,BBB,CCC,DDD")]
    pub symbols: String,
    /// Base price; orders are priced base +- band ticks (buys and sells overlap and trade).
    #[arg(long, default_value = "100.00")]
    pub price: String,
    /// Half-width of the price band, in ticks.
    #[arg(long, default_value_t = 20)]
    pub band_ticks: u32,
    /// Tick size.
    #[arg(long, default_value = "0.01")]
    pub tick: String,
    /// Largest order quantity.
    #[arg(long, default_value_t = 10)]
    pub max_qty: u32,
    /// Seed of the order flow.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Busy-poll when the next send is closer than this (0: always sleep in ppoll). Spinning
    /// sharpens the schedule but takes a core from the node on a 2-core machine.
    #[arg(long, default_value_t = 0)]
    pub spin_us: u64,
    /// Requests held for one session while it logs on again, at most; beyond, the run fails
    /// (default [`MAX_HELD_PER_SESSION`]). Lower only to test that bound.
    #[arg(long, default_value_t = MAX_HELD_PER_SESSION, hide = true)]
    pub max_held_per_session: usize,
}

/// A decimal string as mantissa and scale ("100.00" -> (10000, 2)).
fn parse_decimal(s: &str) -> Result<(i128, u8), String> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = format!("{int}{frac}");
    let m: i128 = digits.parse().map_err(|_| format!("not a decimal: {s:?}"))?;
    let scale = u8::try_from(frac.len()).map_err(|_| format!("too many decimals: {s:?}"))?;
    Ok((m, scale))
}

/// Prices as mantissas at one scale.
struct Pricing {
    base: i128,
    tick: i128,
    scale: u8,
}

impl Pricing {
    fn new(price: &str, tick: &str) -> Result<Pricing, String> {
        let (p, ps) = parse_decimal(price)?;
        let (t, ts) = parse_decimal(tick)?;
        let scale = ps.max(ts);
        let up = |m: i128, s: u8| m * 10i128.pow(u32::from(scale - s));
        let tick = up(t, ts);
        if tick <= 0 {
            return Err(format!("tick must be positive: {tick}"));
        }
        Ok(Pricing {
            base: up(p, ps),
            tick,
            scale,
        })
    }
    fn at(&self, offset_ticks: i32) -> Value<'static> {
        Value::Decimal(self.base + i128::from(offset_ticks) * self.tick, self.scale)
    }
}

/// Counters of one run.
#[derive(Debug, Default)]
struct Counts {
    sent: u64,
    answered: u64,
    acks: u64,
    fills: u64,
    rejects: u64,
    cancelled: u64,
    replaced: u64,
    cancel_rejects: u64,
    other_reports: u64,
    /// Requests the node refused as busy (BusinessMessageReject 380=4 naming the ClOrdID).
    busy: u64,
    /// Fills whose ExecID was reported before (a fill reported twice: never expected).
    duplicate_fills: u64,
}

/// The clock of the run: nanoseconds since its start.
struct RunClock(Instant);

impl RunClock {
    fn ns(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// The answer-side state: which requests have had their first answer.
struct Answers {
    first_seen: Vec<u64>,
    rate: u64,
    measure_from_k: u64,
    latency: Histogram<u64>,
    counts: Counts,
    /// New orders acknowledged (their request numbers, which are their ClOrdIDs).
    acked: Vec<u64>,
    /// Hashes of the ExecIDs of the fills seen.
    fill_ids: std::collections::HashSet<u64>,
    /// When the last ExecutionReport arrived (run clock).
    last_report_ns: u64,
}

/// A session that lost its connection and logged on again.
#[derive(Debug, Clone, Copy)]
pub struct Failover {
    /// The session's index.
    pub session: usize,
    /// When its connection was found lost, and when a member answered its Logon (run clock,
    /// ns).
    pub lost_ns: u64,
    /// See `lost_ns`.
    pub logged_on_ns: u64,
    /// When its first ExecutionReport after the new Logon arrived (0: none).
    pub first_report_ns: u64,
}

fn exec_id_hash(id: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

impl Answers {
    fn scheduled_ns(rate: u64, k: u64) -> u64 {
        (u128::from(k) * 1_000_000_000 / u128::from(rate)) as u64
    }

    fn seen(&mut self, k: u64) -> bool {
        let (w, b) = ((k / 64) as usize, k % 64);
        let word = &mut self.first_seen[w];
        let was = *word & (1 << b) != 0;
        *word |= 1 << b;
        was
    }

    /// An application message from the node, received at `now_ns`.
    fn on_message(&mut self, m: &Message<'_>, now_ns: u64, sent: u64, orders: &mut Orders) {
        let clordid = m.get(11).and_then(parse_k).filter(|&k| k < sent);
        match m.msg_type() {
            b"8" => {
                let status = m.get(39).unwrap_or_default();
                self.last_report_ns = now_ns;
                match m.get(150).unwrap_or_default() {
                    b"0" => {
                        self.counts.acks += 1;
                        if let Some(k) = clordid {
                            self.acked.push(k);
                        }
                    }
                    b"F" => {
                        self.counts.fills += 1;
                        if let Some(id) = m.get(17)
                            && !self.fill_ids.insert(exec_id_hash(id))
                        {
                            self.counts.duplicate_fills += 1;
                        }
                    }
                    b"8" => self.counts.rejects += 1,
                    b"4" => self.counts.cancelled += 1,
                    b"5" => self.counts.replaced += 1,
                    _ => self.counts.other_reports += 1,
                }
                if let Some(k) = clordid {
                    let exec_type = m.get(150).unwrap_or_default();
                    let done = matches!(status, b"2" | b"4" | b"8" | b"C" | b"3");
                    if done {
                        orders.close(k);
                        if let Some(orig) = m.get(41).and_then(parse_k) {
                            orders.close(orig);
                        }
                    } else if exec_type == b"0" || exec_type == b"5" {
                        orders.opened(k);
                    }
                    self.first_answer(k, now_ns);
                }
            }
            b"j" => {
                // The node refused the request (queue full): an answer, but not a latency
                // sample of an ExecutionReport.
                if let Some(k) = m.get(379).and_then(parse_k).filter(|&k| k < sent) {
                    self.counts.busy += 1;
                    if !self.seen(k) {
                        self.counts.answered += 1;
                    }
                }
            }
            b"9" => {
                self.counts.cancel_rejects += 1;
                if let Some(k) = clordid {
                    self.first_answer(k, now_ns);
                }
            }
            _ => {}
        }
    }

    fn first_answer(&mut self, k: u64, now_ns: u64) {
        if self.seen(k) {
            return;
        }
        self.counts.answered += 1;
        if k >= self.measure_from_k {
            let latency = now_ns.saturating_sub(Self::scheduled_ns(self.rate, k)).max(1);
            self.latency.saturating_record(latency);
        }
    }
}

fn parse_k(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
    })
}

/// Formats a nanosecond histogram's percentiles in microseconds.
fn summary_us(h: &Histogram<u64>) -> String {
    let us = |ns: u64| ns as f64 / 1000.0;
    format!(
        "p50 {:.1} us  p90 {:.1} us  p99 {:.1} us  p99.9 {:.1} us  p99.99 {:.1} us  max {:.1} us",
        us(h.value_at_quantile(0.50)),
        us(h.value_at_quantile(0.90)),
        us(h.value_at_quantile(0.99)),
        us(h.value_at_quantile(0.999)),
        us(h.value_at_quantile(0.9999)),
        us(h.max())
    )
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

fn wait_readable(fds: &mut [libc::pollfd], timeout_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: fds points to fds.len() initialised pollfd structs; ts is a valid timespec; a
    // null sigmask leaves the signal mask unchanged.
    unsafe {
        libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, &ts, std::ptr::null());
    }
}

/// Bound of the requests held for one session while it logs on again: at 30 s of reconnecting
/// (its limit) and 250K requests/s on one session, 7.5M. Beyond it the run fails.
pub const MAX_HELD_PER_SESSION: usize = 8 << 20;

/// A session's connection was lost: with several members it logs on again (to whichever leads
/// then) while the others carry on; with one, or on a Logout or Reject, the run has failed.
fn lose(
    follow: bool,
    i: usize,
    c: &mut Connection,
    e: connection::SessionError,
    clock: &RunClock,
    failovers: &mut Vec<Failover>,
) -> Result<(), String> {
    if !follow || !matches!(e, connection::SessionError::Io(_)) {
        return Err(format!("{}: {e}", c.sender));
    }
    let lost_ns = clock.ns();
    println!(
        "loadgen: {} lost its connection to {} ({e}): logging on again",
        c.sender,
        c.addr()
    );
    c.lost(Instant::now());
    failovers.push(Failover {
        session: i,
        lost_ns,
        logged_on_ns: 0,
        first_report_ns: 0,
    });
    Ok(())
}

/// A session that lost its connection is logged on again.
fn logged_on_again(i: usize, c: &Connection, clock: &RunClock, failovers: &mut [Failover]) {
    let now_ns = clock.ns();
    let Some(f) = failovers
        .iter_mut()
        .rev()
        .find(|f| f.session == i && f.logged_on_ns == 0)
    else {
        return;
    };
    f.logged_on_ns = now_ns;
    println!(
        "loadgen: {} logged on to {} after {:.1} ms",
        c.sender,
        c.addr(),
        (now_ns - f.lost_ns) as f64 / 1e6
    );
}

/// Runs the load; prints the summary; Err on a failed run (a session lost, answers missing).
pub fn run(args: &LoadgenArgs) -> Result<(), String> {
    let report = drive(args)?;
    report.print();
    report.check()
}

/// Runs the load and returns what it measured (`ordo demo` reads it).
pub fn drive(args: &LoadgenArgs) -> Result<Report, String> {
    if args.sessions == 0 || args.rate == 0 {
        return Err("--sessions and --rate must be positive".into());
    }
    let symbols: Vec<&str> = args.symbols.split(',').filter(|s| !s.is_empty()).collect();
    if symbols.is_empty() || symbols.len() > 255 {
        return Err("--symbols: 1 to 255 symbols".into());
    }
    if args.cancel_pct + args.replace_pct > 100 {
        return Err("--cancel-pct + --replace-pct must be at most 100".into());
    }
    let pricing = Pricing::new(&args.price, &args.tick)?;
    let total = args.rate.saturating_mul(args.warmup_s + args.duration_s);
    if total == 0 || total > MAX_REQUESTS {
        return Err(format!(
            "rate x (warm-up + duration) = {total} requests: must be 1..={MAX_REQUESTS}"
        ));
    }
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in args.connect.split(',').filter(|a| !a.is_empty()) {
        addrs.push(
            a.to_socket_addrs()
                .map_err(|e| format!("--connect {a}: {e}"))?
                .next()
                .ok_or_else(|| format!("--connect {a}: no address"))?,
        );
    }
    if addrs.is_empty() {
        return Err("--connect: no address".into());
    }
    let follow = addrs.len() > 1;

    // Less timer slack: ppoll wakes within a few microseconds of the next send, not 50 us.
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and affects only this thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong);
    }

    let mut conns = Vec::new();
    let mut accounts = Vec::new();
    for i in 0..args.sessions {
        let n = args.first_session + i;
        let sender = format!("{}{n}", args.sender_prefix);
        let c = Connection::logon(&addrs, &sender, &args.target, &args.password, 30)
            .map_err(|e| format!("{sender} -> {}: {e}", args.connect))?;
        conns.push(c);
        accounts.push(format!("{}{n}", args.account_prefix));
    }
    println!(
        "loadgen: {} sessions {}..{} -> {}; {} requests/s open loop, {} s warm-up + {} s measured; \
         mix new {}% cancel {}% replace {}%; max {} open per session; {} symbols; seed {}",
        args.sessions,
        conns[0].sender,
        conns[conns.len() - 1].sender,
        conns[0].addr(),
        args.rate,
        args.warmup_s,
        args.duration_s,
        100 - args.cancel_pct - args.replace_pct,
        args.cancel_pct,
        args.replace_pct,
        args.max_open,
        symbols.len(),
        args.seed
    );

    let mix = Mix {
        cancel_pct: args.cancel_pct,
        replace_pct: args.replace_pct,
        max_open: args.max_open.max(1),
        band_ticks: args.band_ticks,
        max_qty: args.max_qty.max(1),
        symbols: symbols.len() as u8,
    };
    let mut orders = Orders::new(mix, args.seed, conns.len(), total);
    let mut answers = Answers {
        first_seen: vec![0; (total as usize).div_ceil(64)],
        rate: args.rate,
        measure_from_k: args.rate * args.warmup_s,
        latency: histogram(),
        counts: Counts::default(),
        acked: Vec::new(),
        fill_ids: std::collections::HashSet::new(),
        last_report_ns: 0,
    };
    let mut send_lag = histogram();
    let mut fds: Vec<libc::pollfd> = conns
        .iter()
        .map(|c| libc::pollfd {
            fd: c.fd(),
            events: c.poll_events(),
            revents: 0,
        })
        .collect();
    // Requests that came due while their session was logging on again: sent once it is on.
    let mut held: Vec<VecDeque<(u64, Action)>> = vec![VecDeque::new(); conns.len()];
    let mut held_count = 0u64;
    let spin_ns = args.spin_us * 1000;
    let end_ns = Answers::scheduled_ns(args.rate, total);
    let give_up_ns = end_ns + args.drain_s * 1_000_000_000;
    let measure_from_ns = Answers::scheduled_ns(args.rate, answers.measure_from_k);
    let mut measured_sent_end_ns = 0u64;
    let clock = RunClock(Instant::now());
    let mut k = 0u64;
    let mut failure: Option<String> = None;
    let mut failovers: Vec<Failover> = Vec::new();

    'run: loop {
        let now = clock.ns();
        // Send everything that is due (bounded per round so answers keep being read).
        let mut round = 0;
        while k < total && Answers::scheduled_ns(args.rate, k) <= now && round < 4096 {
            let s = orders.session_of(k);
            let action = orders.plan(k);
            if conns[s].is_up() {
                send(
                    &mut conns[s],
                    &accounts[s],
                    &symbols,
                    &pricing,
                    &orders,
                    k,
                    action,
                );
                if k >= answers.measure_from_k {
                    send_lag
                        .saturating_record(now.saturating_sub(Answers::scheduled_ns(args.rate, k)).max(1));
                }
            } else if held[s].len() >= args.max_held_per_session {
                failure = Some(format!(
                    "{}: {} requests held while logging on again",
                    conns[s].sender, args.max_held_per_session
                ));
                break 'run;
            } else {
                held[s].push_back((k, action));
                held_count += 1;
            }
            k += 1;
            round += 1;
        }
        answers.counts.sent = k;
        if k == total && measured_sent_end_ns == 0 {
            measured_sent_end_ns = clock.ns();
        }
        for (i, c) in conns.iter_mut().enumerate() {
            if c.is_up()
                && let Err(e) = c.flush()
                && let Err(f) = lose(follow, i, c, e, &clock, &mut failovers)
            {
                failure = Some(f);
                break 'run;
            }
            fds[i].fd = c.fd();
            fds[i].events = c.poll_events();
            fds[i].revents = 0;
        }
        if k == total && answers.counts.answered == total {
            break;
        }
        let now = clock.ns();
        if now > give_up_ns {
            break;
        }
        let mut timeout_ns = if k < total {
            Answers::scheduled_ns(args.rate, k).saturating_sub(now)
        } else {
            give_up_ns - now
        };
        for c in conns.iter().filter(|c| !c.is_up()) {
            let wake_ns = c.wake_at().saturating_duration_since(clock.0).as_nanos() as u64;
            timeout_ns = timeout_ns.min(wake_ns.saturating_sub(now));
        }
        let timeout_ns = if timeout_ns <= spin_ns {
            0
        } else {
            timeout_ns.min(100_000_000)
        };
        wait_readable(&mut fds, timeout_ns);
        let now_instant = Instant::now();
        for (i, c) in conns.iter_mut().enumerate() {
            let revents = fds[i].revents;
            let sent = k;
            let before = answers.last_report_ns;
            let mut on_app = |m: &Message<'_>| answers.on_message(m, clock.ns(), sent, &mut orders);
            if c.is_up() {
                if revents == 0 {
                    continue;
                }
                if let Err(e) = c.receive(&mut on_app)
                    && let Err(f) = lose(follow, i, c, e, &clock, &mut failovers)
                {
                    failure = Some(f);
                    break 'run;
                }
            } else if revents != 0 || now_instant >= c.wake_at() {
                match c.advance(now_instant, revents, &mut on_app) {
                    Ok(false) => {}
                    Ok(true) => {
                        logged_on_again(i, c, &clock, &mut failovers);
                        for (k, action) in held[i].drain(..) {
                            send(c, &accounts[i], &symbols, &pricing, &orders, k, action);
                        }
                    }
                    Err(e) => {
                        failure = Some(format!("{}: {e}", c.sender));
                        break 'run;
                    }
                }
            }
            if answers.last_report_ns != before
                && let Some(f) = failovers
                    .iter_mut()
                    .rev()
                    .find(|f| f.session == i && f.first_report_ns == 0 && f.logged_on_ns > 0)
            {
                f.first_report_ns = answers.last_report_ns;
            }
        }
    }
    let report = Report {
        rate: args.rate,
        drain_s: args.drain_s,
        measured_requests: answers.counts.sent.saturating_sub(answers.measure_from_k),
        send_span_ns: measured_sent_end_ns.saturating_sub(measure_from_ns).max(1),
        open_at_end: orders.open_count(),
        elapsed_ns: clock.ns(),
        counts: answers.counts,
        latency: answers.latency,
        send_lag,
        acked: answers.acked,
        failovers,
        held: held_count,
        failure,
        started: clock.0,
    };
    for c in conns {
        c.logout();
    }
    Ok(report)
}

/// What a run measured.
pub struct Report {
    rate: u64,
    drain_s: u64,
    measured_requests: u64,
    send_span_ns: u64,
    open_at_end: usize,
    elapsed_ns: u64,
    counts: Counts,
    /// Request -> first ExecutionReport, corrected for coordinated omission (ns).
    pub latency: Histogram<u64>,
    send_lag: Histogram<u64>,
    /// The ClOrdIDs of the new orders acknowledged (request numbers).
    pub acked: Vec<u64>,
    /// The sessions that logged on again after losing their connection.
    pub failovers: Vec<Failover>,
    /// Requests that came due while their session was logging on again (sent once it was).
    held: u64,
    failure: Option<String>,
    /// When the run clock started.
    pub started: Instant,
}

impl Report {
    /// Requests sent (new orders, cancels, replaces).
    pub fn sent(&self) -> u64 {
        self.counts.sent
    }

    /// Fills reported twice.
    pub fn duplicate_fills(&self) -> u64 {
        self.counts.duplicate_fills
    }

    /// Prints the summary lines.
    pub fn print(&self) {
        let counts = &self.counts;
        println!(
            "loadgen: sent {} requests ({} measured) at {:.0}/s achieved (target {}/s); answered {}, missing {}",
            counts.sent,
            self.measured_requests,
            self.measured_requests as f64 * 1e9 / self.send_span_ns as f64,
            self.rate,
            counts.answered,
            counts.sent - counts.answered
        );
        println!(
            "loadgen: reports: acks {} fills {} rejects {} cancelled {} replaced {} other {}; cancel rejects {}; refused busy {}; duplicate fills {}; open orders at end {}",
            counts.acks,
            counts.fills,
            counts.rejects,
            counts.cancelled,
            counts.replaced,
            counts.other_reports,
            counts.cancel_rejects,
            counts.busy,
            counts.duplicate_fills,
            self.open_at_end
        );
        println!(
            "loadgen: request -> first ExecutionReport, corrected for coordinated omission ({} samples): {}",
            self.latency.len(),
            summary_us(&self.latency)
        );
        println!(
            "loadgen: send lag behind schedule (the generator's own): {}",
            summary_us(&self.send_lag)
        );
        if !self.failovers.is_empty() {
            let longest_ns = self
                .failovers
                .iter()
                .map(|f| f.logged_on_ns.saturating_sub(f.lost_ns))
                .max()
                .unwrap_or(0);
            println!(
                "loadgen: {} sessions logged on again after losing their connection (the longest took {:.1} ms); {} requests came due meanwhile and were sent once their session was on",
                self.failovers.len(),
                longest_ns as f64 / 1e6,
                self.held
            );
        }
        println!("loadgen: run took {:.1} s", self.elapsed_ns as f64 / 1e9);
    }

    /// Err for a failed run: a session lost (and not recovered), requests refused as busy,
    /// fills reported twice, or answers missing (after a failover, requests sent to a leader
    /// that died before committing them get no answer: those are allowed, and counted).
    pub fn check(&self) -> Result<(), String> {
        let counts = &self.counts;
        if let Some(f) = &self.failure {
            return Err(format!("session failed: {f}"));
        }
        if counts.busy > 0 {
            return Err(format!(
                "{} requests refused by the node as busy (its sequencer queue was full): the rate is beyond its capacity",
                counts.busy
            ));
        }
        if counts.duplicate_fills > 0 {
            return Err(format!("{} fills reported twice", counts.duplicate_fills));
        }
        if counts.sent != counts.answered && self.failovers.is_empty() {
            return Err(format!(
                "{} requests unanswered after {} s of drain",
                counts.sent - counts.answered,
                self.drain_s
            ));
        }
        Ok(())
    }
}

fn send(
    c: &mut Connection,
    account: &str,
    symbols: &[&str],
    pricing: &Pricing,
    orders: &Orders,
    k: u64,
    action: Action,
) {
    let id = ordo_fix::builder::itoa_u64(k);
    let (symbol, side, qty) = orders.order_of(k);
    let symbol = symbols[usize::from(symbol)].as_bytes();
    let side: &[u8] = if side == 1 { b"1" } else { b"2" };
    match action {
        Action::New { offset_ticks, .. } => {
            c.start(b"D");
            c.field(11, Value::Bytes(id.as_slice()))
                .field(1, Value::Bytes(account.as_bytes()))
                .field(55, Value::Bytes(symbol))
                .field(54, Value::Bytes(side))
                .field(38, Value::U64(u64::from(qty)))
                .field(40, Value::Bytes(b"2"))
                .field(44, pricing.at(offset_ticks))
                .field(59, Value::Bytes(b"0"));
        }
        Action::Cancel { orig } => {
            let orig = ordo_fix::builder::itoa_u64(orig);
            c.start(b"F");
            c.field(11, Value::Bytes(id.as_slice()))
                .field(41, Value::Bytes(orig.as_slice()))
                .field(1, Value::Bytes(account.as_bytes()))
                .field(55, Value::Bytes(symbol))
                .field(54, Value::Bytes(side))
                .field(38, Value::U64(u64::from(qty)));
        }
        Action::Replace { orig, offset_ticks } => {
            let orig = ordo_fix::builder::itoa_u64(orig);
            c.start(b"G");
            c.field(11, Value::Bytes(id.as_slice()))
                .field(41, Value::Bytes(orig.as_slice()))
                .field(1, Value::Bytes(account.as_bytes()))
                .field(55, Value::Bytes(symbol))
                .field(54, Value::Bytes(side))
                .field(38, Value::U64(u64::from(qty)))
                .field(40, Value::Bytes(b"2"))
                .field(44, pricing.at(offset_ticks));
        }
    }
    // TransactTime is required on D, F and G: the scheduled time is as good as any for a
    // generator, and costs no clock read.
    c.transact_time();
    c.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_prices() {
        assert_eq!(parse_decimal("100.00"), Ok((10000, 2)));
        assert_eq!(parse_decimal("7"), Ok((7, 0)));
        assert!(parse_decimal("1.x").is_err());
        let p = Pricing::new("100", "0.01").unwrap();
        assert!(matches!(p.at(-3), Value::Decimal(9997, 2)));
    }

    #[test]
    fn clordids() {
        assert_eq!(parse_k(b"12345"), Some(12345));
        assert_eq!(parse_k(b"12a"), None);
        assert_eq!(parse_k(b""), None);
    }
}
