//! The single writer: appends frames into a memory-mapped, preallocated segment, publishes the
//! written position, and rolls to a new segment when the current one is full.
//!
//! Hot path of an append: bounds checks, a memcpy of the payload into the mapping, a crc32 over
//! the frame, and (at publish) one release store. No syscall, no lock, no allocation: pages are
//! pre-faulted for writing in chunks ahead of the write offset, so even the first write to a
//! page does not take a page fault.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use memmap2::{MmapMut, MmapOptions};

use crate::config::{Durability, JournalConfig};
use crate::error::{JournalError, Result};
use crate::frame::{FRAME_HEADER_BYTES, frame_bytes, seal_frame};
use crate::index::{IndexEntry, SegmentIndex, index_path, write_index};
use crate::lock::DirLock;
use crate::positions::Positions;
use crate::recovery::{Recovered, RecoveryReport, recover};
use crate::scan::{ScanExpect, scan_segment};
use crate::segment::{
    SPARE_FILE, SegmentHeader, create_segment, install_segment, list_segments, preallocate, prepare_spare,
    sync_dir,
};
use crate::syncer::{SyncShared, Syncer};

/// Bytes pre-faulted for writing ahead of the write offset, per `madvise` call.
const PREFAULT_CHUNK_BYTES: usize = 256 * 1024;
/// The next segment's file is prepared once the active one is this fraction full: early
/// enough that at the highest append rate measured (~560 MB/s, a 64 MiB segment in ~0.12 s)
/// the spare is ready at the roll (asked for at half, rolls waited for it: 7.5M -> 6.2M
/// appends/s in `ordo bench journal`), late enough that an idle session's store (a few KiB)
/// never has one.
const SPARE_AT_FRACTION: usize = 16;
/// `MADV_POPULATE_WRITE` (Linux 5.14): fault pages in writable without touching their contents.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// The segment being appended to.
struct ActiveSegment {
    file: Arc<File>,
    path: PathBuf,
    map: MmapMut,
    first_seq: u64,
    write_offset: usize,
    /// Pages below this offset are already faulted in writable.
    prefaulted_to: usize,
    /// Sparse index entries so far; capacity reserved up front (at most one entry per
    /// `index_interval` minimal frames fit a segment), so pushing never reallocates.
    index: Vec<IndexEntry>,
}

impl ActiveSegment {
    fn open(
        config: &JournalConfig,
        path: PathBuf,
        header: &SegmentHeader,
        write_offset: u64,
        premapped: Option<MmapMut>,
    ) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| JournalError::io("open", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| JournalError::io("stat", &path, e))?
            .len();
        if len < header.segment_bytes {
            // A file cut short by damage or by a crash during preallocation: restore its size.
            preallocate(&file, header.segment_bytes)
                .map_err(|e| JournalError::io("preallocate", &path, e))?;
        }
        let map_len = usize::try_from(header.segment_bytes)
            .map_err(|_| JournalError::Config("segment larger than the address space".into()))?;
        let write_offset = write_offset as usize;
        let (map, prefaulted_to) = match premapped {
            // The spare thread mapped the file (same inode: the rename into place does not
            // affect the mapping); appends fault its pages in ahead of themselves.
            Some(map) if map.len() == map_len => (map, write_offset & !4095),
            _ => {
                // SAFETY: we hold the directory lock, so no other process writes this file;
                // readers only read bytes below the published position, never modified again.
                let mut map = unsafe { MmapOptions::new().len(map_len).map_mut(&file) }
                    .map_err(|e| JournalError::io("mmap", &path, e))?;
                // Fault in the rest of the segment now (at open, off the append path), or the
                // configured window of it; beyond, and if the kernel cannot, appends prefault
                // chunk by chunk.
                let from = (write_offset & !4095).min(map_len);
                let to = match config.open_prefault_bytes {
                    None => map_len,
                    Some(window) => from
                        .saturating_add(usize::try_from(window).unwrap_or(usize::MAX))
                        .next_multiple_of(4096)
                        .min(map_len),
                };
                // SAFETY: the range lies inside our mapping; POPULATE_WRITE keeps contents.
                let rc = unsafe {
                    libc::madvise(map.as_mut_ptr().add(from).cast(), to - from, MADV_POPULATE_WRITE)
                };
                (map, if rc == 0 { to } else { from })
            }
        };
        let max_entries = map_len / (frame_bytes(0) * config.index_interval as usize) + 1;
        Ok(ActiveSegment {
            file: Arc::new(file),
            path,
            map,
            first_seq: header.first_seq,
            write_offset,
            prefaulted_to,
            index: Vec::with_capacity(max_entries),
        })
    }

    /// Makes sure the pages up to `end` are faulted in writable, a chunk at a time.
    #[inline]
    fn prefault(&mut self, end: usize) {
        if end <= self.prefaulted_to {
            return;
        }
        let target = (end + PREFAULT_CHUNK_BYTES)
            .min(self.map.len())
            .next_multiple_of(4096)
            .min(self.map.len());
        let start = self.prefaulted_to;
        // SAFETY: the range lies inside our mapping; POPULATE_WRITE does not change contents.
        // On kernels without it the call fails with EINVAL and pages fault in on first write.
        unsafe {
            libc::madvise(
                self.map.as_mut_ptr().add(start).cast(),
                target - start,
                MADV_POPULATE_WRITE,
            );
        }
        self.prefaulted_to = target;
    }
}

