//! How much of the active segment a writer faults in when it opens (`open_prefault_bytes`),
//! read from the kernel: the resident size of the segment's mapping in /proc/self/smaps.

use std::path::Path;

use ordo_journal::{Durability, JournalConfig, JournalWriter};

const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// Resident KiB of this process's mappings of files under `dir`.
fn resident_kib(dir: &Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
    let dir = dir.to_str().expect("utf-8 path");
    let mut inside = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && first.chars().next().is_some_and(|c| c.is_ascii_hexdigit()) {
            // A mapping's first line: "start-end perms offset dev inode [path]".
            inside = line.contains(dir);
        } else if inside && first == "Rss:" {
            kib += words.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    kib
}

fn open(dir: &Path, window: Option<u64>) -> JournalWriter {
    let mut config = JournalConfig::new(dir);
    config.segment_bytes = SEGMENT_BYTES;
    config.durability = Durability::None;
    config.open_prefault_bytes = window;
    let mut writer = JournalWriter::open(config).expect("open");
    writer.append(1, 1, b"first").expect("append");
    writer
}

/// A whole segment faulted in by default; only the window (plus what the helper thread may
/// touch of the segment: nothing at this fill) when one is set. A set window must not leave
/// the writer unable to append past it.
#[test]
fn open_faults_in_the_configured_window_only() {
    let whole = tempfile::tempdir().unwrap();
    let window = tempfile::tempdir().unwrap();
    let w1 = open(whole.path(), None);
    let mut w2 = open(window.path(), Some(256 * 1024));
    let whole_kib = resident_kib(whole.path());
    let window_kib = resident_kib(window.path());
    assert!(
        whole_kib >= SEGMENT_BYTES / 1024 - 64,
        "whole segment: {whole_kib} KiB resident"
    );
    assert!(window_kib <= 1024, "256 KiB window: {window_kib} KiB resident");
    // Appends beyond the window fault the rest in as they go.
    let payload = [7u8; 1000];
    for i in 0..2000u64 {
        w2.append(2 + i, 1, &payload).expect("append past the window");
    }
    assert!(resident_kib(window.path()) > window_kib);
    drop(w1);
    drop(w2);
}
