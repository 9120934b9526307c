//! Engine outputs as FIX messages: ExecutionReport (8), OrderCancelReject (9),
//! OrderMassCancelReport (r). ExecIDs are `<journal seq>-<output index>`: unique, and the same
//! on every replay of the journal.

use ordo_engine::{CancelReason, OrdType, OrderView, Reason, Side, TimeInForce};

use crate::catalog::Catalog;
use crate::member::engine_runner::{OutMsg, Outbound};
use ordo_fix::builder::{Value, itoa_u64};

fn side(s: Side) -> &'static [u8] {
    match s {
        Side::Buy => b"1",
        Side::Sell => b"2",
    }
}

fn ord_type(t: OrdType) -> &'static [u8] {
    match t {
        OrdType::Market => b"1",
        OrdType::Limit => b"2",
    }
}

fn tif(t: TimeInForce) -> &'static [u8] {
    match t {
        TimeInForce::Day => b"0",
        TimeInForce::Gtc => b"1",
        TimeInForce::Ioc => b"3",
        TimeInForce::Fok => b"4",
        TimeInForce::Gtd => b"6",
    }
}

/// OrdStatus (39) of an order view after an event of `exec_type`.
fn ord_status(exec_type: u8, v: &OrderView) -> &'static [u8] {
    if exec_type == b'4' {
        return b"4";
    }
    if v.leaves == 0 {
        return if v.cum >= v.qty { b"2" } else { b"4" };
    }
    if v.cum > 0 { b"1" } else { b"0" }
}

/// OrdRejReason (103) for an engine reason.
fn ord_rej_reason(r: Reason) -> &'static [u8] {
    match r {
        Reason::UnknownInstrument => b"1",
        Reason::InstrumentHalted => b"2",
        Reason::MaxOrderQty
        | Reason::MaxOrderNotional
        | Reason::PositionLimit
        | Reason::CreditLimit
        | Reason::MaxOpenOrders => b"3",
        Reason::DuplicateClOrdId => b"6",
        Reason::UnknownAccount => b"15",
        Reason::PriceCollar | Reason::InvalidPrice | Reason::PriceOutOfRange => b"13",
        _ => b"99",
    }
}

fn cancel_text(r: CancelReason) -> &'static str {
    match r {
        CancelReason::User => "cancelled on request",
        CancelReason::Unfilled => "unfilled remainder cancelled (IOC/market)",
        CancelReason::FokUnfilled => "fill or kill could not fill",
        CancelReason::SelfTrade => "self-trade prevention",
        CancelReason::KillSwitch => "kill switch",
        CancelReason::Disconnect => "cancel on disconnect",
        CancelReason::Expired => "expired",
        CancelReason::DayEnd => "end of trading day",
        CancelReason::CircuitBreaker => "circuit breaker tripped",
        CancelReason::MassCancel => "mass cancel",
    }
}

/// Fields of an ExecutionReport about a known order beyond those every such report carries.
#[derive(Default)]
struct Extras<'a> {
    /// A requested cancel: the request's ClOrdID replaces the order's (11).
    clordid: Option<&'a [u8]>,
    /// OrigClOrdID (41).
    orig_clordid: Option<&'a [u8]>,
    /// LastPx, LastQty (31, 32) of a fill, in price ticks and lots.
    last: Option<(i64, u64)>,
    /// Text (58).
    text: Option<&'a [u8]>,
    /// ExecRestatementReason 99 (378).
    restated: bool,
    /// MassStatusReqID / OrdStatusReqID (790).
    request: Option<&'a [u8]>,
    /// The order ended by expiring: OrdStatus C (a status answer about a finished order).
    expired: bool,
}