/// Maps a prepared spare file, off the append path (an mmap takes the process's mmap lock for
/// writing). Its pages are not faulted in here: the writer faults them in as it appends,
/// [`PREFAULT_CHUNK_BYTES`] ahead, so that the cost follows the append rate. Faulting in whole
/// spares here made bursts: the session stores a member had then filled in step (their sessions
/// traded alike), and so do the members of a cluster (they apply the same log), so a dozen
/// writers rolled within a few ms and their helpers took both cores for 300-400 ms every few seconds
/// at 20K orders/s (`perf sched`: 100-190 ms of CPU per 100 ms; SCHED_IDLE does not keep the
/// kernel's page allocation off the CPU), starving raft's threads past the leader's cut-off
/// (docs/BENCHMARKS.md). None if mapping fails (the writer then maps the file itself).
fn map_spare(path: &Path, segment_bytes: u64) -> Option<MmapMut> {
    let file = OpenOptions::new().read(true).write(true).open(path).ok()?;
    let len = usize::try_from(segment_bytes).ok()?;
    // SAFETY: the spare file is ours alone (directory lock held by the writer, the name is
    // private until the writer renames it); nothing reads it while we map it.
    unsafe { MmapOptions::new().len(len).map_mut(&file) }.ok()
}

/// A prepared spare segment file and, when the helper thread could map it, its
/// mapping.
type PreparedSpare = (PathBuf, Option<MmapMut>);

/// The helper thread of one writer, for the writer's whole life: it unmaps sealed segments
/// and prepares the next segment's file, one job at a time. A long-lived thread, because
/// creating a thread at every roll maps its stack: on the append path, and blocked for
/// milliseconds when another thread holds the mmap lock.
struct SpareWorker {
    /// Jobs: unmap this sealed segment's map (if any), then prepare a spare if asked. None once
    /// the worker is shut down (dropping the sender ends the thread).
    jobs: Option<std::sync::mpsc::Sender<SpareJob>>,
    done: std::sync::mpsc::Receiver<Result<PreparedSpare>>,
    /// A job was sent and its result not taken yet.
    pending: bool,
    /// Set to abandon the job in progress (see [`SpareWorker::cancel`]).
    cancel: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One job of the [`SpareWorker`].
struct SpareJob {
    /// A sealed segment's mapping to unmap.
    retired: Option<MmapMut>,
    /// Whether to prepare the next segment's file (and send the result).
    prepare: bool,
}

impl SpareWorker {
    /// Starts the thread. If it cannot be started, every roll creates its segment itself.
    /// `zero`: write spares with zeros (see [`prepare_spare`]).
    fn new(dir: PathBuf, segment_bytes: u64, zero: bool) -> SpareWorker {
        let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<SpareJob>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cancelled = Arc::clone(&cancel);
        let thread = std::thread::Builder::new()
            .name("journal-spare".into())
            .spawn(move || {
                lower_priority();
                for job in jobs_rx {
                    drop(job.retired);
                    if !job.prepare {
                        continue;
                    }
                    let result = match prepare_spare(&dir, segment_bytes, zero, &cancelled) {
                        Ok(Some(path)) => Ok((path.clone(), map_spare(&path, segment_bytes))),
                        Ok(None) => Err(JournalError::Config("spare preparation cancelled".into())),
                        Err(e) => Err(e),
                    };
                    if done_tx.send(result).is_err() {
                        return;
                    }
                }
            })
            .ok();
        SpareWorker {
            jobs: thread.as_ref().map(|_| jobs_tx),
            done: done_rx,
            pending: false,
            cancel,
            thread,
        }
    }

