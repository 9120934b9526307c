//! The operator channel: a Unix socket `<data>/admin.sock` that `ordo admin` talks to. A client
//! proves it may administer the node by sending the token the node wrote, at start, to
//! `<data>/admin.token` (mode 0600: whoever can read the node's data directory). Commands are
//! sequenced like every other input, and the answer is the engine's.
//!
//! Protocol: one line with the token, one line with the command; one line back:
//! `OK seq=<journal seq>` or `ERROR <reason>`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ordo_engine::command::AccountLimits;
use ordo_engine::{Admin, Command};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::catalog::{ADDED_INSTRUMENTS_MAX, InstrumentInfo};
use crate::config::InstrumentSettings;
use crate::node::NodeHandle;

/// The socket's file name in the data directory.
pub const SOCKET: &str = "admin.sock";
/// The token's file name in the data directory.
pub const TOKEN: &str = "admin.token";
/// Longest command line accepted.
const MAX_LINE: usize = 4096;

fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| format!("read /dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Starts the admin socket. The token is written before the socket exists.
pub fn serve(
    data_dir: &Path,
    node: NodeHandle,
    mut shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, String> {
    let token = new_token()?;
    let token_path = data_dir.join(TOKEN);
    std::fs::write(&token_path, format!("{token}\n"))
        .map_err(|e| format!("write {}: {e}", token_path.display()))?;
    std::fs::set_permissions(&token_path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", token_path.display()))?;
    let socket_path = data_dir.join(SOCKET);
    let _ = std::fs::remove_file(&socket_path);
    let listener =
        UnixListener::bind(&socket_path).map_err(|e| format!("bind {}: {e}", socket_path.display()))?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let node = node.clone();
                    let token = token.clone();
                    tokio::spawn(async move {
                        let (read, mut write) = stream.into_split();
                        let mut lines = BufReader::new(read.take(2 * MAX_LINE as u64)).lines();
                        let answer = match (lines.next_line().await, lines.next_line().await) {
                            (Ok(Some(t)), Ok(Some(cmd))) if t.trim() == token => execute(&node, cmd.trim()).await,
                            (Ok(Some(_)), _) => "ERROR bad token".to_string(),
                            _ => "ERROR expected a token line and a command line".to_string(),
                        };
                        let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
                    });
                }
                _ = shutdown.changed() => if *shutdown.borrow() { break },
            }
        }
    }))
}

fn parse_limits(args: &[&str]) -> Result<AccountLimits, String> {
    let mut l = AccountLimits::UNLIMITED;
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {a:?}"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("{k}: not a number: {v:?}"));
        match k {
            "max_order_qty" => l.max_order_qty = num(v)?,
            "max_order_notional" => l.max_order_notional = i128::from(num(v)?),
            "max_open_orders" => {
                l.max_open_orders = u32::try_from(num(v)?).map_err(|_| "max_open_orders too large")?
            }
            "max_position" => l.max_position = num(v)?,
            "credit_limit" => l.credit_limit = i128::from(num(v)?),
            other => return Err(format!("unknown limit {other:?}")),
        }
    }
    Ok(l)
}

/// The settings of `add SYMBOL tick=T reference=R [key=value...]` (keys as in the
/// configuration file's `[[instruments]]`).
fn parse_instrument(symbol: &str, args: &[&str]) -> Result<InstrumentSettings, String> {
    let mut pairs = Vec::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| format!("expected key=value, got {a:?}"))?;
        pairs.push((k, v));
    }
    let get = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let (Some(tick), Some(reference)) = (get("tick"), get("reference")) else {
        return Err("add needs tick=DECIMAL and reference=DECIMAL".into());
    };
    let mut i = InstrumentSettings::new(symbol, tick, reference);
    for (k, v) in &pairs {
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("{k}: not a number: {v:?}"));
        let bps = |v: &str| u32::try_from(num(v)?).map_err(|_| format!("{k}: too large: {v}"));
        match *k {
            "tick" | "reference" => {}
            "min_price" => i.min_price = v.to_string(),
            "max_price" => i.max_price = v.to_string(),
            "collar_bps" => i.collar_bps = bps(v)?,
            "breaker_bps" => i.breaker_bps = bps(v)?,
            "breaker_window_s" => i.breaker_window_s = num(v)?,
            "breaker_halt_s" => i.breaker_halt_s = num(v)?,
            other => return Err(format!("unknown instrument setting {other:?}")),
        }
    }
    Ok(i)
}