/// The fields of an ExecutionReport about a known order, in tag order (the builder then
/// writes them without sorting: this runs once per report, several per request).
#[allow(clippy::too_many_arguments)]
fn exec_fields<'a>(
    fields: &mut Vec<(u32, Value<'a>)>,
    v: &'a OrderView,
    exec_type: u8,
    exec_id: &'a [u8],
    catalog: &'a Catalog,
    account: &'a [u8],
    extras: Extras<'a>,
    timestamp_ns: u64,
) {
    let instrument = v.instrument;
    fields.push((1, Value::Bytes(account)));
    let avg = if v.cum == 0 {
        (0, 0)
    } else {
        // cum_notional (tick-lots) x tick (nanos) / cum (lots): nanos, rounded down.
        let (tick, scale) = catalog.price_decimal(instrument, 1);
        let notional = v.cum_notional * tick;
        // In 64 bits when it fits (always, for realistic fills): a 128-bit division is a
        // library call, on every fill report. Both truncate toward zero.
        let avg = match (i64::try_from(notional), i64::try_from(v.cum)) {
            (Ok(n), Ok(c)) => i128::from(n / c),
            _ => notional / i128::from(v.cum),
        };
        (avg, scale)
    };
    fields.push((6, Value::Decimal(avg.0, avg.1)));
    fields.push((11, Value::Bytes(extras.clordid.unwrap_or(v.clordid.as_bytes()))));
    fields.push((14, Value::U64(catalog.qty_units(instrument, v.cum))));
    fields.push((17, Value::Bytes(exec_id)));
    if let Some((px, qty)) = extras.last {
        let (m, s) = catalog.price_decimal(instrument, i128::from(px));
        fields.push((31, Value::Decimal(m, s)));
        fields.push((32, Value::U64(catalog.qty_units(instrument, qty))));
    }
    fields.push((37, Value::U64(v.order_id)));
    fields.push((38, Value::U64(catalog.qty_units(instrument, v.qty))));
    let status = if extras.expired {
        b"C"
    } else {
        ord_status(exec_type, v)
    };
    fields.push((39, Value::Bytes(status)));
    fields.push((40, Value::Bytes(ord_type(v.ord_type))));
    if let Some(orig) = extras.orig_clordid {
        fields.push((41, Value::Bytes(orig)));
    }
    if v.ord_type == OrdType::Limit {
        let (m, s) = catalog.price_decimal(instrument, i128::from(v.price));
        fields.push((44, Value::Decimal(m, s)));
    }
    fields.push((54, Value::Bytes(side(v.side))));
    fields.push((55, Value::Bytes(catalog.symbol(instrument).as_bytes())));
    if let Some(text) = extras.text {
        fields.push((58, Value::Bytes(text)));
    }
    fields.push((59, Value::Bytes(tif(v.tif))));
    fields.push((60, Value::TimeMs(timestamp_ns)));
    fields.push((150, Value::Bytes(exec_type_bytes(exec_type))));
    fields.push((151, Value::U64(catalog.qty_units(instrument, v.leaves))));
    if extras.restated {
        fields.push((378, Value::Bytes(b"99")));
    }
    if let Some(request) = extras.request {
        fields.push((790, Value::Bytes(request)));
    }
}

fn exec_type_bytes(t: u8) -> &'static [u8] {
    match t {
        b'0' => b"0",
        b'4' => b"4",
        b'5' => b"5",
        b'8' => b"8",
        b'D' => b"D",
        b'F' => b"F",
        b'I' => b"I",
        _ => b"?",
    }
}

/// Scratch space for the values of one message (no allocation once warm).
#[derive(Debug, Default)]
pub struct ReportBuf {
    exec_id: Vec<u8>,
}

