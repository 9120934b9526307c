//! Clocks that stamp sequenced events: a PTP hardware clock (`/dev/ptpN`, read with
//! `clock_gettime` on its dynamic clock id), the system clock (as disciplined by
//! ptp4l/phc2sys or chrony), and a deterministic test clock. Stamps never go backwards within
//! a journal: [`Stamper`] clamps them and counts the clamps.

use std::fs::File;
use std::os::fd::AsRawFd;

/// A source of nanoseconds since the Unix epoch, UTC.
pub trait Clock: Send {
    /// Now.
    fn now_ns(&mut self) -> u64;
    /// What it is, for the journal ("system", "ptp:/dev/ptp0", "test").
    fn source(&self) -> String;
    /// Whether it reports itself synchronised to its reference.
    fn synchronised(&self) -> bool;
}

fn gettime(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock id is a real or dynamic clock.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CLOCK_REALTIME, as NTP/PTP daemons discipline it.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&mut self) -> u64 {
        gettime(libc::CLOCK_REALTIME)
    }
    fn source(&self) -> String {
        "system".into()
    }
    fn synchronised(&self) -> bool {
        // adjtimex reports TIME_ERROR when the kernel clock is not synchronised.
        // SAFETY: timex is a plain C struct for which all-zero bytes are a valid value.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        // SAFETY: a read-only query (modes = 0) into a zeroed struct.
        let state = unsafe { libc::adjtimex(&mut tx) };
        state != libc::TIME_ERROR && state >= 0
    }
}

/// A PTP hardware clock device.
#[derive(Debug)]
pub struct PtpClock {
    path: String,
    _device: File,
    clock: libc::clockid_t,
}

impl PtpClock {
    /// Opens `/dev/ptpN`.
    pub fn open(path: &str) -> Result<Self, String> {
        let device = File::open(path).map_err(|e| format!("open PTP clock {path}: {e}"))?;
        // FD_TO_CLOCKID: dynamic POSIX clocks are addressed by ((~fd) << 3) | CLOCKFD (3).
        let clock = ((!device.as_raw_fd()) << 3) | 3;
        let probe = gettime(clock);
        if probe == 0 {
            return Err(format!("{path} is not a readable PTP clock"));
        }
        Ok(PtpClock {
            path: path.to_string(),
            _device: device,
            clock,
        })
    }
}

impl Clock for PtpClock {
    fn now_ns(&mut self) -> u64 {
        gettime(self.clock)
    }
    fn source(&self) -> String {
        format!("ptp:{}", self.path)
    }
    fn synchronised(&self) -> bool {
        // The PHC's own discipline (ptp4l) is not visible here; an operator checks ptp4l's
        // state (docs/OPERATIONS.md). Reported as synchronised when the device reads.
        true
    }
}

/// A deterministic clock for tests: starts at `start`, advances `step` per reading.
#[derive(Debug)]
pub struct TestClock {
    next: u64,
    step: u64,
}

impl TestClock {
    /// A test clock.
    pub fn new(start: u64, step: u64) -> Self {
        TestClock { next: start, step }
    }
}

impl Clock for TestClock {
    fn now_ns(&mut self) -> u64 {
        let t = self.next;
        self.next += self.step;
        t
    }
    fn source(&self) -> String {
        "test".into()
    }
    fn synchronised(&self) -> bool {
        true
    }
}

/// Opens a clock from its configuration string: `system`, `ptp:/dev/ptpN` or `test`.
pub fn open(spec: &str) -> Result<Box<dyn Clock>, String> {
    match spec {
        "system" => Ok(Box::new(SystemClock)),
        "test" => Ok(Box::new(TestClock::new(1_800_000_000_000_000_000, 1_000))),
        other => match other.strip_prefix("ptp:") {
            Some(path) => Ok(Box::new(PtpClock::open(path)?)),
            None => Err(format!("unknown clock {other:?}: system, ptp:/dev/ptpN or test")),
        },
    }
}

/// Stamps events: never earlier than the previous stamp (a clock stepping back is clamped,
/// and counted, rather than written into the journal out of order).
pub struct Stamper {
    clock: Box<dyn Clock>,
    last: u64,
    clamped: u64,
}

impl Stamper {
    /// Stamps from `clock`, never before `floor` (the journal's last timestamp).
    pub fn new(clock: Box<dyn Clock>, floor: u64) -> Self {
        Stamper {
            clock,
            last: floor,
            clamped: 0,
        }
    }

    /// The next stamp.
    #[inline]
    pub fn stamp(&mut self) -> u64 {
        let now = self.clock.now_ns();
        if now < self.last {
            self.clamped += 1;
            return self.last;
        }
        self.last = now;
        now
    }

    /// Never stamps before `floor` from now on (a member that becomes leader: the log's last
    /// timestamp, which another leader's clock may have put ahead of this one's).
    pub fn raise_floor(&mut self, floor: u64) {
        self.last = self.last.max(floor);
    }

    /// Stamps that were clamped.
    pub fn clamped(&self) -> u64 {
        self.clamped
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Backwards(Vec<u64>);
    impl Clock for Backwards {
        fn now_ns(&mut self) -> u64 {
            self.0.remove(0)
        }
        fn source(&self) -> String {
            "t".into()
        }
        fn synchronised(&self) -> bool {
            true
        }
    }

    #[test]
    fn stamps_never_go_back() {
        let mut s = Stamper::new(Box::new(Backwards(vec![10, 20, 15, 30])), 5);
        assert_eq!([s.stamp(), s.stamp(), s.stamp(), s.stamp()], [10, 20, 20, 30]);
        assert_eq!(s.clamped(), 1);
        let mut s = Stamper::new(Box::new(Backwards(vec![3])), 5);
        assert_eq!(s.stamp(), 5, "floor: the journal's last stamp");
    }

    #[test]
    fn system_clock_reads_and_ptp_errors_are_clear() {
        assert!(SystemClock.now_ns() > 1_700_000_000_000_000_000);
        let err = PtpClock::open("/dev/does-not-exist").unwrap_err();
        assert!(err.contains("/dev/does-not-exist"));
        assert!(open("sundial").is_err());
    }
}