/// `add SYMBOL ...`: checks the instrument as the engine will (so that the engine cannot
/// refuse what the journal then holds), sequences its definition and, right behind it, its
/// reference price, and publishes it to the gateway once the engine holds it (so the running
/// node agrees with what a restart finds in the journal). Adds are serialised: the id is
/// chosen first.
async fn add_instrument(node: &NodeHandle, symbol: &str, args: &[&str]) -> Result<u64, String> {
    let settings = parse_instrument(symbol, args)?;
    let _adding = node.adding.lock().await;
    let catalog = &node.catalog;
    if catalog.instrument_id(symbol.as_bytes()).is_some() {
        return Err(format!("instrument {symbol} exists"));
    }
    let id = catalog.next_added_id().ok_or_else(|| {
        format!(
            "no room for another instrument: {ADDED_INSTRUMENTS_MAX} were added to this journal (the bound)"
        )
    })?;
    let info = InstrumentInfo::from_settings(id, &settings)?;
    let spec = info.spec;
    let config = catalog.engine_config();
    let width = i128::from(spec.max_price) - i128::from(spec.min_price) + 1;
    if width < 1 || width > i128::from(config.max_ladder_ticks) {
        return Err(format!(
            "{symbol}: min_price..max_price is {width} ticks; between 1 and {} allowed",
            config.max_ladder_ticks
        ));
    }
    if spec.collar_bps > 10_000 {
        return Err(format!("{symbol}: collar_bps above 10000"));
    }
    if spec.breaker_bps > 0 && (spec.breaker_window_ns == 0 || spec.breaker_halt_ns == 0) {
        return Err(format!(
            "{symbol}: a breaker needs breaker_window_s and breaker_halt_s above 0"
        ));
    }
    let seq = node
        .sequence(Command::Admin(Admin::UpsertInstrument(spec)))
        .await?;
    // The reference price right behind the definition: the engine applies both before any
    // order can name the symbol (the gateway learns it only below).
    let reference = node
        .sequence(Command::ReferencePrice {
            instrument: id,
            price: info.reference_ticks,
        })
        .await;
    node.admin_result(seq).await?;
    // Published once the engine holds it, as a restart finds it in the journal.
    catalog.publish_added(info)?;
    reference
        .map_err(|e| format!("{symbol} added (seq={seq}), but its reference price was not sequenced: {e}"))?;
    Ok(seq)
}

/// Parses and runs one command.
async fn execute(node: &NodeHandle, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    if let ["add", symbol, rest @ ..] = words.as_slice() {
        return match add_instrument(node, symbol, rest).await {
            Ok(seq) => format!("OK seq={seq}"),
            Err(e) => format!("ERROR {e}"),
        };
    }
    let catalog = &node.catalog;
    let instrument = |s: &str| {
        catalog
            .instrument_id(s.as_bytes())
            .ok_or_else(|| format!("unknown instrument {s}"))
    };
    let account = |s: &str| {
        catalog
            .account_id(s.as_bytes())
            .ok_or_else(|| format!("unknown account {s}"))
    };
    let command: Result<Admin, String> = match words.as_slice() {
        ["ping"] => return "OK".into(),
        ["status"] => return format!("OK {}", node.status()),
        ["transfer-leader", to] => {
            return match to.parse::<u64>() {
                Ok(to) => match node.transfer_leader(to).await {
                    Ok(done) => format!("OK {done}"),
                    Err(e) => format!("ERROR {e}"),
                },
                Err(_) => format!("ERROR transfer-leader: not a member id: {to:?}"),
            };
        }
        ["halt", sym] => instrument(sym).map(|instrument| Admin::Halt { instrument }),
        ["resume", sym] => instrument(sym).map(|instrument| Admin::Resume { instrument }),
        ["kill", acc, "on"] => account(acc).map(|account| Admin::KillSwitch {
            account,
            active: true,
        }),
        ["kill", acc, "off"] => account(acc).map(|account| Admin::KillSwitch {
            account,
            active: false,
        }),
        ["limits", acc, rest @ ..] => account(acc).and_then(|account| {
            Ok(Admin::SetAccountLimits {
                account,
                limits: parse_limits(rest)?,
            })
        }),
        _ => Err(format!(
            "unknown command {line:?} (halt SYM | resume SYM | kill ACCOUNT on|off | limits ACCOUNT key=value... | add SYM tick=T reference=R [key=value...] | status | transfer-leader ID | ping)"
        )),
    };
    match command {
        Err(e) => format!("ERROR {e}"),
        Ok(c) => match node.admin(c).await {
            Ok(seq) => format!("OK seq={seq}"),
            Err(e) => format!("ERROR {e}"),
        },
    }
}

/// The client side (`ordo admin`): sends `command` to the node with data directory `data_dir`.
pub fn request(data_dir: &Path, command: &str) -> Result<String, String> {
    use std::io::{BufRead, Write};
    let token = std::fs::read_to_string(data_dir.join(TOKEN)).map_err(|e| {
        format!(
            "read {}: {e} (is the node running?)",
            data_dir.join(TOKEN).display()
        )
    })?;
    let mut stream = std::os::unix::net::UnixStream::connect(data_dir.join(SOCKET)).map_err(|e| {
        format!(
            "connect {}: {e} (is the node running?)",
            data_dir.join(SOCKET).display()
        )
    })?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{}\n{command}\n", token.trim()).as_bytes())
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(line.trim().to_string())
}