    /// Asks the thread to unmap `retired` and, if `prepare`, to prepare the next spare.
    fn request(&mut self, retired: Option<MmapMut>, prepare: bool) {
        debug_assert!(!(prepare && self.pending), "one spare at a time");
        if let Some(jobs) = &self.jobs {
            let sent = jobs.send(SpareJob { retired, prepare }).is_ok();
            self.pending |= prepare && sent;
        }
    }

    /// The requested spare, waiting for it if it is not ready; None if none was requested or
    /// the thread is gone.
    fn take(&mut self) -> Option<Result<PreparedSpare>> {
        if !std::mem::take(&mut self.pending) {
            return None;
        }
        self.done.recv().ok()
    }

    /// Abandons the job in progress (if any) and waits for the thread to say so: the result is
    /// discarded. Later requests run normally.
    fn cancel(&mut self) {
        self.cancel.store(true, std::sync::atomic::Ordering::Release);
        let _ = self.take();
        self.cancel.store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Drop for SpareWorker {
    fn drop(&mut self) {
        self.cancel();
        self.jobs = None; // ends the thread's job loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Puts the calling thread in `SCHED_IDLE`: it then runs only when nothing else wants the CPU.
/// On a 2-core machine the spare's 64 MiB of zeroing (fsyncing journals) or faulting in
/// otherwise preempts the writer for whole time slices (measured: ms-long stalls in the open-loop benchmark).
fn lower_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall on the calling thread (pid 0); failure only leaves the priority as is.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
}

/// The journal's one writer. See the crate documentation for the guarantees.
pub struct JournalWriter {
    config: JournalConfig,
    _lock: DirLock,
    positions: Arc<Positions>,
    sync: Arc<SyncShared>,
    syncer: Option<Syncer>,
    active: ActiveSegment,
    next_seq: u64,
    last_crc: u32,
    last_timestamp_ns: u64,
    report: RecoveryReport,
    scratch: rkyv::util::AlignedVec,
    /// The helper thread that prepares the next segment's file (see [`prepare_spare`]).
    spare: SpareWorker,
    /// Write offset at which the next segment's file is asked for (`usize::MAX` once asked):
    /// a sixteenth into the active segment ([`SPARE_AT_FRACTION`]), not at once, so that a
    /// journal that writes little (an idle session's store) never writes a spare's worth of
    /// zeros to disk.
    spare_at: usize,
    closed: bool,
}

impl std::fmt::Debug for JournalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalWriter")
            .field("dir", &self.config.dir)
            .field("segment", &self.active.path)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl JournalWriter {
    /// Opens (or creates) the journal in `config.dir`, recovering it: a torn tail is truncated
    /// and reported in [`JournalWriter::recovery`]; damage before the tail is an error naming
    /// the file and offset.
    pub fn open(config: JournalConfig) -> Result<Self> {
        config.validate()?;
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| JournalError::io("create directory", &config.dir, e))?;
        let lock = DirLock::acquire(&config.dir)?;
        let recovered = recover(&config)?;
        let positions = Arc::new(Positions::open_writable(&config.dir, config.node_id)?);
        let active = ActiveSegment::open(
            &config,
            recovered.active.path.clone(),
            &recovered.active_header,
            recovered.end_offset,
            None,
        )?;
        if config.durability.fsyncs() {
            // Whatever recovery found is made durable before it is published as such.
            active
                .file
                .sync_data()
                .map_err(|e| JournalError::io("fsync", &active.path, e))?;
            sync_dir(&config.dir)?;
        }
        let sync = SyncShared::new(
            Arc::clone(&positions),
            config.dir.clone(),
            Arc::clone(&active.file),
        );
        let syncer = if config.durability.fsyncs() {
            Some(Syncer::start(Arc::clone(&sync), config.durability)?)
        } else {
            None
        };
        let (dir_for_spare, segment_bytes_for_spare) = (config.dir.clone(), config.segment_bytes);
        let zero_spares = config.durability.fsyncs();
        let mut writer = JournalWriter {
            config,
            _lock: lock,
            positions,
            sync,
            syncer,
            active,
            next_seq: 0,
            last_crc: 0,
            last_timestamp_ns: 0,
            report: RecoveryReport::default(),
            scratch: rkyv::util::AlignedVec::new(),
            spare: SpareWorker::new(dir_for_spare, segment_bytes_for_spare, zero_spares),
            spare_at: usize::MAX,
            closed: false,
        };
        writer.install(recovered)?;
        writer.prepare_next_segment();
        Ok(writer)
    }

    /// Takes over recovered state (at open and after a truncation) and publishes it.
    fn install(&mut self, recovered: Recovered) -> Result<()> {
        if self.active.path != recovered.active.path {
            self.active = ActiveSegment::open(
                &self.config,
                recovered.active.path.clone(),
                &recovered.active_header,
                recovered.end_offset,
                None,
            )?;
        } else {
            self.active.write_offset = recovered.end_offset as usize;
        }
        self.active.index.clear();
        self.active.index.extend_from_slice(&recovered.index);
        self.next_seq = recovered.next_seq;
        self.last_crc = recovered.last_crc;
        self.last_timestamp_ns = recovered.last_timestamp_ns;
        let last_seq = recovered.next_seq - 1;
        self.positions.store_written(last_seq);
        self.positions.store_durable(last_seq);
        if self.positions.committed() > last_seq {
            // Committed records are gone (e.g. a power loss under the `none` policy). Consensus
            // must bring them back from a peer; the watermark must not claim them.
            self.positions.store_committed(last_seq);
        }
        self.report = recovered.report;
        Ok(())
    }

    /// What recovery found when this writer opened (or last truncated) the journal.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.report
    }

    /// The published positions (shared with readers and the ack path).
    pub fn positions(&self) -> &Arc<Positions> {
        &self.positions
    }

    /// The sequence number the next append gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The last sequence number appended (0 if none), published or not.
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Timestamp of the last record (0 if none): the next append must not be earlier.
    pub fn last_timestamp_ns(&self) -> u64 {
        self.last_timestamp_ns
    }

    /// The configuration.
    pub fn config(&self) -> &JournalConfig {
        &self.config
    }

    /// Appends one record and publishes it. Returns its sequence number.
    #[inline]
    pub fn append(&mut self, timestamp_ns: u64, kind: u16, payload: &[u8]) -> Result<u64> {
        let seq = self.write(timestamp_ns, kind, payload.len(), |dst| {
            dst.copy_from_slice(payload)
        })?;
        self.publish();
        Ok(seq)
    }

    /// Serializes `value` with rkyv and appends it as one record, published. The serialization
    /// buffer is reused, so after warm-up this does not allocate.
    pub fn append_archived<T>(&mut self, timestamp_ns: u64, kind: u16, value: &T) -> Result<u64>
    where
        T: for<'a> rkyv::Serialize<
                rkyv::api::high::HighSerializer<
                    rkyv::util::AlignedVec,
                    rkyv::ser::allocator::ArenaHandle<'a>,
                    rkyv::rancor::Error,
                >,
            >,
    {
        let seq = self.write_archived(timestamp_ns, kind, value)?;
        self.publish();
        Ok(seq)
    }

    /// Starts a batch: records appended through it are published together when it is dropped
    /// (or committed), with one release store.
    pub fn batch(&mut self) -> Batch<'_> {
        Batch { writer: self }
    }

