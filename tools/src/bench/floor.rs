//! `ordo bench floor`: the floor under the node's latency on a machine. A FIX responder that
//! does none of the node's work (no session layer, no journal, no engine, no store, no lock):
//! it frames and splits each inbound message and answers it at once with an
//! ExecutionReport-shaped message of the same size as the node's, on the same runtime model as
//! the node (one tokio current-thread runtime, a task per connection). `ordo loadgen --connect`
//! against it measures what the loopback TCP path, the runtime and the generator cost by
//! themselves, the same way the node is measured: whatever the node reaches, it cannot go
//! below this.
//!
//! Answers: Logon -> Logon; NewOrderSingle -> ExecutionReport New; OrderCancelRequest ->
//! Canceled; OrderCancelReplaceRequest -> Replaced; TestRequest -> Heartbeat; Logout -> Logout
//! and close. Sequence numbers are counted per connection and never checked: it is not a FIX
//! engine. Bounds: a frame larger than 64 KiB closes its connection (so a connection buffers at
//! most one read plus one partial frame); the number of connections is not bounded, as a
//! benchmark peer for a generator on the same machine, not a server to expose.

use std::process::ExitCode;
use std::time::Duration;

use ordo_fix::builder::{Builder, Value};
use ordo_fix::frame::{Frame, next_frame};
use ordo_fix::message::{Field, Message, parse};
use ordo_sequencer::leader::gateway::wall_clock_ns;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Arguments of `ordo bench floor`.
#[derive(Debug, clap::Args)]
pub struct FloorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9879")]
    pub listen: String,
    /// Stop after this many seconds (0: run until interrupted).
    #[arg(long, default_value_t = 0)]
    pub duration_s: u64,
    /// Busy-poll instead of sleeping in epoll_wait (as a node with `idle = "spin"`): takes a
    /// whole core.
    #[arg(long)]
    pub spin: bool,
}

/// Largest inbound message (as the node's default).
const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Bytes read per call (as the node's gateway).
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Runs the responder.
pub fn run(args: &FloorArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench floor: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match TcpListener::bind(&args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bench floor: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        println!(
            "bench floor: answering on {} (no journal, no engine)",
            args.listen
        );
        let accept = async {
            loop {
                match listener.accept().await {
                    Ok((socket, _)) => {
                        tokio::spawn(connection(socket));
                    }
                    Err(e) => eprintln!("bench floor: accept: {e}"),
                }
            }
        };
        if args.duration_s == 0 {
            tokio::select! {
                () = accept => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        } else {
            let _ = tokio::time::timeout(Duration::from_secs(args.duration_s), accept).await;
        }
        ExitCode::SUCCESS
    })
}

/// One connection: read, answer every complete message, write the answers in one call.
async fn connection(mut socket: TcpStream) {
    let _ = socket.set_nodelay(true);
    let mut responder = Responder::default();
    let mut input: Vec<u8> = Vec::with_capacity(READ_CHUNK_BYTES * 2);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK_BYTES);
    loop {
        let n = match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        input.extend_from_slice(&chunk[..n]);
        let mut consumed = 0;
        let mut close = false;
        loop {
            match next_frame(&input[consumed..], MAX_MESSAGE_BYTES) {
                Frame::Message { start, end } => {
                    close |= responder.answer(&input[consumed + start..consumed + end], &mut out);
                    consumed += end;
                }
                Frame::Garbage { skip } => consumed += skip,
                Frame::Incomplete { skip } => {
                    consumed += skip;
                    break;
                }
                Frame::TooLarge { .. } => return,
            }
        }
        input.drain(..consumed);
        if !out.is_empty() {
            if socket.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if close {
            return;
        }
    }
}

/// Builds answers; all buffers reused.
#[derive(Default)]
struct Responder {
    fields: Vec<Field>,
    builder: Builder,
    message: Vec<u8>,
    ours: Vec<u8>,
    theirs: Vec<u8>,
    next_out_seq: u64,
    next_id: u64,
}

impl Responder {
    /// Appends the answer to `frame` to `out`; true if the connection is to close.
    fn answer(&mut self, frame: &[u8], out: &mut Vec<u8>) -> bool {
        if parse(frame, &mut self.fields).is_err() {
            return false;
        }
        let m = Message {
            buf: frame,
            fields: &self.fields,
        };
        if self.next_out_seq == 0 {
            self.theirs = m.get(49).unwrap_or_default().to_vec();
            self.ours = m.get(56).unwrap_or_default().to_vec();
            self.next_out_seq = 1;
        }
        let b = &mut self.builder;
        let (exec_type, status): (&[u8], &[u8]) = match m.msg_type() {
            b"A" => {
                b.start(b"A");
                b.field(98, Value::U64(0))
                    .field(108, Value::Bytes(m.get(108).unwrap_or(b"30")));
                (b"", b"")
            }
            b"1" => {
                b.start(b"0");
                b.field(112, Value::Bytes(m.get(112).unwrap_or_default()));
                (b"", b"")
            }
            b"5" => {
                b.start(b"5");
                (b"", b"")
            }
            b"D" => (b"0", b"0"),
            b"F" => (b"4", b"4"),
            b"G" => (b"5", b"0"),
            _ => return false,
        };
        if !exec_type.is_empty() {
            self.next_id += 1;
            b.start(b"8");
            b.field(37, Value::U64(self.next_id))
                .field(17, Value::U64(self.next_id))
                .field(150, Value::Bytes(exec_type))
                .field(39, Value::Bytes(status))
                .field(11, Value::Bytes(m.get(11).unwrap_or_default()))
                .field(1, Value::Bytes(m.get(1).unwrap_or_default()))
                .field(55, Value::Bytes(m.get(55).unwrap_or_default()))
                .field(54, Value::Bytes(m.get(54).unwrap_or(b"1")))
                .field(38, Value::Bytes(m.get(38).unwrap_or(b"0")))
                .field(14, Value::U64(0))
                .field(151, Value::Bytes(m.get(38).unwrap_or(b"0")))
                .field(6, Value::U64(0))
                .field(60, Value::Bytes(m.get(52).unwrap_or_default()));
            if let Some(orig) = m.get(41) {
                b.field(41, Value::Bytes(orig));
            }
        }
        b.field(49, Value::Bytes(&self.ours))
            .field(56, Value::Bytes(&self.theirs))
            .field(34, Value::U64(self.next_out_seq))
            .field(52, Value::TimeMs(wall_clock_ns()));
        self.next_out_seq += 1;
        b.finish(&mut self.message);
        out.extend_from_slice(&self.message);
        m.msg_type() == b"5"
    }
}
