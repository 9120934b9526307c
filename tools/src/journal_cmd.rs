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
    let report = match verify_journal(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_UNREADABLE);
        }
    };
    print_report_problems(&report);
    if report.is_clean() {
        println!(
            "OK {}: {} records in {} segment(s), last seq {}",
            dir.display(),
            report.records,
            report.segments.len(),
            report.last_seq
        );
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

/// One record, as `diff` compares it.
struct Compared {
    seq: u64,
    timestamp_ns: u64,
    kind: u16,
    crc: u32,
    payload: Vec<u8>,
}

/// Every record of the journal in `dir`, up to its committed position with `committed_only`.
fn records_of(dir: &Path, committed_only: bool) -> Result<Vec<Compared>, String> {
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
    let mut reader = JournalReader::open(dir, 1).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(r) = reader.next().map_err(|e| e.to_string())? {
        if r.seq() > limit {
            break;
        }
        out.push(Compared {
            seq: r.seq(),
            timestamp_ns: r.timestamp_ns(),
            kind: r.kind(),
            crc: r.crc(),
            payload: r.payload().to_vec(),
        });
    }
    Ok(out)
}

/// What differs between two records of the same seq, or None.
fn difference(a: &Compared, b: &Compared) -> Option<String> {
    if a.timestamp_ns != b.timestamp_ns {
        return Some(format!("timestamp_ns {} vs {}", a.timestamp_ns, b.timestamp_ns));
    }
    if a.kind != b.kind {
        return Some(format!("kind {} vs {}", a.kind, b.kind));
    }
    if a.payload != b.payload {
        let at = a.payload.iter().zip(&b.payload).position(|(x, y)| x != y);
        return Some(match at {
            Some(i) => format!(
                "payload byte {i}: {:#04x} vs {:#04x} ({} and {} bytes)",
                a.payload[i],
                b.payload[i],
                a.payload.len(),
                b.payload.len()
            ),
            None => format!("payload length {} vs {}", a.payload.len(), b.payload.len()),
        });
    }
    (a.crc != b.crc).then(|| format!("crc {:#010x} vs {:#010x}", a.crc, b.crc))
}

/// `ordo journal diff A B [--committed]`: exit 0 when one journal is a prefix of the other (or
/// both are the same), 1 when they differ (the first differing seq and what differs), 2 when one
/// cannot be read.
pub fn diff(a: &Path, b: &Path, committed_only: bool) -> ExitCode {
    let (ra, rb) = match (records_of(a, committed_only), records_of(b, committed_only)) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_UNREADABLE);
        }
    };
    let (da, db) = (a.display(), b.display());
    for (x, y) in ra.iter().zip(&rb) {
        if let Some(what) = difference(x, y) {
            println!("DIFFER {da} {db} at seq {}: {what}", x.seq);
            return ExitCode::from(EXIT_DAMAGED);
        }
    }
    match ra.len().cmp(&rb.len()) {
        std::cmp::Ordering::Equal => println!("SAME {da} {db}: {} records", ra.len()),
        std::cmp::Ordering::Less => println!(
            "PREFIX {da} {db}: {da} ({} records) is a prefix of {db} ({} records)",
            ra.len(),
            rb.len()
        ),
        std::cmp::Ordering::Greater => println!(
            "PREFIX {da} {db}: {db} ({} records) is a prefix of {da} ({} records)",
            rb.len(),
            ra.len()
        ),
    }
    ExitCode::SUCCESS
}
