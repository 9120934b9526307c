//! `ordo journal verify|inspect|dump`.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use ordo_journal::{
    JournalReader, Positions, VerifyReport, segment, verify as verify_journal, writer_is_live,
};

use crate::time_fmt::rfc3339_ns;

/// Exit status for a journal with problems.
const EXIT_DAMAGED: u8 = 1;
/// Exit status when the journal cannot be read at all.
const EXIT_UNREADABLE: u8 = 2;

/// Output format of `dump`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DumpFormat {
    /// One `key=value` line per record.
    Text,
    /// One JSON object per line.
    Json,
}

fn print_report_problems(report: &VerifyReport) {
    for problem in &report.problems {
        eprintln!("error: {problem}");
    }
    for note in &report.notes {
        eprintln!("note: {note}");
    }
}

/// `ordo journal verify DIR`.
pub fn verify(dir: &Path) -> ExitCode {
    // A mistyped path must not pass a check: a directory with no segment and no positions
    // file holds no journal at all (an empty journal has its positions file).
    if dir.is_dir() && !holds_a_journal(dir) {
        eprintln!(
            "error: {} holds no journal (no segment files, no {})",
            dir.display(),
            ordo_journal::POSITIONS_FILE
        );
        return ExitCode::from(EXIT_UNREADABLE);
    }
    let report = match verify_journal(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_UNREADABLE);
        }
    };
    print_report_problems(&report);
    if report.is_clean() {
        let committed = raft_committed(dir);
        let committed_text = committed.map_or(String::new(), |c| format!(", committed seq {c}"));
        println!(
            "OK {}: {} records in {} segment(s), last seq {}{committed_text}",
            dir.display(),
            report.records,
            report.segments.len(),
            report.last_seq
        );
        if let Some(c) = committed.filter(|&c| c < report.last_seq) {
            println!(
                "note: records {}..={} are this member's uncommitted tail: final only once committed; a new leader whose log differs replaces them",
                c + 1,
                report.last_seq
            );
        }
        ExitCode::SUCCESS
    } else {
        println!(
            "DAMAGED {}: {} problem(s); {} valid records in {} segment(s)",
            dir.display(),
            report.problems.len(),
            report.records,
            report.segments.len()
        );
        ExitCode::from(EXIT_DAMAGED)
    }
}

/// Whether `dir` holds a journal: a positions file or a segment file.
fn holds_a_journal(dir: &Path) -> bool {
    if dir.join(ordo_journal::POSITIONS_FILE).exists() {
        return true;
    }
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".seg"))
    })
}

/// The committed seq of a cluster member's journal (a raft log: its first record is an ENTRY
/// record), from its positions file; None for any other journal, whose records are all final.
fn raft_committed(dir: &Path) -> Option<u64> {
    let mut reader = JournalReader::open(dir, 1).ok()?;
    let first_is_entry = matches!(reader.next(), Ok(Some(r)) if r.kind() == ordo_replica::entry::KIND_ENTRY);
    if !first_is_entry {
        return None;
    }
    Positions::open_read_only(dir).ok().map(|p| p.committed())
}

