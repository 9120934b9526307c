//! The test-only echo application (`ordo node --echo`): what QuickFIX's acceptance suite runs
//! behind the acceptor. NewOrderSingle (D) and SecurityDefinition (d) are sent back with the
//! same body; a D with PossResend=Y whose ClOrdID was already seen since logon is dropped; every
//! other application message gets BusinessMessageReject "Unsupported Message Type".

use std::collections::HashSet;

use ordo_fix::dictionary;
use ordo_fix::message::Message;
use ordo_fix::session::{App, AppVerdict, Reply};

/// The echo application.
#[derive(Debug, Default)]
pub struct EchoApp {
    seen: HashSet<Vec<u8>>,
}

impl App for EchoApp {
    fn on_app(&mut self, msg: &Message<'_>, reply: &mut Vec<Reply>) -> AppVerdict {
        let msg_type = msg.msg_type();
        if msg_type != b"D" && msg_type != b"d" {
            return AppVerdict::Unsupported;
        }
        if msg_type == b"D" {
            let clordid = msg.get(11).unwrap_or_default().to_vec();
            if msg.flag(97) && self.seen.contains(&clordid) {
                return AppVerdict::Accept;
            }
            self.seen.insert(clordid);
        }
        // The whole message back, but for what the session writes itself (QuickFIX's echo
        // application resends the message object; the session refills these fields).
        let body = msg
            .fields
            .iter()
            .filter(|f| {
                !matches!(f.tag, 8 | 9 | 35 | 34 | 49 | 52 | 56 | 43 | 122) && !dictionary::is_trailer(f.tag)
            })
            .map(|f| (f.tag as u32, msg.value(f).to_vec()))
            .collect();
        reply.push(Reply {
            msg_type: msg_type.to_vec(),
            body,
        });
        AppVerdict::Accept
    }

    fn on_logon(&mut self, _reset: bool) {
        self.seen.clear();
    }
}