/// The MsgType and body fields of `out`, for session `catalog.sessions[out.session]`.
pub fn build<'a>(
    out: &'a Outbound,
    catalog: &'a Catalog,
    buf: &'a mut ReportBuf,
    fields: &mut Vec<(u32, Value<'a>)>,
) -> &'static [u8] {
    fields.clear();
    buf.exec_id.clear();
    buf.exec_id.extend_from_slice(itoa_u64(out.origin_seq).as_slice());
    buf.exec_id.push(b'-');
    buf.exec_id
        .extend_from_slice(itoa_u64(u64::from(out.origin_idx)).as_slice());
    let exec_id: &'a [u8] = &buf.exec_id;
    let account_name = |id: u32| {
        catalog
            .accounts
            .get(id as usize)
            .map_or(&b"?"[..], |a| a.as_bytes())
    };
    match &out.msg {
        OutMsg::Exec {
            exec_type,
            view,
            last,
            clordid,
            orig_clordid,
            cancel_reason,
        } => {
            let extras = Extras {
                clordid: clordid.as_ref().map(|c| c.as_bytes()),
                orig_clordid: orig_clordid.as_ref().map(|c| c.as_bytes()),
                last: *last,
                text: cancel_reason.map(|r| cancel_text(r).as_bytes()),
                restated: *exec_type == b'D',
                request: None,
                expired: false,
            };
            let account = account_name(view.account);
            exec_fields(
                fields,
                view,
                *exec_type,
                exec_id,
                catalog,
                account,
                extras,
                out.timestamp_ns,
            );
            b"8"
        }
        OutMsg::Rejected { order, reason } => {
            let instrument = order.instrument;
            fields.push((37, Value::Bytes(b"NONE")));
            fields.push((11, Value::Bytes(order.clordid.as_bytes())));
            fields.push((17, Value::Bytes(exec_id)));
            fields.push((150, Value::Bytes(b"8")));
            fields.push((39, Value::Bytes(b"8")));
            fields.push((1, Value::Bytes(account_name(order.account))));
            fields.push((55, Value::Bytes(catalog.symbol(instrument).as_bytes())));
            fields.push((54, Value::Bytes(side(order.side))));
            fields.push((38, Value::U64(catalog.qty_units(instrument, order.qty))));
            fields.push((40, Value::Bytes(ord_type(order.ord_type))));
            fields.push((151, Value::U64(0)));
            fields.push((14, Value::U64(0)));
            fields.push((6, Value::U64(0)));
            fields.push((103, Value::Bytes(ord_rej_reason(*reason))));
            fields.push((58, Value::Bytes(reason.text().as_bytes())));
            fields.push((60, Value::TimeMs(out.timestamp_ns)));
            b"8"
        }
        OutMsg::CancelReject {
            clordid,
            orig_clordid,
            order_id,
            is_replace,
            reason,
        } => {
            if *order_id == 0 {
                fields.push((37, Value::Bytes(b"NONE")));
            } else {
                fields.push((37, Value::U64(*order_id)));
            }
            fields.push((11, Value::Bytes(clordid.as_bytes())));
            fields.push((41, Value::Bytes(orig_clordid.as_bytes())));
            // The order's status is unknown here for a missing order; 8 (Rejected) per FIX.
            fields.push((39, Value::Bytes(if *order_id == 0 { b"8" } else { b"0" })));
            fields.push((434, Value::Bytes(if *is_replace { b"2" } else { b"1" })));
            let cxl_reason: &[u8] = match reason {
                Reason::UnknownOrder | Reason::NotYourOrder => b"1",
                _ => b"99",
            };
            fields.push((102, Value::Bytes(cxl_reason)));
            fields.push((58, Value::Bytes(reason.text().as_bytes())));
            b"9"
        }
        OutMsg::MassCancel {
            clordid,
            instrument,
            cancelled,
            rejected,
        } => {
            fields.push((11, Value::Bytes(clordid.as_bytes())));
            fields.push((37, Value::Bytes(exec_id)));
            // MassCancelRequestType echoes the request: 1 (one security) or 7 (all orders);
            // MassCancelResponse says the same when accepted, 0 when refused.
            let request_type: &[u8] = if instrument.is_some() { b"1" } else { b"7" };
            fields.push((530, Value::Bytes(request_type)));
            match rejected {
                Some(r) => {
                    fields.push((531, Value::Bytes(b"0")));
                    let reason: &[u8] = match r {
                        Reason::UnknownInstrument => b"1",
                        _ => b"99",
                    };
                    fields.push((532, Value::Bytes(reason)));
                    fields.push((58, Value::Bytes(r.text().as_bytes())));
                }
                None => fields.push((531, Value::Bytes(request_type))),
            }
            if let Some(symbol) = instrument.and_then(|i| catalog.known_symbol(i)) {
                fields.push((55, Value::Bytes(symbol.as_bytes())));
            }
            fields.push((533, Value::U64(u64::from(*cancelled))));
            b"r"
        }
        OutMsg::Status {
            view,
            expired,
            clordid,
            request,
        } => {
            match view {
                Some(v) => {
                    let extras = Extras {
                        request: (!request.is_empty()).then(|| request.as_bytes()),
                        expired: *expired,
                        ..Extras::default()
                    };
                    let account = account_name(v.account);
                    exec_fields(
                        fields,
                        v,
                        b'I',
                        exec_id,
                        catalog,
                        account,
                        extras,
                        out.timestamp_ns,
                    );
                }
                None => {
                    fields.push((37, Value::Bytes(b"NONE")));
                    fields.push((11, Value::Bytes(clordid.as_bytes())));
                    fields.push((17, Value::Bytes(exec_id)));
                    fields.push((150, Value::Bytes(b"I")));
                    fields.push((39, Value::Bytes(b"8")));
                    fields.push((54, Value::Bytes(b"1")));
                    fields.push((151, Value::U64(0)));
                    fields.push((14, Value::U64(0)));
                    fields.push((6, Value::U64(0)));
                    fields.push((58, Value::Bytes(b"unknown order")));
                    if !request.is_empty() {
                        fields.push((790, Value::Bytes(request.as_bytes())));
                    }
                    fields.push((60, Value::TimeMs(out.timestamp_ns)));
                }
            }
            b"8"
        }
        // Not reports: the router applies them to the session itself.
        OutMsg::Admin { .. }
        | OutMsg::SessionOut { .. }
        | OutMsg::Reset
        | OutMsg::Takeover { .. }
        | OutMsg::Snapshot(_) => b"",
    }
}
