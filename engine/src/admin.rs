//! Operator and feed commands: instruments, limits, kill switch, halts, throttles, reference
//! prices, session disconnects.

use crate::book::Book;
use crate::command::{Admin, InstrumentSpec};
use crate::engine::{Engine, Instrument};
use crate::order::{ListKind, NIL};
use crate::output::{CancelReason, HaltReason, Output, OutputSink, Reason};
use crate::types::{InstrumentId, SessionId};

impl Engine {
    pub(crate) fn reference_price(
        &mut self,
        instrument: InstrumentId,
        price: i64,
        out: &mut impl OutputSink,
    ) {
        if self.instrument(instrument).is_none() {
            out.emit(Output::AdminRejected {
                reason: Reason::UnknownInstrument,
            });
        } else if price <= 0 {
            out.emit(Output::AdminRejected {
                reason: Reason::InvalidPrice,
            });
        } else {
            self.inst_mut(instrument).reference = price;
        }
    }

    pub(crate) fn session_disconnected(
        &mut self,
        session: SessionId,
        cancel_orders: bool,
        out: &mut impl OutputSink,
    ) {
        if session >= self.config.max_sessions || !cancel_orders {
            return;
        }
        let mut slot = self.session_lists[session as usize].head;
        while slot != NIL {
            let next = self.orders.list_next(ListKind::Session, slot);
            self.cancel_resting(slot, CancelReason::Disconnect, out);
            slot = next;
        }
    }

    fn check_spec(&self, spec: &InstrumentSpec) -> Result<(), Reason> {
        let width = i128::from(spec.max_price) - i128::from(spec.min_price) + 1;
        let valid = spec.id < self.config.max_instruments
            && !spec.symbol.is_empty()
            && spec.tick_size_nanos > 0
            && spec.lot_size > 0
            && spec.min_price > 0
            && width >= 1
            && width <= i128::from(self.config.max_ladder_ticks)
            && spec.collar_bps <= 10_000
            && (spec.breaker_bps == 0 || (spec.breaker_window_ns > 0 && spec.breaker_halt_ns > 0));
        if !valid {
            return Err(Reason::InvalidInstrument);
        }
        if let Some(existing) = self.instrument(spec.id) {
            let range_changed =
                existing.spec.min_price != spec.min_price || existing.spec.max_price != spec.max_price;
            if range_changed && !existing.book.is_empty() {
                return Err(Reason::InvalidInstrument);
            }
        }
        Ok(())
    }

    fn upsert_instrument(&mut self, spec: &InstrumentSpec) -> Result<(), Reason> {
        self.check_spec(spec)?;
        match self.instruments[spec.id as usize].as_mut() {
            Some(inst) => {
                if inst.spec.min_price != spec.min_price || inst.spec.max_price != spec.max_price {
                    inst.book = Book::new(spec.min_price, spec.max_price);
                }
                inst.spec = *spec;
            }
            None => {
                self.instruments[spec.id as usize] = Some(Instrument {
                    spec: *spec,
                    book: Book::new(spec.min_price, spec.max_price),
                    reference: 0,
                    last_trade: 0,
                    halt: None,
                    halted_until: 0,
                    anchor_price: 0,
                    anchor_ns: 0,
                    anchor_set: false,
                    tob_epoch: 0,
                });
            }
        }
        Ok(())
    }

    pub(crate) fn admin(&mut self, a: &Admin, out: &mut impl OutputSink) {
        let result = match *a {
            Admin::UpsertInstrument(spec) => self.upsert_instrument(&spec),
            Admin::SetAccountLimits { account, limits } => {
                if account >= self.config.max_accounts {
                    Err(Reason::UnknownAccount)
                } else {
                    self.accounts[account as usize].limits = limits;
                    Ok(())
                }
            }
            Admin::KillSwitch { account, active } => {
                if account >= self.config.max_accounts {
                    Err(Reason::UnknownAccount)
                } else {
                    self.accounts[account as usize].killed = active;
                    out.emit(Output::KillSwitch { account, active });
                    if active {
                        let mut slot = self.account_lists[account as usize].head;
                        while slot != NIL {
                            let next = self.orders.list_next(ListKind::Account, slot);
                            self.cancel_resting(slot, CancelReason::KillSwitch, out);
                            slot = next;
                        }
                    }
                    Ok(())
                }
            }
            Admin::Halt { instrument } => match self.instrument(instrument).map(|i| i.halt) {
                None => Err(Reason::UnknownInstrument),
                Some(Some(HaltReason::Operator)) => Ok(()),
                Some(previous) => {
                    if previous == Some(HaltReason::CircuitBreaker) {
                        self.breaker_halts -= 1;
                    }
                    let inst = self.inst_mut(instrument);
                    inst.halt = Some(HaltReason::Operator);
                    inst.halted_until = 0;
                    out.emit(Output::Halted {
                        instrument,
                        reason: HaltReason::Operator,
                        until_ns: 0,
                    });
                    Ok(())
                }
            },
            Admin::Resume { instrument } => match self.instrument(instrument).map(|i| i.halt) {
                None => Err(Reason::UnknownInstrument),
                Some(None) => Ok(()),
                Some(Some(_)) => {
                    self.resume(instrument, out);
                    Ok(())
                }
            },
            Admin::SetThrottle { session, per_second } => {
                if session >= self.config.max_sessions {
                    Err(Reason::UnknownSession)
                } else {
                    self.sessions[session as usize].set_throttle(per_second, self.now_ns);
                    Ok(())
                }
            }
        };
        out.emit(match result {
            Ok(()) => Output::AdminDone,
            Err(reason) => Output::AdminRejected { reason },
        });
    }
}