/// `ordo journal inspect DIR`.
pub fn inspect(dir: &Path) -> ExitCode {
    let report = match verify_journal(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_UNREADABLE);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "journal {}", dir.display());
    let _ = writeln!(
        out,
        "  writer live: {}",
        if writer_is_live(dir) { "yes" } else { "no" }
    );
    match Positions::open_read_only(dir) {
        Ok(p) => {
            let _ = writeln!(
                out,
                "  positions: written {} durable {} committed {} epoch {}",
                p.written(),
                p.durable(),
                p.committed(),
                p.epoch()
            );
        }
        Err(e) => {
            let _ = writeln!(out, "  positions: unavailable ({e})");
        }
    }
    let _ = writeln!(out, "  segments: {}", report.segments.len());
    for s in &report.segments {
        let header = segment::read_header(&segment::SegmentFile {
            path: s.path.clone(),
            first_seq: s.first_seq,
        });
        let node = header
            .map(|h| h.node_id.to_string())
            .unwrap_or_else(|_| "?".into());
        let name = s
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let last = s.last_seq.map_or_else(|| "-".to_string(), |l| l.to_string());
        let _ = writeln!(
            out,
            "    {name}  node {node}  seq {}..={last}  records {}  used {} of {} bytes",
            s.first_seq, s.records, s.end_offset, s.file_bytes
        );
    }
    let _ = writeln!(
        out,
        "  records: {} (last seq {})",
        report.records, report.last_seq
    );

    // Kinds and time range, from the records themselves.
    let mut kinds: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
    let mut first_ts = None;
    let mut last_ts = 0;
    let mut read_error = None;
    match JournalReader::open_offline(dir, 1) {
        Ok(mut reader) => loop {
            match reader.next() {
                Ok(Some(r)) => {
                    let entry = kinds.entry(r.kind()).or_default();
                    entry.0 += 1;
                    entry.1 += r.payload().len() as u64;
                    first_ts.get_or_insert(r.timestamp_ns());
                    last_ts = r.timestamp_ns();
                    if report.live_limit.is_some_and(|l| r.seq() >= l) {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            }
        },
        Err(e) => read_error = Some(e),
    }
    if let Some(first) = first_ts {
        let _ = writeln!(out, "  time: {} .. {}", rfc3339_ns(first), rfc3339_ns(last_ts));
    }
    for (kind, (count, bytes)) in &kinds {
        let _ = writeln!(out, "  kind {kind}: {count} records, {bytes} payload bytes");
    }
    drop(out);
    if let Some(e) = read_error {
        eprintln!("error: {e}");
    }
    print_report_problems(&report);
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DAMAGED)
    }
}

fn hex(bytes: &[u8], out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

/// `ordo journal dump DIR [--from SEQ] [--to SEQ] [--format text|json]`.
pub fn dump(dir: &Path, from: u64, to: Option<u64>, format: DumpFormat) -> ExitCode {
    // A live journal is read up to its published position; a closed one, to its end.
    let opened = if writer_is_live(dir) {
        JournalReader::open(dir, from)
    } else {
        JournalReader::open_offline(dir, from)
    };
    let mut reader = match opened {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_UNREADABLE);
        }
    };
    let to = to.unwrap_or(u64::MAX);
    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    let mut line = String::new();
    loop {
        let record = match reader.next() {
            Ok(Some(r)) if r.seq() <= to => r,
            Ok(_) => break,
            Err(e) => {
                let _ = out.flush();
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_DAMAGED);
            }
        };
        line.clear();
        let ts = rfc3339_ns(record.timestamp_ns());
        match format {
            DumpFormat::Text => {
                line.push_str(&format!(
                    "seq={} ts={} ts_ns={} kind={} len={} crc={:#010x} payload=",
                    record.seq(),
                    ts,
                    record.timestamp_ns(),
                    record.kind(),
                    record.payload().len(),
                    record.crc()
                ));
                hex(record.payload(), &mut line);
            }
            DumpFormat::Json => {
                let mut payload = String::new();
                hex(record.payload(), &mut payload);
                let value = serde_json::json!({
                    "seq": record.seq(),
                    "timestamp": ts,
                    "timestamp_ns": record.timestamp_ns(),
                    "kind": record.kind(),
                    "len": record.payload().len(),
                    "crc": record.crc(),
                    "payload_hex": payload,
                });
                line.push_str(&value.to_string());
            }
        }
        line.push('\n');
        if out.write_all(line.as_bytes()).is_err() {
            // Closed pipe (e.g. `| head`): stop quietly.
            return ExitCode::SUCCESS;
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}

/// A journal opened for `diff`: its reader and how far to read.
struct DiffSide {
    reader: JournalReader,
    limit: u64,
}

