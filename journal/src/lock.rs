//! The directory lock: one writer per journal, enforced with `flock` on `DIR/LOCK`.
//!
//! `flock` locks die with the process, so a crashed writer never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{JournalError, Result};

/// Name of the lock file.
pub const LOCK_FILE: &str = "LOCK";

/// An exclusive lock on a journal directory, released on drop.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

fn open_lock_file(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| JournalError::io("open", &path, e))
}

impl DirLock {
    /// Takes the writer's lock, failing at once with [`JournalError::Locked`] if it is held.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let file = open_lock_file(dir)?;
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return Err(if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                JournalError::Locked {
                    path: dir.join(LOCK_FILE),
                }
            } else {
                JournalError::io("flock", dir.join(LOCK_FILE), err)
            });
        }
        Ok(DirLock { _file: file })
    }
}

/// Whether a live writer holds `dir` (tools then read only up to its published position).
pub fn writer_is_live(dir: &Path) -> bool {
    let Ok(file) = OpenOptions::new().read(true).open(dir.join(LOCK_FILE)) else {
        return false;
    };
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    // The shared lock (if we got it) is released when `file` is closed.
    rc != 0
}