    fn write_archived<T>(&mut self, timestamp_ns: u64, kind: u16, value: &T) -> Result<u64>
    where
        T: for<'a> rkyv::Serialize<
                rkyv::api::high::HighSerializer<
                    rkyv::util::AlignedVec,
                    rkyv::ser::allocator::ArenaHandle<'a>,
                    rkyv::rancor::Error,
                >,
            >,
    {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let buf = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(value, buf).map_err(|e| {
            JournalError::Payload {
                seq: self.next_seq,
                reason: e.to_string(),
            }
        })?;
        let result = self.write(timestamp_ns, kind, buf.len(), |dst| dst.copy_from_slice(&buf));
        self.scratch = buf;
        result
    }

    /// Writes one frame without publishing it. `fill` receives exactly `payload_bytes` bytes of
    /// the mapping to write the payload into (zero-copy encoding).
    #[inline]
    fn write(
        &mut self,
        timestamp_ns: u64,
        kind: u16,
        payload_bytes: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<u64> {
        if self.closed {
            return Err(JournalError::Config("writer is closed".into()));
        }
        if payload_bytes > self.config.max_payload_bytes {
            return Err(JournalError::RecordTooLarge {
                payload_bytes,
                max_payload_bytes: self.config.max_payload_bytes,
            });
        }
        if timestamp_ns < self.last_timestamp_ns {
            return Err(JournalError::TimestampRegression {
                timestamp_ns,
                previous_ns: self.last_timestamp_ns,
            });
        }
        self.sync.check()?;
        let len = frame_bytes(payload_bytes);
        if self.active.write_offset + len > self.active.map.len() {
            self.roll()?;
        }
        let start = self.active.write_offset;
        let end = start + len;
        debug_assert!(
            end <= self.active.map.len(),
            "a maximal frame fits an empty segment (validated)"
        );
        self.active.prefault(end);
        let frame = &mut self.active.map[start..end];
        fill(&mut frame[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + payload_bytes]);
        let seq = self.next_seq;
        let crc = seal_frame(frame, seq, timestamp_ns, kind, payload_bytes);
        if (seq - self.active.first_seq).is_multiple_of(self.config.index_interval) {
            debug_assert!(
                self.active.index.len() < self.active.index.capacity(),
                "index capacity reserved"
            );
            self.active.index.push(IndexEntry {
                seq,
                offset: start as u64,
            });
        }
        self.active.write_offset = end;
        if end >= self.spare_at {
            self.spare_at = usize::MAX;
            self.spare.request(None, true);
        }
        self.next_seq = seq + 1;
        self.last_crc = crc;
        self.last_timestamp_ns = timestamp_ns;
        Ok(seq)
    }

    /// Publishes every record written so far to readers (and, under `none`, as durable).
    #[inline]
    pub fn publish(&mut self) {
        let last = self.next_seq - 1;
        self.positions.store_written(last);
        match self.config.durability {
            Durability::None => self.positions.store_durable(last),
            Durability::Batch => self.sync.notify(),
            Durability::Interval { .. } => {}
        }
    }

    /// Seals the active segment and opens the next one.
    #[cold]
    fn roll(&mut self) -> Result<()> {
        let active = &mut self.active;
        assert!(
            self.next_seq > active.first_seq,
            "a segment is only sealed once it holds a record"
        );
        let index = SegmentIndex {
            first_seq: active.first_seq,
            last_seq: self.next_seq - 1,
            end_offset: active.write_offset as u64,
            last_timestamp_ns: self.last_timestamp_ns,
            last_crc: self.last_crc,
            entries: std::mem::take(&mut active.index),
        };
        write_index(&self.config.dir, &index, false)?;
        let header = SegmentHeader {
            node_id: self.config.node_id,
            first_seq: self.next_seq,
            segment_bytes: self.config.segment_bytes,
            prev_last_crc: self.last_crc,
        };
        // Not synced here: the syncer fsyncs the new file and the directory before it declares
        // any record in it durable. The spare is normally ready (it took a fraction of the time
        // the segment took to fill); if its preparation failed, create the segment here.
        let ((_, path), premapped) = match self.spare.take() {
            Some(Ok((prepared, map))) => (install_segment(&self.config.dir, &prepared, &header, false)?, map),
            _ => (create_segment(&self.config.dir, &header, false)?, None),
        };
        let next = ActiveSegment::open(
            &self.config,
            path,
            &header,
            crate::segment::SEGMENT_HEADER_BYTES as u64,
            premapped,
        )?;
        let sealed = std::mem::replace(&mut self.active, next);
        // The helper thread unmaps the sealed segment (tearing down megabytes of page tables).
        // No mmap, munmap or thread creation happens here: each takes the process's mmap lock
        // for writing, which a helper thread busy faulting in a segment at SCHED_IDLE can hold
        // for milliseconds (measured: 2-4 ms stalls of the roll when it did).
        let ActiveSegment {
            map: retired,
            file: sealed_file,
            ..
        } = sealed;
        self.spare.request(Some(retired), false);
        self.prepare_next_segment();
        if self.config.durability.fsyncs() {
            self.sync.rolled(sealed_file, Arc::clone(&self.active.file));
        }
        Ok(())
    }

    /// Schedules the preparation of the next segment's file on the helper thread: now if the
    /// active segment is already past [`SPARE_AT_FRACTION`], else when appends get there.
    fn prepare_next_segment(&mut self) {
        let threshold = self.active.map.len() / SPARE_AT_FRACTION;
        if self.active.write_offset >= threshold {
            self.spare_at = usize::MAX;
            self.spare.request(None, true);
        } else {
            self.spare_at = threshold;
        }
    }

    /// Stops the spare segment's preparation and discards it (before recovery, which removes
    /// temporaries, may run again, and at close).
    fn join_spare(&mut self) {
        self.spare.cancel();
    }

    /// Publishes, then makes everything written durable now, whatever the policy; returns the
    /// durable position.
    pub fn sync(&mut self) -> Result<u64> {
        self.publish();
        if !self.config.durability.fsyncs() {
            // Under `none` sealed segments were never fsynced: flush the whole file system.
            use std::os::fd::AsRawFd;
            // SAFETY: plain syscall on a descriptor we own.
            if unsafe { libc::syncfs(self.active.file.as_raw_fd()) } != 0 {
                return Err(JournalError::io(
                    "syncfs",
                    &self.active.path,
                    std::io::Error::last_os_error(),
                ));
            }
        }
        self.sync.sync_now(true)
    }

    /// Blocks until the durable position reaches `seq` (or `timeout` passes): for callers that
    /// must not acknowledge before. Returns the durable position.
    pub fn wait_durable(&self, seq: u64, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        let mut spins = 0u32;
        loop {
            let durable = self.positions.durable();
            if durable >= seq {
                return Ok(durable);
            }
            self.sync.check()?;
            if Instant::now() >= deadline {
                return Ok(durable);
            }
            spins += 1;
            if spins < 100 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Sets the committed watermark (consensus): truncation never goes below it.
    pub fn set_committed(&mut self, seq: u64) {
        assert!(
            seq <= self.last_seq(),
            "cannot commit records that are not written"
        );
        if seq > self.positions.committed() {
            self.positions.store_committed(seq);
        }
    }

    /// Removes every record after `after_seq` (a tail consensus has not committed). Refuses to
    /// cut below the committed watermark. Durable on return, whatever the policy: truncated
    /// records must never come back after a crash.
    pub fn truncate_after(&mut self, after_seq: u64) -> Result<()> {
        let last_seq = self.last_seq();
        if after_seq >= last_seq {
            return Ok(());
        }
        let committed_seq = self.positions.committed();
        if after_seq < committed_seq {
            return Err(JournalError::BelowCommitted {
                after_seq,
                committed_seq,
            });
        }
        // Everything that stays must be durable before the cut (the syncer forgets the sealed
        // segments it has not synced yet when the active segment is reset below).
        self.sync()?;
        let sync = Arc::clone(&self.sync);
        let _paused = sync.pause();
        let dir = self.config.dir.clone();
        let segments = list_segments(&dir)?;
        let keep = segments
            .iter()
            .rposition(|s| s.first_seq <= after_seq + 1)
            .expect("the first segment starts at 1 <= after_seq + 1");
        for segment in segments[keep + 1..].iter().rev() {
            std::fs::remove_file(&segment.path).map_err(|e| JournalError::io("remove", &segment.path, e))?;
            let idx = index_path(&dir, segment.first_seq);
            if idx.exists() {
                std::fs::remove_file(&idx).map_err(|e| JournalError::io("remove", &idx, e))?;
            }
        }
        let target = &segments[keep];
        let idx = index_path(&dir, target.first_seq);
        if idx.exists() {
            std::fs::remove_file(&idx).map_err(|e| JournalError::io("remove", &idx, e))?;
        }
        // Find where record after_seq + 1 starts, then zero everything from there on.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&target.path)
            .map_err(|e| JournalError::io("open", &target.path, e))?;
        // SAFETY: we are the only writer; readers past the cut see the epoch change.
        let mut map =
            unsafe { MmapMut::map_mut(&file) }.map_err(|e| JournalError::io("mmap", &target.path, e))?;
        let scan = scan_segment(
            &target.path,
            &map,
            ScanExpect {
                first_seq: target.first_seq,
                prev_timestamp_ns: 0,
                is_last: true,
                limit_seq: after_seq,
                index_interval: self.config.index_interval,
            },
        );
        if let Some(problem) = scan.problems.into_iter().next() {
            return Err(problem);
        }
        let cut = scan.end_offset as usize;
        let dirty_end = map[cut..]
            .iter()
            .rposition(|&b| b != 0)
            .map_or(cut, |i| cut + i + 1);
        map[cut..dirty_end].fill(0);
        map.flush_range(cut, dirty_end - cut)
            .map_err(|e| JournalError::io("msync", &target.path, e))?;
        drop(map);
        file.sync_data()
            .map_err(|e| JournalError::io("fsync", &target.path, e))?;
        sync_dir(&dir)?;

        self.join_spare();
        let recovered = recover(&self.config)?;
        assert_eq!(recovered.next_seq, after_seq + 1, "truncation postcondition");
        // Publishes written = durable = after_seq: all of it was synced above.
        self.install(recovered)?;
        self.positions.bump_epoch();
        self.sync.reset_active(Arc::clone(&self.active.file));
        self.prepare_next_segment();
        Ok(())
    }

    /// Publishes, stops the syncer and fsyncs everything. Returns the durable position.
    pub fn close(mut self) -> Result<u64> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<u64> {
        if self.closed {
            return Ok(self.positions.durable());
        }
        if let Some(mut syncer) = self.syncer.take() {
            syncer.stop();
        }
        let result = self.sync();
        self.join_spare();
        // A clean close leaves no temporary behind, so the next open reports no recovery
        // work. Failing to remove it only leaves a temporary that the next open removes.
        let _ = std::fs::remove_file(self.config.dir.join(SPARE_FILE));
        self.closed = true;
        result
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        self.join_spare();
        self.publish();
        if let Some(mut syncer) = self.syncer.take() {
            syncer.stop();
            // Under an fsync policy, dropping the writer must not leave written records
            // undeclared: one last cycle (errors are already recorded by the syncer).
            let _ = self.sync.sync_now(false);
        }
        self.closed = true;
    }
}

/// A batch of appends published together (on [`Batch::commit`] or drop).
pub struct Batch<'w> {
    writer: &'w mut JournalWriter,
}

impl Batch<'_> {
    /// Appends one record to the batch.
    #[inline]
    pub fn append(&mut self, timestamp_ns: u64, kind: u16, payload: &[u8]) -> Result<u64> {
        self.writer.write(timestamp_ns, kind, payload.len(), |dst| {
            dst.copy_from_slice(payload)
        })
    }

    /// Appends a record whose payload `fill` writes in place (exactly `payload_bytes` bytes).
    #[inline]
    pub fn append_with(
        &mut self,
        timestamp_ns: u64,
        kind: u16,
        payload_bytes: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<u64> {
        self.writer.write(timestamp_ns, kind, payload_bytes, fill)
    }

    /// Appends an rkyv-serialized value to the batch.
    pub fn append_archived<T>(&mut self, timestamp_ns: u64, kind: u16, value: &T) -> Result<u64>
    where
        T: for<'a> rkyv::Serialize<
                rkyv::api::high::HighSerializer<
                    rkyv::util::AlignedVec,
                    rkyv::ser::allocator::ArenaHandle<'a>,
                    rkyv::rancor::Error,
                >,
            >,
    {
        self.writer.write_archived(timestamp_ns, kind, value)
    }

    /// Timestamp of the last record written (in this batch or before it); 0 for an empty
    /// journal.
    pub fn last_timestamp_ns(&self) -> u64 {
        self.writer.last_timestamp_ns()
    }

    /// Publishes the batch now; returns the last sequence number written.
    pub fn commit(self) -> u64 {
        self.writer.last_seq()
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.writer.publish();
    }
}