/// Opens the journal in `dir` for `diff`, up to its committed position with `committed_only`.
fn open_side(dir: &Path, committed_only: bool) -> Result<DiffSide, String> {
    if segment::list_segments(dir).map_err(|e| e.to_string())?.is_empty() {
        return Err(format!("{}: no journal there (no segment)", dir.display()));
    }
    let limit = if committed_only {
        Positions::open_read_only(dir)
            .map_err(|e| e.to_string())?
            .committed()
    } else {
        u64::MAX
    };
    let reader = JournalReader::open(dir, 1).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(DiffSide { reader, limit })
}

/// What differs between two records of the same seq, or None.
fn difference(a: &ordo_journal::Record<'_>, b: &ordo_journal::Record<'_>) -> Option<String> {
    if a.timestamp_ns() != b.timestamp_ns() {
        return Some(format!(
            "timestamp_ns {} vs {}",
            a.timestamp_ns(),
            b.timestamp_ns()
        ));
    }
    if a.kind() != b.kind() {
        return Some(format!("kind {} vs {}", a.kind(), b.kind()));
    }
    let (pa, pb) = (a.payload(), b.payload());
    if pa != pb {
        return Some(match pa.iter().zip(pb).position(|(x, y)| x != y) {
            Some(i) => format!(
                "payload byte {i}: {:#04x} vs {:#04x} ({} and {} bytes)",
                pa[i],
                pb[i],
                pa.len(),
                pb.len()
            ),
            None => format!("payload length {} vs {}", pa.len(), pb.len()),
        });
    }
    (a.crc() != b.crc()).then(|| format!("crc {:#010x} vs {:#010x}", a.crc(), b.crc()))
}

/// `ordo journal diff A B [--committed]`: exit 0 when one journal is a prefix of the other (or
/// both are the same), 1 when they differ (the first differing seq and what differs), 2 when one
/// cannot be read. Both are read in step, a record at a time: any size of journal.
pub fn diff(a: &Path, b: &Path, committed_only: bool) -> ExitCode {
    let (mut sa, mut sb) = match (open_side(a, committed_only), open_side(b, committed_only)) {
        (Ok(sa), Ok(sb)) => (sa, sb),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_UNREADABLE);
        }
    };
    let (da, db) = (a.display(), b.display());
    let mut same = 0u64;
    loop {
        let ra = match sa.reader.next() {
            Ok(r) => r.filter(|r| r.seq() <= sa.limit),
            Err(e) => {
                eprintln!("error: {da}: {e}");
                return ExitCode::from(EXIT_UNREADABLE);
            }
        };
        let rb = match sb.reader.next() {
            Ok(r) => r.filter(|r| r.seq() <= sb.limit),
            Err(e) => {
                eprintln!("error: {db}: {e}");
                return ExitCode::from(EXIT_UNREADABLE);
            }
        };
        match (ra, rb) {
            (Some(x), Some(y)) => {
                if let Some(what) = difference(&x, &y) {
                    println!("DIFFER {da} {db} at seq {}: {what}", x.seq());
                    return ExitCode::from(EXIT_DAMAGED);
                }
                same += 1;
            }
            (None, None) => {
                println!("SAME {da} {db}: {same} records");
                return ExitCode::SUCCESS;
            }
            (None, Some(_)) => {
                let longer = same + 1 + count_rest(&mut sb);
                println!("PREFIX {da} {db}: {da} ({same} records) is a prefix of {db} ({longer} records)");
                return ExitCode::SUCCESS;
            }
            (Some(_), None) => {
                let longer = same + 1 + count_rest(&mut sa);
                println!("PREFIX {da} {db}: {db} ({same} records) is a prefix of {da} ({longer} records)");
                return ExitCode::SUCCESS;
            }
        }
    }
}

/// Records left on a side (for the PREFIX line); stops at the first unreadable one.
fn count_rest(side: &mut DiffSide) -> u64 {
    let mut n = 0;
    while let Ok(Some(r)) = side.reader.next() {
        if r.seq() > side.limit {
            break;
        }
        n += 1;
    }
    n
}
