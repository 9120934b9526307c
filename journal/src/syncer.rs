//! The syncer: makes written records durable and advances the durable position, off the
//! writer's thread, so an fsync never stalls appends (group commit).
//!
//! One cycle: read the written position `w`, fsync every file that may hold records up to `w`
//! (sealed segments not yet synced, the active one, the directory if a segment was created),
//! then publish `durable = w`. Everything appended while the fsync ran is covered by the next
//! cycle. An fsync error is final: after one, the kernel may have dropped the dirty pages, so a
//! retry could report success for data that is gone ("fsyncgate"); durable never advances again.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use crate::config::Durability;
use crate::error::{JournalError, Result};
use crate::positions::Positions;

/// Files that a sync cycle must fsync.
#[derive(Debug)]
struct SyncFiles {
    /// Segments sealed since the last cycle: they may hold records not yet durable.
    sealed: Vec<Arc<File>>,
    /// The segment being appended to.
    active: Arc<File>,
    /// A segment was created or removed since the last cycle.
    dir_dirty: bool,
}

/// State shared by the writer, the syncer thread and anyone forcing a sync.
#[derive(Debug)]
pub(crate) struct SyncShared {
    positions: Arc<Positions>,
    dir: PathBuf,
    /// Held for a whole cycle, so that a truncation never interleaves with one (a cycle that
    /// read `written` before a truncation must not publish it as durable after).
    cycle: Mutex<()>,
    files: Mutex<SyncFiles>,
    stop: AtomicBool,
    /// The syncer is about to park or parked: the writer must unpark it.
    sleeping: AtomicBool,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    thread: Mutex<Option<Thread>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data in a consistent state.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SyncShared {
    pub(crate) fn new(positions: Arc<Positions>, dir: PathBuf, active: Arc<File>) -> Arc<Self> {
        Arc::new(SyncShared {
            positions,
            dir,
            cycle: Mutex::new(()),
            files: Mutex::new(SyncFiles {
                sealed: Vec::new(),
                active,
                dir_dirty: false,
            }),
            stop: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            thread: Mutex::new(None),
        })
    }

    /// Records a segment roll: `sealed` still needs an fsync, `active` is the new segment.
    pub(crate) fn rolled(&self, sealed: Arc<File>, active: Arc<File>) {
        let mut files = lock(&self.files);
        files.sealed.push(sealed);
        files.active = active;
        files.dir_dirty = true;
    }

    /// Replaces the active segment after a truncation (no sealed segment carries records any
    /// more that the truncation kept and are not durable: the truncation synced them).
    pub(crate) fn reset_active(&self, active: Arc<File>) {
        let mut files = lock(&self.files);
        files.sealed.clear();
        files.active = active;
        files.dir_dirty = true;
    }

    /// Excludes sync cycles while the guard lives.
    pub(crate) fn pause(&self) -> MutexGuard<'_, ()> {
        lock(&self.cycle)
    }

    /// The failure, if an fsync has failed.
    pub(crate) fn check(&self) -> Result<()> {
        if self.failed.load(Ordering::Acquire) {
            let msg = lock(&self.failure).clone().unwrap_or_default();
            return Err(JournalError::DurabilityFailed(msg));
        }
        Ok(())
    }

    /// Runs one sync cycle now, on the caller's thread; returns the durable position. With
    /// `force` the files are fsynced even if the durable position already covers everything
    /// written (under the `none` policy it always does).
    pub(crate) fn sync_now(&self, force: bool) -> Result<u64> {
        let _cycle = lock(&self.cycle);
        self.check()?;
        let target = self.positions.written();
        let durable = self.positions.durable();
        if target <= durable && !force {
            return Ok(durable);
        }
        // Snapshot the files after reading `target`: a record <= target lives in a segment that
        // was active or already sealed when `target` was published, and both are in the snapshot.
        let (sealed, active, dir_dirty) = {
            let mut files = lock(&self.files);
            let dir_dirty = std::mem::take(&mut files.dir_dirty);
            (
                std::mem::take(&mut files.sealed),
                Arc::clone(&files.active),
                dir_dirty,
            )
        };
        let result = (|| {
            for file in sealed.iter().chain(std::iter::once(&active)) {
                file.sync_data().map_err(|e| e.to_string())?;
            }
            if dir_dirty {
                File::open(&self.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        })();
        match result {
            Ok(()) => {
                let durable = target.max(durable);
                self.positions.store_durable(durable);
                self.positions.notify_durable();
                Ok(durable)
            }
            Err(msg) => {
                *lock(&self.failure) = Some(msg.clone());
                self.failed.store(true, Ordering::Release);
                Err(JournalError::DurabilityFailed(msg))
            }
        }
    }

    /// Called by the writer after publishing: wakes the syncer if it sleeps. Costs a fence and
    /// a load when it does not.
    #[inline]
    pub(crate) fn notify(&self) {
        // Dekker pattern with the syncer (store `sleeping`, load `written`): without a full
        // fence our load of `sleeping` could pass our store of `written`, and both sides would
        // miss each other until the park timeout.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed)
            && self.sleeping.swap(false, Ordering::AcqRel)
            && let Some(t) = lock(&self.thread).as_ref()
        {
            t.unpark();
        }
    }
}

/// The syncer thread.
#[derive(Debug)]
pub(crate) struct Syncer {
    shared: Arc<SyncShared>,
    handle: Option<JoinHandle<()>>,
}

/// Longest a parked syncer sleeps: bounds the cost of a lost wake-up.
const MAX_PARK: Duration = Duration::from_millis(1);

impl Syncer {
    pub(crate) fn start(shared: Arc<SyncShared>, policy: Durability) -> Result<Self> {
        assert!(policy.fsyncs(), "the none policy has no syncer");
        let worker = Arc::clone(&shared);
        let handle = thread::Builder::new()
            .name("journal-sync".into())
            .spawn(move || run(&worker, policy))
            .map_err(|e| JournalError::io("spawn syncer thread", &shared.dir, e))?;
        *lock(&shared.thread) = Some(handle.thread().clone());
        Ok(Syncer {
            shared,
            handle: Some(handle),
        })
    }

    /// Stops the thread after its current cycle.
    pub(crate) fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &SyncShared, policy: Durability) {
    while !shared.stop.load(Ordering::Acquire) {
        match policy {
            Durability::Interval { period_us } => {
                thread::park_timeout(Duration::from_micros(period_us));
            }
            Durability::Batch => {
                if shared.positions.written() <= shared.positions.durable() {
                    // Announce the sleep, then re-check, so a publish between the check and the
                    // park is never missed (the writer sees `sleeping` and unparks).
                    shared.sleeping.store(true, Ordering::SeqCst);
                    if shared.positions.written() <= shared.positions.durable() {
                        thread::park_timeout(MAX_PARK);
                    }
                    shared.sleeping.store(false, Ordering::Relaxed);
                    continue;
                }
            }
            Durability::None => unreachable!("checked in start"),
        }
        if shared.sync_now(false).is_err() {
            // The failure is recorded; the writer reports it on its next append.
            return;
        }
    }
}
